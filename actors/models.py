"""Product and content models: what a feed yields and what the agents produce.

`Product` is the shape a workflow's `product_data` holds, whatever feed it came
from. `Listing` and `Campaign` are what the LLM writes; facts (price, SKU,
variants, barcode) are never taken from model output but copied from the
product by `MarketplaceListing.build`.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from actors.safe_html import plain_text


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", cache_strings="keys")
    """`cache_strings="keys"`: JSON parsing (messages, events, snapshots) reuses the Python
    strings of object keys only. By default pydantic also keeps every string value of up to
    64 characters in a process-wide cache of 16,384 entries: message ids, SKUs, titles.
    In an agent that held 1.75-4.85 MB of strings from messages long processed, for no
    gain in decode time (8.0 vs 8.3 us per envelope)."""


class Variant(FrozenModel):
    """One purchasable variant: a Shopify variant row."""

    sku: str = ""
    price: Decimal
    compare_at_price: Decimal | None = None
    inventory_qty: int | None = None
    barcode: str = ""
    options: dict[str, str] = Field(default_factory=dict)
    """Option name -> value, e.g. {"Size": "M", "Color": "Blue"}."""


class Product(FrozenModel):
    """A vendor's product as parsed from a feed (one per Shopify handle)."""

    handle: str
    title: str
    description: str = ""
    """Body (HTML) as given by the vendor; untrusted."""
    vendor: str = ""
    product_category: str = ""
    product_type: str = ""
    tags: tuple[str, ...] = ()
    published: bool = True
    status: str = "active"
    option_names: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()
    images: tuple[str, ...] = ()
    seo_title: str = ""
    seo_description: str = ""
    source_row: int | None = None
    """1-based line of the product's first row in its feed (for error messages)."""
    feed_errors: tuple[str, ...] = ()
    """Problems the parser found; validate_product_data fails the product on them."""

    @property
    def product_id(self) -> str:
        """The marketplace id: the Shopify handle (JSON lines: handle, else the SKU)."""
        return self.handle or self.sku

    @property
    def sku(self) -> str:
        return self.variants[0].sku if self.variants else ""

    @property
    def price(self) -> Decimal | None:
        return self.variants[0].price if self.variants else None


class Listing(BaseModel):
    """Marketplace copy written by the LLM (plain model: strict JSON-schema safe)."""

    title: str
    description: str
    bullet_points: list[str]
    tags: list[str]
    seo_title: str
    seo_description: str


class Campaign(BaseModel):
    """Marketing campaign copy written by the LLM."""

    headline: str
    email_subject: str
    email_body: str
    social_posts: list[str]


class MarketplaceListing(FrozenModel):
    """What is uploaded: the LLM's copy plus the facts taken from the feed.

    `description` is safe HTML and every other text field plain text: the copy
    passed `actors.listing_guard.guard_listing`, and `build` makes the vendor
    and type it copies from the product plain text.
    """

    product_id: str
    handle: str
    vendor: str
    product_type: str
    title: str
    description: str
    bullet_points: tuple[str, ...]
    tags: tuple[str, ...]
    seo_title: str
    seo_description: str
    variants: tuple[Variant, ...]
    images: tuple[str, ...]
    status: str

    def written_copy(self) -> Listing:
        """The LLM-written part of this listing."""
        return Listing(
            title=self.title,
            description=self.description,
            bullet_points=list(self.bullet_points),
            tags=list(self.tags),
            seo_title=self.seo_title,
            seo_description=self.seo_description,
        )

    @classmethod
    def build(cls, product: Product, listing: Listing) -> MarketplaceListing:
        return cls(
            product_id=product.product_id,
            handle=product.handle,
            vendor=plain_text(product.vendor),
            product_type=plain_text(product.product_type),
            title=listing.title,
            description=listing.description,
            bullet_points=tuple(listing.bullet_points),
            tags=tuple(listing.tags),
            seo_title=listing.seo_title,
            seo_description=listing.seo_description,
            variants=product.variants,
            images=product.images,
            status=product.status,
        )


class UploadReceipt(FrozenModel):
    """The marketplace's answer to an upload (or to the lookup that reconciled it)."""

    product_id: str
    marketplace: str
    created: bool
    """False when the product was already there (idempotent replay or reconcile)."""
    revision: str = ""


class TokenUsage(FrozenModel):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens
