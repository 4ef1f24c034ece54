"""The `local` marketplace: listings kept in the catalog table of the swarm's own database.

The default, so a run needs no outside service. It keeps the same promises as
a real marketplace: a replayed idempotency key writes nothing and answers as
the first time did. On Ray it reaches the catalog through the journal actor;
in one process (the workflow API) through the journal object itself
(`InProcessCatalog`).
"""

from __future__ import annotations

from typing import Any, Protocol

from actors.models import MarketplaceListing, UploadReceipt
from actors.ray_actors import JournalCatalogClient
from storage.journal import Journal


class CatalogClient(Protocol):
    async def catalog_put(self, product_id: str, body: str, key: str) -> tuple[int, bool]: ...

    async def catalog_get(self, product_id: str) -> str | None: ...


class InProcessCatalog:
    """The catalog of a journal running in this process."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def catalog_put(self, product_id: str, body: str, key: str) -> tuple[int, bool]:
        entry, created = await self.journal.catalog_put(product_id, body, key)
        return entry.revision, created

    async def catalog_get(self, product_id: str) -> str | None:
        entry = await self.journal.catalog_get(product_id)
        return None if entry is None else entry.body


class LocalMarketplace:
    name = "local"

    def __init__(self, journal_name: str = "journal", catalog: CatalogClient | None = None) -> None:
        """`catalog`: the journal to use in this process; None: the named journal actor."""
        self.journal_name = journal_name
        self._client: CatalogClient | None = catalog

    def __getstate__(self) -> dict[str, Any]:
        return {"journal_name": self.journal_name, "_client": None}

    @property
    def client(self) -> CatalogClient:
        if self._client is None:
            self._client = JournalCatalogClient(self.journal_name)
        return self._client

    async def put_listing(self, listing: MarketplaceListing, idempotency_key: str) -> UploadReceipt:
        revision, created = await self.client.catalog_put(
            listing.product_id, listing.model_dump_json(), idempotency_key
        )
        return UploadReceipt(
            product_id=listing.product_id,
            marketplace=self.name,
            created=created,
            revision=str(revision),
        )

    async def get_listing(self, product_id: str) -> MarketplaceListing | None:
        body = await self.client.catalog_get(product_id)
        return None if body is None else MarketplaceListing.model_validate_json(body)
