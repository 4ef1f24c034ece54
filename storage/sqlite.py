"""The SQLite event store, in WAL mode, on a thread of its own.

One connection, one writer: the journal actor owns it. The connection lives
on one dedicated thread (the model aiosqlite uses), and every operation runs
there as one plain `sqlite3` function: a whole group commit, however many
batches and rows it holds, is a single hop to that thread and back, so the
event loop never waits on the disk and never pays a thread hop per statement.

A group commit is one transaction; each batch in it runs inside its own
SAVEPOINT so that a batch refused by the database (a message already
processed) rolls back alone. Rows go in with `executemany`. With
`synchronous=FULL` a commit is on disk when `commit` returns.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

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
from storage.schema import MIGRATIONS
from storage.store import EventStore

T = TypeVar("T")
Row = tuple[Any, ...]
"""A row as sqlite3 returns it: column values in SELECT order."""
_EVENT_COLS = "stream_id, seq, event_id, type, schema_version, workflow_id, payload, recorded_at"
_MSG_COLS = "message_id, recipient, sender, type, workflow_id, body, created_at, processed_at"
_WF_COLS = "workflow_id, run_id, product_id, status, current_step, agent_id, error, updated_at"
_IN_CHUNK = 500
"""Ids per `IN (...)` list: well under SQLite's limit on bound parameters."""


class SQLiteStoreError(StorageError):
    """The database could not be opened or written."""


def _event(r: Row) -> EventRecord:
    return EventRecord(
        stream_id=r[0], seq=r[1], event_id=r[2], type=r[3], schema_version=r[4],
        workflow_id=r[5], payload=r[6], recorded_at=r[7],
    )  # fmt: skip


def _message(r: Row) -> MessageRecord:
    return MessageRecord(
        message_id=r[0], recipient=r[1], sender=r[2], type=r[3], workflow_id=r[4], body=r[5],
        created_at=r[6], processed_at=r[7],
    )  # fmt: skip


def _workflow(r: Row) -> WorkflowRow:
    return WorkflowRow(
        workflow_id=r[0], run_id=r[1], product_id=r[2], status=r[3], current_step=r[4],
        agent_id=r[5], error=r[6], updated_at=r[7],
    )  # fmt: skip


def _marks(count: int) -> str:
    return ",".join("?" * count)


