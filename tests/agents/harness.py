"""The agents in one process, for tests: a real journal over the in-memory store, a
transport that hands messages straight to the recipient's `deliver`, the offline writer
and the catalog table as marketplace. What happened (every commit, every push, every
effect as it starts) can be read back; nothing here replaces an agent's own logic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, TypeVar

from actors.durable import DurableAgent
from actors.models import Listing, MarketplaceListing, Product, UploadReceipt, Variant
from actors.ports import GeneratedCampaign, GeneratedListing
from actors.protocol import Envelope, FaultPlan, ProcessProduct
from storage.journal import Journal
from storage.records import AppendBatch, AppendRefusal, AppendResult
from swarm.llm_offline import OfflineWriter

AGENT = "product-agent-0"
"""The product agent the agent tests drive."""


def product(i: int, prefix: str = "beanie") -> Product:
    return Product(
        handle=f"{prefix}-{i}",
        title=f"Wool Beanie {i}",
        description="<p>Warm wool beanie.</p>",
        vendor="Northwind",
        product_type="Hats",
        tags=("winter",),
        variants=(Variant(sku=f"WB-{i}", price=Decimal("24.00")),),
    )


def process_product(i: int, faults: FaultPlan | None = None) -> Envelope:
    """The coordinator's message handing product `i` (run "r") to `AGENT`."""
    p = product(i)
    return Envelope.wrap(
        ProcessProduct(run_id="r", product=p, faults=faults or FaultPlan()),
        sender="coordinator",
        recipient=AGENT,
        workflow_id=f"r:{p.product_id}",
    )


class RecordingJournal(Journal):
    """The journal, keeping every committed batch in commit order."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.committed: list[AppendBatch] = []

    async def append(self, batch: AppendBatch) -> AppendResult | AppendRefusal:
        outcome = await super().append(batch)
        if isinstance(outcome, AppendResult):
            self.committed.append(batch)
        return outcome

    def committed_types(self, workflow_id: str) -> list[str]:
        return [e.type for b in self.committed for e in b.events if e.workflow_id == workflow_id]


class LocalTransport:
    """Pushes messages to agents in this process; remembers what each push carried."""

    def __init__(self) -> None:
        self.agents: dict[str, DurableAgent] = {}
        self.pushed: list[tuple[str, list[str]]] = []
        self.on_send: Callable[[str, list[str]], None] | None = None
        self._tasks: set[asyncio.Task[int]] = set()

    def send(self, recipient: str, bodies: list[str]) -> None:
        self.pushed.append((recipient, bodies))
        if self.on_send is not None:
            self.on_send(recipient, bodies)
        agent = self.agents.get(recipient)
        if agent is not None:
            task = asyncio.ensure_future(agent.deliver(bodies))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


class CatalogMarketplace:
    """The local marketplace in this process: the journal's catalog table."""

    name = "local"

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.on_put: Callable[[MarketplaceListing], None] | None = None

    async def put_listing(self, listing: MarketplaceListing, key: str) -> UploadReceipt:
        if self.on_put is not None:
            self.on_put(listing)
        entry, created = await self.journal.catalog_put(
            listing.product_id, listing.model_dump_json(), key
        )
        return UploadReceipt(
            product_id=listing.product_id, marketplace=self.name, created=created,
            revision=str(entry.revision),
        )  # fmt: skip

    async def get_listing(self, product_id: str) -> MarketplaceListing | None:
        entry = await self.journal.catalog_get(product_id)
        return None if entry is None else MarketplaceListing.model_validate_json(entry.body)


class WatchedWriter:
    """The offline writer; `on_listing` runs as each listing call starts, and the listing of
    a product in `held` waits until its event is set (its workflow stays in flight)."""

    model_name = "offline-v1"

    def __init__(self) -> None:
        self._writer = OfflineWriter()
        self.on_listing: Callable[[Product], None] | None = None
        self.held: dict[str, asyncio.Event] = {}

    async def write_listing(self, product: Product) -> GeneratedListing:
        if self.on_listing is not None:
            self.on_listing(product)
        gate = self.held.get(product.product_id)
        if gate is not None:
            await gate.wait()
        return await self._writer.write_listing(product)

    async def write_campaign(self, product: Product, listing: Listing) -> GeneratedCampaign:
        return await self._writer.write_campaign(product, listing)


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a test scenario on its own event loop, failing it after 30 s."""
    return asyncio.run(asyncio.wait_for(coro, 30))
