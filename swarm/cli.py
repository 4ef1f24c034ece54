"""`python -m swarm`: run the swarm on a feed, and look into it.

run       submit a feed (default: the bundled sample catalog) and follow it
validate  check a feed without running it: a table and a JSON report of every problem
init-db   create or upgrade the database schema
status    the swarm's actors and its workflows by status (`--watch`, `--json`)
events    the event log, filtered by workflow, role, type and time (`--follow`, `--json`)
show      one workflow's story: steps, outputs, failures, recoveries, tokens and cost
export    a run's listings and campaigns (Shopify product CSV, or JSON lines)
chaos     a run while actors (and the cluster) are killed, then the invariants
resume    bring the swarm back (e.g. after a cluster restart) and finish every unfinished workflow
shutdown  stop the swarm's actors on the cluster
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import ray
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from actors.coordinator import FaultSettings
from actors.models import Product
from actors.protocol import STEPS
from storage.records import EventRecord
from storage.sqlite import SQLiteEventStore
from swarm.database import NoDatabaseError, check_database, open_database, read_database
from swarm.event_log_view import (
    EventFilterError,
    build_query,
    event_cells,
    events_table,
    follow,
    json_lines,
    latest,
)
from swarm.export import (
    ExportedProduct,
    ExportError,
    latest_run,
    load_run_outputs,
    write_campaigns_csv,
    write_jsonl,
    write_shopify_csv,
)
from swarm.feed_report import (
    default_report_path,
    problems_table,
    terminal_text,
    validate_feed,
    write_report,
)
from swarm.feeds import FeedError, parse_feed
from swarm.run import (
    STAGES,
    RunSummary,
    new_run_id,
    submit_products,
    summarize,
    unfinished,
    wait_for_run,
    wait_for_unfinished,
)
from swarm.runtime import (
    RayConnectionError,
    SwarmEscalatedError,
    connect,
    coordinator,
    find_swarm,
    journal,
    running_local_cluster,
    start_swarm,
    stop_swarm,
)
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from swarm.status_view import SwarmStatus, collect_status, render_status
from swarm.story_view import WorkflowNotFoundError, load_story, render_story

console = Console()
notes = Console(stderr=True, soft_wrap=True)
"""For messages beside output that may be piped (export, --json)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m swarm",
        description="PaaS: a durable swarm of Ray agents that validates vendor products, "
        "writes listings and campaigns with an LLM and publishes them to a marketplace.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a product feed through the swarm")
    run.add_argument("--input", type=Path, default=SAMPLE_CATALOG, help="Shopify CSV or JSONL")
    run.add_argument("--address", help="Ray address (default: RAY_ADDRESS, a local cluster, "
                     "else an embedded Ray)")  # fmt: skip
    run.add_argument("--fail-step", choices=STEPS, help="raise RuntimeError at this step")
    run.add_argument("--fail-rate", type=float, default=1.0, help="share of workflows failing")
    run.add_argument("--crash-step", choices=STEPS, help="kill the agent's process at this step")
    run.add_argument("--crash-rate", type=float, default=1.0, help="share of workflows crashing")
    run.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    run.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    resume = sub.add_parser(
        "resume", help="bring the swarm back and finish every workflow left unfinished"
    )
    resume.add_argument("--address", help="Ray address (same rules as `run`)")
    resume.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    sub.add_parser("chaos", help="a run under random kills, then the invariants (see --help)",
                   add_help=False)  # fmt: skip
    validate = sub.add_parser(
        "validate", help="check a feed with every check `run` applies, without running it"
    )
    validate.add_argument("file", type=Path, help="Shopify CSV or JSON lines feed")
    validate.add_argument(
        "--json-out",
        type=Path,
        help="where to write the JSON report (default: ./<feed name>.validation.json, "
        "in the current directory)",
    )
    sub.add_parser("init-db", help="create or upgrade the database schema")
    _status_parser(sub.add_parser("status", help="actors and workflows"))
    _events_parser(sub.add_parser("events", help="show the event log"))
    show = sub.add_parser("show", help="one workflow's story, step by step")
    show.add_argument("workflow", metavar="WORKFLOW", help="workflow id, or a product's handle")
    show.add_argument("--json", action="store_true", help="the story as one JSON object")
    export = sub.add_parser("export", help="write a run's generated listings and campaigns")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                        help="csv: Shopify product import (campaigns in <name>-campaigns.csv); "
                        "jsonl: one product per line")  # fmt: skip
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    export.add_argument("--run", help="run id (default: the latest run)")
    shutdown = sub.add_parser("shutdown", help="stop the swarm's actors on the cluster")
    shutdown.add_argument("--address", help="Ray address of the cluster running the swarm")
    return parser


