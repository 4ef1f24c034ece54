"""Benchmark: products/s through the whole durable pipeline, and what durability costs.

    python scripts/bench.py [--products 1000] [--product-agents 2] [--repeat 3]
                            [--only throughput,recovery,journal,persistence,llm] [--big]

Runs an embedded Ray, each swarm on a fresh database in a temp dir, and prints
every figure as the median of `--repeat` runs (the runs follow in brackets).
Sections (`--only` picks some; `--big` adds `rss`):

- throughput: products/s and per-product latency p50/p99 with the offline LLM,
  the local marketplace and SQLite `synchronous=FULL`. Latency is from the
  coordinator's `workflow_submitted` commit to its `workflow_completed` commit.
  Then the CPU per product over the timed runs, summed over every process of the
  embedded cluster and split by process: on 2 cores, 2 ms per product is 1,000/s.
  Right after, with the swarm stopped, the issue's bare reference pipeline runs
  as many products (see bench_reference.py): how fast this machine is at the
  moment, and the swarm's rate as a fraction of it.
- recovery: one agent's recovery time against its stream's length (1k, 10k,
  100k events), with and without snapshots (see bench_recovery.py).
- journal: durable events/s through the journal (see bench_journal.py).
- persistence: throughput with durability on against the same swarm with
  persistence off (the same SQLite store on tmpfs with `synchronous=OFF`: no
  disk, no fsync), runs alternating, and their ratio.
- llm: the swarm's LLM calls/s against an OpenAI-compatible server that takes
  0.2 s per answer, next to bare concurrent `ChatOpenAI` calls to the same
  server (see bench_llm.py; `--llm-products`, `--llm-marketing-agents`).
- mttr: from SIGKILL of an agent's process to that agent serving again with its
  state restored (warm standby takeover), p50/p99 over `--kills` kills, next to
  Ray's own `max_restarts` path measured the same way (see bench_mttr.py).
- rss: resident/unique memory of every actor as 100k products
  (`--rss-products`) go through in four runs, read with psutil from the
  actors' pids: flat memory shows as equal figures after each run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import psutil
import ray
from bench_common import (
    RunResult,
    actor_pids,
    median,
    running_swarm,
    runs,
    synthetic_products,
    timed_run,
)
from bench_journal import run_journal
from bench_llm import run_llm
from bench_mttr import measure as measure_mttr
from bench_mttr import print_mttr
from bench_recovery import run_recovery
from bench_reference import ISSUE_RATE, run_reference

from swarm.runtime import connect
from swarm.settings import SwarmSettings

SECTIONS = ("throughput", "recovery", "journal", "persistence", "llm", "mttr", "rss")
DEFAULT_SECTIONS = ("throughput", "recovery", "journal", "persistence", "llm", "mttr")
WARMUP_PRODUCTS = 300
REFERENCE_PER_MESSAGE = 10
TMPFS = Path("/dev/shm")


def _settings(db: Path, args: argparse.Namespace, **overrides: object) -> SwarmSettings:
    values: dict[str, object] = {
        "db_path": db,
        "product_agents": args.product_agents,
        "openai_api_key": None,
        "marketplace_url": None,
    }
    values.update(overrides)
    return SwarmSettings(**values)  # type: ignore[arg-type]


def _warm(settings: SwarmSettings) -> None:
    """One small run first: workers import, connect and fill their caches outside the clock."""
    timed_run(settings, synthetic_products(WARMUP_PRODUCTS, prefix="warmup"))


def _cluster_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of this process and of every process under it (the embedded Ray)."""
    me = psutil.Process()
    seconds: dict[int, tuple[str, float]] = {}
    for process in (me, *me.children(recursive=True)):
        try:
            times = process.cpu_times()
            seconds[process.pid] = (process.name(), times.user + times.system)
        except psutil.Error:  # ended meanwhile
            continue
    return seconds


