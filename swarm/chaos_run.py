"""A chaos run: N products through the swarm while actors are killed, then the invariants.

    python -m swarm chaos --products 500 --interval 1 --cluster-restart --baseline

Everything runs the way a user runs it, as separate processes on a cluster
this command starts itself (`ray start` on free ports, its own temp dir): the
swarm (`python -m swarm run`, then `resume` after a whole-cluster restart) and
the killer (`scripts/chaos_kill.py`, SIGKILL or `ray.kill` of agents, the
supervisor and the journal). This process never attaches to Ray, so a
whole-cluster crash cannot take it down; it follows the run through the
database. At the end it checks the invariants (`swarm.invariants`), prints
them, writes a JSON report and a self-contained HTML page with throughput
over time, kill markers and each recovery's duration, and exits non-zero if
any invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from swarm.invariants import InvariantReport, check_invariants
from swarm.local_cluster import REPO, LocalCluster

console = Console()


@dataclass
class Timeline:
    started: float
    points: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since start, completed, failed)."""

    def sample(self, db: Path) -> tuple[int, int, int]:
        counts = workflow_counts(db)
        done = counts.get("completed", 0), counts.get("failed", 0)
        self.points.append((time.time() - self.started, *done))
        return done[0], done[1], sum(counts.values())


@dataclass
class ChaosReport:
    products: int
    started_at: float
    """Unix time of the timeline's zero."""
    wall_s: float
    products_per_s: float
    baseline_products_per_s: float | None
    kills: list[dict[str, object]]
    recoveries_ms: list[float]
    mttr_p50_ms: float | None
    mttr_p99_ms: float | None
    cluster_restarts: int
    invariants: InvariantReport
    timeline: list[tuple[float, int, int]]


def workflow_counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute("SELECT status, COUNT(*) FROM workflows GROUP BY status")
            return {status: n for status, n in rows.fetchall()}
    except sqlite3.OperationalError:  # not created yet, or busy for a moment
        return {}


