"""Benchmark: products/s through the whole durable pipeline, and per-product latency.

    python scripts/bench.py [--products 1000] [--product-agents 2] [--repeat 3]

Runs an embedded Ray with the offline LLM and the local marketplace on a
fresh database in a temp dir, `--repeat` times, and prints each run and the
median. Latency is from the coordinator's `workflow_submitted` commit to its
`workflow_completed` commit, read back from the event log.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.coordinator import FaultSettings
from actors.models import Product, Variant
from storage.records import EventQuery
from storage.sqlite import SQLiteEventStore
from swarm.run import new_run_id, submit_products, wait_for_run
from swarm.runtime import connect, coordinator, journal, start_swarm, stop_swarm
from swarm.settings import SwarmSettings


def synthetic_products(n: int) -> list[Product]:
    return [
        Product(
            handle=f"bench-product-{i}",
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


async def latencies(db: Path, run_id: str) -> list[float]:
    store = SQLiteEventStore(db)
    await store.open()
    try:
        started: dict[str, float] = {}
        ended: dict[str, float] = {}
        for kind, target in (("workflow_submitted", started), ("workflow_completed", ended)):
            rows = await store.query_events(
                EventQuery(stream_id="coordinator", type=kind, limit=10_000_000)
            )
            for _, e in rows:
                if e.workflow_id.startswith(run_id):
                    target[e.workflow_id] = e.recorded_at
        return [ended[w] - started[w] for w in ended if w in started]
    finally:
        await store.close()


def one_run(settings: SwarmSettings, products: list[Product]) -> tuple[float, float, float]:
    run_id = new_run_id()
    began = time.perf_counter()
    ids = submit_products(coordinator(), run_id, products, FaultSettings(), settings.submit_chunk)
    wait_for_run(journal(), run_id, len(ids), poll_s=0.05)
    wall = time.perf_counter() - began
    lat = asyncio.run(latencies(settings.db_path, run_id))
    return len(ids) / wall, percentile(lat, 0.5) * 1000, percentile(lat, 0.99) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--product-agents", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        settings = SwarmSettings(
            db_path=Path(tmp) / "bench.db",
            product_agents=args.product_agents,
            openai_api_key=None,
            marketplace_url=None,
        )
        connect("local")
        supervisor = start_swarm(settings, detached=False)
        try:
            results = []
            for i in range(args.repeat):
                rate, p50, p99 = one_run(settings, synthetic_products(args.products))
                results.append((rate, p50, p99))
                print(f"run {i + 1}: {rate:8.1f} products/s   latency p50 {p50:7.1f} ms  "
                      f"p99 {p99:7.1f} ms")  # fmt: skip
            print(
                f"median of {args.repeat}: {statistics.median(r[0] for r in results):.1f} "
                f"products/s, p50 {statistics.median(r[1] for r in results):.1f} ms, "
                f"p99 {statistics.median(r[2] for r in results):.1f} ms "
                f"({args.products} products, {args.product_agents} product agents, "
                "offline LLM, local marketplace, SQLite synchronous=FULL)"
            )
        finally:
            stop_swarm(supervisor)
            ray.shutdown()


if __name__ == "__main__":
    main()
