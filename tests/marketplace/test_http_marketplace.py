"""The HTTP marketplace adapter against the stub marketplace, over real HTTP.

What `HttpMarketplace` promises beyond the `Marketplace` contract (which
tests/contract checks): the wire protocol, how failures map to retryable or not,
``Retry-After``, that the API token never shows in an error, and pickling.
"""

from __future__ import annotations

import asyncio
import pickle
import traceback
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from actors.models import MarketplaceListing, UploadReceipt
from actors.ports import Marketplace, MarketplaceError
from swarm.marketplace_http import HttpMarketplace, HttpMarketplaceConfig, HttpMarketplaceError
from tests.servers.marketplace_stub import MarketplaceStub

T = TypeVar("T")
ListingFactory = Callable[..., MarketplaceListing]

SCENARIO_TIMEOUT_S = 10.0


def run(marketplace: HttpMarketplace, scenario: Callable[[], Awaitable[T]]) -> T:
    """Run `scenario` in a fresh event loop, then close the marketplace's client there."""

    async def main() -> T:
        try:
            async with asyncio.timeout(SCENARIO_TIMEOUT_S):
                return await scenario()
        finally:
            await marketplace.aclose()

    return asyncio.run(main())


def failure_of(
    marketplace: HttpMarketplace, call: Callable[[], Awaitable[object]]
) -> HttpMarketplaceError:
    """The error `call` raised (the test fails if it raised none)."""

    async def scenario() -> HttpMarketplaceError:
        with pytest.raises(HttpMarketplaceError) as raised:
            await call()
        return raised.value

    return run(marketplace, scenario)


def test_is_a_marketplace(http_marketplace: HttpMarketplace) -> None:
    assert isinstance(http_marketplace, Marketplace)
    assert http_marketplace.name == "http"


def test_put_then_get_round_trips_the_listing(
    http_marketplace: HttpMarketplace, make_listing: ListingFactory
) -> None:
    listing = make_listing()

    async def scenario() -> MarketplaceListing | None:
        await http_marketplace.put_listing(listing, "key-1")
        return await http_marketplace.get_listing(listing.product_id)

    assert run(http_marketplace, scenario) == listing


def test_body_is_the_listing_as_json(
    http_marketplace: HttpMarketplace,
    marketplace_stub: MarketplaceStub,
    make_listing: ListingFactory,
) -> None:
    listing = make_listing()

    run(http_marketplace, lambda: http_marketplace.put_listing(listing, "key-1"))

    assert marketplace_stub.stored(listing.product_id) == listing.model_dump(mode="json")


def test_first_put_is_created_and_a_later_one_updated(
    http_marketplace: HttpMarketplace,
    marketplace_stub: MarketplaceStub,
    make_listing: ListingFactory,
) -> None:
    async def scenario() -> tuple[UploadReceipt, UploadReceipt]:
        first = await http_marketplace.put_listing(make_listing(title="v1"), "key-1")
        second = await http_marketplace.put_listing(make_listing(title="v2"), "key-2")
        return first, second

    first, second = run(http_marketplace, scenario)

    assert (first.created, second.created) == (True, False)
    assert marketplace_stub.writes["linen-shirt"] == 2


def test_receipt_revision_comes_from_the_etag(
    http_marketplace: HttpMarketplace, make_listing: ListingFactory
) -> None:
    async def scenario() -> list[str]:
        first = await http_marketplace.put_listing(make_listing(title="v1"), "key-1")
        second = await http_marketplace.put_listing(make_listing(title="v2"), "key-2")
        return [first.revision, second.revision]

    assert run(http_marketplace, scenario) == ["1", "2"]


def test_replaying_an_idempotency_key_does_not_write_twice(
    http_marketplace: HttpMarketplace,
    marketplace_stub: MarketplaceStub,
    make_listing: ListingFactory,
) -> None:
    listing = make_listing()

    async def scenario() -> tuple[UploadReceipt, UploadReceipt]:
        first = await http_marketplace.put_listing(listing, "key-1")
        return first, await http_marketplace.put_listing(listing, "key-1")

    first, replay = run(http_marketplace, scenario)

    assert (first.created, replay.created) == (True, False)
    assert replay.revision == first.revision
    assert (marketplace_stub.puts, marketplace_stub.writes[listing.product_id]) == (2, 1)


