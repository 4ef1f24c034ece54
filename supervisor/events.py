"""Supervision events: every decision the supervisor takes, in its own stream `supervisor`.

The stream is how a restarted supervisor knows its history (restart counts,
whether it escalated) and how a user reads what happened and why.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter

from actors.models import FrozenModel

SUPERVISOR_STREAM = "supervisor"


class ChildStarted(FrozenModel):
    kind: Literal["child_started"] = "child_started"
    role: str
    actor: str
    pid: int
    reason: str = "start"
    """`start`, `restart` (after a death) or `reattach` (a restarted supervisor found it alive)."""
    recovery_ms: float = 0.0
    """From the death being noticed to the child serving again, state restored."""
    events_replayed: int = 0
    snapshot_seq: int = 0


class ChildDied(FrozenModel):
    kind: Literal["child_died"] = "child_died"
    role: str
    actor: str
    cause: str
    abnormal: bool = True


class ChildFailed(FrozenModel):
    """An agent reported a failure it cannot handle itself; the supervisor restarts it."""

    kind: Literal["child_failed"] = "child_failed"
    role: str
    error: str


class ChildStartFailed(FrozenModel):
    """One attempt to start a role failed (its process died, timed out, or its recovery
    raised); the supervisor tries again, up to `START_ATTEMPTS` in a row, then escalates."""

    kind: Literal["child_start_failed"] = "child_start_failed"
    role: str
    actor: str
    attempt: int
    error: str


class Escalated(FrozenModel):
    kind: Literal["escalated"] = "escalated"
    reason: str


class MessageQuarantined(FrozenModel):
    kind: Literal["message_quarantined"] = "message_quarantined"
    role: str
    workflow_id: str
    message_id: str
    error: str
    attempts: int


class SupervisorRecovered(FrozenModel):
    kind: Literal["supervisor_recovered"] = "supervisor_recovered"
    reattached: tuple[str, ...]
    respawned: tuple[str, ...]


SupervisionEvent = Annotated[
    ChildStarted
    | ChildDied
    | ChildFailed
    | ChildStartFailed
    | Escalated
    | MessageQuarantined
    | SupervisorRecovered,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[SupervisionEvent] = TypeAdapter(
    SupervisionEvent, config=ConfigDict(cache_strings="keys")
)


def decode_supervision_event(payload: str) -> SupervisionEvent:
    return _ADAPTER.validate_json(payload)
