"""The journal: the one writer of the database, committing agents' batches in groups.

Agents on any node call `append` with a whole batch (events, messages sent,
messages consumed, read-model rows, a snapshot). Calls that arrive while a
commit is running wait and are committed together in the next transaction, so
the cost of a commit (an fsync) is shared by everyone who was waiting. Each
caller gets its own outcome: an `AppendResult`, or an `AppendRefusal` saying
why its batch was refused (fenced, out of sequence, message already consumed).

Recovery contract: the journal holds no state of its own beyond the database.
A restarted journal reopens the file; agents retry their unanswered appends,
which are idempotent by (stream, seq).

This class is plain Python; `storage.journal_actor` makes it a Ray actor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from storage.records import (
    AppendBatch,
    AppendRefusal,
    AppendResult,
    CatalogEntry,
    DeadLetter,
    EventQuery,
    EventRecord,
    MessageRecord,
    SnapshotRecord,
    StorageError,
    StreamPosition,
    StreamRecovery,
    StreamTail,
    WorkflowRow,
)
from storage.store import EventStore

T = TypeVar("T")
log = logging.getLogger(__name__)
AppendOutcome = AppendResult | AppendRefusal


class JournalNotStartedError(RuntimeError):
    """A call reached a journal that has not started (a standby): ask again shortly."""


class StreamReader(Protocol):
    async def open_stream(self, stream_id: str) -> StreamPosition: ...

    async def latest_snapshot(self, stream_id: str) -> SnapshotRecord | None: ...

    async def read_stream(
        self, stream_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]: ...

    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[MessageRecord]: ...


async def read_tail(
    reader: StreamReader, stream_id: str, after_seq: int, max_events: int
) -> StreamTail:
    """The stream beyond `after_seq`: from its latest snapshot if that covers more."""
    snapshot = await reader.latest_snapshot(stream_id)
    latest = snapshot.seq if snapshot is not None else 0
    if snapshot is not None and snapshot.seq <= after_seq:
        snapshot = None
    start = snapshot.seq if snapshot is not None else after_seq
    events = await reader.read_stream(stream_id, start, max_events)
    return StreamTail(
        snapshot=snapshot,
        snapshot_seq=latest,
        events=tuple(events),
        complete=len(events) < max_events,
    )


async def read_recovery(
    reader: StreamReader,
    stream_id: str,
    recipient: str,
    after_seq: int,
    max_events: int,
    max_messages: int,
) -> StreamRecovery:
    """Open `stream_id` for a new incarnation that holds it up to `after_seq`; the rest
    of the stream and the messages waiting for `recipient`."""
    position = await reader.open_stream(stream_id)
    tail = await read_tail(reader, stream_id, after_seq, max_events)
    pending = await reader.pending_messages(recipient, max_messages)
    return StreamRecovery(position=position, pending=tuple(pending), **dict(tail))


class Journal:
    def __init__(self, store: EventStore, *, max_group: int = 256) -> None:
        self._store = store
        self._max_group = max_group
        self._lock = asyncio.Lock()
        self._queue: list[tuple[AppendBatch, asyncio.Future[AppendOutcome]]] = []
        self._catalog_queue: list[
            tuple[tuple[str, str, str], asyncio.Future[tuple[CatalogEntry, bool]]]
        ] = []
        self._wake = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self.commits = 0
        self.batches = 0
        self.events = 0

    async def start(self) -> None:
        await self._store.open()
        self._committer = asyncio.create_task(self._commit_loop())

    async def stop(self) -> None:
        if self._committer is not None:
            self._committer.cancel()
        async with self._lock:
            await self._store.close()

    def _check_started(self) -> None:
        if self._committer is None:
            raise JournalNotStartedError("this journal has not started (a standby?)")

    async def _locked(self, call: Callable[[], Awaitable[T]]) -> T:
        self._check_started()
        async with self._lock:
            return await call()

    # --- writes ------------------------------------------------------------------
    async def open_stream(self, stream_id: str) -> StreamPosition:
        return await self._locked(lambda: self._store.open_stream(stream_id))

    async def recover(
        self, stream_id: str, recipient: str, after_seq: int, max_events: int, max_messages: int
    ) -> StreamRecovery:
        """Open the stream for a new incarnation and read what it needs to start.

        One call instead of four: a restarted agent's time to serve is mostly
        round trips, so they are made here, next to the database.
        """
        return await self._locked(
            lambda: read_recovery(
                self._store, stream_id, recipient, after_seq, max_events, max_messages
            )
        )

    async def read_tail(self, stream_id: str, after_seq: int, max_events: int) -> StreamTail:
        """The stream beyond `after_seq` (a warm standby following the agent it may replace)."""
        return await self._locked(lambda: read_tail(self._store, stream_id, after_seq, max_events))

    async def append(self, batch: AppendBatch) -> AppendOutcome:
        self._check_started()
        future: asyncio.Future[AppendOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append((batch, future))
        self._wake.set()
        return await future

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue or self._catalog_queue:
                try:
                    if self._catalog_queue:
                        await self._commit_catalog()
                    if self._queue:
                        group, self._queue = (
                            self._queue[: self._max_group],
                            self._queue[self._max_group :],
                        )
                        await self._commit_group(group)
                except Exception:  # the loop must outlive any one commit
                    log.exception("journal: commit failed; callers were told")

    async def _commit_group(
        self, group: list[tuple[AppendBatch, asyncio.Future[AppendOutcome]]]
    ) -> None:
        try:
            outcomes = await self._locked(lambda: self._store.commit([b for b, _ in group]))
        except Exception as e:  # noqa: BLE001 - every caller gets the error, the loop goes on
            for _, future in group:
                if not future.done():
                    future.set_exception(e)
            return
        self.commits += 1
        self.batches += len(group)
        for (batch, future), outcome in zip(group, outcomes, strict=True):
            self.events += len(batch.events)
            if future.done():
                continue
            if isinstance(outcome, StorageError):
                future.set_result(AppendRefusal.from_error(batch.stream_id, outcome))
            else:
                future.set_result(outcome)

    async def catalog_put(
        self, product_id: str, body: str, idempotency_key: str
    ) -> tuple[CatalogEntry, bool]:
        """Local marketplace write, group-committed with other callers' writes."""
        self._check_started()
        future: asyncio.Future[tuple[CatalogEntry, bool]] = (
            asyncio.get_running_loop().create_future()
        )
        self._catalog_queue.append(((product_id, body, idempotency_key), future))
        self._wake.set()
        return await future

    async def catalog_put_many(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[CatalogEntry, bool]]:
        """`catalog_put` for many (product id, body, key): one call from a batching client."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[tuple[CatalogEntry, bool]]] = []
        for item in items:
            future: asyncio.Future[tuple[CatalogEntry, bool]] = loop.create_future()
            self._catalog_queue.append((item, future))
            futures.append(future)
        self._wake.set()
        return list(await asyncio.gather(*futures))

    async def _commit_catalog(self) -> None:
        group, self._catalog_queue = self._catalog_queue, []
        try:
            store = self._store
            results = await self._locked(lambda: store.catalog_put_many([i for i, _ in group]))
        except Exception as e:  # noqa: BLE001 - every caller gets the error, the loop goes on
            for _, future in group:
                if not future.done():
                    future.set_exception(e)
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    # --- reads ---------------------------------------------------------------------
    async def read_stream(
        self, stream_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        return await self._locked(lambda: self._store.read_stream(stream_id, after_seq, limit))

    async def latest_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        return await self._locked(lambda: self._store.latest_snapshot(stream_id))

    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[MessageRecord]:
        return await self._locked(lambda: self._store.pending_messages(recipient, limit))

    async def unprocessed(self, message_ids: Sequence[str]) -> set[str]:
        return await self._locked(lambda: self._store.unprocessed(message_ids))

    async def query_events(self, query: EventQuery) -> list[tuple[int, EventRecord]]:
        return await self._locked(lambda: self._store.query_events(query))

    async def workflows(
        self, run_id: str | None = None, status: str | None = None, limit: int = 10_000
    ) -> list[WorkflowRow]:
        return await self._locked(lambda: self._store.workflows(run_id, status, limit))

    async def workflow(self, workflow_id: str) -> WorkflowRow | None:
        return await self._locked(lambda: self._store.workflow(workflow_id))

    async def known_workflows(self, workflow_ids: Sequence[str]) -> set[str]:
        return await self._locked(lambda: self._store.known_workflows(workflow_ids))

    async def workflow_counts(self, run_id: str | None = None) -> dict[tuple[str, str], int]:
        return await self._locked(lambda: self._store.workflow_counts(run_id))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await self._locked(lambda: self._store.dead_letters(limit))

    async def catalog_get(self, product_id: str) -> CatalogEntry | None:
        return await self._locked(lambda: self._store.catalog_get(product_id))

    async def catalog_count(self) -> int:
        return await self._locked(self._store.catalog_count)

    async def stream_ids(self) -> list[str]:
        return await self._locked(self._store.stream_ids)

    def stats(self) -> dict[str, int]:
        return {"commits": self.commits, "batches": self.batches, "events": self.events}


class FullReplayView:
    """A journal as an agent sees it, minus its snapshots: recovery folds the whole stream.

    For checking a state rebuilt from snapshot + events against a full replay, and
    for measuring what snapshots save. Writes go to the journal unchanged (snapshots
    included); only reads leave the snapshots out.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def latest_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        return None

    async def open_stream(self, stream_id: str) -> StreamPosition:
        return await self.journal.open_stream(stream_id)

    async def recover(
        self, stream_id: str, recipient: str, after_seq: int, max_events: int, max_messages: int
    ) -> StreamRecovery:
        return await read_recovery(self, stream_id, recipient, after_seq, max_events, max_messages)

    async def read_tail(self, stream_id: str, after_seq: int, max_events: int) -> StreamTail:
        return await read_tail(self, stream_id, after_seq, max_events)

    async def append(self, batch: AppendBatch) -> AppendOutcome:
        return await self.journal.append(batch)

    async def read_stream(
        self, stream_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        return await self.journal.read_stream(stream_id, after_seq, limit)

    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[MessageRecord]:
        return await self.journal.pending_messages(recipient, limit)

    async def unprocessed(self, message_ids: Sequence[str]) -> set[str]:
        return await self.journal.unprocessed(message_ids)

    async def known_workflows(self, workflow_ids: Sequence[str]) -> set[str]:
        return await self.journal.known_workflows(workflow_ids)