def _process_kind(process_name: str) -> str:
    """Warm standbys and the supervisor by role (Ray names a worker after its actor class)."""
    for prefix, kind in (
        ("ray::AgentActor", "standbys"), ("ray::JournalAct", "standbys"),
        ("ray::Supervisor", "supervisor"),
    ):  # fmt: skip
        if process_name.startswith(prefix):
            return kind
    return process_name


def _add_cpu(
    used: dict[int, tuple[str, float]],
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
) -> None:
    """Add each process's CPU seconds between `before` and `after` to `used`."""
    for pid, (process_name, seconds) in after.items():
        known_as, earlier = before.get(pid, (process_name, 0.0))
        _, so_far = used.get(pid, (known_as, 0.0))
        used[pid] = (known_as, so_far + seconds - earlier)


def _print_cpu(used: dict[int, tuple[str, float]], actors: dict[str, int], products: int) -> None:
    """CPU per product over the timed runs, by process: the swarm's actors by name, the
    rest by kind (standbys, Ray's own processes, this driver)."""
    names = {pid: name for name, pid in actors.items()}
    names[os.getpid()] = "driver"  # submits, and reads each run's latencies back
    per_kind: dict[str, float] = {}
    for pid, (process_name, seconds) in used.items():
        kind = names.get(pid) or _process_kind(process_name)
        per_kind[kind] = per_kind.get(kind, 0.0) + seconds
    total = sum(per_kind.values())
    ms = {kind: seconds / products * 1000 for kind, seconds in per_kind.items()}
    top = sorted(ms.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{kind} {value:.2f}" for kind, value in top[:9])
    rest = sum(value for _, value in top[9:])
    print(f"cpu: {total / products * 1000:.2f} ms per product over the cluster's processes "
          f"({products:,} products): {shown}, other {rest:.2f}")  # fmt: skip


def throughput(args: argparse.Namespace, tmp: Path) -> None:
    settings = _settings(tmp / "bench.db", args)
    with running_swarm(settings):
        _warm(settings)
        results: list[RunResult] = []
        used: dict[int, tuple[str, float]] = {}
        ends: list[dict[int, tuple[str, float]]] = []
        for i in range(args.repeat):
            batch = synthetic_products(args.products)
            before = _cluster_cpu()
            r = timed_run(settings, batch, ended=lambda: ends.append(_cluster_cpu()))
            _add_cpu(used, before, ends[-1])  # not the driver's read of the latencies after
            results.append(r)
            print(f"run {i + 1}: {r.rate:8.1f} products/s   latency p50 {r.p50_ms:7.1f} ms  "
                  f"p99 {r.p99_ms:7.1f} ms")  # fmt: skip
        _print_cpu(used, actor_pids(settings), args.products * args.repeat)
    # with the swarm gone: neither pays for the other's idle actors
    bare = run_reference(tmp / "reference.db", args.products, REFERENCE_PER_MESSAGE, args.repeat)
    rate, bare_rate = median([r.rate for r in results]), median(bare)
    print(
        f"median of {args.repeat}: {rate:.1f} "
        f"products/s, p50 {median([r.p50_ms for r in results]):.1f} ms, "
        f"p99 {median([r.p99_ms for r in results]):.1f} ms "
        f"({args.products} products, {args.product_agents} product agents, "
        "offline LLM, local marketplace, SQLite synchronous=FULL)"
    )
    issue_rate = ISSUE_RATE[REFERENCE_PER_MESSAGE]
    print(
        f"reference: the issue's bare 4-stage pipeline ({REFERENCE_PER_MESSAGE} products per "
        f"message, 3 events per stage, a commit per call) did {bare_rate:.0f}/s right after "
        f"(runs {runs(bare)}; the issue measured {issue_rate:,.0f}/s): "
        f"swarm/reference = {rate / bare_rate:.2f}, target 1,000/{issue_rate:,.0f} = "
        f"{1000 / issue_rate:.2f}"
    )


def persistence(args: argparse.Namespace, tmp: Path) -> None:
    volatile_dir = TMPFS if TMPFS.is_dir() else tmp
    durable: list[float] = []
    volatile: list[float] = []
    for i in range(args.repeat):
        for rates, settings in (
            (durable, _settings(tmp / f"durable-{i}.db", args)),
            (volatile, _settings(
                volatile_dir / f"swarm-bench-{os.getpid()}-{i}.db", args, db_synchronous="OFF"
            )),
        ):  # fmt: skip
            try:
                with running_swarm(settings):
                    _warm(settings)
                    rates.append(timed_run(settings, synthetic_products(args.products)).rate)
            finally:
                if settings.db_path.parent == TMPFS:
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{settings.db_path}{suffix}").unlink(missing_ok=True)
    ratio = median(durable) / median(volatile)
    print(
        f"persistence: durable {median(durable):.0f} products/s, persistence off "
        f"{median(volatile):.0f} products/s: durable/off = {ratio:.2f} "
        f"(medians; runs {runs(durable)} / {runs(volatile)}; off = the same SQLite store on "
        f"{volatile_dir} with synchronous=OFF, {args.products} products, runs alternating)"
    )


def rss(args: argparse.Namespace, tmp: Path) -> None:
    settings = _settings(tmp / "rss.db", args)
    steps = 4
    per_step = args.rss_products // steps
    with running_swarm(settings):
        processes = {name: psutil.Process(pid) for name, pid in actor_pids(settings).items()}

        def show(label: str) -> None:
            cells = []
            for name, proc in processes.items():
                info = proc.memory_full_info()
                cells.append(f"{name} {info.rss / 2**20:.0f}/{info.uss / 2**20:.0f}")
            print(f"  {label:>22}: " + "  ".join(cells))

        print(
            f"rss: MB resident/unique per actor (target <= 120 MB resident), "
            f"{args.rss_products:,} products in {steps} runs, max_in_flight "
            f"{settings.max_in_flight}:"
        )
        show("fresh")
        done = 0
        for i in range(steps):
            result = timed_run(settings, synthetic_products(per_step, prefix=f"rss{i}"))
            done += per_step
            show(f"after {done:,} ({result.rate:.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--product-agents", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma-separated sections out of {', '.join(SECTIONS)}")  # fmt: skip
    parser.add_argument("--big", action="store_true", help="add the rss section (100k products)")
    parser.add_argument("--rss-products", type=int, default=100_000)
    parser.add_argument("--recovery-lengths", default="1000,10000,100000")
    parser.add_argument("--snapshot-every", type=int, default=1000,
                        help="the recovery section's snapshot policy (events)")  # fmt: skip
    parser.add_argument("--journal-events", type=int, default=100_000)
    parser.add_argument("--llm-products", type=int, default=1000)
    parser.add_argument("--llm-delay-s", type=float, default=0.2)
    parser.add_argument("--llm-marketing-agents", type=int, default=1,
                        help="marketing agents in the llm section")  # fmt: skip
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in the mttr section")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    if args.big and "rss" not in chosen:
        chosen.append("rss")
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    connect("local")
    try:
        with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
            for section in SECTIONS:
                if section not in chosen:
                    continue
                if section == "throughput":
                    throughput(args, Path(tmp))
                elif section == "recovery":
                    lengths = [int(n) for n in args.recovery_lengths.split(",")]
                    run_recovery(lengths, args.snapshot_every, args.repeat)
                elif section == "journal":
                    run_journal(args.journal_events, args.repeat)
                elif section == "persistence":
                    persistence(args, Path(tmp))
                elif section == "llm":
                    run_llm(args, Path(tmp))
                elif section == "rss":
                    rss(args, Path(tmp))
                elif section == "mttr":
                    print_mttr(measure_mttr(args.kills), args.kills)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