class SQLiteEventStore(EventStore):
    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        super().__init__()
        self.path = Path(path)
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on the connection's thread; sqlite3 errors become ours."""
        if self._thread is None:
            raise SQLiteStoreError(f"{self.path}: store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, partial(fn, *args))
        except sqlite3.Error as e:
            raise SQLiteStoreError(f"{self.path}: {fn.__name__.strip('_')}: {e}") from e

    @property
    def db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SQLiteStoreError(f"{self.path}: store is not open")
        return self._conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        try:
            await self._run(self._open)
        except SQLiteStoreError:
            await self.close()
            raise

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        row = conn.execute("PRAGMA user_version").fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.executescript(f"BEGIN IMMEDIATE; {script}; PRAGMA user_version={number}; COMMIT;")

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(thread, conn.close)
        thread.shutdown(wait=True)

    # --- streams -------------------------------------------------------------
    async def _load_position(self, stream_id: str) -> StreamPosition:
        sql = "SELECT epoch, last_seq FROM streams WHERE stream_id = ?"
        row = await self._run(self._fetchone, sql, (stream_id,))
        epoch, last_seq = (int(row[0]), int(row[1])) if row else (0, 0)
        return StreamPosition(stream_id=stream_id, epoch=epoch, last_seq=last_seq)

    async def _save_epoch(self, position: StreamPosition) -> None:
        await self._run(
            self._execute,
            "INSERT INTO streams (stream_id, epoch, last_seq) VALUES (?, ?, ?) "
            "ON CONFLICT (stream_id) DO UPDATE SET epoch = excluded.epoch",
            (position.stream_id, position.epoch, position.last_seq),
        )

    def _fetchone(self, sql: str, args: Sequence[object]) -> Row | None:
        row: Row | None = self.db.execute(sql, args).fetchone()
        return row

    def _fetchall(self, sql: str, args: Sequence[object]) -> list[Row]:
        return self.db.execute(sql, args).fetchall()

    def _execute(self, sql: str, args: Sequence[object]) -> None:
        self.db.execute(sql, args)

    async def _write(self, batches: Sequence[AppendBatch]) -> dict[int, StorageError]:
        return await self._run(self._write_group, batches)

    def _write_group(self, batches: Sequence[AppendBatch]) -> dict[int, StorageError]:
        failures: dict[int, StorageError] = {}
        now = time.time()
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            for index, batch in enumerate(batches):
                if not batch.mark_processed:  # nothing in it can be refused: no savepoint
                    self._write_batch(batch, now)
                    continue
                db.execute("SAVEPOINT batch")
                failure = self._mark_processed(batch, now)
                if failure is None:
                    self._write_batch(batch, now)
                else:
                    failures[index] = failure
                    db.execute("ROLLBACK TO batch")
                db.execute("RELEASE batch")
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return failures

    def _mark_processed(self, batch: AppendBatch, now: float) -> StorageError | None:
        ids = batch.mark_processed
        changed = 0
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            changed += self.db.execute(
                f"UPDATE messages SET processed_at = ? WHERE message_id IN ({_marks(len(chunk))}) "
                "AND processed_at IS NULL",
                (now, *chunk),
            ).rowcount
        if changed != len(set(ids)):
            # fewer rows changed: some ids were consumed before, or were never stored
            done = self._processed_among(ids)
            if done:
                return DuplicateDeliveryError(batch.stream_id, tuple(sorted(done)))
        return None

    def _write_batch(self, batch: AppendBatch, now: float) -> None:
        db = self.db
        if batch.events:
            db.executemany(
                f"INSERT INTO events ({_EVENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (e.stream_id, e.seq, e.event_id, e.type, e.schema_version, e.workflow_id,
                     e.payload, now)
                    for e in batch.events
                ],
            )  # fmt: skip
            db.execute(
                "INSERT INTO streams (stream_id, epoch, last_seq) VALUES (?, ?, ?) "
                "ON CONFLICT (stream_id) DO UPDATE SET last_seq = excluded.last_seq",
                (batch.stream_id, batch.epoch, batch.events[-1].seq),
            )
        if batch.send:
            db.executemany(
                f"INSERT OR IGNORE INTO messages ({_MSG_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                [
                    (m.message_id, m.recipient, m.sender, m.type, m.workflow_id, m.body, now)
                    for m in batch.send
                ],
            )
        if batch.workflows:
            db.executemany(
                f"INSERT OR REPLACE INTO workflows ({_WF_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (w.workflow_id, w.run_id, w.product_id, w.status, w.current_step, w.agent_id,
                     w.error, now)
                    for w in batch.workflows
                ],
            )  # fmt: skip
        if batch.dead_letters:
            db.executemany(
                "INSERT OR IGNORE INTO dead_letters (message_id, recipient, reason, body, "
                "recorded_at) VALUES (?, ?, ?, ?, ?)",
                [(d.message_id, d.recipient, d.reason, d.body, now) for d in batch.dead_letters],
            )
        if batch.snapshot is not None:
            s = batch.snapshot
            db.execute(
                "INSERT OR REPLACE INTO snapshots (stream_id, seq, schema_version, state, taken_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (s.stream_id, s.seq, s.schema_version, s.state, now),
            )

    def _processed_among(self, ids: Sequence[str]) -> set[str]:
        return self._messages_among(ids, processed=True)

    # --- reads -----------------------------------------------------------------
    async def read_stream(
        self, stream_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        rows = await self._run(
            self._fetchall,
            f"SELECT {_EVENT_COLS} FROM events WHERE stream_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (stream_id, after_seq, -1 if limit is None else limit),
        )
        return [_event(r) for r in rows]

    async def latest_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        row = await self._run(
            self._fetchone,
            "SELECT stream_id, seq, schema_version, state, taken_at FROM snapshots "
            "WHERE stream_id = ?",
            (stream_id,),
        )
        if row is None:
            return None
        return SnapshotRecord(
            stream_id=row[0], seq=row[1], schema_version=row[2], state=row[3], taken_at=row[4]
        )

    async def stream_ids(self) -> list[str]:
        sql = "SELECT stream_id FROM streams ORDER BY stream_id"
        rows = await self._run(self._fetchall, sql, ())
        return [str(r[0]) for r in rows]

    async def query_events(self, query: EventQuery) -> list[tuple[int, EventRecord]]:
        where: list[str] = ["position > ?"]
        args: list[object] = [query.after_rowid]
        for column, value in (
            ("workflow_id", query.workflow_id),
            ("stream_id", query.stream_id),
            ("type", query.type),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since is not None:
            where.append("recorded_at >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("recorded_at < ?")
            args.append(query.until)
        if query.workflow_prefix:
            # a range on the indexed column: the ids from the prefix up to its successor
            prefix = query.workflow_prefix
            where.append("workflow_id >= ? AND workflow_id < ?")
            args.extend((prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)))
        if query.stream_ids is not None:
            where.append(f"stream_id IN ({', '.join('?' * len(query.stream_ids)) or 'NULL'})")
            args.extend(query.stream_ids)
        order = "DESC" if query.newest_first else "ASC"
        rows = await self._run(
            self._fetchall,
            f"SELECT position, {_EVENT_COLS} FROM events WHERE {' AND '.join(where)} "
            f"ORDER BY position {order} LIMIT ?",
            (*args, query.limit),
        )
        return [(int(r[0]), _event(r[1:])) for r in rows]

    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[MessageRecord]:
        rows = await self._run(
            self._fetchall,
            f"SELECT {_MSG_COLS} FROM messages WHERE recipient = ? AND processed_at IS NULL "
            "ORDER BY created_at, message_id LIMIT ?",
            (recipient, limit),
        )
        return [_message(r) for r in rows]

    async def unprocessed(self, message_ids: Sequence[str]) -> set[str]:
        if not message_ids:
            return set()
        return await self._run(self._unprocessed, tuple(message_ids))

    def _unprocessed(self, ids: Sequence[str]) -> set[str]:
        return self._messages_among(ids, processed=False)

    def _messages_among(self, ids: Sequence[str], *, processed: bool) -> set[str]:
        """Those of `ids` stored as messages, processed or not as asked."""
        state = "IS NOT NULL" if processed else "IS NULL"
        found: set[str] = set()
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = tuple(ids[i : i + _IN_CHUNK])
            rows = self.db.execute(
                f"SELECT message_id FROM messages WHERE message_id IN ({_marks(len(chunk))}) "
                f"AND processed_at {state}",
                chunk,
            ).fetchall()
            found.update(str(r[0]) for r in rows)
        return found

    async def workflows(
        self, run_id: str | None = None, status: str | None = None, limit: int = 10_000
    ) -> list[WorkflowRow]:
        where, args = ["1 = 1"], []
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        rows = await self._run(
            self._fetchall,
            f"SELECT {_WF_COLS} FROM workflows WHERE {' AND '.join(where)} "
            "ORDER BY updated_at LIMIT ?",
            (*args, limit),
        )
        return [_workflow(r) for r in rows]

    async def workflow(self, workflow_id: str) -> WorkflowRow | None:
        row = await self._run(
            self._fetchone,
            f"SELECT {_WF_COLS} FROM workflows WHERE workflow_id = ?",
            (workflow_id,),
        )
        return _workflow(row) if row else None

    async def known_workflows(self, workflow_ids: Sequence[str]) -> set[str]:
        known: set[str] = set()
        ids = list(workflow_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT workflow_id FROM workflows WHERE workflow_id IN ({marks})"
            rows = await self._run(self._fetchall, sql, tuple(chunk))
            known.update(row[0] for row in rows)
        return known

    async def workflow_counts(self, run_id: str | None = None) -> dict[tuple[str, str], int]:
        sql = "SELECT status, current_step, COUNT(*) FROM workflows"
        args: tuple[str, ...] = ()
        if run_id is not None:
            sql, args = sql + " WHERE run_id = ?", (run_id,)
        rows = await self._run(self._fetchall, sql + " GROUP BY status, current_step", args)
        return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = await self._run(
            self._fetchall,
            "SELECT message_id, recipient, reason, body, recorded_at FROM dead_letters "
            "ORDER BY recorded_at LIMIT ?",
            (limit,),
        )
        return [
            DeadLetter(message_id=r[0], recipient=r[1], reason=r[2], body=r[3], recorded_at=r[4])
            for r in rows
        ]

    # --- catalog -----------------------------------------------------------------
    async def catalog_put_many(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[CatalogEntry, bool]]:
        return await self._run(self._catalog_put_many, tuple(items))

    def _catalog_put_many(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[CatalogEntry, bool]]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            results = [self._catalog_put_one(*item) for item in items]
            db.execute("COMMIT")
        except sqlite3.Error:
            db.execute("ROLLBACK")
            raise
        return results

    def _catalog_put_one(self, product_id: str, body: str, key: str) -> tuple[CatalogEntry, bool]:
        replay = self.db.execute(
            "SELECT created FROM catalog_keys WHERE idempotency_key = ?", (key,)
        ).fetchone()
        if replay is not None:
            entry = self._catalog_get(product_id)
            if entry is None:  # pragma: no cover - a key is only stored with its entry
                raise sqlite3.IntegrityError(f"catalog key {key!r} without its entry")
            return entry, bool(replay[0])
        existing = self._catalog_get(product_id)
        revision = 1 if existing is None else existing.revision + 1
        now = time.time()
        self.db.execute(
            "INSERT OR REPLACE INTO catalog (product_id, body, idempotency_key, revision, "
            "updated_at) VALUES (?, ?, ?, ?, ?)",
            (product_id, body, key, revision, now),
        )
        self.db.execute(
            "INSERT INTO catalog_keys (idempotency_key, product_id, revision, created) "
            "VALUES (?, ?, ?, ?)",
            (key, product_id, revision, int(existing is None)),
        )
        entry = CatalogEntry(
            product_id=product_id, body=body, idempotency_key=key, revision=revision, updated_at=now
        )
        return entry, existing is None

    async def catalog_get(self, product_id: str) -> CatalogEntry | None:
        return await self._run(self._catalog_get, product_id)

    def _catalog_get(self, product_id: str) -> CatalogEntry | None:
        r = self.db.execute(
            "SELECT product_id, body, idempotency_key, revision, updated_at FROM catalog "
            "WHERE product_id = ?",
            (product_id,),
        ).fetchone()
        if r is None:
            return None
        return CatalogEntry(
            product_id=r[0], body=r[1], idempotency_key=r[2], revision=r[3], updated_at=r[4]
        )

    async def catalog_count(self) -> int:
        row = await self._run(self._fetchone, "SELECT COUNT(*) FROM catalog", ())
        return int(row[0]) if row else 0
