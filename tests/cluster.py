"""Test helpers for clusters: the cluster itself lives in `swarm.local_cluster`."""

from __future__ import annotations

from typing import Any

from swarm.local_cluster import LocalCluster, free_port
from swarm.runtime import find_swarm
from tests.waiting import wait_until

__all__ = ["LocalCluster", "free_port", "running_supervisor", "wait_until"]


def running_supervisor() -> Any:
    supervisor = find_swarm()
    assert supervisor is not None, "no swarm is running"
    return supervisor
