"""A run: submit a feed's products to the swarm and follow them to a terminal state.

Products go to the coordinator in chunks; progress is read from the journal's
workflow read model (how many workflows stand at or past each step). The run
ends when every submitted workflow is `completed` or `failed`; its summary
adds the run's LLM ledger (calls, tokens, cost, and what crashes cost).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

from actors.coordinator import FaultSettings
from actors.llm_pricing import PriceTable
from actors.models import Product
from actors.protocol import STEPS
from storage.journal import JournalNotStartedError
from storage.records import EventRecord
from swarm.ledger import LedgerTotals, run_ledger_queries, totals
from swarm.runtime import find_swarm, raise_if_escalated, whereis

T = TypeVar("T")
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
    llm: LedgerTotals = field(default_factory=LedgerTotals)

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
    window: int = 2,
) -> list[str]:
    """Submit in chunks, at most `window` calls out at once; returns the workflow ids in order.

    The coordinator answers a chunk once it has room for it (backpressure), so a
    feed of any length never sits whole in the swarm's memory. A chunk whose
    answer was lost (the coordinator died) is sent again: the coordinator skips
    workflow ids the log already holds.
    """
    chunks = [products[i : i + chunk] for i in range(0, len(products), chunk)]
    pending: deque[tuple[list[Product], Any]] = deque()
    ids: list[str] = []

    def settle(part: list[Product], ref: Any) -> list[str]:
        deadline = time.monotonic() + 300
        while True:
            try:
                answer: list[str] = ray.get(ref, timeout=300)
                return answer
            except (RayActorError, ActorUnavailableError, GetTimeoutError):
                if time.monotonic() > deadline:
                    raise
                _check_supervisor()
                ref = whereis("coordinator").submit.remote(run_id, part, faults)

    for part in chunks:
        if len(pending) >= window:
            ids.extend(settle(*pending.popleft()))
        pending.append((part, coordinator.submit.remote(run_id, part, faults)))
    while pending:
        ids.extend(settle(*pending.popleft()))
    return ids


def _counts(journal: Any, run_id: str | None) -> tuple[Any, dict[tuple[str, str], int]]:
    """Workflow counts from the journal, following it to its new actor if it was restarted."""
    return ask_journal(journal, lambda j: ray.get(j.workflow_counts.remote(run_id), timeout=30))


def ask_journal(journal: Any, call: Callable[[Any], T]) -> tuple[Any, T]:
    """`call(journal)`, following the journal to its new actor while it is restarted."""
    deadline = time.monotonic() + 300
    while True:
        try:
            return journal, call(journal)
        except (RayActorError, ActorUnavailableError, GetTimeoutError, JournalNotStartedError):
            if time.monotonic() > deadline:
                raise
            _check_supervisor()
            time.sleep(0.1)  # the journal is being restarted: ask where it runs now
            journal = whereis("journal")


def _check_supervisor() -> None:
    supervisor = find_swarm()
    if supervisor is None:
        return
    try:
        health = ray.get(supervisor.health.remote(), timeout=10)
    except (RayActorError, ActorUnavailableError, GetTimeoutError):
        return  # restarting: it re-attaches to its children
    raise_if_escalated(health)


def wait_for_run(
    journal: Any,
    run_id: str,
    total: int,
    *,
    on_progress: Callable[[dict[str, int], int, int], None] | None = None,
    poll_s: float = 0.2,
    timeout_s: float | None = None,
) -> dict[tuple[str, str], int]:
    """Block until `total` workflows of the run are terminal; returns the final counts.

    Raises `SwarmEscalatedError` if the supervisor gives up on the way.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    checked = time.monotonic()
    while True:
        journal, counts = _counts(journal, run_id)
        if time.monotonic() - checked > 1.0:
            _check_supervisor()
            checked = time.monotonic()
        completed = sum(n for (s, _), n in counts.items() if s == "completed")
        failed = sum(n for (s, _), n in counts.items() if s == "failed")
        if on_progress is not None:
            on_progress(stage_counts(counts), completed, failed)
        if completed + failed >= total:
            return counts
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id}: {completed + failed}/{total} terminal at timeout")
        time.sleep(poll_s)


TERMINAL = ("completed", "failed")


def unfinished(counts: dict[tuple[str, str], int]) -> int:
    return sum(n for (status, _), n in counts.items() if status not in TERMINAL)


def wait_for_unfinished(
    journal: Any,
    *,
    on_progress: Callable[[int], None] | None = None,
    poll_s: float = 0.2,
    timeout_s: float | None = None,
) -> dict[tuple[str, str], int]:
    """Block until no workflow of any run is left in flight; returns the final counts."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        journal, counts = _counts(journal, None)
        _check_supervisor()
        left = unfinished(counts)
        if on_progress is not None:
            on_progress(left)
        if left == 0:
            return counts
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{left} workflows still unfinished at timeout")
        time.sleep(poll_s)


def summarize(
    journal: Any, run_id: str, submitted: int, wall_s: float, prices: PriceTable | None = None
) -> RunSummary:
    journal, rows = ask_journal(journal, lambda j: ray.get(j.workflows.remote(run_id, None, 10**6)))
    summary = RunSummary(run_id=run_id, submitted=submitted, wall_s=wall_s)
    queries = run_ledger_queries(run_id)
    _, answers = ask_journal(
        journal, lambda j: ray.get([j.query_events.remote(q) for q in queries])
    )
    records: list[EventRecord] = [e for rows_of in answers for _, e in rows_of]
    summary.llm = totals(records, prices or PriceTable())
    for row in rows:
        if row.status == "completed":
            summary.completed += 1
        elif row.status == "failed":
            summary.failed += 1
            summary.failures.append((row.product_id, row.current_step, row.error))
    return summary
