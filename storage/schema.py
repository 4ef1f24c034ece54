"""SQLite schema and its migrations.

The database's `PRAGMA user_version` says which migrations ran; `migrate`
applies the missing ones in order, each in its own transaction, so opening an
older database upgrades it and opening a current one changes nothing.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: event log, snapshots, durable mailbox, workflows, dead letters, catalog
    """
    CREATE TABLE streams (
        stream_id TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL,
        last_seq INTEGER NOT NULL
    );
    CREATE TABLE events (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        workflow_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        UNIQUE (stream_id, seq)
    );
    CREATE INDEX events_by_workflow ON events (workflow_id);
    CREATE TABLE snapshots (
        stream_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        schema_version INTEGER NOT NULL,
        state TEXT NOT NULL,
        taken_at REAL NOT NULL
    );
    CREATE TABLE messages (
        message_id TEXT PRIMARY KEY,
        recipient TEXT NOT NULL,
        sender TEXT NOT NULL,
        type TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at REAL NOT NULL,
        processed_at REAL
    );
    CREATE INDEX messages_pending ON messages (recipient, created_at)
        WHERE processed_at IS NULL;
    CREATE TABLE workflows (
        workflow_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        status TEXT NOT NULL,
        current_step TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        error TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX workflows_by_run ON workflows (run_id, status);
    CREATE TABLE dead_letters (
        message_id TEXT PRIMARY KEY,
        recipient TEXT NOT NULL,
        reason TEXT NOT NULL,
        body TEXT NOT NULL,
        recorded_at REAL NOT NULL
    );
    CREATE TABLE catalog (
        product_id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        revision INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE catalog_keys (
        idempotency_key TEXT PRIMARY KEY,
        product_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        created INTEGER NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
