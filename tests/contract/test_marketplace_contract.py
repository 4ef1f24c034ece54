"""The `Marketplace` contract: what every marketplace adapter must do, one suite for all.

`MarketplaceContract` holds the tests; each adapter gets a ``Test...`` subclass
that only says how to build it (see the class docstring). The HTTP adapter's
subclass, against the stub marketplace, is at the bottom.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import TypeVar

import pytest

from actors.models import MarketplaceListing, UploadReceipt, Variant
from actors.ports import Marketplace
from swarm.marketplace_http import HttpMarketplace, HttpMarketplaceConfig
from tests.servers.marketplace_stub import MarketplaceStub

T = TypeVar("T")


def make_listing(product_id: str = "linen-shirt", title: str = "Linen shirt") -> MarketplaceListing:
    return MarketplaceListing(
        product_id=product_id,
        handle=product_id,
        vendor="Acme Outfitters",
        product_type="Shirts",
        title=title,
        description="<p>Breathable linen.</p>",
        bullet_points=("100% linen",),
        tags=("summer",),
        seo_title=title,
        seo_description="A breathable linen shirt.",
        variants=(Variant(sku="LS-M", price=Decimal("49.90"), options={"Size": "M"}),),
        images=(),
        status="active",
    )


class MarketplaceContract:
    """Tests any `Marketplace` implementation must pass.

    To run them on an implementation, subclass with a name starting with ``Test``
    and override the `marketplace` fixture so that it returns a fresh, empty
    marketplace (and cleans up after it, if needed, by yielding)::

        class TestLocalMarketplace(MarketplaceContract):
            @pytest.fixture
            def marketplace(self, tmp_path: Path) -> Marketplace:
                return LocalMarketplace(LocalMarketplaceConfig(path=tmp_path / "db"))

    Each test runs its scenario with `run`: in a fresh event loop (``asyncio.run``,
    no pytest-asyncio) under a timeout, so the fixture must not do I/O bound to an
    event loop; open clients lazily, as the ports ask. After the scenario, `run`
    awaits `close_marketplace`, which calls ``aclose()`` when the implementation
    has one; override it if yours closes differently.
    """

    scenario_timeout_s = 10.0

    @pytest.fixture
    def marketplace(self) -> Marketplace:
        raise NotImplementedError(f"{type(self).__name__} must override the marketplace fixture")

    async def close_marketplace(self, marketplace: Marketplace) -> None:
        aclose: Callable[[], Awaitable[None]] | None = getattr(marketplace, "aclose", None)
        if aclose is not None:
            await aclose()

    def run(self, marketplace: Marketplace, scenario: Callable[[], Awaitable[T]]) -> T:
        """Run `scenario` in a fresh event loop, then close the marketplace there."""

        async def main() -> T:
            try:
                async with asyncio.timeout(self.scenario_timeout_s):
                    return await scenario()
            finally:
                await self.close_marketplace(marketplace)

        return asyncio.run(main())

    def test_satisfies_the_marketplace_protocol(self, marketplace: Marketplace) -> None:
        assert isinstance(marketplace, Marketplace)
        assert marketplace.name

    def test_put_then_get_round_trips_the_listing(self, marketplace: Marketplace) -> None:
        listing = make_listing()

        async def scenario() -> MarketplaceListing | None:
            await marketplace.put_listing(listing, "key-1")
            return await marketplace.get_listing(listing.product_id)

        assert self.run(marketplace, scenario) == listing

    def test_receipt_names_the_product_and_the_marketplace(self, marketplace: Marketplace) -> None:
        receipt = self.run(marketplace, lambda: marketplace.put_listing(make_listing(), "key-1"))

        assert (receipt.product_id, receipt.marketplace) == ("linen-shirt", marketplace.name)

    def test_same_key_twice_is_created_only_once(self, marketplace: Marketplace) -> None:
        listing = make_listing()

        async def scenario() -> tuple[UploadReceipt, UploadReceipt]:
            first = await marketplace.put_listing(listing, "key-1")
            return first, await marketplace.put_listing(listing, "key-1")

        first, replay = self.run(marketplace, scenario)

        assert (first.created, replay.created) == (True, False)

    def test_new_key_for_a_known_product_updates_it(self, marketplace: Marketplace) -> None:
        updated = make_listing(title="Linen shirt, new season")

        async def scenario() -> tuple[UploadReceipt, MarketplaceListing | None]:
            await marketplace.put_listing(make_listing(), "key-1")
            receipt = await marketplace.put_listing(updated, "key-2")
            return receipt, await marketplace.get_listing(updated.product_id)

        receipt, stored = self.run(marketplace, scenario)

        assert not receipt.created
        assert stored == updated

    def test_products_are_kept_apart(self, marketplace: Marketplace) -> None:
        shirt, scarf = make_listing("linen-shirt"), make_listing("silk-scarf", title="Silk scarf")

        async def scenario() -> list[MarketplaceListing | None]:
            await marketplace.put_listing(shirt, "key-shirt")
            await marketplace.put_listing(scarf, "key-scarf")
            return [await marketplace.get_listing(p) for p in ("linen-shirt", "silk-scarf")]

        assert self.run(marketplace, scenario) == [shirt, scarf]

    def test_get_of_an_unknown_product_is_none(self, marketplace: Marketplace) -> None:
        assert self.run(marketplace, lambda: marketplace.get_listing("no-such-product")) is None

    def test_a_pickled_copy_sees_the_same_catalog(self, marketplace: Marketplace) -> None:
        listing = make_listing()
        self.run(marketplace, lambda: marketplace.put_listing(listing, "key-1"))

        copy: Marketplace = pickle.loads(pickle.dumps(marketplace))

        assert self.run(copy, lambda: copy.get_listing(listing.product_id)) == listing


class TestHttpMarketplace(MarketplaceContract):
    """The HTTP adapter against the stub marketplace, over real HTTP."""

    @pytest.fixture
    def marketplace_stub(self) -> Iterator[MarketplaceStub]:
        with MarketplaceStub() as stub:
            yield stub

    @pytest.fixture
    def marketplace(self, marketplace_stub: MarketplaceStub) -> Marketplace:
        return HttpMarketplace(HttpMarketplaceConfig(base_url=marketplace_stub.url, timeout_s=5.0))
