"""Benchmark section `journal`: durable events per second through the journal.

Several writers (one stream each, as agents are) append batches of real
encoded events (a `listing_generated` of a synthetic product, ~1 KB of JSON)
concurrently; the journal group-commits whatever is waiting into one SQLite
transaction (WAL, `synchronous=FULL`: each commit is fsynced). Measured twice:

- `store`: the `Journal` class in this process over `SQLiteEventStore`, which
  is what the journal actor runs: the storage layer's own throughput;
- `actor`: the journal as a Ray actor, called with `append.remote(batch)` as
  the agents call it (their batches pickled across processes).

Batches are built before the clock starts, so the figure is the journal's.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from bench_common import median, runs, synthetic_products

from actors.events import EVENT_SCHEMA_VERSION, ListingGenerated, encode_event
from storage.journal import Journal
from storage.journal_actor import JournalActor
from storage.records import AppendBatch, AppendRefusal, EventRecord
from storage.sqlite import SQLiteEventStore
from swarm.llm_offline import OfflineWriter

WRITERS = 4
BATCH_EVENTS = 250


def _payload() -> str:
    product = synthetic_products(1)[0]
    generated = asyncio.run(OfflineWriter().write_listing(product))
    return encode_event(
        ListingGenerated(listing=generated.listing, provenance=generated.provenance)
    )


def _batches(stream: str, epoch: int, total: int, payload: str) -> list[AppendBatch]:
    batches, seq = [], 0
    while seq < total:
        size = min(BATCH_EVENTS, total - seq)
        events = tuple(
            EventRecord(
                stream_id=stream, seq=seq + i + 1, event_id=uuid.uuid4().hex,
                type="listing_generated", schema_version=EVENT_SCHEMA_VERSION,
                workflow_id=f"{stream}:w{seq + i}", payload=payload,
            )
            for i in range(size)
        )  # fmt: skip
        batches.append(AppendBatch(stream_id=stream, epoch=epoch, events=events))
        seq += size
    return batches


async def _store_rate(db: Path, events: int, payload: str) -> float:
    journal = Journal(SQLiteEventStore(db, synchronous="FULL"))
    await journal.start()
    try:
        work = []
        for w in range(WRITERS):
            position = await journal.open_stream(f"writer-{w}")
            work.append(_batches(position.stream_id, position.epoch, events // WRITERS, payload))

        async def write(batches: list[AppendBatch]) -> None:
            for batch in batches:
                outcome = await journal.append(batch)
                if isinstance(outcome, AppendRefusal):
                    raise RuntimeError(f"journal refused a bench batch: {outcome.message}")

        began = time.perf_counter()
        await asyncio.gather(*(write(b) for b in work))
        return events / (time.perf_counter() - began)
    finally:
        await journal.stop()


async def _actor_rate(handle: Any, events: int, payload: str, tag: str) -> float:
    work = []
    for w in range(WRITERS):
        position = await handle.open_stream.remote(f"{tag}-writer-{w}")
        work.append(_batches(position.stream_id, position.epoch, events // WRITERS, payload))

    async def write(batches: list[AppendBatch]) -> None:
        for batch in batches:
            outcome = await handle.append.remote(batch)
            if isinstance(outcome, AppendRefusal):
                raise RuntimeError(f"journal refused a bench batch: {outcome.message}")

    began = time.perf_counter()
    await asyncio.gather(*(write(b) for b in work))
    return events / (time.perf_counter() - began)


def run_journal(events: int, repeat: int) -> None:
    payload = _payload()
    store_rates, actor_rates = [], []
    with tempfile.TemporaryDirectory(prefix="swarm-bench-journal-") as tmp:
        options = {"name": "bench-journal", "namespace": "swarm", "num_cpus": 0}
        actor_class: Any = ray.remote(JournalActor)
        handle = actor_class.options(**options).remote(f"{tmp}/actor.db", "FULL")
        ray.get(handle.start.remote())
        try:
            for i in range(repeat):
                store_rates.append(
                    asyncio.run(_store_rate(Path(tmp) / f"s{i}.db", events, payload))
                )
                actor_rates.append(asyncio.run(_actor_rate(handle, events, payload, f"r{i}")))
        finally:
            ray.kill(handle, no_restart=True)
    size = len(payload)
    print(
        f"journal: {median(store_rates):,.0f} events/s durable in the store, "
        f"{median(actor_rates):,.0f} events/s through the journal actor over Ray "
        f"(medians; runs {runs(store_rates)} / {runs(actor_rates)}; {events:,} events of "
        f"{size} B, {WRITERS} writers, {BATCH_EVENTS} events per append, SQLite WAL "
        "synchronous=FULL; target >= 30,000)"
    )