def _status_parser(status: argparse.ArgumentParser) -> None:
    status.add_argument("--address", help="Ray address of the cluster running the swarm")
    status.add_argument("--watch", action="store_true", help="refresh live until Ctrl-C")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    status.add_argument("--iterations", type=int, default=0,
                        help="with --watch: stop after N refreshes (0: never)")  # fmt: skip
    status.add_argument("--json", action="store_true", help="JSON for scripts (a line each)")


def _events_parser(events: argparse.ArgumentParser) -> None:
    events.add_argument("--workflow", help="only this workflow's events")
    events.add_argument("--role", help="only this role's (e.g. product-upload) or agent's events")
    events.add_argument("--type", dest="event_type", help="only events of this type")
    events.add_argument("--since", help="recorded at or after: 10m, 2h, 1d, ISO time, HH:MM")
    events.add_argument("--until", help="recorded before: same forms as --since")
    events.add_argument("--limit", type=int, default=50, help="the newest N matching events")
    events.add_argument("--follow", action="store_true", help="keep printing new events")
    events.add_argument("--interval", type=float, default=0.5, help="--follow polling seconds")
    events.add_argument("--json", action="store_true", help="one JSON object per line")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["chaos"]:  # its own parser: a run of processes, not a Ray driver
        from swarm.chaos_run import main as chaos_main

        return chaos_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = SwarmSettings()
    except ValidationError as e:
        for error in e.errors(include_input=False):  # the input may be a secret
            where = ".".join(str(part) for part in error["loc"])
            notes.print(Text.assemble(("error: ", "red"), f"setting {where}: {error['msg']}"))
        return 2
    try:
        if args.command == "run":
            return cmd_run(args, settings)
        if args.command == "validate":
            return cmd_validate(args, settings)
        if args.command == "init-db":
            asyncio.run(_init_db(settings))
            console.print(f"database ready: {settings.db_path}")
            return 0
        if args.command == "resume":
            return cmd_resume(args, settings)
        if args.command == "status":
            return cmd_status(args, settings)
        if args.command == "events":
            return cmd_events(args, settings)
        if args.command == "show":
            return cmd_show(args, settings)
        if args.command == "export":
            return cmd_export(args, settings)
        return cmd_shutdown(args, settings)
    except (
        FeedError,
        RayConnectionError,
        NoDatabaseError,
        EventFilterError,
        WorkflowNotFoundError,
        ExportError,
    ) as e:
        notes.print(Text.assemble(("error: ", "red"), str(e)))
        return 2
    except SwarmEscalatedError as e:
        notes.print(Text.assemble(("swarm stopped: ", "red"), str(e)))
        return 3
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # the reader of our output went away (`... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


async def _init_db(settings: SwarmSettings) -> None:
    store = SQLiteEventStore(settings.db_path)
    await store.open()
    await store.close()


