"""Test helpers for clusters: the cluster itself lives in `swarm.local_cluster`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from swarm.local_cluster import LocalCluster, free_port
from swarm.runtime import find_swarm

__all__ = ["LocalCluster", "free_port", "running_supervisor", "wait_until"]


def running_supervisor() -> Any:
    supervisor = find_swarm()
    assert supervisor is not None, "no swarm is running"
    return supervisor


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll `predicate()` until it is true, failing with `what` after `timeout_s`."""
    end = time.monotonic() + timeout_s
    delay = 0.05
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
