"""`python -m swarm events`: the event log filtered by workflow, role, type and time.

Filters: `--workflow` (one workflow's events across every agent), `--role`
(a role such as `product-upload`, or one agent's name: an agent's stream is
named after it), `--type` (an event type such as `step_failed`), `--since`
and `--until` (a time: `10m`/`2h`/`1d` ago, an ISO date-time in local time,
`HH:MM` today, or Unix seconds). Shows the newest `--limit` matches, oldest
first; `--follow` then keeps printing new events as they are committed.
`--json` prints one JSON object per line (the event's own fields under
`event`), for scripts.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich.markup import escape
from rich.table import Table

from storage.records import EventQuery, EventRecord
from storage.store import EventStore
from swarm.runtime import ROLES, role_of
from swarm.workflow_story import decode, describe

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Row = tuple[int, EventRecord]


class EventFilterError(ValueError):
    """A filter option that cannot be understood; the message names the option."""


def parse_time(text: str, *, option: str, now: float | None = None) -> float:
    """Seconds since the epoch for a time given on the command line."""
    now = time.time() if now is None else now
    relative = _RELATIVE.match(text)
    if relative:
        return now - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", text.strip()):
            day = datetime.fromtimestamp(now).date().isoformat()
            return datetime.fromisoformat(f"{day}T{text.strip()}").timestamp()
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError as e:
        raise EventFilterError(
            f"{option} {text!r}: expected a time such as 10m, 2h, 1d (ago), "
            "2026-05-01T12:00, 12:00 (today) or Unix seconds"
        ) from e


async def streams_for_role(store: EventStore, role: str) -> tuple[str, ...]:
    """The streams of `role` (or the one stream named `role`), or an error naming the roles."""
    streams = await store.stream_ids()
    if role in streams:
        return (role,)
    matching = tuple(s for s in streams if role_of(s) == role)
    if matching or role in ROLES.values():
        return matching
    agent_roles = set(ROLES.values()) - {"journal", "supervisor"}
    known = sorted(agent_roles | {role_of(s) for s in streams})
    raise EventFilterError(f"--role {role!r}: not a role or agent; roles: {', '.join(known)}")


async def build_query(
    store: EventStore,
    *,
    workflow: str | None = None,
    role: str | None = None,
    event_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 50,
) -> EventQuery:
    return EventQuery(
        workflow_id=workflow,
        stream_ids=await streams_for_role(store, role) if role else None,
        type=event_type,
        since=parse_time(since, option="--since") if since else None,
        until=parse_time(until, option="--until") if until else None,
        limit=max(limit, 1),
        newest_first=True,
    )


async def latest(store: EventStore, query: EventQuery) -> list[Row]:
    """The newest `query.limit` matches, oldest first."""
    return list(reversed(await store.query_events(query)))


async def follow(
    store: EventStore,
    query: EventQuery,
    after: int,
    emit: Callable[[Sequence[Row]], None],
    *,
    interval_s: float = 0.5,
) -> None:
    """Emit events committed after position `after` as they come; runs until cancelled."""
    forward = query.model_copy(update={"newest_first": False, "limit": 1_000})
    while True:
        rows = await store.query_events(forward.model_copy(update={"after_rowid": after}))
        if rows:
            emit(rows)
            after = rows[-1][0]
        else:
            await asyncio.sleep(interval_s)  # polling the log for new commits


def event_json(position: int, record: EventRecord) -> dict[str, Any]:
    event: Any
    try:
        event = json.loads(record.payload)
    except ValueError:
        event = record.payload
    return {
        "position": position,
        "recorded_at": record.recorded_at,
        "time": datetime.fromtimestamp(record.recorded_at).astimezone().isoformat(),
        "stream": record.stream_id,
        "role": role_of(record.stream_id),
        "seq": record.seq,
        "type": record.type,
        "schema_version": record.schema_version,
        "workflow_id": record.workflow_id,
        "event": event,
    }


def json_lines(rows: Sequence[Row]) -> str:
    return "".join(json.dumps(event_json(p, r), ensure_ascii=False) + "\n" for p, r in rows)


def detail(record: EventRecord) -> str:
    event = decode(record)
    return describe(event) if event is not None else f"(cannot read {record.type})"


def events_table(rows: Sequence[Row], *, title: str = "Events") -> Table:
    table = Table(title=title)
    for column in ("#", "time", "stream", "seq", "type", "workflow", "what happened"):
        table.add_column(column, overflow="fold")
    for position, record in rows:
        table.add_row(*(escape(cell) for cell in event_cells(position, record)))
    return table


def event_cells(position: int, record: EventRecord) -> tuple[str, ...]:
    stamp = time.strftime("%H:%M:%S", time.localtime(record.recorded_at))
    return (
        str(position),
        stamp,
        record.stream_id,
        str(record.seq),
        record.type,
        record.workflow_id,
        detail(record),
    )