def recoveries(db: Path) -> list[float]:
    """Recovery milliseconds of every restart, from the supervisor's stream."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute(
            "SELECT payload FROM events WHERE stream_id = 'supervisor' AND type = 'child_started'"
        ).fetchall()
    out = []
    for (payload,) in rows:
        event = json.loads(payload)
        if event.get("reason") == "restart":
            out.append(float(event["recovery_ms"]))
    return out


def write_feed(path: Path, n: int) -> None:
    with path.open("w") as out:
        for i in range(n):
            record = {
                "handle": f"chaos-lamp-{i}",
                "sku": f"LAMP-{i:06d}",
                "title": f"Ceramic Table Lamp No. {i}",
                "description": "<p>A glazed ceramic lamp with a linen shade.</p>",
                "vendor": "Lumen & Clay",
                "product_type": "Lamps",
                "tags": ["lighting", "home"],
                "price": "64.00",
            }
            out.write(json.dumps(record) + "\n")


class Chaos:
    """The run's processes: the swarm command and the killer, on one cluster."""

    def __init__(self, args: argparse.Namespace, work: Path, cluster: LocalCluster) -> None:
        self.args = args
        self.work = work
        self.cluster = cluster
        self.db = work / "swarm.db"
        self.kills_file = work / "kills.jsonl"
        self.env = {
            "SWARM_DB_PATH": str(self.db),
            "SWARM_OFFLINE_LLM_LATENCY_S": str(args.llm_latency),
            "SWARM_RESTART_INTENSITY": str(args.restart_intensity),
            "SWARM_EFFECT_CONCURRENCY": str(args.effect_concurrency),
        }
        self.killer: subprocess.Popen[str] | None = None
        self.swarm: subprocess.Popen[str] | None = None

    def start_swarm(self, command: str, *extra: str) -> None:
        self.swarm = self.cluster.popen_swarm(command, *extra, env=self.env, cwd=self.work)

    def start_killer(self) -> None:
        command = [
            sys.executable, str(REPO / "scripts" / "chaos_kill.py"),
            "--target", self.args.target, "--mode", self.args.mode,
            "--interval", self.args.interval, "--seed", str(self.args.seed),
            "--json-out", str(self.kills_file),
        ]  # fmt: skip
        self.killer = subprocess.Popen(
            command,
            cwd=self.work,
            env=self.cluster.swarm_env(self.env),
            stdout=None,
            stderr=None,
            text=True,
            start_new_session=True,
        )

    def stop_killer(self) -> None:
        if self.killer is not None:
            _kill_group(self.killer)
            self.killer = None

    def stop_swarm_command(self) -> None:
        if self.swarm is not None:
            _kill_group(self.swarm)
            self.swarm = None

    def kills(self) -> list[dict[str, object]]:
        if not self.kills_file.exists():
            return []
        return [json.loads(line) for line in self.kills_file.read_text().splitlines() if line]


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def run_once(args: argparse.Namespace, work: Path, *, chaos: bool) -> ChaosReport:
    work.mkdir(parents=True, exist_ok=True)
    feed = work / "feed.jsonl"
    write_feed(feed, args.products)
    cluster_dir = Path(tempfile.mkdtemp(prefix="swarm-chaos-ray-"))
    cluster = LocalCluster(cluster_dir).start()
    run = Chaos(args, work, cluster)
    timeline = Timeline(started=time.time())
    restarts = 0
    try:
        run.start_swarm("run", "--input", str(feed))
        deadline = time.monotonic() + args.timeout
        while not workflow_counts(run.db):  # the run starts once workflows are in the log
            _check_deadline(deadline, "the swarm to start")
            time.sleep(0.2)
        timeline.started = time.time()
        if chaos:
            run.start_killer()
        while True:
            completed, failed, total = timeline.sample(run.db)
            if total and completed + failed >= args.products:
                break
            if chaos and args.cluster_restart and not restarts and completed >= args.products * 0.4:
                console.print("[bold red]chaos: whole-cluster crash (SIGKILL of every process)")
                run.stop_killer()
                run.stop_swarm_command()
                cluster.kill()
                cluster.start()
                restarts += 1
                run.start_swarm("resume")
                run.start_killer()
            elif run.swarm is not None and run.swarm.poll() not in (None, 0):
                output = run.swarm.stdout.read() if run.swarm.stdout else ""
                raise RuntimeError(f"the swarm command failed:\n{output[-3000:]}")
            _check_deadline(deadline, "every product to finish")
            time.sleep(0.5)
        run.stop_killer()
        wall = timeline.points[-1][0]
        cluster.run_swarm("shutdown", env=run.env, cwd=work, timeout=120)
    finally:
        run.stop_killer()
        run.stop_swarm_command()
        cluster.kill()
    invariants = asyncio.run(check_invariants(run.db))
    recovered = recoveries(run.db)
    return ChaosReport(
        products=args.products,
        started_at=timeline.started,
        wall_s=wall,
        products_per_s=args.products / wall if wall else 0.0,
        baseline_products_per_s=None,
        kills=run.kills(),
        recoveries_ms=recovered,
        mttr_p50_ms=statistics.median(recovered) if recovered else None,
        mttr_p99_ms=_p99(recovered),
        cluster_restarts=restarts,
        invariants=invariants,
        timeline=timeline.points,
    )


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _check_deadline(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"chaos run: timed out waiting for {what}")


def print_report(report: ChaosReport) -> None:
    table = Table(title="Chaos run")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("products", str(report.products))
    table.add_row("kills", str(len(report.kills)))
    table.add_row("whole-cluster restarts", str(report.cluster_restarts))
    table.add_row("products/s under chaos", f"{report.products_per_s:.1f}")
    if report.baseline_products_per_s:
        ratio = report.products_per_s / report.baseline_products_per_s
        table.add_row("products/s without chaos", f"{report.baseline_products_per_s:.1f}")
        table.add_row("ratio", f"{ratio:.2f}")
    if report.mttr_p50_ms is not None:
        table.add_row("recoveries", str(len(report.recoveries_ms)))
        table.add_row("MTTR p50 / p99", f"{report.mttr_p50_ms:.0f} / {report.mttr_p99_ms:.0f} ms")
    console.print(table)
    checks = Table(title="Invariants")
    for column in ("invariant", "ok", "detail"):
        checks.add_column(column)
    for check in report.invariants.invariants:
        mark = "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]"
        checks.add_row(check.name, mark, check.detail)
    console.print(checks)


