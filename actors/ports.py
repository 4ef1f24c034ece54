"""The ports the agents need from the outside world: interfaces only.

Implementations live in `swarm/` (offline and langchain-openai LLM writers,
local and HTTP marketplaces) and are handed to the agents when they are built,
so this layer never imports them. Every implementation is picklable: it is
shipped to the agent's Ray actor process and opens its clients lazily there.

Errors say whether a retry may help (`retryable`), in the manner of
Temporal's `non_retryable`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol, runtime_checkable

from actors.models import (
    Campaign,
    FrozenModel,
    Listing,
    MarketplaceListing,
    Product,
    TokenUsage,
    UploadReceipt,
)


class LLMProvenance(FrozenModel):
    """What produced a piece of generated text, kept with it in the event log."""

    model: str
    prompt_version: str
    usage: TokenUsage = TokenUsage()


class GeneratedListing(FrozenModel):
    listing: Listing
    provenance: LLMProvenance


class GeneratedCampaign(FrozenModel):
    campaign: Campaign
    provenance: LLMProvenance


class ExternalCallError(Exception):
    """A call to an outside system failed; `retryable` says whether to try again.

    `status_code` is the HTTP status when the endpoint answered one;
    `retry_after` the wait in seconds it asked for (``Retry-After``), which the
    agents' retry honours.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only `retryable` would be lost by Exception's pickling (Ray ships errors)
        return (partial(type(self), retryable=self.retryable), (str(self),), self.__dict__)


class LLMError(ExternalCallError):
    """The LLM endpoint failed or returned output that does not fit the model."""


class MarketplaceError(ExternalCallError):
    """The marketplace refused a call or could not be reached."""


@runtime_checkable
class ContentWriter(Protocol):
    """Writes listing and campaign copy for a product (an LLM or the offline generator)."""

    @property
    def model_name(self) -> str: ...

    async def write_listing(self, product: Product) -> GeneratedListing: ...

    async def write_campaign(self, product: Product, listing: Listing) -> GeneratedCampaign: ...


@runtime_checkable
class Marketplace(Protocol):
    """Where listings are published. `put_listing` must be idempotent per key."""

    @property
    def name(self) -> str: ...

    async def put_listing(
        self, listing: MarketplaceListing, idempotency_key: str
    ) -> UploadReceipt: ...

    async def get_listing(self, product_id: str) -> MarketplaceListing | None: ...
