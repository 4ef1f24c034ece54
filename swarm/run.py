"""A run: submit a feed's products to the swarm and follow them to a terminal state.

Products go to the coordinator in chunks; progress is read from the journal's
workflow read model (how many workflows stand at or past each step). The run
ends when every submitted workflow is `completed` or `failed`.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from actors.coordinator import FaultSettings
from actors.models import Product
from actors.protocol import STEPS

STAGES = (*STEPS, "completed")


@dataclass
class RunSummary:
    run_id: str
    submitted: int
    completed: int = 0
    failed: int = 0
    wall_s: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    """(product id, step, reason) of each failed workflow."""

    @property
    def terminal(self) -> int:
        return self.completed + self.failed

    @property
    def products_per_s(self) -> float:
        return self.terminal / self.wall_s if self.wall_s else 0.0


def new_run_id() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def stage_counts(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    """How many workflows have passed each stage, from (status, current_step) counts."""
    passed = dict.fromkeys(STAGES, 0)
    for (status, step), n in counts.items():
        if status == "completed":
            reached = len(STAGES)
        elif step in STAGES:
            reached = STAGES.index(step)
        else:
            reached = 0
        for stage in STAGES[:reached]:
            passed[stage] += n
    return passed


def submit_products(
    coordinator: Any,
    run_id: str,
    products: list[Product],
    faults: FaultSettings,
    chunk: int,
    *,
    window: int = 4,
) -> list[str]:
    """Submit in chunks, at most `window` calls out at once; returns the workflow ids in order.

    The coordinator answers a chunk once it has room for it (backpressure), so
    a feed of any length never sits whole in the swarm's memory.
    """
    pending: deque[Any] = deque()
    ids: list[str] = []
    for i in range(0, len(products), chunk):
        if len(pending) >= window:
            ids.extend(ray.get(pending.popleft()))
        pending.append(coordinator.submit.remote(run_id, products[i : i + chunk], faults))
    while pending:
        ids.extend(ray.get(pending.popleft()))
    return ids


def wait_for_run(
    journal: Any,
    run_id: str,
    total: int,
    *,
    on_progress: Callable[[dict[str, int], int, int], None] | None = None,
    poll_s: float = 0.2,
    timeout_s: float | None = None,
) -> dict[tuple[str, str], int]:
    """Block until `total` workflows of the run are terminal; returns the final counts."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        counts: dict[tuple[str, str], int] = ray.get(journal.workflow_counts.remote(run_id))
        completed = sum(n for (s, _), n in counts.items() if s == "completed")
        failed = sum(n for (s, _), n in counts.items() if s == "failed")
        if on_progress is not None:
            on_progress(stage_counts(counts), completed, failed)
        if completed + failed >= total:
            return counts
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id}: {completed + failed}/{total} terminal at timeout")
        time.sleep(poll_s)


def summarize(journal: Any, run_id: str, submitted: int, wall_s: float) -> RunSummary:
    rows = ray.get(journal.workflows.remote(run_id, None, 1_000_000))
    summary = RunSummary(run_id=run_id, submitted=submitted, wall_s=wall_s)
    for row in rows:
        if row.status == "completed":
            summary.completed += 1
        elif row.status == "failed":
            summary.failed += 1
            summary.failures.append((row.product_id, row.current_step, row.error))
    return summary
