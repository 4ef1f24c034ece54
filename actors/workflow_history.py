"""One workflow's history across agents, read from its events: what recovery needs to know.

The events of one workflow, from every agent's stream in commit order, are
folded with the same pure `accept` / `apply` the agents use, one fold per
stream. Without running any agent this says whether the workflow is running,
completed or failed (as its coordinator recorded it), where it failed (the
agent and step of its last `StepFailed`) and the failing agent's state just
before the failure: the state a resumed run starts from, with every result
produced before the failure in it. The cost follows the workflow's own events
(the log is indexed by workflow), not the length of any stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from actors.events import (
    CrashInjected,
    Event,
    StepFailed,
    WorkflowAccepted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowSubmitted,
    decode_event,
)
from actors.models import FrozenModel
from actors.workflow import WorkflowState, accept, apply
from storage.records import EventRecord

HistoryStatus = Literal["absent", "running", "completed", "failed"]


class StepFailure(FrozenModel):
    """Where a workflow failed: the agent (its stream), the step and the recorded error."""

    agent: str
    step: str
    error: str


class StepCrash(FrozenModel):
    """An injected crash: the agent whose process died and the step it died at."""

    agent: str
    step: str


class WorkflowHistory:
    def __init__(self, workflow_id: str, records: Sequence[EventRecord]) -> None:
        """`records`: the workflow's events in commit order (other workflows' are skipped)."""
        self.workflow_id = workflow_id
        self.records = [r for r in records if r.workflow_id == workflow_id]
        self.events: list[tuple[str, Event]] = [
            (r.stream_id, decode_event(r.type, r.schema_version, r.payload)) for r in self.records
        ]

    @property
    def status(self) -> HistoryStatus:
        """The coordinator's last word: submitted (running), completed or failed."""
        status: HistoryStatus = "absent"
        for _, event in self.events:
            if isinstance(event, WorkflowSubmitted):
                status = "running"
            elif isinstance(event, WorkflowCompleted):
                status = "completed"
            elif isinstance(event, WorkflowFailed):
                status = "failed"
        return status

    def failure(self) -> StepFailure | None:
        """Where the workflow failed, if it stands failed: its last step failure."""
        found = self._last_failure()
        return None if found is None else found[1]

    def state_at_failure(self) -> WorkflowState | None:
        """The failing agent's state of the workflow just before the failed step."""
        found = self._last_failure()
        if found is None:
            return None
        index, failure = found
        state: WorkflowState | None = None
        for stream, event in self.events[:index]:
            if stream == failure.agent:
                state = fold(state, self.workflow_id, stream, event)
        return state

    def crashes(self) -> list[StepCrash]:
        return [
            StepCrash(agent=stream, step=event.step)
            for stream, event in self.events
            if isinstance(event, CrashInjected)
        ]

    def states(self) -> dict[str, WorkflowState]:
        """Each agent's state of the workflow after its last event there."""
        states: dict[str, WorkflowState] = {}
        for stream, event in self.events:
            state = fold(states.get(stream), self.workflow_id, stream, event)
            if state is not None:
                states[stream] = state
        return states

    def _last_failure(self) -> tuple[int, StepFailure] | None:
        if self.status != "failed":
            return None
        for index in range(len(self.events) - 1, -1, -1):
            stream, event = self.events[index]
            if isinstance(event, StepFailed):
                return index, StepFailure(agent=stream, step=event.step, error=event.error)
        return None


def fold(
    state: WorkflowState | None, workflow_id: str, agent: str, event: Event
) -> WorkflowState | None:
    """One event into an agent's state of a workflow, as the agent's own fold does it."""
    if isinstance(event, WorkflowAccepted | WorkflowSubmitted):
        return accept(workflow_id, agent, event)
    if state is None or state.terminal:
        return state
    return apply(state, event)
