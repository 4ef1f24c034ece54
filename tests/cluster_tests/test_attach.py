"""`ray start --head`, then `python -m swarm run` attaches to it; `status` and `shutdown` work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from swarm.invariants import check_invariants
from tests.cluster import LocalCluster

pytestmark = pytest.mark.timeout(300)


def test_run_attaches_to_a_ray_start_cluster_and_leaves_the_swarm_running(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    env = {"SWARM_DB_PATH": str(tmp_path / "swarm.db")}
    run = cluster.run_swarm("run", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Ray: {cluster.address}" in run.stdout
    assert "completed" in run.stdout

    report = asyncio.run(check_invariants(tmp_path / "swarm.db"))
    assert report.ok, report.invariants
    assert (report.completed, report.failed) == (53, 5)

    # the swarm outlives the command that started it: `status` from another process finds it
    status = cluster.run_swarm("status", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    for role in ("journal", "coordinator", "product-agent-0", "marketing-agent-0"):
        assert role in status.stdout
    assert "alive" in status.stdout

    down = cluster.run_swarm("shutdown", env=env, cwd=tmp_path)
    assert "Swarm stopped." in down.stdout, down.stdout + down.stderr
    after = cluster.run_swarm("status", env=env, cwd=tmp_path)
    assert "no swarm running" in after.stdout, after.stdout + after.stderr


def test_an_address_where_no_cluster_runs_is_a_clear_error(tmp_path: Path) -> None:
    from tests.cluster import free_port

    probe = LocalCluster(tmp_path / "none")
    probe.address = f"127.0.0.1:{free_port()}"
    result = probe.run_swarm(
        "run", env={"SWARM_DB_PATH": str(tmp_path / "x.db")}, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2
    said = " ".join((result.stdout + result.stderr).split())  # however the terminal wrapped it
    assert f"no Ray cluster answers at {probe.address}" in said