def html_page(report: ChaosReport) -> str:
    """Throughput over time with kill markers, and each recovery's duration, as inline SVG."""
    width, height, pad = 900, 300, 40
    points = report.timeline
    end = max((t for t, _, _ in points), default=1.0) or 1.0
    rates = []
    for (t0, c0, f0), (t1, c1, f1) in itertools.pairwise(points):
        if t1 > t0:
            rates.append((t1, (c1 + f1 - c0 - f0) / (t1 - t0)))
    top = max((r for _, r in rates), default=1.0) or 1.0

    def x(t: float) -> float:
        return pad + (width - 2 * pad) * t / end

    def y(v: float, scale: float) -> float:
        return height - pad - (height - 2 * pad) * v / scale

    line = " ".join(f"{x(t):.1f},{y(r, top):.1f}" for t, r in rates)
    kill_marks = []
    for k in report.kills:
        t = float(str(k["at"])) - report.started_at
        kill_marks.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{pad}" y2="{height - pad}" '
            f'stroke="#d33" stroke-dasharray="3,3">'
            f"<title>{k['actor']} (pid {k['pid']})</title></line>"
        )
    bars = []
    longest = max(report.recoveries_ms, default=1.0) or 1.0
    bar_w = (width - 2 * pad) / max(len(report.recoveries_ms), 1)
    for i, ms in enumerate(report.recoveries_ms):
        bars.append(
            f'<rect x="{pad + i * bar_w:.1f}" y="{y(ms, longest):.1f}" width="{bar_w * 0.8:.1f}" '
            f'height="{height - pad - y(ms, longest):.1f}" fill="#36c">'
            f"<title>{ms:.0f} ms</title></rect>"
        )
    checks = "".join(
        f"<tr><td>{c.name}</td><td>{'PASS' if c.ok else 'FAIL'}</td><td>{c.detail}</td></tr>"
        for c in report.invariants.invariants
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Chaos run</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:2px 8px}}</style></head><body>
<h1>Chaos run: {report.products} products, {len(report.kills)} kills,
{report.cluster_restarts} whole-cluster restarts</h1>
<p>{report.products_per_s:.1f} products/s under chaos{_baseline(report)};
MTTR p50 {_ms(report.mttr_p50_ms)}, p99 {_ms(report.mttr_p99_ms)}</p>
<h2>Throughput (workflows finished per second); red lines are kills</h2>
<svg width="{width}" height="{height}" style="border:1px solid #ccc">
<text x="{pad}" y="20">max {top:.0f}/s over {end:.0f} s</text>
<polyline fill="none" stroke="#080" stroke-width="2" points="{line}"/>{"".join(kill_marks)}</svg>
<h2>Recovery of each restart (ms, kill noticed to serving with state restored)</h2>
<svg width="{width}" height="{height}" style="border:1px solid #ccc">
<text x="{pad}" y="20">longest {longest:.0f} ms</text>{"".join(bars)}</svg>
<h2>Invariants</h2><table>{checks}</table></body></html>"""


def _baseline(report: ChaosReport) -> str:
    if not report.baseline_products_per_s:
        return ""
    return f" against {report.baseline_products_per_s:.1f} without"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m swarm chaos", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--target", default="any", help="what to kill (see chaos_kill.py)")
    parser.add_argument("--mode", choices=("sigkill", "ray-kill"), default="sigkill")
    parser.add_argument("--interval", default="1", help="seconds between kills: S or A-B")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cluster-restart", action="store_true",
                        help="crash the whole cluster once, at 40%% done, then resume")  # fmt: skip
    parser.add_argument("--baseline", action="store_true",
                        help="first the same workload without kills, for the ratio")  # fmt: skip
    parser.add_argument("--llm-latency", type=float, default=0.5,
                        help="seconds per offline LLM call, so the run lasts")  # fmt: skip
    parser.add_argument("--effect-concurrency", type=int, default=8,
                        help="LLM calls in flight per agent (low, so the run lasts)")  # fmt: skip
    parser.add_argument("--restart-intensity", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", type=Path, default=Path("chaos-report"),
                        help="directory for report.json and report.html")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # a SIGTERM (e.g. `timeout`) unwinds like an error, so the cluster it started is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="swarm-chaos-") as tmp:
        baseline = None
        if args.baseline:
            console.print("baseline: the same workload, no kills")
            baseline = run_once(args, Path(tmp) / "baseline", chaos=False).products_per_s
        report = run_once(args, Path(tmp) / "chaos", chaos=True)
        report.baseline_products_per_s = baseline
    print_report(report)
    (args.out / "report.json").write_text(
        json.dumps(
            asdict(report)
            | {"invariants": report.invariants.model_dump(), "ok": report.invariants.ok},
            indent=2,
        )
    )
    (args.out / "report.html").write_text(html_page(report))
    console.print(f"report: {args.out / 'report.json'}, picture: {args.out / 'report.html'}")
    return 0 if report.invariants.ok else 1
