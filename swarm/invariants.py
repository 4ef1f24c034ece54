"""What must hold after any run, however many processes were killed on the way.

Read from the database alone (plus, optionally, what external servers
counted), so a user can check a finished run on their own cluster:

- every workflow is terminal (`completed` or `failed`);
- one marketplace listing per completed product, written once (revision 1);
- each step's result recorded at most once per workflow: no LLM call paid twice
  for a completed step, no upload done twice;
- every stream gapless from 1, no event id twice;
- every mailbox message processed (none pending), each exactly once;
- every agent's recovered state (latest snapshot + events after it) equals the
  state from replaying its whole stream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from actors.replay import events_after, fold_stream, same_state
from storage.records import EventQuery, EventRecord
from storage.sqlite import SQLiteEventStore
from supervisor.events import SUPERVISOR_STREAM

ONCE_PER_WORKFLOW = (
    "product_validated",
    "listing_generated",
    "upload_confirmed",
    "campaign_generated",
    "workflow_completed",
    "workflow_failed",
)


class Invariant(BaseModel):
    name: str
    ok: bool
    detail: str


class InvariantReport(BaseModel):
    workflows: int
    completed: int
    failed: int
    events: int
    invariants: list[Invariant]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.invariants)


def _check(name: str, problems: Sequence[str], fine: str) -> Invariant:
    if problems:
        shown = "; ".join(problems[:5]) + (
            f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        )
        return Invariant(name=name, ok=False, detail=shown)
    return Invariant(name=name, ok=True, detail=fine)


async def check_invariants(
    db_path: Path, *, run_id: str | None = None, local_marketplace: bool = True
) -> InvariantReport:
    """The invariants of the runs in `db_path` (or of one run).

    With an external marketplace the listings are not in the database: the
    servers' own counts are the caller's to check (each upload is still
    checked to be recorded once).
    """
    store = SQLiteEventStore(db_path)
    await store.open()
    try:
        return await _check_store(store, run_id, local_marketplace)
    finally:
        await store.close()


async def _check_store(
    store: SQLiteEventStore, run_id: str | None, local_marketplace: bool
) -> InvariantReport:
    rows = await store.workflows(run_id, None, 10_000_000)
    events = [e for _, e in await store.query_events(EventQuery(limit=100_000_000))]
    if run_id is not None:
        events = [e for e in events if not e.workflow_id or e.workflow_id.startswith(f"{run_id}:")]
    completed = [r for r in rows if r.status == "completed"]
    checks = [
        _check(
            "every workflow terminal",
            [
                f"{r.workflow_id} is {r.status} at {r.current_step}"
                for r in rows
                if r.status not in ("completed", "failed")
            ],
            f"{len(rows)} workflows: {len(completed)} completed, "
            f"{len(rows) - len(completed)} failed",
        ),
        *(
            [await _catalog_once(store, [r.product_id for r in completed])]
            if local_marketplace
            else []
        ),
        _steps_once(events),
        _gapless(events),
        await _mailboxes_drained(store),
        await _recovery_matches_replay(store),
    ]
    return InvariantReport(
        workflows=len(rows),
        completed=len(completed),
        failed=len(rows) - len(completed),
        events=len(events),
        invariants=checks,
    )


async def _catalog_once(store: SQLiteEventStore, products: list[str]) -> Invariant:
    problems = []
    for product_id in products:
        entry = await store.catalog_get(product_id)
        if entry is None:
            problems.append(f"{product_id} completed but not in the catalog")
        elif entry.revision != 1:
            problems.append(f"{product_id} written {entry.revision} times")
    total = await store.catalog_count()
    if not problems and total > len(products):
        problems.append(f"{total} catalog listings for {len(products)} completed products")
    return _check(
        "one marketplace listing per product",
        problems,
        f"{len(products)} listings, each written once",
    )


def _steps_once(events: list[EventRecord]) -> Invariant:
    counts = Counter((e.workflow_id, e.type) for e in events if e.type in ONCE_PER_WORKFLOW)
    twice = [f"{w}: {t} x{n}" for (w, t), n in counts.items() if n > 1]
    paid = sum(
        n for (_, t), n in counts.items() if t in ("listing_generated", "campaign_generated")
    )
    return _check(
        "each step recorded once (no LLM call or upload twice)",
        twice,
        f"{paid} LLM results, none twice",
    )


def _gapless(events: list[EventRecord]) -> Invariant:
    by_stream: dict[str, list[int]] = {}
    for e in events:
        by_stream.setdefault(e.stream_id, []).append(e.seq)
    problems = [
        f"{stream}: seqs not 1..{len(seqs)}"
        for stream, seqs in by_stream.items()
        if sorted(seqs) != list(range(1, len(seqs) + 1))
    ]
    ids = Counter(e.event_id for e in events)
    problems += [f"event {i} stored {n} times" for i, n in ids.items() if n > 1]
    return _check(
        "streams gapless, no duplicate event",
        problems,
        f"{len(by_stream)} streams, {len(events)} events",
    )


async def _mailboxes_drained(store: SQLiteEventStore) -> Invariant:
    problems = []
    for stream in await store.stream_ids():
        pending = await store.pending_messages(stream, limit=1_000)
        if pending:
            problems.append(f"{stream}: {len(pending)} messages never processed")
    return _check("every message processed once", problems, "no message pending")


async def _recovery_matches_replay(store: SQLiteEventStore) -> Invariant:
    problems = []
    streams = [s for s in await store.stream_ids() if s != SUPERVISOR_STREAM]
    for stream in streams:
        records = await store.read_stream(stream, 0, None)
        snapshot = await store.latest_snapshot(stream)
        full = fold_stream(stream, records)
        recovered = fold_stream(
            stream, events_after(records, snapshot.seq if snapshot else 0), snapshot
        )
        if not same_state(full, recovered):
            problems.append(
                f"{stream}: snapshot@{snapshot.seq if snapshot else 0} + events != full replay"
            )
    return _check("recovered state equals full replay", problems, f"{len(streams)} agents checked")
