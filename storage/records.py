"""The records the storage layer keeps, and its errors.

These are the only types that cross the storage boundary: every backend reads
and writes them, and nothing above storage sees a sqlite3 type. Payloads are
JSON text: storage does not know the agents' event models, it keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from operator import attrgetter
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventRecord(Record):
    """One event in an agent's stream. `(stream_id, seq)` is unique and gapless."""

    stream_id: str
    seq: int
    event_id: str
    type: str
    schema_version: int = 1
    workflow_id: str = ""
    payload: str
    """The event as JSON text."""
    recorded_at: float = 0.0
    """Set by the store when committed (seconds since the epoch)."""


class MessageRecord(Record):
    """One message in the durable mailbox, stored as the sender committed it."""

    message_id: str
    recipient: str
    sender: str
    type: str
    workflow_id: str = ""
    body: str
    """The whole envelope as JSON text."""
    created_at: float = 0.0
    processed_at: float | None = None


class SnapshotRecord(Record):
    """An agent's state as of `seq` (every event up to and including it)."""

    stream_id: str
    seq: int
    schema_version: int = 1
    state: str
    """The state as JSON text."""
    taken_at: float = 0.0


class WorkflowRow(Record):
    """The read model of one workflow: where it is and how it ended."""

    workflow_id: str
    run_id: str = ""
    product_id: str = ""
    status: str
    current_step: str
    agent_id: str = ""
    error: str = ""
    updated_at: float = 0.0


class DeadLetter(Record):
    """A message no agent could process, kept with the reason."""

    message_id: str
    recipient: str
    reason: str
    body: str
    recorded_at: float = 0.0


class CatalogEntry(Record):
    """A listing in the local marketplace's catalog."""

    product_id: str
    body: str
    """The listing as JSON text."""
    idempotency_key: str
    revision: int
    updated_at: float = 0.0


class StreamPosition(Record):
    """What an agent incarnation gets when it opens its stream."""

    stream_id: str
    epoch: int
    last_seq: int


class StreamTail(Record):
    """A stream beyond a sequence number: a newer snapshot, if any, then events (up to a limit)."""

    snapshot: SnapshotRecord | None
    """The latest snapshot, if it covers more than the reader already holds."""
    snapshot_seq: int
    """The latest snapshot's sequence number (0: none), given or not."""
    events: tuple[EventRecord, ...]
    """The events after the snapshot given, else after the reader's sequence number."""
    complete: bool
    """False: more events follow the last one given (read them with `read_stream`)."""


class StreamRecovery(StreamTail):
    """What an incarnation reads to start, in one call: its fencing epoch, the stream
    beyond what it holds, and the messages waiting for it."""

    position: StreamPosition
    pending: tuple[MessageRecord, ...]


