"""The issue's bare reference pipeline, to read the swarm's products/s against this machine's
speed at the moment of the run.

Issue 4 measured, on this kind of 2-core machine, a bare 4-stage actor pipeline
in which each stage appends 3 events to a journal actor that owns aiosqlite (WAL,
fsync on commit, one commit per call): 1,177 products/s with 10 products per
message. That pipeline has no protocol, no mailbox, no state and no retries: it
is the floor of what four Ray hops and four durable commits cost. This is that
pipeline. Like the swarm it is bound by CPU here (measured: 1.9 of the 2 cores
busy, 2.0 ms of CPU per product), so the throughput section runs it right after
the swarm's runs, the swarm stopped: a slow or fast phase of a shared machine
moves both figures alike, and their ratio is what the swarm reaches of a
pipeline that only hops and commits.

    python scripts/bench_reference.py [--products 5000] [--per-message 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiosqlite
import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ISSUE_RATE = {1: 128.0, 10: 1177.0, 50: 2959.0}
"""Products/s the issue measured for this pipeline, by products per message."""
STAGES = ("validate", "listing", "upload", "campaign")
EVENTS_PER_STAGE = 3
IN_FLIGHT_PRODUCTS = 500
"""Products out in the pipeline at once: the swarm's `max_in_flight`."""


@ray.remote(num_cpus=0)
class ReferenceJournal:
    """An aiosqlite connection, WAL, `synchronous=FULL`: one commit per `append` call."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db: aiosqlite.Connection | None = None
        self.lock = asyncio.Lock()

    async def open(self) -> None:
        self.db = await aiosqlite.connect(self.path)
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=FULL")
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, "
            "stream_id TEXT NOT NULL, workflow_id TEXT NOT NULL, type TEXT NOT NULL, "
            "payload TEXT NOT NULL)"
        )
        await self.db.commit()

    async def append(self, stream_id: str, events: list[tuple[str, str, str]]) -> int:
        assert self.db is not None
        async with self.lock:  # a commit per call, as the issue measured it
            await self.db.executemany(
                "INSERT INTO events (stream_id, workflow_id, type, payload) VALUES (?, ?, ?, ?)",
                [(stream_id, *event) for event in events],
            )
            await self.db.commit()
        return len(events)

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()


@ray.remote(num_cpus=0)
class ReferenceStage:
    """Appends 3 events per product of a message, then hands the message to the next stage."""

    def __init__(self, name: str, journal: Any, downstream: Any | None) -> None:
        self.name = name
        self.journal = journal
        self.downstream = downstream

    async def process(self, products: list[dict[str, Any]]) -> int:
        events = [
            (product["handle"], f"{self.name}_{i}", json.dumps(product) if i == 0 else "{}")
            for product in products
            for i in range(EVENTS_PER_STAGE)
        ]
        await self.journal.append.remote(self.name, events)
        if self.downstream is None:
            return len(products)
        count: int = await self.downstream.process.remote(products)
        return count


class ReferencePipeline:
    """The four stages and their journal, started in the connected Ray cluster."""

    def __init__(self, db_path: Path) -> None:
        self.journal = ReferenceJournal.remote(str(db_path))  # type: ignore[attr-defined]
        ray.get(self.journal.open.remote())
        downstream = None
        self.stages = []
        for name in reversed(STAGES):
            downstream = ReferenceStage.remote(name, self.journal, downstream)  # type: ignore[attr-defined]
            self.stages.append(downstream)
        self.head = downstream

    def run(self, products: list[dict[str, Any]], per_message: int) -> float:
        """Products/s for `products` sent `per_message` at a time, 500 out at once."""
        messages = [products[i : i + per_message] for i in range(0, len(products), per_message)]
        window = max(1, IN_FLIGHT_PRODUCTS // per_message)
        began = time.perf_counter()
        done = asyncio.run(self._drive(messages, window))
        rate = done / (time.perf_counter() - began)
        if done != len(products):
            raise RuntimeError(f"reference pipeline finished {done} of {len(products)} products")
        return rate

    async def _drive(self, messages: list[list[dict[str, Any]]], window: int) -> int:
        done = 0
        pending: set[asyncio.Future[int]] = set()
        for message in messages:
            if len(pending) >= window:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                done += sum(f.result() for f in finished)
            pending.add(asyncio.ensure_future(self.head.process.remote(message)))  # type: ignore[union-attr]
        for count in await asyncio.gather(*pending):
            done += count
        return done

    def close(self) -> None:
        # a dead journal: its actors go all the same, and an error in flight stays the error
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(self.journal.close.remote(), timeout=30)
        for actor in (*self.stages, self.journal):
            ray.kill(actor)


def reference_products(n: int, prefix: str) -> list[dict[str, Any]]:
    """The benchmark's synthetic products, as the plain dicts a bare pipeline carries."""
    from bench_common import synthetic_products

    return [p.model_dump(mode="json") for p in synthetic_products(n, prefix=prefix)]


def run_reference(db_path: Path, products: int, per_message: int, repeat: int) -> list[float]:
    """Products/s of `repeat` runs of `products` each, after a warm-up (Ray connected)."""
    pipeline = ReferencePipeline(db_path)
    try:
        pipeline.run(reference_products(300, "warm"), per_message)
        return [
            pipeline.run(reference_products(products, f"r{i}"), per_message) for i in range(repeat)
        ]
    finally:
        pipeline.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--per-message", type=int, default=10, choices=sorted(ISSUE_RATE))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from bench_common import median, runs

    from swarm.runtime import connect

    connect("local")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rates = run_reference(
                Path(tmp) / "reference.db", args.products, args.per_message, args.repeat
            )
    finally:
        ray.shutdown()
    print(
        f"reference: {median(rates):.0f} products/s (runs {runs(rates)}), {args.per_message} "
        f"per message; the issue measured {ISSUE_RATE[args.per_message]:,.0f}/s"
    )


if __name__ == "__main__":
    main()
