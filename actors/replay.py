"""Rebuild an agent's state from its log, outside any running agent.

Recovery uses the latest snapshot plus the events after it; a checker wants
to know that this gives the same state as folding the whole stream from the
first event. Both go through the agent's own fold, so what is compared is
what a recovering agent would hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from actors.durable import AgentConfig, AgentSnapshot, DurableAgent
from actors.events import decode_event
from actors.protocol import Envelope
from storage.records import EventRecord, SnapshotRecord


class _Fold(DurableAgent):
    """A durable agent that only folds: no journal, no transport, no steps."""

    async def on_message(self, envelope: Envelope) -> None:  # pragma: no cover
        raise NotImplementedError

    async def advance(self, workflow_id: str) -> None:  # pragma: no cover
        raise NotImplementedError


class _Nothing:
    def __getattr__(self, name: str) -> Any:  # pragma: no cover - never called by the fold
        raise RuntimeError(f"a replay has no {name}")


def fold_stream(
    stream_id: str, records: Iterable[EventRecord], snapshot: SnapshotRecord | None = None
) -> AgentSnapshot:
    """The agent state after `snapshot` (if any) and then `records`, in order."""
    agent = _Fold(AgentConfig(name=stream_id, role="replay"), _Nothing(), _Nothing())
    if snapshot is not None:
        agent._restore(AgentSnapshot.model_validate_json(snapshot.state))
    for record in records:
        agent._fold(
            record.workflow_id, decode_event(record.type, record.schema_version, record.payload)
        )
    return AgentSnapshot.model_validate_json(agent.snapshot_json())


def same_state(a: AgentSnapshot, b: AgentSnapshot) -> bool:
    """Equal as states: workflows compared by id, whatever order they were folded in."""
    return {w.task_id: w for w in a.workflows} == {w.task_id: w for w in b.workflows} and (
        a.processed,
        a.completed,
        a.failed,
    ) == (b.processed, b.completed, b.failed)


def events_after(records: Sequence[EventRecord], seq: int) -> list[EventRecord]:
    return [r for r in records if r.seq > seq]
