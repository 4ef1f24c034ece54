"""The SQLite event store, through aiosqlite, in WAL mode.

One connection, one writer: the journal actor owns it. A group commit is one
transaction; each batch in it runs inside its own SAVEPOINT so that a batch
refused by the database (a message already processed) rolls back alone. With
`synchronous=FULL` a commit is on disk when `commit` returns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

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

_EVENT_COLS = "stream_id, seq, event_id, type, schema_version, workflow_id, payload, recorded_at"
_MSG_COLS = "message_id, recipient, sender, type, workflow_id, body, created_at, processed_at"
_WF_COLS = "workflow_id, run_id, product_id, status, current_step, agent_id, error, updated_at"


class SQLiteStoreError(StorageError):
    """The database could not be opened or written."""


def _event(row: Sequence[object]) -> EventRecord:
    return EventRecord.model_validate(dict(zip(_EVENT_COLS.split(", "), row, strict=True)))


def _message(row: Sequence[object]) -> MessageRecord:
    return MessageRecord.model_validate(dict(zip(_MSG_COLS.split(", "), row, strict=True)))


def _workflow(row: Sequence[object]) -> WorkflowRow:
    return WorkflowRow.model_validate(dict(zip(_WF_COLS.split(", "), row, strict=True)))


class SQLiteEventStore(EventStore):
    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        super().__init__()
        self.path = Path(path)
        self._synchronous = synchronous
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise SQLiteStoreError(f"{self.path}: store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute(f"PRAGMA synchronous={self._synchronous}")
            await self._db.execute("PRAGMA busy_timeout=10000")
            await self._migrate()
        except aiosqlite.Error as e:
            raise SQLiteStoreError(f"{self.path}: cannot open database: {e}") from e

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self.db.executescript(
                f"BEGIN IMMEDIATE; {script}; PRAGMA user_version={number}; COMMIT;"
            )

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    # --- streams -------------------------------------------------------------
    async def _load_position(self, stream_id: str) -> StreamPosition:
        async with self.db.execute(
            "SELECT epoch, last_seq FROM streams WHERE stream_id = ?", (stream_id,)
        ) as cur:
            row = await cur.fetchone()
        epoch, last_seq = (int(row[0]), int(row[1])) if row else (0, 0)
        return StreamPosition(stream_id=stream_id, epoch=epoch, last_seq=last_seq)

    async def _save_epoch(self, position: StreamPosition) -> None:
        await self.db.execute(
            "INSERT INTO streams (stream_id, epoch, last_seq) VALUES (?, ?, ?) "
            "ON CONFLICT (stream_id) DO UPDATE SET epoch = excluded.epoch",
            (position.stream_id, position.epoch, position.last_seq),
        )

    async def _write(self, batches: Sequence[AppendBatch]) -> dict[int, StorageError]:
        failures: dict[int, StorageError] = {}
        now = time.time()
        db = self.db
        try:
            await db.execute("BEGIN IMMEDIATE")
            for index, batch in enumerate(batches):
                await db.execute("SAVEPOINT batch")
                failure = await self._write_batch(batch, now)
                if failure is not None:
                    failures[index] = failure
                    await db.execute("ROLLBACK TO batch")
                await db.execute("RELEASE batch")
            await db.execute("COMMIT")
        except aiosqlite.Error as e:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise SQLiteStoreError(f"{self.path}: commit failed: {e}") from e
        return failures

    async def _write_batch(self, batch: AppendBatch, now: float) -> StorageError | None:
        db = self.db
        if batch.mark_processed:
            ids = batch.mark_processed
            marks = "?," * (len(ids) - 1) + "?"
            cur = await db.execute(
                f"UPDATE messages SET processed_at = ? WHERE message_id IN ({marks}) "
                "AND processed_at IS NULL",
                (now, *ids),
            )
            if cur.rowcount != len(set(ids)):
                # fewer rows changed: some ids were consumed before, or were never stored
                done = await self._processed_among(ids)
                if done:
                    return DuplicateDeliveryError(batch.stream_id, tuple(sorted(done)))
        if batch.events:
            await db.executemany(
                f"INSERT INTO events ({_EVENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.stream_id,
                        e.seq,
                        e.event_id,
                        e.type,
                        e.schema_version,
                        e.workflow_id,
                        e.payload,
                        now,
                    )
                    for e in batch.events
                ],
            )
            await db.execute(
                "INSERT INTO streams (stream_id, epoch, last_seq) VALUES (?, ?, ?) "
                "ON CONFLICT (stream_id) DO UPDATE SET last_seq = excluded.last_seq",
                (batch.stream_id, batch.epoch, batch.events[-1].seq),
            )
        if batch.send:
            await db.executemany(
                f"INSERT OR IGNORE INTO messages ({_MSG_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                [
                    (m.message_id, m.recipient, m.sender, m.type, m.workflow_id, m.body, now)
                    for m in batch.send
                ],
            )
        await self._write_side_records(batch, now)
        return None

    async def _write_side_records(self, batch: AppendBatch, now: float) -> None:
        db = self.db
        if batch.workflows:
            await db.executemany(
                f"INSERT OR REPLACE INTO workflows ({_WF_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        w.workflow_id,
                        w.run_id,
                        w.product_id,
                        w.status,
                        w.current_step,
                        w.agent_id,
                        w.error,
                        now,
                    )
                    for w in batch.workflows
                ],
            )
        if batch.dead_letters:
            await db.executemany(
                "INSERT OR IGNORE INTO dead_letters (message_id, recipient, reason, body, "
                "recorded_at) VALUES (?, ?, ?, ?, ?)",
                [(d.message_id, d.recipient, d.reason, d.body, now) for d in batch.dead_letters],
            )
        if batch.snapshot is not None:
            s = batch.snapshot
            await db.execute(
                "INSERT OR REPLACE INTO snapshots (stream_id, seq, schema_version, state, taken_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (s.stream_id, s.seq, s.schema_version, s.state, now),
            )

    async def _processed_among(self, ids: Sequence[str]) -> set[str]:
        marks = "?," * (len(ids) - 1) + "?"
        async with self.db.execute(
            f"SELECT message_id FROM messages WHERE message_id IN ({marks}) "
            "AND processed_at IS NOT NULL",
            tuple(ids),
        ) as cur:
            return {str(r[0]) for r in await cur.fetchall()}

    # --- reads -----------------------------------------------------------------
    async def read_stream(
        self, stream_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        async with self.db.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE stream_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (stream_id, after_seq, -1 if limit is None else limit),
        ) as cur:
            return [_event(r) for r in await cur.fetchall()]

    async def latest_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        async with self.db.execute(
            "SELECT stream_id, seq, schema_version, state, taken_at FROM snapshots "
            "WHERE stream_id = ?",
            (stream_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        keys = ("stream_id", "seq", "schema_version", "state", "taken_at")
        return SnapshotRecord.model_validate(dict(zip(keys, row, strict=True)))

    async def stream_ids(self) -> list[str]:
        async with self.db.execute("SELECT stream_id FROM streams ORDER BY stream_id") as cur:
            return [str(r[0]) for r in await cur.fetchall()]

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
        async with self.db.execute(
            f"SELECT position, {_EVENT_COLS} FROM events WHERE {' AND '.join(where)} "
            f"ORDER BY position {order} LIMIT ?",
            (*args, query.limit),
        ) as cur:
            return [(int(r[0]), _event(r[1:])) for r in await cur.fetchall()]

    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[MessageRecord]:
        async with self.db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE recipient = ? AND processed_at IS NULL "
            "ORDER BY created_at, message_id LIMIT ?",
            (recipient, limit),
        ) as cur:
            return [_message(r) for r in await cur.fetchall()]

    async def unprocessed(self, message_ids: Sequence[str]) -> set[str]:
        if not message_ids:
            return set()
        marks = "?," * (len(message_ids) - 1) + "?"
        async with self.db.execute(
            f"SELECT message_id FROM messages WHERE message_id IN ({marks}) "
            "AND processed_at IS NULL",
            tuple(message_ids),
        ) as cur:
            return {str(r[0]) for r in await cur.fetchall()}

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
        async with self.db.execute(
            f"SELECT {_WF_COLS} FROM workflows WHERE {' AND '.join(where)} "
            "ORDER BY updated_at LIMIT ?",
            (*args, limit),
        ) as cur:
            return [_workflow(r) for r in await cur.fetchall()]

    async def workflow(self, workflow_id: str) -> WorkflowRow | None:
        async with self.db.execute(
            f"SELECT {_WF_COLS} FROM workflows WHERE workflow_id = ?", (workflow_id,)
        ) as cur:
            row = await cur.fetchone()
        return _workflow(row) if row else None

    async def known_workflows(self, workflow_ids: Sequence[str]) -> set[str]:
        known: set[str] = set()
        ids = list(workflow_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT workflow_id FROM workflows WHERE workflow_id IN ({marks})"
            async with self.db.execute(sql, chunk) as cur:
                known.update(row[0] for row in await cur.fetchall())
        return known

    async def workflow_counts(self, run_id: str | None = None) -> dict[tuple[str, str], int]:
        sql = "SELECT status, current_step, COUNT(*) FROM workflows"
        args: tuple[str, ...] = ()
        if run_id is not None:
            sql, args = sql + " WHERE run_id = ?", (run_id,)
        async with self.db.execute(sql + " GROUP BY status, current_step", args) as cur:
            return {(str(r[0]), str(r[1])): int(r[2]) for r in await cur.fetchall()}

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        async with self.db.execute(
            "SELECT message_id, recipient, reason, body, recorded_at FROM dead_letters "
            "ORDER BY recorded_at LIMIT ?",
            (limit,),
        ) as cur:
            keys = ("message_id", "recipient", "reason", "body", "recorded_at")
            return [
                DeadLetter.model_validate(dict(zip(keys, r, strict=True)))
                for r in await cur.fetchall()
            ]

    # --- catalog -----------------------------------------------------------------
    async def catalog_put_many(
        self, items: Sequence[tuple[str, str, str]]
    ) -> list[tuple[CatalogEntry, bool]]:
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            created = [await self._catalog_put_one(*item) for item in items]
            await db.execute("COMMIT")
        except aiosqlite.Error as e:
            await db.execute("ROLLBACK")
            raise SQLiteStoreError(f"{self.path}: catalog write failed: {e}") from e
        results = []
        for (product_id, _, _), was_created in zip(items, created, strict=True):
            entry = await self.catalog_get(product_id)
            if entry is None:  # pragma: no cover - written just above
                raise SQLiteStoreError(f"catalog entry {product_id!r} vanished")
            results.append((entry, was_created))
        return results

    async def _catalog_put_one(self, product_id: str, body: str, key: str) -> bool:
        async with self.db.execute(
            "SELECT created FROM catalog_keys WHERE idempotency_key = ?", (key,)
        ) as cur:
            replay = await cur.fetchone()
        if replay is not None:
            return bool(replay[0])
        return await self._catalog_write(product_id, body, key)

    async def _catalog_write(self, product_id: str, body: str, key: str) -> bool:
        existing = await self.catalog_get(product_id)
        revision = 1 if existing is None else existing.revision + 1
        await self.db.execute(
            "INSERT OR REPLACE INTO catalog (product_id, body, idempotency_key, revision, "
            "updated_at) VALUES (?, ?, ?, ?, ?)",
            (product_id, body, key, revision, time.time()),
        )
        await self.db.execute(
            "INSERT INTO catalog_keys (idempotency_key, product_id, revision, created) "
            "VALUES (?, ?, ?, ?)",
            (key, product_id, revision, int(existing is None)),
        )
        return existing is None

    async def catalog_get(self, product_id: str) -> CatalogEntry | None:
        async with self.db.execute(
            "SELECT product_id, body, idempotency_key, revision, updated_at FROM catalog "
            "WHERE product_id = ?",
            (product_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        keys = ("product_id", "body", "idempotency_key", "revision", "updated_at")
        return CatalogEntry.model_validate(dict(zip(keys, row, strict=True)))

    async def catalog_count(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM catalog") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