def cmd_validate(args: argparse.Namespace, settings: SwarmSettings) -> int:
    """Exit 0: no problem; 1: problems (listed); 2: the feed cannot be read at all."""
    report = validate_feed(args.file, settings.feed_limits())
    json_path = args.json_out or default_report_path(args.file, Path.cwd())
    write_report(report, json_path)
    if report.error is not None:
        console.print(terminal_text(f"{args.file}: cannot be read: {report.error}"))
        console.print(f"JSON report: {json_path}")
        return 2
    problems = _count(len(report.problems), "problem")
    if report.problems:
        console.print(problems_table(report.problems, title=f"{args.file.name}: {problems}"))
    console.print(
        f"{_count(report.products, 'product')}, {report.valid_products} valid, "
        f"{report.products - report.valid_products} would fail; {problems}. "
        f"JSON report: {json_path}"
    )
    return 0 if report.clean else 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def cmd_run(args: argparse.Namespace, settings: SwarmSettings) -> int:
    feed = parse_feed(args.input, limits=settings.feed_limits())
    if feed.problems:
        title = f"Feed problems ({len(feed.problems)}; all of them: python -m swarm validate)"
        console.print(problems_table(feed.problems, title=title, limit=30))
    products = list(feed.products)
    faults = FaultSettings(
        fail_step=args.fail_step,
        fail_rate=args.fail_rate,
        crash_step=args.crash_step,
        crash_rate=args.crash_rate,
        seed=args.seed,
    )
    asyncio.run(_init_db(settings))
    connection = connect(args.address or settings.ray_address)
    console.print(f"Ray: {connection.address}; {len(products)} products from {args.input}")
    try:
        # keep the handle: a non-detached supervisor lives as long as its owner holds it
        supervisor = start_swarm(settings, detached=not connection.embedded)
        summary = _run_with_progress(products, faults, settings, args.timeout)
        del supervisor
    finally:
        if connection.embedded:
            ray.shutdown()
    _print_summary(summary)
    return 0 if summary.terminal == summary.submitted else 1


def cmd_resume(args: argparse.Namespace, settings: SwarmSettings) -> int:
    """Start (or find) the swarm: agents recover from the log and finish what was in flight."""
    asyncio.run(_init_db(settings))
    before = unfinished(read_database(settings.db_path, lambda store: store.workflow_counts()))
    connection = connect(args.address or settings.ray_address)
    console.print(f"Ray: {connection.address}; {before} unfinished workflows in {settings.db_path}")
    started = time.monotonic()
    try:
        supervisor = start_swarm(settings, detached=not connection.embedded)
        with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:  # fmt: skip
            task = progress.add_task("resumed workflows", total=before)
            wait_for_unfinished(
                journal(),
                on_progress=lambda left: progress.update(task, completed=max(0, before - left)),
                timeout_s=args.timeout,
            )
        del supervisor
    except TimeoutError as e:
        console.print(f"[red]not finished:[/red] {e}")
        return 1
    finally:
        if connection.embedded:
            ray.shutdown()
    console.print(f"All workflows terminal after {time.monotonic() - started:.1f} s.")
    return 0


def _run_with_progress(
    products: list[Product], faults: FaultSettings, settings: SwarmSettings, timeout: float | None
) -> RunSummary:
    run_id = new_run_id()
    started = time.monotonic()
    ids = submit_products(coordinator(), run_id, products, faults, settings.submit_chunk)
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        tasks = {stage: progress.add_task(stage, total=len(ids)) for stage in STAGES}
        failed_task = progress.add_task("failed", total=len(ids))

        def show(passed: dict[str, int], _completed: int, failed: int) -> None:
            for stage, n in passed.items():
                progress.update(tasks[stage], completed=n)
            progress.update(failed_task, completed=failed)

        wait_for_run(journal(), run_id, len(ids), on_progress=show, timeout_s=timeout)
    wall_s = time.monotonic() - started
    return summarize(journal(), run_id, len(ids), wall_s, settings.price_table)


