"""The supervisor: starts the swarm's children in order, reports on them, stops them.

It owns the child actors: each is a named actor in the `swarm` namespace,
created with `num_cpus=0` (agents wait on I/O, so two cores hold the whole
swarm). Children start in spec order (the journal first, then the agents that
write to it) and stop in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import ray

from actors.durable import RecoveryReport
from actors.metrics import RayMetrics
from actors.ray_actors import NAMESPACE, AgentActor, AgentStatus
from storage.journal_actor import JournalActor
from supervisor.child_spec import ChildSpec
from supervisor.child_starts import ChildStarts

log = logging.getLogger(__name__)


class ChildStatus(AgentStatus):
    state: str
    restarts: int = 0


class Supervisor:
    def __init__(self, children: list[ChildSpec], detached: bool = False) -> None:
        self.children = children
        self.detached = detached
        self.handles: dict[str, Any] = {}
        self.reports: dict[str, RecoveryReport] = {}
        self.starts = ChildStarts(RayMetrics("supervisor", "supervisor"))

    def _create(self, spec: ChildSpec) -> Any:
        options: dict[str, Any] = {
            "name": spec.name,
            "namespace": NAMESPACE,
            "num_cpus": 0,
            "max_concurrency": spec.max_concurrency,
        }
        if self.detached:
            options["lifetime"] = "detached"
        self.starts.started(spec.role, spec.name)
        if spec.journal is not None:
            cls = ray.remote(JournalActor)
            return cls.options(**options).remote(spec.journal.path, spec.journal.synchronous)
        return ray.remote(AgentActor).options(**options).remote(spec.agent)

    async def start(self) -> list[RecoveryReport]:
        """Start every child in order; agents recover from the log as they start."""
        for spec in self.children:
            handle = self._create(spec)
            self.handles[spec.name] = handle
            if spec.journal is not None:
                await handle.start.remote()
                continue
        reports = await asyncio.gather(
            *(self.handles[s.name].start.remote() for s in self.children if s.agent is not None)
        )
        for report in reports:
            self.reports[report.agent] = report
        return list(reports)

    async def status(self) -> list[ChildStatus]:
        rows: list[ChildStatus] = []
        for spec in self.children:
            handle = self.handles.get(spec.name)
            rows.append(await self._child_status(spec, handle))
        return rows

    async def _child_status(self, spec: ChildSpec, handle: Any) -> ChildStatus:
        blank = {
            "name": spec.name, "role": spec.role, "pid": 0, "node_id": "", "epoch": 0,
            "last_seq": 0, "in_flight": 0, "processed": 0, "completed": 0, "failed": 0,
            "restarts": self.starts.restarts(spec.name),
        }  # fmt: skip
        if handle is None:
            return ChildStatus(state="not started", **blank)
        try:
            if spec.journal is not None:
                pid = await asyncio.wait_for(handle.pid.remote(), 5)
                stats = await asyncio.wait_for(handle.stats.remote(), 5)
                blank.update(pid=pid, processed=stats["batches"], last_seq=stats["events"])
                return ChildStatus(state="alive", **blank)
            status: AgentStatus = await asyncio.wait_for(handle.status.remote(), 5)
            return ChildStatus(state="alive", restarts=blank["restarts"], **status.model_dump())
        except (ray.exceptions.RayActorError, TimeoutError) as e:
            return ChildStatus(state=f"dead ({type(e).__name__})", **blank)

    async def stop(self) -> None:
        """Stop children in reverse start order."""
        for spec in reversed(self.children):
            handle = self.handles.pop(spec.name, None)
            if handle is not None:
                ray.kill(handle, no_restart=True)


class SupervisorActor(Supervisor):
    """Ray actor body of the supervisor."""

    def pid(self) -> int:
        return os.getpid()
