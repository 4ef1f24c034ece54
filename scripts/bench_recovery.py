"""Benchmark section `recovery`: how long one agent takes to recover, against its stream's length.

One product agent builds its stream for real (in this process, over the
journal and the SQLite store): products are delivered in small chunks and run
through validation, the offline LLM and the local catalog, and a fixed set of
workflows stays in flight (their listing call never returns), so the state a
recovery rebuilds is the same size whatever the history. The database is
copied when the stream holds 1k, 10k and 100k events (SQLite's backup API, so
the copy is consistent), and each copy is recovered `--repeat` times by a
fresh agent: `start()` takes a new epoch, loads the latest snapshot, replays
the events after it, drains the mailbox and resumes the in-flight workflows.

"without snapshots" recovers the same copy through a journal that reports no
snapshot, so the whole stream is replayed. The agent talks to the journal in
process (no Ray hop): the figure is the agent's and the store's.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from bench_common import median, runs, synthetic_products

from actors.durable import AgentConfig, JournalPort, RecoveryReport
from actors.models import Listing, MarketplaceListing, Product, UploadReceipt
from actors.ports import GeneratedCampaign, GeneratedListing
from actors.product_agent import ProductAgent
from actors.protocol import Envelope, ProcessProduct
from storage.journal import FullReplayView, Journal
from storage.sqlite import SQLiteEventStore
from swarm.llm_offline import OfflineWriter

AGENT = "product-agent-0"
IN_FLIGHT = 100
"""Workflows left in flight at every length: their listing step never returns."""
CHUNK = 100
EVENTS_PER_PRODUCT = 5  # accepted, validated, listing, upload, handed off
EVENTS_PER_STUCK = 2  # accepted, validated
SNAPSHOT_RUNS = 21
"""A recovery from a snapshot takes 3-5 ms, and its one fsync (the new epoch) varies by 1-2
ms from run to run: the median with snapshots is taken over at least this many runs (with
three, the same copy measured 0.76x and 1.69x of the 1k stream in one hour)."""


class _ParkedWriter:
    """The offline writer, except that listings of `stuck-` products never come back."""

    model_name = "offline-v1"

    def __init__(self) -> None:
        self._writer = OfflineWriter()

    async def write_listing(self, product: Product) -> GeneratedListing:
        if product.handle.startswith("stuck-"):
            await asyncio.Event().wait()
        return await self._writer.write_listing(product)

    async def write_campaign(self, product: Product, listing: Listing) -> GeneratedCampaign:
        return await self._writer.write_campaign(product, listing)


class _Catalog:
    """The local marketplace, in this process: the journal's catalog table."""

    name = "local"

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def put_listing(self, listing: MarketplaceListing, key: str) -> UploadReceipt:
        entry, created = await self.journal.catalog_put(
            listing.product_id, listing.model_dump_json(), key
        )
        return UploadReceipt(
            product_id=listing.product_id,
            marketplace=self.name,
            created=created,
            revision=str(entry.revision),
        )

    async def get_listing(self, product_id: str) -> MarketplaceListing | None:
        entry = await self.journal.catalog_get(product_id)
        return None if entry is None else MarketplaceListing.model_validate_json(entry.body)


class _Dropped:
    """Hand-off messages stay in the marketing agent's durable mailbox: nobody reads them."""

    def send(self, recipient: str, bodies: list[str]) -> None:
        return None


def _agent(journal: Journal, port: JournalPort, snapshot_every: int) -> ProductAgent:
    config = AgentConfig(name=AGENT, role="product-upload", snapshot_every=snapshot_every)
    return ProductAgent(
        config, port, _Dropped(), _ParkedWriter(), _Catalog(journal), ("marketing-agent-0",),
        effect_concurrency=IN_FLIGHT + 64,  # the parked listings must not hold every slot
    )  # fmt: skip


def _bodies(products: list[Product]) -> list[str]:
    return [
        Envelope.wrap(
            ProcessProduct(run_id="bench", product=p),
            sender="coordinator",
            recipient=AGENT,
            workflow_id=f"bench:{p.product_id}",
        ).model_dump_json()
        for p in products
    ]


