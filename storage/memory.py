"""The in-memory event store: the same contract as SQLite, kept in dicts.

For tests and for runs with persistence off (the benchmark's baseline). A
group commit is atomic per batch: a batch is checked in full before any of it
is applied.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from storage.records import (
    AppendBatch,
    CatalogEntry,
    DeadLetter,
    DuplicateDeliveryError,
    EventQuery,
    EventRecord,
    MessageRecord,
    SnapshotRecord,
    StorageError,
    StreamPosition,
    WorkflowRow,
)
from storage.store import EventStore


class InMemoryEventStore(EventStore):
    def __init__(self) -> None:
        super().__init__()
        self._streams: dict[str, StreamPosition] = {}
        self._events: list[EventRecord] = []
        self._by_stream: dict[str, list[EventRecord]] = {}
        self._snapshots: dict[str, SnapshotRecord] = {}
        self._messages: dict[str, MessageRecord] = {}
        self._workflows: dict[str, WorkflowRow] = {}
        self._dead: dict[str, DeadLetter] = {}
        self._catalog: dict[str, CatalogEntry] = {}
        self._catalog_keys: dict[str, tuple[str, bool]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _load_position(self, stream_id: str) -> StreamPosition:
        return self._streams.get(
            stream_id, StreamPosition(stream_id=stream_id, epoch=0, last_seq=0)
        )

    async def _save_epoch(self, position: StreamPosition) -> None:
        self._streams[position.stream_id] = position

    async def _write(self, batches: Sequence[AppendBatch]) -> dict[int, StorageError]:
        failures: dict[int, StorageError] = {}
        now = time.time()
        for index, batch in enumerate(batches):
            done = [
                m
                for m in batch.mark_processed
                if m in self._messages and self._messages[m].processed_at is not None
            ]
            if done:
                failures[index] = DuplicateDeliveryError(batch.stream_id, tuple(sorted(done)))
                continue
            self._apply(batch, now)
        return failures

    def _apply(self, batch: AppendBatch, now: float) -> None:
        for m in batch.mark_processed:
            if m in self._messages:
                self._messages[m] = self._messages[m].model_copy(update={"processed_at": now})
        stamped = [e.model_copy(update={"recorded_at": now}) for e in batch.events]
        self._events.extend(stamped)
        self._by_stream.setdefault(batch.stream_id, []).extend(stamped)
        if stamped:
            self._streams[batch.stream_id] = StreamPosition(
                stream_id=batch.stream_id, epoch=batch.epoch, last_seq=stamped[-1].seq
            )
        for sent in batch.send:
            self._messages.setdefault(sent.message_id, sent.model_copy(update={"created_at": now}))
        for w in batch.workflows:
            self._workflows[w.workflow_id] = w.model_copy(update={"updated_at": now})
        for d in batch.dead_letters:
            self._dead.setdefault(d.message_id, d.model_copy(update={"recorded_at": now}))
        if batch.snapshot is not None:
            self._snapshots[batch.stream_id] = batch.snapshot.model_copy(update={"taken_at": now})

    async def read_stream(
        self, stream_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        events = self._by_stream.get(stream_id, [])
        # seqs are gapless from 1, so the list index is seq - 1
        selected = events[after_seq:]
        return selected if limit is None else selected[:limit]

    async def latest_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        return self._snapshots.get(stream_id)

    async def stream_ids(self) -> list[str]:
        return sorted(self._streams)

    async def query_events(self, query: EventQuery) -> list[tuple[int, EventRecord]]:
        matches = [
            (position, e)
            for position, e in enumerate(self._events, start=1)
            if position > query.after_rowid
            and (query.workflow_id is None or e.workflow_id == query.workflow_id)
            and (query.stream_id is None or e.stream_id == query.stream_id)
            and (query.type is None or e.type == query.type)
            and (query.since is None or e.recorded_at >= query.since)
            and (query.until is None or e.recorded_at < query.until)
            and (not query.workflow_prefix or e.workflow_id.startswith(query.workflow_prefix))
            and (query.stream_ids is None or e.stream_id in query.stream_ids)
        ]
        if query.newest_first:
            matches.reverse()
        return matches[: query.limit]

    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[MessageRecord]:
        pending = [
            m
            for m in self._messages.values()
            if m.recipient == recipient and m.processed_at is None
        ]
        return pending[:limit]

    async def unprocessed(self, message_ids: Sequence[str]) -> set[str]:
        return {
            m for m in message_ids if m in self._messages and self._messages[m].processed_at is None
        }

    async def workflows(
        self, run_id: str | None = None, status: str | None = None, limit: int = 10_000
    ) -> list[WorkflowRow]:
        rows = [
            w
            for w in self._workflows.values()
            if (run_id is None or w.run_id == run_id) and (status is None or w.status == status)
        ]
        return sorted(rows, key=lambda w: w.updated_at)[:limit]

    async def workflow(self, workflow_id: str) -> WorkflowRow | None:
        return self._workflows.get(workflow_id)

    async def workflow_counts(self, run_id: str | None = None) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for w in self._workflows.values():
            if run_id is None or w.run_id == run_id:
                key = (w.status, w.current_step)
                counts[key] = counts.get(key, 0) + 1
        return counts

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return list(self._dead.values())[:limit]

    async def catalog_put_many(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[CatalogEntry, bool]]:
        return [self._catalog_put(*item) for item in items]

    def _catalog_put(
        self, product_id: str, body: str, idempotency_key: str
    ) -> tuple[CatalogEntry, bool]:
        replay = self._catalog_keys.get(idempotency_key)
        if replay is not None:
            return self._catalog[replay[0]], replay[1]
        existing = self._catalog.get(product_id)
        entry = CatalogEntry(
            product_id=product_id,
            body=body,
            idempotency_key=idempotency_key,
            revision=1 if existing is None else existing.revision + 1,
            updated_at=time.time(),
        )
        self._catalog[product_id] = entry
        self._catalog_keys[idempotency_key] = (product_id, existing is None)
        return entry, existing is None

    async def catalog_get(self, product_id: str) -> CatalogEntry | None:
        return self._catalog.get(product_id)

    async def catalog_count(self) -> int:
        return len(self._catalog)
