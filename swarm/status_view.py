"""`python -m swarm status`: the swarm's actors and its workflows by status.

With a swarm running, the actors come from the supervisor (each child's state,
node, pid, restarts, mailbox depth, sequence numbers); without one, from the
database (one row per agent stream, "not running", with the last sequence
number and snapshot the log holds). Workflow counts always come from the
database's read model, so the command works after the swarm stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError
from rich.console import Group
from rich.table import Table

from actors.models import FrozenModel
from storage.records import EventQuery
from storage.store import EventStore
from swarm.database import NoDatabaseError, read_database
from swarm.runtime import role_of

STATUS_ORDER = ("running", "waiting", "pending", "completed", "failed")


class ActorRow(FrozenModel):
    name: str
    role: str
    state: str
    actor: str = ""
    """The Ray actor serving the role now (`product-agent-0~3` after restarts)."""
    node: str = ""
    pid: int = 0
    restarts: int = 0
    mailbox: int = 0
    in_flight: int = 0
    last_seq: int = 0
    snapshot_seq: int = 0
    processed: int = 0


class StepCount(FrozenModel):
    status: str
    step: str
    count: int


class SwarmStatus(FrozenModel):
    running: bool
    supervisor: str = ""
    """The supervisor's state (`running`, `escalated: <why>`, ...), when it runs."""
    database: str
    actors: tuple[ActorRow, ...]
    workflows: dict[str, int]
    """Workflows by status."""
    steps: tuple[StepCount, ...]
    """Workflows by status and current step."""


class DatabaseView(FrozenModel):
    streams: tuple[ActorRow, ...] = ()
    steps: tuple[StepCount, ...] = ()


def live_actors(supervisor: Any) -> list[ActorRow]:
    """The supervisor's children as it sees them now (needs a Ray connection)."""
    known: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    nodes = {n["NodeID"]: n.get("NodeManagerAddress", "") for n in known}
    rows: list[ActorRow] = []
    for child in ray.get(supervisor.status.remote()):
        address = nodes.get(child.node_id, "")
        node = f"{address} ({child.node_id[:8]})" if child.node_id else ""
        rows.append(
            ActorRow(
                name=child.name,
                role=child.role,
                state=child.state,
                actor=child.actor,
                node=node,
                pid=child.pid,
                restarts=child.restarts,
                mailbox=child.mailbox,
                in_flight=child.in_flight,
                last_seq=child.last_seq,
                snapshot_seq=child.snapshot_seq,
                processed=child.processed,
            )
        )
    return rows


async def database_view(store: EventStore) -> DatabaseView:
    """Each agent stream's last and snapshot sequence numbers, and workflows by step."""
    streams: list[ActorRow] = []
    for stream in await store.stream_ids():
        last = await store.query_events(EventQuery(stream_id=stream, limit=1, newest_first=True))
        snapshot = await store.latest_snapshot(stream)
        streams.append(
            ActorRow(
                name=stream,
                role=role_of(stream),
                state="not running",
                last_seq=last[0][1].seq if last else 0,
                snapshot_seq=snapshot.seq if snapshot else 0,
            )
        )
    counts = await store.workflow_counts()
    steps = tuple(
        StepCount(status=status, step=step, count=n) for (status, step), n in sorted(counts.items())
    )
    return DatabaseView(streams=tuple(streams), steps=steps)


def collect_status(db_path: Path, supervisor: Any | None) -> SwarmStatus:
    """The status of the swarm whose supervisor is given (None: not running) and database."""
    try:
        view = read_database(db_path, database_view)
    except NoDatabaseError:
        view = DatabaseView()
    actors = view.streams
    health = ""
    if supervisor is not None:
        try:
            actors = tuple(live_actors(supervisor))
            state = ray.get(supervisor.health.remote(), timeout=10)
            health = f"{state.state}: {state.reason}" if state.reason else state.state
        except (RayActorError, ActorUnavailableError):
            supervisor = None  # it stopped since it was found: show the database's view
    by_status: dict[str, int] = {}
    for row in view.steps:
        by_status[row.status] = by_status.get(row.status, 0) + row.count
    return SwarmStatus(
        running=supervisor is not None,
        supervisor=health,
        database=str(db_path),
        actors=actors,
        workflows=by_status,
        steps=view.steps,
    )


def render_status(status: SwarmStatus) -> Group:
    return Group(_actors_table(status), _workflows_table(status))


def _actors_table(status: SwarmStatus) -> Table:
    title = (
        f"Actors (supervisor {status.supervisor})"
        if status.running
        else "Actors (no swarm running; streams in the database)"
    )
    table = Table(title=title)
    columns = (
        "name",
        "role",
        "actor",
        "state",
        "node",
        "pid",
        "restarts",
        "mailbox",
        "in flight",
        "last seq",
        "snapshot seq",
        "processed",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:4] else "right")
    for a in status.actors:
        state = f"[green]{a.state}[/green]" if a.state == "alive" else f"[yellow]{a.state}[/yellow]"
        live = (a.restarts, a.mailbox, a.in_flight)
        runtime = [str(n) if status.running else "-" for n in live]
        table.add_row(
            a.name,
            a.role,
            a.actor or "-",
            state,
            a.node or "-",
            _num(a.pid),
            *runtime,
            str(a.last_seq),
            str(a.snapshot_seq),
            _num(a.processed),
        )
    return table


def _workflows_table(status: SwarmStatus) -> Table:
    table = Table(title=f"Workflows in {status.database}")
    for column in ("status", "step", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for row in _ordered(status.steps):
        table.add_row(row.status, row.step, str(row.count))
    total = sum(status.workflows.values())
    summary = ", ".join(f"{s} {n}" for s, n in _ordered_status(status.workflows))
    table.caption = f"{total} workflows: {summary}" if total else "no workflows yet"
    return table


def _ordered(steps: Sequence[StepCount]) -> list[StepCount]:
    return sorted(steps, key=lambda r: (_rank(r.status), r.step))


def _ordered_status(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: _rank(item[0]))


def _rank(status: str) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def _num(value: int) -> str:
    return str(value) if value else "-"
