"""The supervisor on a local Ray: deaths noticed, children restarted by strategy and type.

Children are killed the way a machine kills them (SIGKILL of the process),
then the test waits, with a deadline, for what the supervisor must do.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.coordinator import FaultSettings
from storage.records import EventQuery
from supervisor.supervisor import START_ATTEMPTS
from swarm.feeds import parse_feed
from swarm.run import new_run_id, submit_products, wait_for_run
from swarm.runtime import (
    SwarmEscalatedError,
    coordinator,
    find_swarm,
    journal,
    start_swarm,
    stop_swarm,
)
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from tests.cluster import running_supervisor, wait_until
from tests.conftest import make_settings, read_store

pytestmark = pytest.mark.timeout(240)


def children(supervisor: Any) -> dict[str, Any]:
    return {c.name: c for c in ray.get(supervisor.status.remote())}


def kill(supervisor: Any, role: str) -> int:
    pid = int(children(supervisor)[role].pid)
    os.kill(pid, signal.SIGKILL)
    return pid


def restarted(supervisor: Any, role: str, old_pid: int) -> bool:
    child = children(supervisor)[role]
    return child.state == "alive" and child.pid not in (0, old_pid)


def supervision_events(settings: SwarmSettings) -> list[tuple[str, str]]:
    rows = read_store(settings.db_path, lambda s: s.read_stream("supervisor", 0, None))
    return [(r.type, json.loads(r.payload).get("role", "")) for r in rows]


def run_sample(chunk: int = 20) -> tuple[str, int]:
    products = list(parse_feed(SAMPLE_CATALOG).products)
    run_id = new_run_id()
    ids = submit_products(coordinator(), run_id, products, FaultSettings(), chunk=chunk)
    wait_for_run(journal(), run_id, len(ids), timeout_s=150)
    return run_id, len(ids)


def test_a_killed_agent_is_restarted_on_its_standby_and_the_swarm_still_works(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    settings = swarm_factory()
    supervisor = running_supervisor()
    old = kill(supervisor, "product-agent-0")
    wait_until(lambda: restarted(supervisor, "product-agent-0", old), 30, "a restart")
    child = children(supervisor)["product-agent-0"]
    assert child.actor == "product-agent-0~2"  # the standby took the role over
    assert child.restarts == 1
    assert ray.get(supervisor.whereis.remote("product-agent-0")) == "product-agent-0~2"

    _run_id, total = run_sample()
    summary = read_store(settings.db_path, lambda s: s.workflow_counts())
    assert sum(summary.values()) == total
    events = supervision_events(settings)
    assert ("child_died", "product-agent-0") in events
    assert events.count(("child_started", "product-agent-0")) == 2


@pytest.mark.parametrize(
    ("strategy", "restarted_roles"),
    [
        ("one_for_one", {"product-agent-0"}),
        ("rest_for_one", {"product-agent-0", "product-agent-1", "marketing-agent-0"}),
        (
            "one_for_all",
            {"journal", "coordinator", "product-agent-0", "product-agent-1", "marketing-agent-0"},
        ),
    ],
)
def test_each_strategy_restarts_the_right_children(
    swarm_factory: Callable[..., SwarmSettings], strategy: str, restarted_roles: set[str]
) -> None:
    swarm_factory(supervisor_strategy=strategy)
    supervisor = running_supervisor()
    before = {role: c.pid for role, c in children(supervisor).items()}
    os.kill(before["product-agent-0"], signal.SIGKILL)

    def settled() -> bool:
        now = children(supervisor)
        return all(c.state == "alive" for c in now.values()) and all(
            now[r].pid != before[r] for r in restarted_roles
        )

    wait_until(settled, 60, f"{strategy} restarts")
    after = children(supervisor)
    assert {r for r in before if after[r].pid != before[r]} == restarted_roles
    assert {r for r, c in after.items() if c.restarts} == restarted_roles
    run_sample()


def test_restart_types_temporary_is_never_restarted_transient_only_when_abnormal(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    swarm_factory(restart_types={"marketing-agent-0": "temporary", "product-agent-1": "transient"})
    supervisor = running_supervisor()
    kill(supervisor, "marketing-agent-0")
    wait_until(lambda: children(supervisor)["marketing-agent-0"].state != "alive", 30, "death")
    old = kill(supervisor, "product-agent-1")
    wait_until(lambda: restarted(supervisor, "product-agent-1", old), 30, "transient restart")
    state = children(supervisor)["marketing-agent-0"].state
    assert state.startswith("dead"), state
    assert ray.get(supervisor.whereis.remote("marketing-agent-0")) is None

    # a normal exit of a transient child is not restarted
    pid = children(supervisor)["product-agent-1"].pid
    ray.get(supervisor.child_exiting.remote("product-agent-1"))
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: children(supervisor)["product-agent-1"].state == "exited", 30, "exit")


def test_past_the_restart_intensity_the_supervisor_escalates_and_stops_the_swarm(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    settings = swarm_factory(restart_intensity=2, restart_period_s=60)
    supervisor = running_supervisor()
    for n in range(2):
        old = kill(supervisor, "product-agent-0")
        wait_until(partial(restarted, supervisor, "product-agent-0", old), 30, f"restart {n}")
    kill(supervisor, "product-agent-0")
    wait_until(lambda: ray.get(supervisor.health.remote()).state == "escalated", 30, "escalation")
    health = ray.get(supervisor.health.remote())
    assert "more than 2 restarts in 60 s" in health.reason
    assert "product-agent-0" in health.reason
    assert all(not c.state.startswith("alive") for c in children(supervisor).values())
    # the decision and its reason are in the log
    assert ("escalated", "") in supervision_events(settings)


def test_a_role_that_cannot_start_escalates_after_a_few_attempts_not_forever(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    """A log the agent cannot fold (here its newest event, damaged on disk) fails every
    recovery: the supervisor tries a few times, records each failure, then escalates
    with the role and the error, instead of starting processes without end. (No warm
    standby: one would have folded the event before the damage.)"""
    settings = swarm_factory(warm_standby=False)
    supervisor = running_supervisor()
    run_sample()
    with sqlite3.connect(settings.db_path, timeout=30) as db:
        db.execute(
            "UPDATE events SET payload = '{\"damaged' WHERE stream_id = 'product-agent-0' "
            "AND seq = (SELECT MAX(seq) FROM events WHERE stream_id = 'product-agent-0')"
        )
    kill(supervisor, "product-agent-0")
    wait_until(lambda: ray.get(supervisor.health.remote()).state == "escalated", 60, "escalation")
    reason = ray.get(supervisor.health.remote()).reason
    assert f"product-agent-0 failed to start {START_ATTEMPTS} times in a row" in reason
    assert "ValidationError" in reason  # the recovery's own error, not Ray's wrapper
    assert all(not c.state.startswith("alive") for c in children(supervisor).values())
    events = supervision_events(settings)
    failed = [e for e in events if e == ("child_start_failed", "product-agent-0")]
    assert len(failed) == START_ATTEMPTS
    assert events[-1] == ("escalated", "")


def test_a_swarm_whose_journal_cannot_start_is_reported_escalated_with_the_cause(
    ray_local: None, tmp_path: Path
) -> None:
    db_path = tmp_path / "a-directory"
    db_path.mkdir()  # SQLite cannot open a directory as its database
    try:
        with pytest.raises(SwarmEscalatedError) as raised:
            start_swarm(make_settings(db_path), detached=False)
        message = str(raised.value)
        assert f"journal failed to start {START_ATTEMPTS} times in a row" in message
        assert "SQLiteStoreError" in message  # the journal's own error, not Ray's wrapper
        assert "unable to open database file" in message
    finally:
        leftover = find_swarm()
        if leftover is not None:
            stop_swarm(leftover)


def test_a_killed_journal_is_restarted_and_agents_carry_on(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    settings = swarm_factory()
    supervisor = running_supervisor()
    products = list(parse_feed(SAMPLE_CATALOG).products)
    run_id = new_run_id()
    ids = submit_products(coordinator(), run_id, products, FaultSettings(), chunk=5)
    old = kill(supervisor, "journal")
    wait_until(lambda: restarted(supervisor, "journal", old), 30, "journal restart")
    wait_for_run(journal(), run_id, len(ids), timeout_s=150)
    events = read_store(settings.db_path, lambda s: s.query_events(EventQuery(limit=1_000_000)))
    by_stream: dict[str, list[int]] = {}
    for _, e in events:
        by_stream.setdefault(e.stream_id, []).append(e.seq)
    for stream, seqs in by_stream.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), stream


def test_the_supervisor_comes_back_after_sigkill_and_reattaches_to_live_children(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    swarm_factory()
    supervisor = running_supervisor()
    before = {role: c.pid for role, c in children(supervisor).items()}
    supervisor_pid = ray.get(supervisor.pid.remote())
    os.kill(supervisor_pid, signal.SIGKILL)
    # a child dies while its supervisor is down: the new supervisor must respawn it
    os.kill(before["marketing-agent-0"], signal.SIGKILL)

    def back() -> bool:
        try:
            now = children(supervisor)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            return False
        return all(c.state == "alive" for c in now.values())

    wait_until(back, 60, "the supervisor's return")
    assert ray.get(supervisor.pid.remote()) != supervisor_pid
    after = children(supervisor)
    for role in ("journal", "coordinator", "product-agent-0", "product-agent-1"):
        assert after[role].pid == before[role], f"{role} was not re-attached"
    assert after["marketing-agent-0"].pid != before["marketing-agent-0"]
    # never two actors in one role
    serving: dict[str, int] = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != "swarm" or entry["name"] == "supervisor":
            continue
        try:
            actor: Any = ray.get_actor(entry["name"], namespace="swarm")
            served: str | None = ray.get(actor.serving.remote())
        except (ray.exceptions.RayActorError, ValueError):
            continue
        if served is not None:
            serving[served] = serving.get(served, 0) + 1
    assert len(serving) == 5, serving
    assert all(n == 1 for n in serving.values()), serving
    run_sample()
