"""An LLM endpoint down for longer than the retry budget: workflows wait, then resume.

The OpenAI stub answers 503 to everything until the outage ends. Each product's
listing step retries (the writer's retries, then the agent's `step_attempts`),
then records `step_waiting` and tries again later with a capped backoff; the
workflow row and `status` say `waiting`. A product agent killed while its
workflows wait hands them to its successor, which goes on trying. When the stub
answers again every product completes, each listing and campaign paid for once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import ray
from pydantic import SecretStr

from actors.coordinator import FaultSettings
from storage.records import EventQuery, WorkflowRow
from swarm.feeds import parse_feed
from swarm.run import new_run_id, submit_products, summarize, wait_for_run
from swarm.runtime import coordinator, journal
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from swarm.status_view import collect_status
from tests.conftest import read_store
from tests.servers.openai_stub import OpenAIStub
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(240)
API_KEY = "sk-outage-7c1e-not-a-real-key"


def _rows(db_path: Path, run_id: str) -> list[WorkflowRow]:
    rows: list[WorkflowRow] = read_store(db_path, lambda s: s.workflows(run_id, None, 1_000))
    return rows


def test_workflows_wait_out_an_llm_outage_and_complete_when_it_answers(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    products = [p for p in parse_feed(SAMPLE_CATALOG).products if not p.feed_errors][:6]
    with OpenAIStub(expected_api_key=API_KEY) as llm:
        settings = swarm_factory(
            openai_api_key=SecretStr(API_KEY),
            openai_base_url=llm.base_url,
            step_attempts=2,
            retry_backoff_s=0.05,
            wait_max_s=0.5,
        )
        llm.outage(503)
        run_id = new_run_id()
        ids = submit_products(coordinator(), run_id, products, FaultSettings(), chunk=3)

        def all_waiting() -> bool:
            rows = _rows(settings.db_path, run_id)
            return len(rows) == len(ids) and all(r.status == "waiting" for r in rows)

        wait_until(all_waiting, 120, "every workflow waiting")
        rows = _rows(settings.db_path, run_id)
        assert {r.current_step for r in rows} == {"generate_listing"}
        assert all("HTTP 503" in r.error for r in rows)
        assert collect_status(settings.db_path, None).workflows.get("waiting") == len(ids)
        # an agent dies while its workflows wait: its successor takes them on
        ray.kill(ray.get_actor("product-agent-0", namespace="swarm"), no_restart=True)
        refused = llm.total_calls
        wait_until(lambda: llm.total_calls > refused, 60, "tries go on during the outage")

        llm.outage(None)
        wait_for_run(journal(), run_id, len(ids), timeout_s=120)
        summary = summarize(journal(), run_id, len(ids), 1.0)
        paid = llm.paid_calls

    assert summary.completed == len(products), summary.failures
    assert paid == 2 * len(products)
    query = EventQuery(workflow_prefix=f"{run_id}:", limit=100_000)
    events = [e for _, e in read_store(settings.db_path, lambda s: s.query_events(query))]
    kinds = [e.type for e in events]
    assert kinds.count("listing_generated") == len(products)
    assert kinds.count("campaign_generated") == len(products)
    assert kinds.count("step_waiting") >= len(products)
