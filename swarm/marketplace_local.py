"""The `local` marketplace: listings kept in the catalog table of the swarm's own database.

The default, so a run needs no outside service. It keeps the same promises as
a real marketplace: a replayed idempotency key writes nothing and answers as
the first time did.
"""

from __future__ import annotations

from typing import Any

from actors.models import MarketplaceListing, UploadReceipt
from actors.ray_actors import JournalCatalogClient


class LocalMarketplace:
    name = "local"

    def __init__(self, journal_name: str = "journal") -> None:
        self.journal_name = journal_name
        self._client: JournalCatalogClient | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"journal_name": self.journal_name, "_client": None}

    @property
    def client(self) -> JournalCatalogClient:
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
