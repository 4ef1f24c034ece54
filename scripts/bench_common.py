"""What the benchmark's sections share: synthetic products, a swarm brought up for a section,
one timed run through it, and the actors' processes.

Every figure the benchmark prints is a median over `--repeat` runs; a section
that compares two things (durable vs not, swarm vs bare client) measures both
in the same invocation, so the noise of a shared machine hits both alike.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.coordinator import FaultSettings
from actors.models import Product, Variant
from storage.records import EventQuery
from storage.sqlite import SQLiteEventStore
from swarm.run import new_run_id, submit_products, wait_for_run
from swarm.runtime import coordinator, journal, start_swarm, stop_swarm
from swarm.settings import SwarmSettings


def synthetic_products(n: int, prefix: str = "bench-product") -> list[Product]:
    return [
        Product(
            handle=f"{prefix}-{i}",
            title=f"Merino Wool Beanie {i}",
            description="<p>Warm, soft <strong>merino</strong> beanie for cold mornings.</p>",
            vendor="Northwind Outfitters",
            product_type="Hats",
            tags=("winter", "wool", "outdoor"),
            option_names=("Color",),
            variants=(
                Variant(sku=f"BEANIE-{i}-GRY", price=Decimal("24.00"), options={"Color": "Grey"}),
                Variant(sku=f"BEANIE-{i}-NVY", price=Decimal("24.00"), options={"Color": "Navy"}),
            ),
            images=(f"https://cdn.example.com/beanie-{i}.jpg",),
        )
        for i in range(n)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def runs(values: list[float], fmt: str = "{:.0f}") -> str:
    """`values` as "a, b, c" for the per-run detail after a median."""
    return ", ".join(fmt.format(v) for v in values)


@dataclass(frozen=True)
class RunResult:
    products: int
    wall_s: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.products / self.wall_s


@contextmanager
def running_swarm(settings: SwarmSettings) -> Iterator[Any]:
    """A swarm on `settings` for the length of the block (Ray must be initialised)."""
    supervisor = start_swarm(settings, detached=False)
    try:
        yield supervisor
    finally:
        stop_swarm(supervisor)


async def _latencies(db: Path, run_id: str) -> tuple[list[float], float | None]:
    """Each completed workflow's latency, and when the run's last workflow ended (committed
    completed or failed); None if none did."""
    store = SQLiteEventStore(db)
    await store.open()
    try:
        started: dict[str, float] = {}
        ended: dict[str, float] = {}
        failed: dict[str, float] = {}
        for kind, target in (
            ("workflow_submitted", started), ("workflow_completed", ended),
            ("workflow_failed", failed),
        ):  # fmt: skip
            rows = await store.query_events(
                EventQuery(stream_id="coordinator", type=kind, limit=10_000_000)
            )
            for _, e in rows:
                if e.workflow_id.startswith(run_id):
                    target[e.workflow_id] = e.recorded_at
        latencies = [ended[w] - started[w] for w in ended if w in started]
        return latencies, max((*ended.values(), *failed.values()), default=None)
    finally:
        await store.close()


def timed_run(
    settings: SwarmSettings, products: list[Product], *, ended: Callable[[], object] | None = None
) -> RunResult:
    """Submit `products` to the running swarm and wait until every one is terminal.

    `ended` is called as soon as the run is over, before this driver reads the log back
    (the throughput section reads the CPU counters there).

    The run lasts from the submission to its last `workflow_completed` (or
    `workflow_failed`), as the event log dates it: when the group commit that wrote it
    began, a few ms before it was durable. The 50 ms poll that notices the end is this
    driver's, not the swarm's. Latency is from the coordinator's
    `workflow_submitted` commit to its `workflow_completed` commit.
    """
    run_id = new_run_id()
    began_at, began = time.time(), time.perf_counter()
    ids = submit_products(coordinator(), run_id, products, FaultSettings(), settings.submit_chunk)
    wait_for_run(journal(), run_id, len(ids), poll_s=0.05)
    polled = time.perf_counter() - began
    if ended is not None:
        ended()
    lat, last_done = asyncio.run(_latencies(settings.db_path, run_id))
    wall = polled if last_done is None else min(polled, last_done - began_at)
    lat = lat or [float("nan")]
    return RunResult(len(ids), wall, percentile(lat, 0.5) * 1000, percentile(lat, 0.99) * 1000)


def actor_pids(settings: SwarmSettings) -> dict[str, int]:
    """Process id of each of the swarm's actors, by actor name."""
    names = [
        "journal",
        "coordinator",
        *(f"product-agent-{i}" for i in range(settings.product_agents)),
        *(f"marketing-agent-{i}" for i in range(settings.marketing_agents)),
    ]
    handles = [ray.get_actor(name, namespace="swarm") for name in names]
    return dict(zip(names, ray.get([h.pid.remote() for h in handles]), strict=True))