def test_get_of_an_unknown_product_is_none(http_marketplace: HttpMarketplace) -> None:
    assert run(http_marketplace, lambda: http_marketplace.get_listing("no-such-product")) is None


def test_handle_that_needs_quoting_round_trips(
    http_marketplace: HttpMarketplace,
    marketplace_stub: MarketplaceStub,
    make_listing: ListingFactory,
) -> None:
    product_id = "sale/50% off?size=xl#ä ü"
    listing = make_listing(product_id=product_id)

    async def scenario() -> MarketplaceListing | None:
        await http_marketplace.put_listing(listing, "key-1")
        return await http_marketplace.get_listing(product_id)

    assert run(http_marketplace, scenario) == listing
    assert marketplace_stub.writes[product_id] == 1


@pytest.mark.parametrize("product_id", ["", ".", ".."])
def test_product_id_that_cannot_be_a_path_segment_is_refused(
    http_marketplace: HttpMarketplace, marketplace_stub: MarketplaceStub, product_id: str
) -> None:
    error = failure_of(http_marketplace, lambda: http_marketplace.get_listing(product_id))

    assert not error.retryable
    assert marketplace_stub.puts == 0


def test_503_is_retryable_and_carries_retry_after(
    http_marketplace: HttpMarketplace,
    marketplace_stub: MarketplaceStub,
    make_listing: ListingFactory,
    api_token: str,
) -> None:
    marketplace_stub.fail_next(1, status=503, retry_after=7)

    error = failure_of(http_marketplace, lambda: http_marketplace.put_listing(make_listing(), "k"))

    assert (error.retryable, error.status_code, error.retry_after) == (True, 503, 7.0)
    assert isinstance(error, MarketplaceError)
    assert "linen-shirt" in str(error)
    assert "503" in str(error)
    assert api_token not in "".join(traceback.format_exception(error))
    assert marketplace_stub.writes["linen-shirt"] == 0