async def _until_stream_has(agent: ProductAgent, seq: int, deadline_s: float = 600) -> None:
    end = time.monotonic() + deadline_s
    while agent._last_seq < seq:
        if time.monotonic() > end:
            raise TimeoutError(f"stream of {AGENT} stuck at {agent._last_seq} < {seq} events")
        await asyncio.sleep(0.01)


async def _build(db: Path, lengths: list[int], snapshot_every: int, out: Path) -> list[Path]:
    """Grow the agent's stream, copying the database as it reaches each length."""
    journal = Journal(SQLiteEventStore(db, synchronous="OFF"))
    await journal.start()
    agent = _agent(journal, journal, snapshot_every)
    await agent.start()
    copies: list[Path] = []
    try:
        await agent.deliver(_bodies(synthetic_products(IN_FLIGHT, prefix="stuck")))
        events, made = IN_FLIGHT * EVENTS_PER_STUCK, 0
        await _until_stream_has(agent, events)
        for length in sorted(lengths):
            while events + EVENTS_PER_PRODUCT <= length:
                count = min(CHUNK, (length - events) // EVENTS_PER_PRODUCT)
                products = synthetic_products(made + count)[made:]
                made += count
                await agent.deliver(_bodies(products))
                events += count * EVENTS_PER_PRODUCT
                await _until_stream_has(agent, events)
            copy = out / f"stream-{length}.db"
            with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
                src.backup(dst)
            copies.append(copy)
    finally:
        await agent.stop()
        await journal.stop()
    return copies


async def _recover(db: Path, snapshots: bool, snapshot_every: int) -> RecoveryReport:
    journal = Journal(SQLiteEventStore(db, synchronous="FULL"))
    await journal.start()
    try:
        port: JournalPort = journal if snapshots else FullReplayView(journal)
        agent = _agent(journal, port, snapshot_every)
        report = await agent.start()
        await agent.stop()
        return report
    finally:
        await journal.stop()


def run_recovery(lengths: list[int], snapshot_every: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="swarm-bench-recovery-") as tmp:
        began = time.perf_counter()
        copies = asyncio.run(_build(Path(tmp) / "build.db", lengths, snapshot_every, Path(tmp)))
        built = time.perf_counter() - began
        print(
            f"recovery of one product agent ({IN_FLIGHT} workflows in flight, snapshot every "
            f"{snapshot_every} events, journal in process, SQLite; streams built in {built:.0f} s):"
        )
        asyncio.run(_recover(copies[0], True, snapshot_every))  # warm-up, not counted
        medians: dict[tuple[int, bool], float] = {}
        for length, copy in zip(sorted(lengths), copies, strict=True):
            line = [f"  {length:>7,} events:"]
            for snapshots in (True, False):
                count = max(repeat, SNAPSHOT_RUNS) if snapshots else repeat
                reports = [
                    asyncio.run(_recover(copy, snapshots, snapshot_every)) for _ in range(count)
                ]
                ms = [r.millis for r in reports]
                medians[(length, snapshots)] = median(ms)
                label = "with snapshots" if snapshots else "without"
                spread = (
                    f"runs {runs(ms, '{:.1f}')}"
                    if count <= 5
                    else f"{count} runs, {min(ms):.1f}-{max(ms):.1f}"
                )
                line.append(
                    f"{label} {median(ms):8.1f} ms (replayed {reports[0].events_replayed:>7,}; "
                    f"{spread})"
                )
            print("   ".join(line))
        short, long = min(lengths), max(lengths)
        ratio = medians[(long, True)] / medians[(short, True)]
        per_event = medians[(long, False)] / long
        print(
            f"  with snapshots, {long:,} vs {short:,} events: {ratio:.2f}x (target <= 1.5x); "
            f"without: {medians[(long, False)] / medians[(short, False)]:.1f}x; replay costs "
            f"{per_event * 1000:.0f} us/event, so the events after a snapshot (at most "
            f"~{snapshot_every:,} by the policy) add at most ~{per_event * snapshot_every:.0f} ms"
        )
