"""A kill during each workflow step: the supervisor restarts the agent, the run completes,
and every external effect happened once, counted at the suite's own servers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
import ray
from pydantic import SecretStr

from actors.coordinator import FaultSettings
from actors.protocol import STEPS
from swarm.feeds import parse_feed
from swarm.invariants import check_invariants
from swarm.run import new_run_id, submit_products, summarize, wait_for_run
from swarm.runtime import coordinator, journal
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from tests.cluster import running_supervisor
from tests.servers.marketplace_stub import MarketplaceStub
from tests.servers.openai_stub import OpenAIStub

pytestmark = pytest.mark.timeout(240)
API_KEY = "sk-kill-step-not-a-real-key"
TOKEN = "mp-kill-step-token"


@pytest.fixture
def servers() -> Iterator[tuple[OpenAIStub, MarketplaceStub]]:
    with OpenAIStub(expected_api_key=API_KEY) as llm, MarketplaceStub(api_token=TOKEN) as shop:
        yield llm, shop


@pytest.mark.parametrize("step", STEPS)
def test_an_agent_killed_at_each_step_is_restarted_and_effects_happen_once(
    swarm_factory: Callable[..., SwarmSettings],
    servers: tuple[OpenAIStub, MarketplaceStub],
    step: str,
) -> None:
    llm, shop = servers
    settings = swarm_factory(
        openai_api_key=SecretStr(API_KEY),
        openai_base_url=llm.base_url,
        marketplace_url=shop.url,
        marketplace_token=SecretStr(TOKEN),
        effect_concurrency=1,  # at most one call per agent in flight when its process dies
    )
    products = [p for p in parse_feed(SAMPLE_CATALOG).products if not p.feed_errors][:6]
    run_id = new_run_id()
    # every workflow kills its agent's process once, at `step`
    faults = FaultSettings(crash_step=step, crash_rate=1.0)
    ids = submit_products(coordinator(), run_id, products, faults, chunk=3)
    wait_for_run(journal(), run_id, len(ids), timeout_s=180)

    summary = summarize(journal(), run_id, len(ids), 1.0)
    assert summary.completed == len(products), summary.failures
    restarts = sum(c.restarts for c in ray.get(running_supervisor().status.remote()))
    assert restarts >= 1
    # injected crashes do not count toward the restart intensity
    assert ray.get(running_supervisor().health.remote()).state == "running"
    # one listing and one campaign each; a kill can only lose the one call then in flight,
    # never repeat a step whose result was recorded (the invariants below check that)
    assert 2 * len(products) <= llm.paid_calls <= 2 * len(products) + restarts
    assert all(shop.writes[p.product_id] == 1 for p in products)
    report = asyncio.run(check_invariants(settings.db_path, local_marketplace=False))
    assert report.ok, [i for i in report.invariants if not i.ok]
