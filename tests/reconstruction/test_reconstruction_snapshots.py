"""State rebuilt from the latest snapshot + the events after it equals the state of a
full replay of the stream, for agents that took several snapshots and hold
workflows in flight (a coordinator and a product agent, on a real SQLite file)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from actors.coordinator import Coordinator
from actors.durable import AgentConfig, DurableAgent, JournalPort, RecoveryReport
from actors.local_transport import LocalTransport
from actors.models import Listing, Product
from actors.ports import GeneratedCampaign, GeneratedListing
from actors.product_agent import ProductAgent
from storage.journal import FullReplayView, Journal
from storage.records import (
    AppendBatch,
    AppendRefusal,
    AppendResult,
    SnapshotRecord,
)
from storage.sqlite import SQLiteEventStore
from swarm.llm_offline import OfflineWriter
from swarm.marketplace_local import InProcessCatalog, LocalMarketplace
from tests.waiting import eventually
from tests.workflow_support import eventually_async, product

pytestmark = pytest.mark.timeout(60)
SNAPSHOT_EVERY = 3
PRODUCTS = [product(f"hat-{i}", f"Hat {i}") for i in range(10)]
HELD = {"hat-2", "hat-5", "hat-8"}
"""Their listing never comes back: they stay in flight at the product agent."""


class HoldingWriter:
    """The offline writer, except that listings of `held` products never return."""

    def __init__(self, held: set[str]) -> None:
        self.inner = OfflineWriter()
        self.held = held
        self.waiting = 0

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    async def write_listing(self, product: Product) -> GeneratedListing:
        if product.handle in self.held:
            self.waiting += 1
            await asyncio.Event().wait()
        return await self.inner.write_listing(product)

    async def write_campaign(self, product: Product, listing: Listing) -> GeneratedCampaign:
        return await self.inner.write_campaign(product, listing)


class JournalView(FullReplayView):
    """The journal as an agent sees it; counts snapshots taken, can hide them."""

    def __init__(self, journal: Journal, *, hide_snapshots: bool = False) -> None:
        super().__init__(journal)
        self.hide_snapshots = hide_snapshots
        self.snapshots_taken: Counter[str] = Counter()

    async def append(self, batch: AppendBatch) -> AppendResult | AppendRefusal:
        outcome = await self.journal.append(batch)
        if batch.snapshot is not None and isinstance(outcome, AppendResult):
            self.snapshots_taken[batch.stream_id] += 1
        return outcome

    async def latest_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        return None if self.hide_snapshots else await self.journal.latest_snapshot(stream_id)


def _agents(
    journal: Journal, view: JournalPort, writer: HoldingWriter, transport: LocalTransport
) -> tuple[Coordinator, ProductAgent]:
    def config(name: str) -> AgentConfig:
        return AgentConfig(name=name, role=name, snapshot_every=SNAPSHOT_EVERY)

    marketplace = LocalMarketplace(catalog=InProcessCatalog(journal))
    return (
        Coordinator(config("coordinator"), view, transport, ("product-agent-0",)),
        ProductAgent(
            config("product-agent-0"),
            view,
            transport,
            writer,
            marketplace,
            ("marketing-agent-0",),
        ),
    )


def _state(agent: DurableAgent) -> dict[Any, Any]:
    """The agent's state, workflows in id order (their order in memory may differ)."""
    state: dict[str, Any] = json.loads(agent.snapshot_json())
    state["workflows"] = sorted(state["workflows"], key=lambda w: w["task_id"])
    return state


async def _run_and_recover(db: Path) -> dict[Any, Any]:
    journal = Journal(SQLiteEventStore(db))
    await journal.start()
    try:
        view = JournalView(journal)
        writer = HoldingWriter(HELD)
        transport = LocalTransport()
        coordinator, product_agent = _agents(journal, view, writer, transport)
        for agent in (coordinator, product_agent):
            await agent.start()
            transport.attach(agent)
        for i in range(0, len(PRODUCTS), 2):
            await coordinator.submit("run-1", PRODUCTS[i : i + 2])
        await eventually(lambda: writer.waiting == len(HELD))

        async def handed_off() -> bool:  # ... and the other products' hand-offs committed
            sent = await journal.pending_messages("marketing-agent-0")
            return len(sent) == len(PRODUCTS) - len(HELD)

        await eventually_async(handed_off)
        for agent in (coordinator, product_agent):
            await agent.stop()
        recovered: dict[Any, Any] = {"taken": view.snapshots_taken}
        holds_all = HoldingWriter({p.handle for p in PRODUCTS})  # recovery must not move them
        for hide in (False, True):
            incarnation = JournalView(journal, hide_snapshots=hide)
            for agent in _agents(journal, incarnation, holds_all, LocalTransport()):
                report: RecoveryReport = await agent.start()
                recovered[(agent.name, hide)] = (report, _state(agent))
                await agent.stop()
        return recovered
    finally:
        await journal.stop()


@pytest.fixture(scope="module")
def recovered(tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Any]:
    return asyncio.run(_run_and_recover(tmp_path_factory.mktemp("snapshots") / "swarm.db"))


@pytest.mark.parametrize("agent", ["coordinator", "product-agent-0"])
def test_reconstruction_took_several_snapshots(recovered: dict[Any, Any], agent: str) -> None:
    assert recovered["taken"][agent] >= 2


@pytest.mark.parametrize("agent", ["coordinator", "product-agent-0"])
def test_reconstruction_from_snapshot_replays_only_the_events_after_it(
    recovered: dict[Any, Any], agent: str
) -> None:
    report, _ = recovered[(agent, False)]
    assert report.last_seq > 3 * SNAPSHOT_EVERY
    assert report.snapshot_seq > 0
    assert report.events_replayed == report.last_seq - report.snapshot_seq
    assert report.events_replayed < SNAPSHOT_EVERY


@pytest.mark.parametrize("agent", ["coordinator", "product-agent-0"])
def test_reconstruction_from_snapshot_equals_a_full_replay(
    recovered: dict[Any, Any], agent: str
) -> None:
    snapshot_report, from_snapshot = recovered[(agent, False)]
    full_report, from_full_replay = recovered[(agent, True)]
    assert (full_report.snapshot_seq, full_report.events_replayed) == (0, full_report.last_seq)
    assert full_report.last_seq == snapshot_report.last_seq
    assert from_snapshot == from_full_replay


def test_reconstruction_keeps_the_workflows_in_flight(recovered: dict[Any, Any]) -> None:
    _, coordinator = recovered[("coordinator", False)]
    _, product_agent = recovered[("product-agent-0", False)]
    assert len(coordinator["workflows"]) == len(PRODUCTS)
    in_flight = product_agent["workflows"]
    assert {w["product_data"]["handle"] for w in in_flight} == HELD
    assert {w["current_step"] for w in in_flight} == {"generate_listing"}
    assert product_agent["processed"] == len(PRODUCTS)