class AppendBatch(Record):
    """Everything one agent commits at once: all of it lands, or none of it.

    `events` must continue the stream gaplessly from its last sequence number.
    Messages in `send` are stored for their recipients; those in
    `mark_processed` are the sender's inbox messages this commit consumed.
    Appending the same batch twice (a retry across a journal restart) is a
    no-op that reports success: writes are idempotent by (stream, seq).
    """

    stream_id: str
    epoch: int
    events: tuple[EventRecord, ...] = ()
    send: tuple[MessageRecord, ...] = ()
    mark_processed: tuple[str, ...] = ()
    workflows: tuple[WorkflowRow, ...] = ()
    dead_letters: tuple[DeadLetter, ...] = ()
    snapshot: SnapshotRecord | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as rows of plain values: how Ray ships a batch to the journal.

        A batch holds hundreds of records, and pickling a pydantic model costs
        several times a tuple of its values; the rows are validated again into
        records on the other side.
        """
        return (
            _batch_from_rows,
            (
                self.stream_id, self.epoch, _rows(self.events), _rows(self.send),
                self.mark_processed, _rows(self.workflows), _rows(self.dead_letters),
                self.snapshot,
            ),
        )  # fmt: skip


def _rows(records: Sequence[Record]) -> tuple[tuple[Any, ...], ...]:
    if not records:
        return ()
    values = attrgetter(*type(records[0]).model_fields)
    return tuple(values(r) for r in records)


def _records(cls: type[R], rows: Iterable[Sequence[Any]]) -> tuple[R, ...]:
    """Records validated from rows of their fields' values, in one call into pydantic-core
    (a third cheaper than one `model_validate` per row)."""
    names = tuple(cls.model_fields)
    return _adapter(cls).validate_python([dict(zip(names, row, strict=True)) for row in rows])


@cache
def _adapter(cls: type[R]) -> TypeAdapter[tuple[R, ...]]:
    return TypeAdapter(tuple[cls, ...])  # type: ignore[valid-type]


def _batch_from_rows(
    stream_id: str,
    epoch: int,
    events: Iterable[Sequence[Any]],
    send: Iterable[Sequence[Any]],
    mark_processed: tuple[str, ...],
    workflows: Iterable[Sequence[Any]],
    dead_letters: Iterable[Sequence[Any]],
    snapshot: SnapshotRecord | None,
) -> AppendBatch:
    return AppendBatch(
        stream_id=stream_id,
        epoch=epoch,
        events=_records(EventRecord, events),
        send=_records(MessageRecord, send),
        mark_processed=mark_processed,
        workflows=_records(WorkflowRow, workflows),
        dead_letters=_records(DeadLetter, dead_letters),
        snapshot=snapshot,
    )


class AppendResult(Record):
    stream_id: str
    last_seq: int
    duplicate: bool = False
    """True when the batch had been committed before (an idempotent retry)."""


class EventQuery(Record):
    """Which events to read: every filter given must match; times are `recorded_at`."""

    workflow_id: str | None = None
    workflow_prefix: str | None = None
    """Workflow ids starting with this, e.g. `"{run_id}:"` for one run's events."""
    stream_id: str | None = None
    stream_ids: tuple[str, ...] | None = None
    """Any of these streams (an empty tuple matches none)."""
    type: str | None = None
    since: float | None = None
    until: float | None = None
    """Recorded before this time (exclusive)."""
    after_rowid: int = 0
    limit: int = Field(default=100, ge=1)
    newest_first: bool = False


class StorageError(Exception):
    """Base of the storage layer's own errors."""


class FencedError(StorageError):
    """An append came from an older incarnation of the stream's writer (a zombie)."""

    def __init__(self, stream_id: str, epoch: int, current: int) -> None:
        super().__init__(
            f"stream {stream_id!r}: append from epoch {epoch} refused, "
            f"epoch {current} owns the stream"
        )
        self.stream_id, self.epoch, self.current = stream_id, epoch, current


class SequenceConflictError(StorageError):
    """An append does not continue its stream (a gap, or a different event at that seq)."""

    def __init__(self, stream_id: str, expected: int, got: int) -> None:
        super().__init__(f"stream {stream_id!r}: expected seq {expected}, got {got}")
        self.stream_id, self.expected, self.got = stream_id, expected, got


class DuplicateDeliveryError(StorageError):
    """A batch marks as processed a message that an earlier commit already consumed."""

    def __init__(self, stream_id: str, message_ids: tuple[str, ...]) -> None:
        super().__init__(
            f"stream {stream_id!r}: messages already processed: {', '.join(message_ids)}"
        )
        self.stream_id, self.message_ids = stream_id, message_ids


class AppendRefusal(Record):
    """Why the journal refused a batch: the value form of a StorageError, safe across Ray."""

    stream_id: str
    reason: str
    """"fenced", "sequence" or "duplicate_delivery"."""
    message: str
    message_ids: tuple[str, ...] = ()

    @classmethod
    def from_error(cls, stream_id: str, error: StorageError) -> AppendRefusal:
        if isinstance(error, FencedError):
            reason = "fenced"
        elif isinstance(error, DuplicateDeliveryError):
            reason = "duplicate_delivery"
        else:
            reason = "sequence"
        ids = error.message_ids if isinstance(error, DuplicateDeliveryError) else ()
        return cls(stream_id=stream_id, reason=reason, message=str(error), message_ids=ids)
