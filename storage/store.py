"""The storage interface every backend implements, and the append rules they share.

The contract (checked for every backend by `tests/contract/test_event_store.py`):

- `open_stream` hands the caller a new fencing epoch; from then on appends
  that carry an older epoch are refused with `FencedError`, so a zombie
  incarnation can never write beside its replacement.
- An append continues its stream gaplessly: its first event has seq
  `last_seq + 1`. Re-appending a batch already committed (same event ids at
  the same seqs) succeeds as a duplicate and writes nothing: callers may retry
  across a journal restart.
- `commit` takes several batches and commits them together (group commit);
  each batch succeeds or fails on its own, and a failed one leaves no trace.
- A batch marking a message processed that is already processed fails with
  `DuplicateDeliveryError`: a message is consumed exactly once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from storage.records import (
    AppendBatch,
    AppendResult,
    CatalogEntry,
    DeadLetter,
    EventQuery,
    EventRecord,
    FencedError,
    MessageRecord,
    SequenceConflictError,
    SnapshotRecord,
    StorageError,
    StreamPosition,
    WorkflowRow,
)

CommitOutcome = AppendResult | StorageError


class EventStore(ABC):
    """Event log, snapshots, durable mailbox, workflow read model and local catalog."""

    def __init__(self) -> None:
        self._positions: dict[str, StreamPosition] = {}

    # --- lifecycle -------------------------------------------------------
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # --- streams ---------------------------------------------------------
    async def open_stream(self, stream_id: str) -> StreamPosition:
        """Take the next epoch of `stream_id`; older epochs are fenced off from now on."""
        current = await self._position(stream_id)
        position = StreamPosition(
            stream_id=stream_id, epoch=current.epoch + 1, last_seq=current.last_seq
        )
        await self._save_epoch(position)
        self._positions[stream_id] = position
        return position

    async def commit(self, batches: Sequence[AppendBatch]) -> list[CommitOutcome]:
        """Commit several batches in one transaction; one outcome per batch, in order."""
        outcomes: list[CommitOutcome | None] = []
        to_write: list[tuple[int, AppendBatch]] = []
        planned: dict[str, int] = {}
        for batch in batches:
            checked = await self._check(batch, planned)
            if checked is None:
                to_write.append((len(outcomes), batch))
                if batch.events:
                    planned[batch.stream_id] = batch.events[-1].seq
            outcomes.append(checked)
        failures = await self._write(tuple(b for _, b in to_write)) if to_write else {}
        for position_in_write, (index, batch) in enumerate(to_write):
            failure = failures.get(position_in_write)
            if failure is not None:
                outcomes[index] = failure
                continue
            pos = await self._position(batch.stream_id)
            last = batch.events[-1].seq if batch.events else pos.last_seq
            self._positions[batch.stream_id] = pos.model_copy(update={"last_seq": last})
            outcomes[index] = AppendResult(stream_id=batch.stream_id, last_seq=last)
        return [o for o in outcomes if o is not None]

    async def _check(self, batch: AppendBatch, planned: dict[str, int]) -> CommitOutcome | None:
        """None when the batch may be written; else its outcome without writing."""
        pos = await self._position(batch.stream_id)
        if batch.epoch != pos.epoch:
            return FencedError(batch.stream_id, batch.epoch, pos.epoch)
        if not batch.events:
            return None
        last_seq = planned.get(batch.stream_id, pos.last_seq)
        first = batch.events[0].seq
        seqs = [e.seq for e in batch.events]
        if seqs != list(range(first, first + len(seqs))):
            return SequenceConflictError(batch.stream_id, first, seqs[-1])
        if first == last_seq + 1:
            return None
        if first <= last_seq and await self._already_committed(batch):
            return AppendResult(stream_id=batch.stream_id, last_seq=pos.last_seq, duplicate=True)
        return SequenceConflictError(batch.stream_id, last_seq + 1, first)

    async def _already_committed(self, batch: AppendBatch) -> bool:
        stored = await self.read_stream(
            batch.stream_id, after_seq=batch.events[0].seq - 1, limit=len(batch.events)
        )
        return [e.event_id for e in stored] == [e.event_id for e in batch.events]

    async def _position(self, stream_id: str) -> StreamPosition:
        pos = self._positions.get(stream_id)
        if pos is None:
            pos = await self._load_position(stream_id)
            self._positions[stream_id] = pos
        return pos

    @abstractmethod
    async def _load_position(self, stream_id: str) -> StreamPosition: ...

    @abstractmethod
    async def _save_epoch(self, position: StreamPosition) -> None: ...

    @abstractmethod
    async def _write(self, batches: Sequence[AppendBatch]) -> dict[int, StorageError]:
        """Write checked batches in one transaction; failures by index, each rolled back alone."""

    # --- reads -------------------------------------------------------------
    @abstractmethod
    async def read_stream(
        self, stream_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]: ...

    @abstractmethod
    async def latest_snapshot(self, stream_id: str) -> SnapshotRecord | None: ...

    @abstractmethod
    async def stream_ids(self) -> list[str]: ...

    @abstractmethod
    async def query_events(self, query: EventQuery) -> list[tuple[int, EventRecord]]:
        """Events matching `query` with their global position (commit order)."""

    @abstractmethod
    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[MessageRecord]:
        """Messages to `recipient` not yet processed, oldest first."""

    @abstractmethod
    async def unprocessed(self, message_ids: Sequence[str]) -> set[str]:
        """Which of `message_ids` are stored and not yet processed."""

    @abstractmethod
    async def workflows(
        self, run_id: str | None = None, status: str | None = None, limit: int = 10_000
    ) -> list[WorkflowRow]: ...

    @abstractmethod
    async def workflow(self, workflow_id: str) -> WorkflowRow | None: ...

    async def known_workflows(self, workflow_ids: Sequence[str]) -> set[str]:
        """Those of `workflow_ids` that exist (in flight or finished)."""
        return {w for w in workflow_ids if await self.workflow(w) is not None}

    @abstractmethod
    async def workflow_counts(self, run_id: str | None = None) -> dict[tuple[str, str], int]:
        """Number of workflows by (status, current_step)."""

    @abstractmethod
    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    # --- local marketplace catalog -------------------------------------------
    async def catalog_put(
        self, product_id: str, body: str, idempotency_key: str
    ) -> tuple[CatalogEntry, bool]:
        """Store a listing: (entry, created). A replayed key writes nothing, answers as before."""
        [result] = await self.catalog_put_many([(product_id, body, idempotency_key)])
        return result

    @abstractmethod
    async def catalog_put_many(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[CatalogEntry, bool]]:
        """`catalog_put` for many (product id, body, key) at once, in one transaction."""

    @abstractmethod
    async def catalog_get(self, product_id: str) -> CatalogEntry | None: ...

    @abstractmethod
    async def catalog_count(self) -> int: ...
