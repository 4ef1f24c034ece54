"""The supervisor: starts the swarm's children, watches them, restarts them by OTP rules.

Children are named, detached actors in the `swarm` namespace with `num_cpus=0`
(agents wait on I/O, so two cores hold the whole swarm). They start in spec
order (the journal first) and stop in reverse order.

Failure notification. For each child the supervisor keeps a `watch()` call
pending; it fails with `ActorDiedError` within milliseconds of the child's
process dying. Agents also report failures they cannot handle
(`child_failed`), which the supervisor treats as an abnormal exit.

Restart. A death is handled by the child's restart type and the strategy (see
`supervisor.policy`), within the restart intensity; past it the supervisor
escalates: it records why, stops every child in reverse order, and reports
`escalated` until it is shut down. A restarted role is taken over by a warm
standby process (an idle actor named `<role>~<n>`), which recovers the agent
from snapshot + events and drains its mailbox; peers find the new actor
through `whereis(role)`. The new actor runs no workflow step until the
supervisor watches it: a step that kills it (a poison message) dies where the
watch sees it, so each such death is one counted restart, never a silent retry
of the take-over.

The supervisor's own death. Ray restarts it (`max_restarts=-1`); the new
incarnation lists the swarm's named actors, asks each which role it serves,
re-attaches to live children (killing any older duplicate of a role, so a role
never has two servers), respawns dead ones, and reads its own stream to know
whether it had escalated.

Every decision is an event in the stream `supervisor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.durable import RecoveryReport
from actors.metrics import RayMetrics
from actors.models import FrozenModel
from actors.ray_actors import NAMESPACE, AgentActor, AgentStatus
from storage.journal_actor import JournalActor
from storage.process_gc import tune_gc
from storage.process_memory import tune_malloc
from storage.records import AppendBatch, AppendRefusal, EventRecord
from supervisor.child_spec import ChildSpec
from supervisor.child_starts import ChildStarts
from supervisor.events import (
    SUPERVISOR_STREAM,
    ChildDied,
    ChildFailed,
    ChildStarted,
    ChildStartFailed,
    Escalated,
    MessageQuarantined,
    SupervisionEvent,
    SupervisorRecovered,
    decode_supervision_event,
)
from supervisor.policy import (
    Backoff,
    RestartIntensity,
    SupervisionPolicy,
    should_restart,
    to_restart,
)

log = logging.getLogger(__name__)
CALL_TIMEOUT_S = 10.0
SPARE_DELAY_S = 1.0
"""After a restart, how long the role's next standby waits before its process starts."""
START_ATTEMPTS = 5
"""Failed attempts in a row to start a role before the supervisor escalates."""
START_RETRY_S = 0.25
"""Pause after the first failed attempt to start a role; it doubles with each (0.25 .. 2 s)."""
_GONE = (RayActorError, ActorUnavailableError)


class ChildStatus(AgentStatus):
    state: str
    actor: str = ""
    restarts: int = 0


class SupervisorHealth(FrozenModel):
    state: str
    """`starting`, `running`, `escalated` or `stopped`."""
    reason: str = ""
    restarts: int = 0


class EscalatedError(RuntimeError):
    """The supervisor gave up restarting (restart intensity passed) and stopped the swarm."""


@dataclass
class _Child:
    spec: ChildSpec
    handle: Any = None
    actor: str = ""
    pid: int = 0
    state: str = "not started"
    restarts: int = 0
    incarnation: int = 0
    spare: asyncio.Task[_Spare] | None = None
    """The warm standby being started, or ready (done)."""
    spare_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the standby is needed: one waiting to start starts at once."""
    watcher: asyncio.Task[None] | None = None
    last_report: RecoveryReport | None = None
    exiting_normally: bool = False
    injected_crash: str = ""
    started_at: float = 0.0
    """`time.monotonic()` when it last began serving (for the crash-loop backoff)."""


@dataclass(frozen=True)
class _Spare:
    """A warm standby process, up and ready to take its role over."""

    handle: Any
    name: str
    pid: int


@dataclass
class _Log:
    """The supervisor's own stream, written through the journal with a fencing epoch."""

    epoch: int = 0
    next_seq: int = 1
    events: list[SupervisionEvent] = field(default_factory=list)