def _print_summary(summary: RunSummary) -> None:
    table = Table(title=f"Run {summary.run_id}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("products", str(summary.submitted))
    table.add_row("completed", f"[green]{summary.completed}[/green]")
    table.add_row("failed", f"[red]{summary.failed}[/red]")
    table.add_row("wall time", f"{summary.wall_s:.2f} s")
    table.add_row("products/s", f"{summary.products_per_s:.1f}")
    llm = summary.llm
    models = ", ".join(f"{m} {n}" for m, n in sorted(llm.calls_by_model.items()))
    table.add_row("LLM calls", f"{llm.calls}" + (f" ({models})" if models else ""))
    table.add_row("LLM tokens in / out", f"{llm.input_tokens} / {llm.output_tokens}")
    unpriced = f" (no price for {', '.join(llm.unpriced_models)})" if llm.unpriced_models else ""
    table.add_row("LLM cost (estimated)", f"${llm.cost_usd:.4f}{unpriced}")
    table.add_row("crashes injected", str(llm.crashes))
    repeated = f"{llm.repeated_calls} (${llm.repeated_cost_usd:.4f})"
    table.add_row(
        "LLM calls repeated", f"[{'red' if llm.repeated_calls else 'green'}]{repeated}[/]"
    )
    console.print(table)
    if summary.failures:
        failures = Table(title="Failed products")
        for column in ("product", "step", "reason"):
            failures.add_column(column)
        for product_id, step, reason in summary.failures:
            failures.add_row(terminal_text(product_id), step, terminal_text(reason))
        console.print(failures)


def _attach(address: str | None) -> bool:
    """Attach to a running cluster without starting one; False when none answers."""
    if ray.is_initialized():
        return True
    if address is None and running_local_cluster() is None:
        return False
    connect(address)
    return True


def cmd_status(args: argparse.Namespace, settings: SwarmSettings) -> int:
    attached = _attach(args.address or settings.ray_address)

    def current() -> SwarmStatus:
        return collect_status(settings.db_path, find_swarm() if attached else None)

    if args.json:
        for _ in _refreshes(args):
            print(current().model_dump_json(), flush=True)
        return 0
    if not args.watch:
        console.print(render_status(current()))
        return 0
    with Live(render_status(current()), console=console, auto_refresh=False) as live:
        for n in _refreshes(args):
            if n:
                live.update(render_status(current()), refresh=True)
    return 0


def _refreshes(args: argparse.Namespace) -> Iterator[int]:
    """0, 1, 2, ...: once without --watch, else every --interval s (--iterations times)."""
    n = 0
    while True:
        yield n
        n += 1
        if not args.watch or n == args.iterations:
            return
        time.sleep(args.interval)  # the display's refresh period


def cmd_events(args: argparse.Namespace, settings: SwarmSettings) -> int:
    check_database(settings.db_path)

    def emit(rows: Sequence[tuple[int, EventRecord]], *, first: bool = False) -> None:
        if args.json:
            sys.stdout.write(json_lines(rows))
            sys.stdout.flush()
        elif first:
            console.print(events_table(rows))
        else:
            for position, record in rows:
                console.print(Text("  ".join(event_cells(position, record))))

    async def query() -> None:
        async with open_database(settings.db_path) as store:
            q = await build_query(store, workflow=args.workflow, role=args.role,
                                  event_type=args.event_type, since=args.since,
                                  until=args.until, limit=args.limit)  # fmt: skip
            rows = await latest(store, q)
            emit(rows, first=True)
            if args.follow:
                after = rows[-1][0] if rows else 0
                await follow(store, q, after, emit, interval_s=args.interval)

    asyncio.run(query())
    return 0


def cmd_show(args: argparse.Namespace, settings: SwarmSettings) -> int:
    prices = settings.price_table
    story = read_database(settings.db_path, lambda s: load_story(s, args.workflow, prices))
    if args.json:
        tokens_in, tokens_out = story.tokens
        data = story.model_dump(mode="json")
        data |= {"input_tokens": tokens_in, "output_tokens": tokens_out,
                 "cost_usd": story.cost_usd}  # fmt: skip
        print(json.dumps(data, ensure_ascii=False))
    else:
        console.print(render_story(story))
    return 0


def cmd_export(args: argparse.Namespace, settings: SwarmSettings) -> int:
    async def load(store: SQLiteEventStore) -> tuple[str, list[ExportedProduct]]:
        run_id = args.run or await latest_run(store)
        return run_id, await load_run_outputs(store, run_id, settings.price_table)

    run_id, items = read_database(settings.db_path, load)
    write = write_shopify_csv if args.format == "csv" else write_jsonl
    if args.output is None:
        write(items, sys.stdout)
        notes.print(f"{len(items)} products of run {run_id}")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8", newline="") as out:
        write(items, out)
    notes.print(f"wrote {len(items)} products of run {run_id} to {args.output}")
    if args.format == "csv":
        campaigns = args.output.with_name(f"{args.output.stem}-campaigns.csv")
        with campaigns.open("w", encoding="utf-8", newline="") as out:
            count = write_campaigns_csv(items, out)
        notes.print(f"wrote {count} campaigns to {campaigns}")
    return 0


def cmd_shutdown(args: argparse.Namespace, settings: SwarmSettings) -> int:
    if not _attach(args.address or settings.ray_address) or (supervisor := find_swarm()) is None:
        console.print("No swarm is running.")
        return 0
    stop_swarm(supervisor)
    console.print("Swarm stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
