"""Two nodes: agents run on the second, which is removed mid-run; they come back on the first.

The cluster is `ray.cluster_utils.Cluster` (real raylets on this machine), owned
and shut down by the test.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from actors.coordinator import FaultSettings
from swarm.chaos_run import write_feed
from swarm.feeds import parse_feed
from swarm.invariants import check_invariants
from swarm.run import new_run_id, submit_products, wait_for_run
from swarm.runtime import coordinator, journal, start_swarm, stop_swarm
from tests.cluster import wait_until
from tests.conftest import make_settings

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def two_nodes() -> Iterator[tuple[Cluster, Any]]:
    if ray.is_initialized():
        ray.shutdown()
    temp_dir = tempfile.mkdtemp(prefix="swarm-mn-")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "temp_dir": temp_dir, "include_dashboard": False},
    )
    # the node starts at most num_cpus workers at once; more would spill to the head
    worker = cluster.add_node(num_cpus=16)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="swarm", log_to_driver=False)
    try:
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
        shutil.rmtree(temp_dir, ignore_errors=True)


def nodes_of(supervisor: Any) -> dict[str, str]:
    return {c.name: c.node_id for c in ray.get(supervisor.status.remote()) if c.node_id}


def test_agents_of_a_removed_node_are_respawned_on_the_other(
    two_nodes: tuple[Cluster, Any], tmp_path: Path
) -> None:
    cluster, worker = two_nodes
    head = ray.get_runtime_context().get_node_id()
    settings = make_settings(
        tmp_path / "swarm.db",
        agent_node=worker.node_id,
        offline_llm_latency_s=0.05,
        effect_concurrency=4,
    )
    supervisor = start_swarm(settings, detached=False)
    try:
        placed = nodes_of(supervisor)
        agents = [n for n in placed if n != "journal"]
        assert agents
        assert all(placed[n] == worker.node_id for n in agents), (placed, worker.node_id, head)

        write_feed(tmp_path / "feed.jsonl", 300)
        products = list(parse_feed(tmp_path / "feed.jsonl").products)
        run_id = new_run_id()
        ids = submit_products(coordinator(), run_id, products, FaultSettings(), chunk=50)

        def completed() -> int:
            counts = ray.get(journal().workflow_counts.remote(run_id))
            return sum(n for (status, _), n in counts.items() if status == "completed")

        wait_until(lambda: completed() >= 30, 120, "30 completed workflows")
        assert completed() < len(ids), "the run finished before the node was removed"
        cluster.remove_node(worker)

        wait_for_run(journal(), run_id, len(ids), timeout_s=240)
        after = nodes_of(supervisor)
        assert all(after[n] == head for n in agents), after
        restarts = {c.name: c.restarts for c in ray.get(supervisor.status.remote())}
        assert all(restarts[n] >= 1 for n in agents), restarts
    finally:
        stop_swarm(supervisor)
    report = asyncio.run(check_invariants(settings.db_path))
    assert report.ok, [i for i in report.invariants if not i.ok]
    assert report.completed == len(ids)