def _incarnation(name: str, role: str) -> int | None:
    if name == role:
        return 1
    match = re.fullmatch(re.escape(role) + r"~(\d+)", name)
    return int(match.group(1)) if match else None


class Supervisor:
    def __init__(
        self,
        children: list[ChildSpec],
        policy: SupervisionPolicy | None = None,
        *,
        reattach: bool = False,
    ) -> None:
        self.policy = policy or SupervisionPolicy()
        self.reattach = reattach
        """A restarted supervisor re-attaches to live children; a new one replaces them."""
        self.order = [c.name for c in children]
        self.children = {c.name: _Child(spec=c) for c in children}
        self.intensity = RestartIntensity(self.policy.max_restarts, self.policy.period_s)
        self.backoff = Backoff(
            self.policy.backoff_base_s, self.policy.backoff_max_s, self.policy.period_s
        )
        self.state = "starting"
        self.reason = ""
        self.total_restarts = 0
        self._log = _Log()
        self._unjournaled: list[SupervisionEvent] = []
        self._lock = asyncio.Lock()
        self._served = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._booted: asyncio.Task[list[RecoveryReport]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.starts = ChildStarts(RayMetrics("supervisor", "supervisor"))
        """Starts and restarts per child, for the metrics."""

    # --- start and recovery -------------------------------------------------------------
    async def start(self) -> list[RecoveryReport]:
        """Bring every child up (or re-attach to it); idempotent, safe to call again."""
        return await asyncio.shield(self._ensure_booting())

    def _ensure_booting(self) -> asyncio.Task[list[RecoveryReport]]:
        """Start the boot once. A restarted supervisor boots on the first call it gets,
        whoever makes it (its own call from `__init__`, an agent's `whereis`, `status`)."""
        if self._booted is None:
            self._booted = asyncio.ensure_future(self._boot())
        return self._booted

    async def _boot(self) -> list[RecoveryReport]:
        async with self._lock:
            live = await self._discover()
            reattached, respawned = [], []
            for role in self.order:  # spawn the missing processes at once; they start in order
                if role not in live:
                    self._ensure_spare(self.children[role], booting=True)
            for role in self.order:
                child = self.children[role]
                found = live.get(role)
                if found is not None:
                    await self._attach(child, *found)
                    reattached.append(role)
                else:
                    if not await self._start_child(child, reason="start"):
                        return []  # escalated: it could not be started
                    respawned.append(role)
                if role == "journal":
                    await self._open_log()
                    self._log.events += self._unjournaled
                    if self._escalated_before():
                        await self._stop_all()
                        self.state = "escalated"
                        return []
            for role in reattached:
                child = self.children[role]
                await self._record(ChildStarted(role=role, actor=child.actor, pid=child.pid,
                                                reason="reattach"))  # fmt: skip
            if reattached:
                await self._record(
                    SupervisorRecovered(reattached=tuple(reattached), respawned=tuple(respawned))
                )
            self.state = "running"
        if self.policy.warm_standby:
            for child in self.children.values():
                self._ensure_spare(child)
        return [c.last_report for c in self.children.values() if c.last_report is not None]

    async def _discover(self) -> dict[str, tuple[Any, str, int]]:
        """Live actors serving each role, and each role's newest standby (adopted: the
        processes a killed incarnation started are not started again). Older servers of
        a role, other standbys, and actors that do not answer are killed."""
        names = await self._named_actors()
        found: list[tuple[_Child, int, str]] = []
        for role, child in self.children.items():
            for name in names:
                incarnation = _incarnation(name, role)
                if incarnation is not None:
                    child.incarnation = max(child.incarnation, incarnation)
                    found.append((child, incarnation, name))
        answers = await asyncio.gather(*(_ask_serving(name) for _, _, name in found))
        live: dict[str, tuple[Any, str, int]] = {}
        for role, child in self.children.items():
            mine = [
                (incarnation, handle, name, serving)
                for (owner, incarnation, name), (handle, serving) in zip(
                    found, answers, strict=True
                )
                if owner is child and handle is not None
            ]
            if not self.reattach:  # left over by a swarm whose supervisor is gone: replace
                for _, handle, name, _ in mine:
                    log.warning("killing %s: left over by a previous swarm", name)
                    ray.kill(handle, no_restart=True)
                continue
            servers = sorted((m for m in mine if m[3] == role), key=lambda m: m[0])
            standbys = sorted((m for m in mine if m[3] is None), key=lambda m: m[0])
            spares = standbys[-1:] if self.policy.warm_standby else []
            for entry in mine:
                if entry not in servers[-1:] + spares:  # one server per role, one standby
                    log.warning("killing %s: not needed by %s", entry[2], role)
                    ray.kill(entry[1], no_restart=True)
            if servers:
                incarnation, handle, name, _ = servers[-1]
                live[role] = (handle, name, incarnation)
            for _, handle, name, _ in spares:
                child.spare = asyncio.ensure_future(self._adopt(handle, name))
        return live

    async def _named_actors(self) -> list[str]:
        """The swarm's named actors; the GCS may be briefly unreachable after a crash."""
        end = time.monotonic() + CALL_TIMEOUT_S
        while True:
            try:
                named = await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True)
                return [n["name"] for n in named if n.get("namespace") == NAMESPACE]
            except Exception:  # whatever the GCS client raises: ask again
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(0.2)

    async def _adopt(self, handle: Any, name: str) -> _Spare:
        try:
            pid: int = await asyncio.wait_for(handle.ready.remote(), CALL_TIMEOUT_S * 6)
        except BaseException:
            ray.kill(handle, no_restart=True)
            raise
        return _Spare(handle, name, pid)

    async def _attach(self, child: _Child, handle: Any, actor: str, incarnation: int) -> None:
        try:
            child.pid = await asyncio.wait_for(handle.pid.remote(), CALL_TIMEOUT_S)
        except (*_GONE, TimeoutError):
            child.pid = 0  # the watch will notice if it is dead
        child.handle, child.actor, child.state = handle, actor, "alive"
        child.incarnation = max(child.incarnation, incarnation)
        self._watch(child)
        self._now_serving()

    # --- starting a child -----------------------------------------------------------------
    def _options(self, child: _Child, name: str, node_alive: bool) -> dict[str, Any]:
        options: dict[str, Any] = {
            "name": name,
            "namespace": NAMESPACE,
            "num_cpus": 0,
            "max_concurrency": child.spec.max_concurrency,
            "lifetime": "detached",
        }
        if node_alive and child.spec.node_id:
            # hard while the node lives (Ray's soft affinity spills even to a live node);
            # once it is gone the child runs anywhere
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                node_id=child.spec.node_id, soft=False
            )
        return options

    async def _new_actor(self, child: _Child, standby: bool) -> tuple[Any, str]:
        """A new process for the child's role. Ray's calls here block (tens of ms on a
        busy machine), so they run off the event loop, which keeps noticing deaths."""
        node_id = child.spec.node_id
        node_alive = node_id is not None and await asyncio.to_thread(_node_alive, node_id)
        journal = child.spec.journal is not None
        cls: Any = ray.remote(JournalActor if journal else AgentActor)
        args = () if journal else (child.spec.agent if standby else None,)
        while True:
            child.incarnation += 1
            name = (
                child.spec.name
                if child.incarnation == 1
                else f"{child.spec.name}~{child.incarnation}"
            )
            actor = cls.options(**self._options(child, name, node_alive))
            try:
                return await asyncio.to_thread(actor.remote, *args), name
            except ValueError:  # the name is still taken by an actor being torn down
                continue

    def _ensure_spare(self, child: _Child, *, booting: bool = False, delay_s: float = 0.0) -> None:
        if child.spare is not None:
            return
        if not booting and (not self.policy.warm_standby or self.state != "running"):
            return
        child.spare_wanted = asyncio.Event()
        child.spare = asyncio.ensure_future(self._new_spare(child, child.spare_wanted, delay_s))

    async def _new_spare(self, child: _Child, wanted: asyncio.Event, delay_s: float) -> _Spare:
        """A new standby, started after `delay_s` unless it is `wanted` before."""
        if delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wanted.wait(), delay_s)
        handle, name = await self._new_actor(child, standby=True)
        return await self._adopt(handle, name)

    async def _take_over(self, child: _Child, handle: Any) -> RecoveryReport | None:
        spec = child.spec
        if spec.journal is not None:
            await asyncio.wait_for(
                handle.take_over.remote(spec.journal.path, spec.journal.synchronous),
                CALL_TIMEOUT_S * 6,
            )
            return None
        report: RecoveryReport = await asyncio.wait_for(
            handle.take_over.remote(spec.agent), CALL_TIMEOUT_S * 6
        )
        return report

    async def _start_child(self, child: _Child, *, reason: str, noticed: float = 0.0) -> bool:
        """Start the role on its standby if one is ready, else on a new process; record it.

        An attempt that fails (the process dies or does not answer in time, or its
        recovery raises: a log it cannot fold) is recorded, and the role is tried again
        on a new process, after a pause that doubles. After `START_ATTEMPTS` failures in
        a row the supervisor escalates, as OTP's does when a child cannot be started:
        what fails every time is not mended by restarting. Returns False then.
        """
        began = noticed or time.perf_counter()
        role = child.spec.name
        error = ""
        for attempt in range(1, START_ATTEMPTS + 1):
            handle, name, pid = None, "", 0
            if child.spare is not None:
                child.spare_wanted.set()  # a standby still waiting to start: start it now
                starting, child.spare = child.spare, None
                try:
                    spare = await asyncio.wait_for(asyncio.shield(starting), CALL_TIMEOUT_S * 6)
                    handle, name, pid = spare.handle, spare.name, spare.pid
                except Exception:  # noqa: BLE001 - a standby that failed: a new process
                    _discard(starting)
            try:
                if handle is None:
                    handle, name = await self._new_actor(child, standby=False)
                report = await self._take_over(child, handle)
                if not pid:
                    pid = await asyncio.wait_for(handle.pid.remote(), CALL_TIMEOUT_S)
                break
            except Exception as e:  # noqa: BLE001 - every failure to start counts, then escalates
                error = _brief(e)
                where = name or "a new process"
                log.warning("%s: %s failed to take over (attempt %d of %d): %s",
                            role, where, attempt, START_ATTEMPTS, error)  # fmt: skip
                if handle is not None:
                    ray.kill(handle, no_restart=True)
                self._note(ChildStartFailed(role=role, actor=name, attempt=attempt, error=error))
                if attempt < START_ATTEMPTS:
                    await asyncio.sleep(START_RETRY_S * 2 ** (attempt - 1))  # a retry's pause
        else:
            await self._escalate(
                f"{role} failed to start {START_ATTEMPTS} times in a row (last: {error})"
            )
            return False
        child.handle, child.actor, child.pid, child.state = handle, name, pid, "alive"
        self._now_serving()
        child.started_at = time.monotonic()
        child.last_report = report
        self.starts.started(child.spec.role, child.spec.name)
        child.exiting_normally = False
        self._watch(child)
        millis = (time.perf_counter() - began) * 1000
        self._note(
            ChildStarted(
                role=child.spec.name,
                actor=name,
                pid=pid,
                reason=reason,
                recovery_ms=millis,
                events_replayed=report.events_replayed if report else 0,
                snapshot_seq=report.snapshot_seq if report else 0,
            )
        )
        if self.state == "running":
            # a new process starting takes a core for a while: the restarted agent goes first
            self._ensure_spare(child, delay_s=SPARE_DELAY_S)
        return True

    # --- watching and deaths --------------------------------------------------------------
    def _watch(self, child: _Child) -> None:
        if child.watcher is not None:
            child.watcher.cancel()
        child.watcher = asyncio.ensure_future(self._watch_loop(child, child.handle))

    async def _watch_loop(self, child: _Child, handle: Any) -> None:
        while True:
            try:
                await handle.watch.remote()
                cause = "watch returned"
            except ActorUnavailableError:
                # unreachable for a moment (network, node under load): watch again shortly
                await asyncio.sleep(0.05)
                continue
            except RayActorError as e:
                cause = _brief(e)
            except asyncio.CancelledError:
                return
            break
        if child.handle is handle and child.state == "alive":
            noticed = time.perf_counter()
            self._spawn(self._on_death(child, handle, cause, noticed))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("supervisor: %r failed", task, exc_info=task.exception())

    async def _on_death(self, child: _Child, handle: Any, cause: str, noticed: float) -> None:
        async with self._lock:
            if child.handle is not handle or self.state != "running":
                return
            role = child.spec.name
            abnormal = not child.exiting_normally
            child.state = "dead"
            injected, child.injected_crash = child.injected_crash, ""
            if injected:
                cause = f"crash injected at {injected} ({cause})"
            died = ChildDied(role=role, actor=child.actor, cause=cause, abnormal=abnormal)
            # journaled with the restart's own event: the restart does not wait for a commit
            self._keep(died)
            if not should_restart(child.spec.restart, abnormal):
                child.state = "exited" if not abnormal else "dead (not restarted)"
                await self._flush_log()
                return
            now = time.monotonic()
            if not injected and not self.intensity.allow(now):
                await self._escalate(
                    f"more than {self.policy.max_restarts} restarts in {self.policy.period_s:g} s "
                    f"(last: {role} died: {cause})"
                )
                return
            group = to_restart(self.policy.strategy, self.order, role)
            for other in reversed(group):
                if other != role:
                    self._stop_child(self.children[other], state="restarting")
            uptime = now - child.started_at
            delay = 0.0 if injected else self.backoff.delay(role, now, uptime_s=uptime)
            if delay:
                await asyncio.sleep(delay)  # backoff between repeated restarts, not a sync wait
            for name in group:
                member = self.children[name]
                member.restarts += 1
                self.total_restarts += 1
                if not await self._start_child(member, reason="restart", noticed=noticed):
                    return  # escalated: it could not be started

    async def child_failed(self, role: str, error: str) -> None:
        """An agent's report of a failure it cannot handle: restart it as an abnormal exit."""
        child = self.children.get(role)
        if child is None or child.handle is None or self.state != "running":
            return
        await self._record(ChildFailed(role=role, error=error))
        ray.kill(child.handle, no_restart=True)  # the watch notices and restarts it

    async def crash_injected(self, role: str, step: str) -> None:
        """The child is about to crash on purpose (`crash_step`): restart it, uncounted."""
        child = self.children.get(role)
        if child is not None:
            child.injected_crash = step

    async def child_exiting(self, role: str) -> None:
        """A child about to stop on purpose: a normal exit (transient children stay down)."""
        child = self.children.get(role)
        if child is not None:
            child.exiting_normally = True

    async def quarantined(
        self, role: str, workflow_id: str, message_id: str, error: str, attempts: int
    ) -> None:
        await self._record(
            MessageQuarantined(
                role=role,
                workflow_id=workflow_id,
                message_id=message_id,
                error=error,
                attempts=attempts,
            )
        )

    async def _escalate(self, reason: str) -> None:
        log.error("supervisor escalates: %s", reason)
        self.reason = reason
        await self._record(Escalated(reason=reason))
        await self._stop_all()
        self.state = "escalated"

    # --- stopping -----------------------------------------------------------------------
    def _stop_child(self, child: _Child, state: str = "stopped") -> None:
        child.state = state
        if child.watcher is not None:
            child.watcher.cancel()
            child.watcher = None
        if child.handle is not None:
            ray.kill(child.handle, no_restart=True)
            child.handle = None

    async def _stop_all(self) -> None:
        for role in reversed(self.order):
            child = self.children[role]
            self._stop_child(child)
            if child.spare is not None:
                _discard(child.spare)
                child.spare = None

    async def stop(self) -> None:
        """Stop children in reverse start order, and their standbys."""
        async with self._lock:
            if self.state != "escalated":
                self.state = "stopped"
            await self._stop_all()

    # --- the registry and reports ----------------------------------------------------------
    async def whereis(self, role: str, wait_s: float = 0.0) -> str | None:
        """The actor serving `role`; None if none does within `wait_s` (restarting).

        A caller whose peer just died waits here for the restart, and hears of
        the new actor the moment it serves, instead of polling.
        """
        if self.reattach:
            self._ensure_booting()
        end = time.monotonic() + wait_s
        while (name := self._server_of(role)) is None and role in self.children:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._served.wait(), remaining)
            except TimeoutError:
                return None
        return name

    def _server_of(self, role: str) -> str | None:
        child = self.children.get(role)
        if child is None or child.handle is None or child.state != "alive":
            return None
        return child.actor

    def _now_serving(self) -> None:
        """Wake the callers waiting in `whereis`: a role has a (new) server."""
        self._served.set()
        self._served = asyncio.Event()

    def whereis_all(self) -> dict[str, str]:
        """Every role served now, and the actor serving it."""
        if self.reattach:
            self._ensure_booting()
        return {role: name for role in self.order if (name := self._server_of(role)) is not None}

    def standbys(self) -> dict[str, str]:
        """Each role's warm standby actor, for those that have one ready."""
        return {
            role: c.spare.result().name
            for role, c in self.children.items()
            if c.spare is not None and c.spare.done() and c.spare.exception() is None
        }

    def health(self) -> SupervisorHealth:
        if self.reattach:
            self._ensure_booting()
        return SupervisorHealth(state=self.state, reason=self.reason, restarts=self.total_restarts)

    def recoveries(self) -> dict[str, RecoveryReport]:
        return {r: c.last_report for r, c in self.children.items() if c.last_report is not None}

    async def status(self) -> list[ChildStatus]:
        if self.reattach:
            self._ensure_booting()
        return list(
            await asyncio.gather(*(self._child_status(self.children[r]) for r in self.order))
        )

    async def _child_status(self, child: _Child) -> ChildStatus:
        spec = child.spec
        blank: dict[str, Any] = {
            "name": spec.name, "role": spec.role, "pid": child.pid, "node_id": "", "epoch": 0,
            "last_seq": 0, "in_flight": 0, "processed": 0, "completed": 0, "failed": 0,
            "actor": child.actor, "restarts": child.restarts,
        }  # fmt: skip
        handle = child.handle
        if handle is None or child.state != "alive":
            return ChildStatus(state=child.state, **blank)
        try:
            if spec.journal is not None:
                stats = await asyncio.wait_for(handle.stats.remote(), 5)
                blank.update(processed=stats["batches"], last_seq=stats["events"])
                return ChildStatus(state="alive", **blank)
            status: AgentStatus = await asyncio.wait_for(handle.status.remote(), 5)
            return ChildStatus(state="alive", actor=child.actor, restarts=child.restarts,
                               **status.model_dump())  # fmt: skip
        except (*_GONE, TimeoutError) as e:
            return ChildStatus(state=f"unreachable ({type(e).__name__})", **blank)

    # --- the supervisor's stream ------------------------------------------------------------
    async def _open_log(self, *, replace_history: bool = True) -> None:
        journal = self.children["journal"].handle
        position = await journal.open_stream.remote(SUPERVISOR_STREAM)
        records: list[EventRecord] = await journal.read_stream.remote(SUPERVISOR_STREAM, 0, None)
        self._log.epoch = position.epoch
        self._log.next_seq = (records[-1].seq if records else 0) + 1
        if not replace_history:
            return
        self._log.events = [decode_supervision_event(r.payload) for r in records]
        restarts = [
            e.role
            for e in self._log.events
            if isinstance(e, ChildStarted) and e.reason == "restart"
        ]
        self.total_restarts = len(restarts)
        for role, child in self.children.items():  # a restarted supervisor keeps the counts
            child.restarts = restarts.count(role)

    def _escalated_before(self) -> bool:
        escalations = [e for e in self._log.events if isinstance(e, Escalated)]
        if escalations:
            self.reason = escalations[-1].reason
        return bool(escalations)

    def _keep(self, event: SupervisionEvent) -> None:
        """Hold a decision for the next append to the supervisor stream."""
        self._log.events.append(event)
        self._unjournaled.append(event)

    async def _record(self, event: SupervisionEvent) -> None:
        """Append a decision to the supervisor stream; kept for later while the journal is down."""
        self._keep(event)
        await self._flush_log()

    def _note(self, event: SupervisionEvent) -> None:
        """Append a decision without waiting for its commit (a restart's report)."""
        self._keep(event)
        self._spawn(self._flush_log())

    async def _flush_log(self) -> None:
        async with self._flushing:  # one append at a time: each takes the events kept so far
            await self._flush_kept()

    async def _flush_kept(self) -> None:
        if not self._unjournaled:
            return
        journal = self.children["journal"]
        if journal.handle is None or journal.state != "alive":
            log.info("supervisor: journal down, %d events kept", len(self._unjournaled))
            return
        try:
            if self._log.epoch == 0:
                await self._open_log(replace_history=False)
            records = tuple(
                EventRecord(
                    stream_id=SUPERVISOR_STREAM,
                    seq=self._log.next_seq + i,
                    event_id=uuid.uuid4().hex,
                    type=e.kind,
                    workflow_id=getattr(e, "workflow_id", ""),
                    payload=e.model_dump_json(),
                )
                for i, e in enumerate(self._unjournaled)
            )
            batch = AppendBatch(stream_id=SUPERVISOR_STREAM, epoch=self._log.epoch, events=records)
            outcome = await asyncio.wait_for(journal.handle.append.remote(batch), CALL_TIMEOUT_S)
        except (*_GONE, TimeoutError) as e:
            log.warning("supervisor events not journaled yet (%r)", e)
            self._log.epoch = 0  # the commit may or may not have landed: reopen the stream
            return
        if isinstance(outcome, AppendRefusal):
            log.error("supervisor stream refused: %s", outcome.message)
            self._log.epoch = 0
            return
        self._log.next_seq += len(records)
        del self._unjournaled[: len(records)]  # events kept meanwhile go in the next append