def test_429_with_a_past_http_date_asks_for_no_wait(
    http_marketplace: HttpMarketplace, marketplace_stub: MarketplaceStub
) -> None:
    marketplace_stub.fail_next(1, status=429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")

    error = failure_of(http_marketplace, lambda: http_marketplace.get_listing("linen-shirt"))

    assert (error.retryable, error.status_code, error.retry_after) == (True, 429, 0.0)


def test_error_without_retry_after_has_none(
    http_marketplace: HttpMarketplace, marketplace_stub: MarketplaceStub
) -> None:
    marketplace_stub.fail_next(1, status=502)

    error = failure_of(http_marketplace, lambda: http_marketplace.get_listing("linen-shirt"))

    assert (error.retryable, error.retry_after) == (True, None)


def test_400_is_not_retryable(
    http_marketplace: HttpMarketplace,
    marketplace_stub: MarketplaceStub,
    make_listing: ListingFactory,
) -> None:
    marketplace_stub.fail_next(1, status=400)

    error = failure_of(http_marketplace, lambda: http_marketplace.put_listing(make_listing(), "k"))

    assert (error.retryable, error.status_code) == (False, 400)
    assert "linen-shirt" in str(error)


def test_reusing_a_key_for_another_listing_is_not_retryable(
    http_marketplace: HttpMarketplace, make_listing: ListingFactory
) -> None:
    async def scenario() -> None:
        await http_marketplace.put_listing(make_listing(title="v1"), "key-1")
        await http_marketplace.put_listing(make_listing(title="v2"), "key-1")

    error = failure_of(http_marketplace, scenario)

    assert (error.retryable, error.status_code) == (False, 422)


def test_write_then_500_is_retryable_and_the_product_is_there(
    http_marketplace: HttpMarketplace,
    marketplace_stub: MarketplaceStub,
    make_listing: ListingFactory,
) -> None:
    listing = make_listing()
    marketplace_stub.fail_after_write_next(1)

    error = failure_of(http_marketplace, lambda: http_marketplace.put_listing(listing, "k"))

    assert (error.retryable, error.status_code) == (True, 500)
    assert (
        run(http_marketplace, lambda: http_marketplace.get_listing(listing.product_id)) == listing
    )
    assert marketplace_stub.writes[listing.product_id] == 1


def test_timeout_is_retryable(marketplace_stub: MarketplaceStub, api_token: str) -> None:
    marketplace = HttpMarketplace(
        HttpMarketplaceConfig(base_url=marketplace_stub.url, timeout_s=0.05, api_token=api_token)
    )
    marketplace_stub.delay_s = 5.0  # the stub's stop() cuts the wait short

    error = failure_of(marketplace, lambda: marketplace.get_listing("linen-shirt"))

    assert error.retryable
    assert error.status_code is None
    assert "Timeout" in str(error)


def test_connection_refused_is_retryable(api_token: str) -> None:
    with MarketplaceStub() as stub:
        url = stub.url  # a port nobody listens on once the stub is stopped
    marketplace = HttpMarketplace(HttpMarketplaceConfig(base_url=url, api_token=api_token))

    error = failure_of(marketplace, lambda: marketplace.get_listing("linen-shirt"))

    assert error.retryable
    assert "linen-shirt" in str(error)
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert api_token not in "".join(traceback.format_exception(error))


def test_wrong_token_is_refused_and_no_token_appears_in_the_error(
    marketplace_stub: MarketplaceStub, api_token: str
) -> None:
    wrong_token = "sk-wrong-4411-secret"  # the stub echoes it back in its 401 body
    marketplace = HttpMarketplace(
        HttpMarketplaceConfig(base_url=marketplace_stub.url, api_token=wrong_token)
    )

    error = failure_of(marketplace, lambda: marketplace.get_listing("linen-shirt"))

    assert (error.retryable, error.status_code) == (False, 401)
    text = "".join(traceback.format_exception(error)) + repr(error) + repr(marketplace.config)
    assert "401" in text
    assert wrong_token not in text
    assert api_token not in text


def test_base_url_with_a_path_prefix() -> None:
    with MarketplaceStub(prefix="/api/v1") as stub:
        marketplace = HttpMarketplace(HttpMarketplaceConfig(base_url=stub.url))
        assert run(marketplace, lambda: marketplace.get_listing("linen-shirt")) is None


def test_pickled_marketplace_works_in_another_event_loop(
    http_marketplace: HttpMarketplace, make_listing: ListingFactory
) -> None:
    listing = make_listing()
    run(http_marketplace, lambda: http_marketplace.put_listing(listing, "key-1"))

    copy = pickle.loads(pickle.dumps(http_marketplace))

    assert run(copy, lambda: copy.get_listing(listing.product_id)) == listing


def test_error_survives_pickling(
    http_marketplace: HttpMarketplace, marketplace_stub: MarketplaceStub
) -> None:
    marketplace_stub.fail_next(1, status=503, retry_after=3)
    error = failure_of(http_marketplace, lambda: http_marketplace.get_listing("linen-shirt"))

    copy = pickle.loads(pickle.dumps(error))

    assert (str(copy), copy.retryable, copy.status_code, copy.retry_after) == (
        str(error),
        True,
        503,
        3.0,
    )


def test_hundred_concurrent_puts_each_write_once(
    http_marketplace: HttpMarketplace,
    marketplace_stub: MarketplaceStub,
    make_listing: ListingFactory,
) -> None:
    listings = [make_listing(product_id=f"product-{i}") for i in range(100)]

    async def scenario() -> list[UploadReceipt]:
        puts = (http_marketplace.put_listing(item, f"key-{i}") for i, item in enumerate(listings))
        return await asyncio.gather(*puts)

    receipts = run(http_marketplace, scenario)

    assert all(receipt.created for receipt in receipts)
    assert marketplace_stub.writes == {listing.product_id: 1 for listing in listings}


def test_puts_beyond_max_connections_wait_for_a_connection(
    marketplace_stub: MarketplaceStub, api_token: str, make_listing: ListingFactory
) -> None:
    config = HttpMarketplaceConfig(
        base_url=marketplace_stub.url, max_connections=2, api_token=api_token
    )
    marketplace = HttpMarketplace(config)
    listings = [make_listing(product_id=f"product-{i}") for i in range(20)]

    async def scenario() -> list[UploadReceipt]:
        puts = (marketplace.put_listing(item, f"key-{i}") for i, item in enumerate(listings))
        return await asyncio.gather(*puts)

    assert len(run(marketplace, scenario)) == 20
    assert marketplace_stub.writes == {listing.product_id: 1 for listing in listings}


def test_config_refuses_a_base_url_that_is_not_absolute_http() -> None:
    with pytest.raises(ValueError, match="base_url"):
        HttpMarketplaceConfig(base_url="marketplace.example.com/api")
