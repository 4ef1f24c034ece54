"""One writer per stream: an old incarnation that is still running (a zombie) can never
write beside its replacement.

The zombie is a product agent blocked in its LLM call; a replacement of the
same agent starts on the same journal (a new fencing epoch), takes the
workflow over from the log and finishes it. Then the zombie's call returns
and it tries to record the result: the journal refuses, the zombie stops, and
the log after the takeover holds only the replacement's events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from actors.durable import AgentConfig, AgentFencedError, JournalPort, Transport
from actors.events import ListingGenerated, ProductValidated, decode_event
from actors.local_transport import LocalTransport
from actors.models import Listing, MarketplaceListing, Product
from actors.ports import GeneratedCampaign, GeneratedListing, Marketplace
from actors.product_agent import ProductAgent
from actors.protocol import Envelope, ProcessProduct
from storage.journal import Journal
from storage.records import AppendBatch, AppendRefusal, EventRecord
from storage.sqlite import SQLiteEventStore
from swarm.llm_offline import OfflineWriter
from swarm.marketplace_local import InProcessCatalog, LocalMarketplace
from tests.workflow_support import eventually_async, product

pytestmark = pytest.mark.timeout(60)
AGENT = "product-agent-0"
WORKFLOW = "run-1:wool-beanie"


class LabelledWriter:
    """Offline copy titled after whoever wrote it; the listing can be held back."""

    def __init__(self, label: str, *, held: bool) -> None:
        self.inner = OfflineWriter()
        self.label = label
        self.called = asyncio.Event()
        self.release = asyncio.Event()
        if not held:
            self.release.set()

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    async def write_listing(self, product: Product) -> GeneratedListing:
        self.called.set()
        await self.release.wait()
        generated = await self.inner.write_listing(product)
        listing = generated.listing.model_copy(update={"title": f"{self.label} copy"})
        return generated.model_copy(update={"listing": listing})

    async def write_campaign(self, product: Product, listing: Listing) -> GeneratedCampaign:
        return await self.inner.write_campaign(product, listing)


class Incarnation(ProductAgent):
    """A product agent that shows when the journal has fenced it off."""

    def __init__(
        self,
        journal: JournalPort,
        transport: Transport,
        writer: LabelledWriter,
        marketplace: Marketplace,
    ) -> None:
        config = AgentConfig(name=AGENT, role="product-upload")
        super().__init__(config, journal, transport, writer, marketplace, ("marketing-agent-0",))
        self.fenced = asyncio.Event()
        self.fenced_by: AgentFencedError | None = None

    async def on_fatal(self, error: AgentFencedError) -> None:
        self.fenced_by = error
        self.fenced.set()
        await super().on_fatal(error)


@dataclass
class Takeover:
    takeover_seq: int
    """The stream's last seq when the replacement started."""
    log: list[EventRecord]
    zombie_error: str
    late_record_refused: bool
    old_epoch_append: AppendRefusal | object
    uploaded: MarketplaceListing | None


def _message() -> str:
    return Envelope.wrap(
        ProcessProduct(run_id="run-1", product=product()),
        sender="coordinator",
        recipient=AGENT,
        workflow_id=WORKFLOW,
    ).model_dump_json()


async def _takeover(db: Path) -> Takeover:
    journal = Journal(SQLiteEventStore(db))
    await journal.start()
    try:
        marketplace = LocalMarketplace(catalog=InProcessCatalog(journal))
        zombie_writer = LabelledWriter("zombie", held=True)
        zombie = Incarnation(journal, LocalTransport(), zombie_writer, marketplace)
        await zombie.start()
        await zombie.deliver([_message()])
        await asyncio.wait_for(zombie_writer.called.wait(), 10)  # the zombie is mid-step

        takeover_seq = (await journal.read_stream(AGENT))[-1].seq
        replacement_writer = LabelledWriter("replacement", held=False)
        replacement = Incarnation(journal, LocalTransport(), replacement_writer, marketplace)
        await replacement.start()

        async def handed_off() -> bool:
            return len(await journal.pending_messages("marketing-agent-0")) == 1

        await eventually_async(handed_off)
        zombie_writer.release.set()  # the zombie's LLM call returns; it tries to record it
        await asyncio.wait_for(zombie.fenced.wait(), 10)
        try:
            await zombie.record(WORKFLOW, [ProductValidated()])
            late_refused = False
        except AgentFencedError:
            late_refused = True
        stale = AppendBatch(stream_id=AGENT, epoch=zombie.epoch)
        old_epoch_append = await journal.append(stale)
        await replacement.stop()
        return Takeover(
            takeover_seq=takeover_seq,
            log=await journal.read_stream(AGENT),
            zombie_error=str(zombie.fenced_by),
            late_record_refused=late_refused,
            old_epoch_append=old_epoch_append,
            uploaded=await marketplace.get_listing("wool-beanie"),
        )
    finally:
        await journal.stop()


@pytest.fixture(scope="module")
def takeover(tmp_path_factory: pytest.TempPathFactory) -> Takeover:
    return asyncio.run(_takeover(tmp_path_factory.mktemp("zombie") / "swarm.db"))


def test_the_journal_refuses_the_zombies_commit(takeover: Takeover) -> None:
    assert "epoch 1 refused, epoch 2 owns the stream" in takeover.zombie_error


def test_an_append_with_the_old_epoch_is_refused_as_fenced(takeover: Takeover) -> None:
    assert isinstance(takeover.old_epoch_append, AppendRefusal)
    assert takeover.old_epoch_append.reason == "fenced"


def test_the_fenced_zombie_stops_recording(takeover: Takeover) -> None:
    assert takeover.late_record_refused


def test_after_the_takeover_the_log_holds_only_the_replacements_events(
    takeover: Takeover,
) -> None:
    after = [e for e in takeover.log if e.seq > takeover.takeover_seq]
    assert [e.type for e in after] == [
        "workflow_resumed",  # the replacement inherits the workflow in flight
        "listing_generated",
        "upload_confirmed",
        "workflow_handed_off",
    ]
    listings = [decode_event(e.type, e.schema_version, e.payload) for e in after[1:2]]
    assert isinstance(listings[0], ListingGenerated)
    assert listings[0].listing.title == "replacement copy"
    assert all("zombie" not in e.payload for e in takeover.log)
    assert [e.seq for e in takeover.log] == list(range(1, len(takeover.log) + 1))


def test_the_marketplace_holds_the_replacements_listing(takeover: Takeover) -> None:
    assert takeover.uploaded is not None
    assert takeover.uploaded.title == "replacement copy"
    assert takeover.uploaded.variants[0].price == Decimal("24.00")
