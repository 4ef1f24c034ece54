"""`python -m swarm`: run the swarm on a feed, and look into it.

run       submit a feed (default: the bundled sample catalog) and follow it
validate  check a feed without running it: a table and a JSON report of every problem
init-db   create or upgrade the database schema
status    the swarm's actors and its workflows by status
events    the event log, newest last
chaos     a run while actors (and the cluster) are killed, then the invariants
resume    bring the swarm back (e.g. after a cluster restart) and finish every unfinished workflow
shutdown  stop the swarm's actors on the cluster
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import ray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors.coordinator import FaultSettings
from actors.models import Product
from actors.protocol import STEPS
from storage.records import EventQuery, EventRecord
from storage.sqlite import SQLiteEventStore
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
    SwarmEscalatedError,
    new_run_id,
    submit_products,
    summarize,
    unfinished,
    wait_for_run,
    wait_for_unfinished,
)
from swarm.runtime import (
    RayConnectionError,
    connect,
    coordinator,
    find_swarm,
    journal,
    running_local_cluster,
    start_swarm,
    stop_swarm,
)
from swarm.settings import SAMPLE_CATALOG, SwarmSettings

console = Console()


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
    status = sub.add_parser("status", help="actors and workflows")
    status.add_argument("--address", help="Ray address of the cluster running the swarm")
    events = sub.add_parser("events", help="show the event log")
    events.add_argument("--workflow", help="only this workflow's events")
    events.add_argument("--limit", type=int, default=50)
    shutdown = sub.add_parser("shutdown", help="stop the swarm's actors on the cluster")
    shutdown.add_argument("--address", help="Ray address of the cluster running the swarm")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["chaos"]:  # its own parser: a run of processes, not a Ray driver
        from swarm.chaos_run import main as chaos_main

        return chaos_main(argv[1:])
    args = build_parser().parse_args(argv)
    settings = SwarmSettings()
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
        return cmd_shutdown(args, settings)
    except (FeedError, RayConnectionError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    except SwarmEscalatedError as e:
        console.print(f"[red]swarm stopped:[/red] {e}")
        return 3


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
    before = unfinished(asyncio.run(_workflow_counts(settings)))
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
    return summarize(journal(), run_id, len(ids), time.monotonic() - started)


def _print_summary(summary: RunSummary) -> None:
    table = Table(title=f"Run {summary.run_id}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("products", str(summary.submitted))
    table.add_row("completed", f"[green]{summary.completed}[/green]")
    table.add_row("failed", f"[red]{summary.failed}[/red]")
    table.add_row("wall time", f"{summary.wall_s:.2f} s")
    table.add_row("products/s", f"{summary.products_per_s:.1f}")
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
    if address is None and running_local_cluster() is None:
        return False
    connect(address)
    return True


def cmd_status(args: argparse.Namespace, settings: SwarmSettings) -> int:
    if _attach(args.address or settings.ray_address) and (supervisor := find_swarm()) is not None:
        health = ray.get(supervisor.health.remote())
        colour = "green" if health.state == "running" else "red"
        console.print(f"Supervisor: [{colour}]{health.state}[/{colour}] "
                      f"({health.restarts} restarts) {health.reason}")  # fmt: skip
        table = Table(title="Actors")
        for column in ("role", "actor", "state", "pid", "restarts", "epoch", "in flight",
                       "processed"):  # fmt: skip
            table.add_column(column)
        for child in ray.get(supervisor.status.remote()):
            table.add_row(child.name, child.actor, child.state, str(child.pid), str(child.restarts),
                          str(child.epoch), str(child.in_flight), str(child.processed))  # fmt: skip
        console.print(table)
    else:
        console.print("No swarm is running on a Ray cluster here (showing the database).")
    counts = asyncio.run(_workflow_counts(settings))
    table = Table(title=f"Workflows in {settings.db_path}")
    for column in ("status", "step", "count"):
        table.add_column(column)
    for (status, step), n in sorted(counts.items()):
        table.add_row(status, step, str(n))
    console.print(table)
    return 0


async def _workflow_counts(settings: SwarmSettings) -> dict[tuple[str, str], int]:
    store = SQLiteEventStore(settings.db_path)
    await store.open()
    try:
        return await store.workflow_counts()
    finally:
        await store.close()


def cmd_events(args: argparse.Namespace, settings: SwarmSettings) -> int:
    async def query() -> list[tuple[int, EventRecord]]:
        store = SQLiteEventStore(settings.db_path)
        await store.open()
        try:
            rows = await store.query_events(
                EventQuery(workflow_id=args.workflow, limit=args.limit, newest_first=True)
            )
            return list(reversed(rows))
        finally:
            await store.close()

    table = Table(title="Events")
    for column in ("#", "time", "stream", "seq", "type", "workflow"):
        table.add_column(column)
    for position, e in asyncio.run(query()):
        stamp = time.strftime("%H:%M:%S", time.localtime(e.recorded_at))
        table.add_row(str(position), stamp, e.stream_id, str(e.seq), e.type, e.workflow_id)
    console.print(table)
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
