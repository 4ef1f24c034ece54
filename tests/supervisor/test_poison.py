"""A workflow that kills its agent every time is quarantined, not crash-looped into escalation."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import ray

from actors.coordinator import FaultSettings, workflow_id_for
from actors.protocol import FaultPlan
from swarm.feeds import parse_feed
from swarm.run import new_run_id, summarize, wait_for_run
from swarm.runtime import coordinator, journal
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from tests.cluster import running_supervisor
from tests.conftest import read_store

pytestmark = pytest.mark.timeout(240)


def test_a_poison_workflow_is_quarantined_and_the_rest_complete(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    settings = swarm_factory(poison_attempts=2)
    products = [p for p in parse_feed(SAMPLE_CATALOG).products if not p.feed_errors][:10]
    run_id = new_run_id()
    poison = workflow_id_for(run_id, products[0])
    plans = {poison: FaultPlan(poison_step="generate_listing")}
    ids = ray.get(coordinator().submit.remote(run_id, products, FaultSettings(), plans))
    wait_for_run(journal(), run_id, len(ids), timeout_s=180)

    summary = summarize(journal(), run_id, len(ids), 1.0)
    assert summary.completed == len(products) - 1
    [(product_id, step, reason)] = summary.failures
    assert product_id == products[0].product_id
    assert step == "generate_listing"
    assert "quarantined" in reason
    assert "2 times" in reason

    letters = read_store(settings.db_path, lambda s: s.dead_letters(100))
    [letter] = [d for d in letters if "quarantined" in d.reason]
    assert json.loads(letter.body)["handle"] == products[0].handle

    supervisor = running_supervisor()
    assert ray.get(supervisor.health.remote()).state == "running"  # not escalated
    stream = read_store(settings.db_path, lambda s: s.read_stream("supervisor", 0, None))
    quarantined = [json.loads(r.payload) for r in stream if r.type == "message_quarantined"]
    assert [q["workflow_id"] for q in quarantined] == [poison]
    # the poison killed its agent: once in flight, once more in flight (a suspect now), then
    # alone `poison_attempts` times. A restarted agent runs no step before the supervisor
    # watches it, so each of those deaths is seen, and restarted, exactly once.
    restarts = sum(c.restarts for c in ray.get(supervisor.status.remote()))
    assert restarts == 2 + 2
