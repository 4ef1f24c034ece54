"""Whole-cluster crash: every Ray process SIGKILLed mid-run, a new cluster, `swarm resume`."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from swarm.chaos_run import workflow_counts, write_feed
from swarm.invariants import check_invariants
from tests.cluster import LocalCluster, wait_until

pytestmark = pytest.mark.timeout(600)


def test_resume_finishes_every_workflow_after_the_whole_cluster_is_killed(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    db = tmp_path / "swarm.db"
    feed = tmp_path / "feed.jsonl"
    write_feed(feed, 4_000)
    env = {"SWARM_DB_PATH": str(db), "SWARM_SNAPSHOT_EVERY": "500"}
    driver = cluster.popen_swarm("run", "--input", str(feed), env=env, cwd=tmp_path)
    try:
        wait_until(
            lambda: workflow_counts(db).get("completed", 0) >= 300, 240, "300 completed workflows"
        )
    finally:
        # `ray stop --force` on this cluster only, and its driver with it
        cluster.kill()
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)
    at_crash = workflow_counts(db)
    unfinished = sum(n for status, n in at_crash.items() if status not in ("completed", "failed"))
    assert unfinished > 0, f"the run finished before the crash: {at_crash}"

    cluster.start()
    resume = cluster.run_swarm("resume", env=env, cwd=tmp_path, timeout=400)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    assert f"{unfinished} unfinished workflows" in resume.stdout

    report = asyncio.run(check_invariants(db))
    assert report.ok, [i for i in report.invariants if not i.ok]
    assert report.workflows == sum(at_crash.values())  # resume submits nothing new
    assert report.completed == report.workflows  # every product in the feed is valid
    cluster.run_swarm("shutdown", env=env, cwd=tmp_path)
