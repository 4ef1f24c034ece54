"""Fixtures for the HTTP marketplace tests: a stub marketplace on a free port and a
client configured for it, plus a factory of valid listings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from actors.models import MarketplaceListing, Variant
from swarm.marketplace_http import HttpMarketplace, HttpMarketplaceConfig
from tests.servers.marketplace_stub import MarketplaceStub


@pytest.fixture
def api_token() -> str:
    """The bearer token the stub requires; no error message may ever contain it."""
    return "sk-test-7f3c9a-never-print-me"


@pytest.fixture
def marketplace_stub(api_token: str) -> Iterator[MarketplaceStub]:
    with MarketplaceStub(api_token=api_token) as stub:
        yield stub


@pytest.fixture
def http_marketplace(marketplace_stub: MarketplaceStub, api_token: str) -> HttpMarketplace:
    """A client of the stub; not yet connected (it opens its client in the test's loop)."""
    config = HttpMarketplaceConfig(
        base_url=marketplace_stub.url, timeout_s=5.0, api_token=api_token
    )
    return HttpMarketplace(config)


@pytest.fixture
def make_listing() -> Callable[..., MarketplaceListing]:
    """`make_listing(product_id="linen-shirt", title=...)` builds a valid listing."""

    def build(product_id: str = "linen-shirt", title: str = "Linen shirt") -> MarketplaceListing:
        return MarketplaceListing(
            product_id=product_id,
            handle=product_id,
            vendor="Acme Outfitters",
            product_type="Shirts",
            title=title,
            description="<p>Breathable linen.</p>",
            bullet_points=("100% linen", "Machine washable"),
            tags=("summer", "linen"),
            seo_title=title,
            seo_description="A breathable linen shirt.",
            variants=(
                Variant(sku="LS-M", price=Decimal("49.90"), options={"Size": "M"}),
                Variant(sku="LS-L", price=Decimal("49.90"), options={"Size": "L"}),
            ),
            images=("https://cdn.example.com/linen-shirt.jpg",),
            status="active",
        )

    return build