def _brief(error: BaseException) -> str:
    """An error as its type and first line; a remote call's own error, not Ray's wrapper."""
    if isinstance(error, RayTaskError) and isinstance(error.cause, BaseException):
        error = error.cause
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def _discard(spare: asyncio.Task[_Spare]) -> None:
    """Kill a standby's process, now or once it has started."""

    def kill(task: asyncio.Task[_Spare]) -> None:
        if not task.cancelled() and task.exception() is None:
            ray.kill(task.result().handle, no_restart=True)

    if spare.done():
        kill(spare)
    else:
        spare.add_done_callback(kill)


async def _ask_serving(name: str) -> tuple[Any, str | None]:
    """A named actor's handle and the role it serves (None: a standby); no handle if it is
    gone. One that does not answer in time is killed: it may not serve beside a new one."""
    try:
        handle = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None, None
    try:
        serving: str | None = await asyncio.wait_for(handle.serving.remote(), CALL_TIMEOUT_S)
    except _GONE:
        return None, None
    except TimeoutError:
        log.warning("killing %s: no answer in %.0f s", name, CALL_TIMEOUT_S)
        ray.kill(handle, no_restart=True)
        return None, None
    return handle, serving


def _node_alive(node_id: str) -> bool:
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return any(n.get("NodeID") == node_id and n.get("Alive") for n in nodes)


class SupervisorActor(Supervisor):
    """Ray actor body of the supervisor. Ray restarts it after a crash; it then recovers itself."""

    def __init__(self, children: list[ChildSpec], policy: SupervisionPolicy | None = None) -> None:
        tune_malloc()
        reconstructed = ray.get_runtime_context().was_current_actor_reconstructed
        super().__init__(children, policy, reattach=reconstructed)
        tune_gc()
        if reconstructed:
            # nobody will call start(): re-attach to the children now
            ray.get_runtime_context().current_actor.start.remote()

    def pid(self) -> int:
        return os.getpid()
