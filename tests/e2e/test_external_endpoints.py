"""The swarm against real HTTP endpoints on 127.0.0.1: an OpenAI-compatible server
(langchain-openai structured output over the chat completions wire protocol) and a
REST marketplace. Every call is counted at the servers themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from pydantic import SecretStr

from actors.coordinator import FaultSettings
from swarm.feeds import parse_feed
from swarm.run import new_run_id, submit_products, summarize, wait_for_run
from swarm.runtime import coordinator, journal
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from tests.servers.marketplace_stub import MarketplaceStub
from tests.servers.openai_stub import OpenAIStub

pytestmark = pytest.mark.timeout(240)
API_KEY = "sk-e2e-3d8f-not-a-real-key"
TOKEN = "mp-e2e-token-51c2"


@pytest.fixture
def servers() -> Iterator[tuple[OpenAIStub, MarketplaceStub]]:
    with OpenAIStub(expected_api_key=API_KEY) as llm, MarketplaceStub(api_token=TOKEN) as shop:
        yield llm, shop


def test_products_flow_through_the_llm_and_marketplace_servers_once_each(
    swarm_factory: Callable[..., SwarmSettings],
    servers: tuple[OpenAIStub, MarketplaceStub],
) -> None:
    llm, shop = servers
    swarm_factory(
        openai_api_key=SecretStr(API_KEY),
        openai_base_url=llm.base_url,
        marketplace_url=shop.url,
        marketplace_token=SecretStr(TOKEN),
    )
    products = [p for p in parse_feed(SAMPLE_CATALOG).products if not p.feed_errors][:12]
    run_id = new_run_id()
    ids = submit_products(coordinator(), run_id, products, FaultSettings(), chunk=5)
    wait_for_run(journal(), run_id, len(ids), timeout_s=120)

    summary = summarize(journal(), run_id, len(ids), 1.0)
    assert summary.completed == len(products), summary.failures
    assert llm.paid_calls == 2 * len(products)  # one listing and one campaign each
    assert set(llm.calls_by_schema) == {"Listing", "Campaign"}
    writes = shop.writes
    assert all(writes[p.product_id] == 1 for p in products)
    first = products[0]
    stored = shop.stored(first.product_id)
    assert stored is not None
    variants = stored["variants"]
    assert isinstance(variants, list)
    assert [Decimal(str(v["price"])) for v in variants] == [v.price for v in first.variants]


def test_the_run_summary_prices_the_tokens_the_llm_server_reported(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    tokens_in, tokens_out, dated_model = 240, 60, "gpt-4o-mini-2024-07-18"
    with OpenAIStub(fixed_usage=(tokens_in, tokens_out), reported_model=dated_model) as llm:
        settings = swarm_factory(
            openai_api_key=SecretStr(API_KEY), openai_base_url=llm.base_url, llm_model="gpt-4o-mini"
        )
        products = [p for p in parse_feed(SAMPLE_CATALOG).products if not p.feed_errors][:6]
        run_id = new_run_id()
        ids = submit_products(coordinator(), run_id, products, FaultSettings(), chunk=3)
        wait_for_run(journal(), run_id, len(ids), timeout_s=120)
        paid = llm.paid_calls

    ledger = summarize(journal(), run_id, len(ids), 1.0, settings.price_table).llm
    assert ledger.calls == paid == 2 * len(products)
    assert (ledger.input_tokens, ledger.output_tokens) == (paid * tokens_in, paid * tokens_out)
    per_call = (tokens_in * 0.15 + tokens_out * 0.60) / 1_000_000  # gpt-4o-mini's default price
    assert ledger.cost_usd == pytest.approx(paid * per_call)
    assert ledger.calls_by_model == {dated_model: paid}
    assert (ledger.repeated_calls, ledger.unpriced_models) == (0, ())
