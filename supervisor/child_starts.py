"""How often the supervisor started each child: every start after a child's first is a restart.

The hook: the supervisor calls `ChildStarts.started(role, name)` each time it
creates a child actor. That counts `swarm_actor_starts_total{role, agent}`
and, from a child's second start on, `swarm_restarts_total{role, agent}`, and
it is where `python -m swarm status` reads a child's restarts. A supervisor
that restarts a child by creating it again calls `started` as for a first
start and the restart is counted. A restart made without creating the actor
here (Ray's own `max_restarts`, a child re-attached after the supervisor
itself came back) is reported with `restarted(role, name)`.

The counts live in the supervisor's process: a restarted supervisor counts
from zero again, while the Prometheus series of the previous one remain.
"""

from __future__ import annotations

from collections import Counter

from actors.metrics import NO_METRICS, SwarmMetrics


class ChildStarts:
    def __init__(self, metrics: SwarmMetrics = NO_METRICS) -> None:
        self.metrics = metrics
        self._starts: Counter[str] = Counter()
        self._restarts: Counter[str] = Counter()

    def started(self, role: str, name: str) -> None:
        """The supervisor created the child `name`; a second or later start is a restart."""
        self._starts[name] += 1
        self.metrics.child_started(role, name)
        if self._starts[name] > 1:
            self.restarted(role, name)

    def restarted(self, role: str, name: str) -> None:
        """The child `name` runs again after it died."""
        self._restarts[name] += 1
        self.metrics.child_restarted(role, name)

    def starts(self, name: str) -> int:
        return self._starts[name]

    def restarts(self, name: str) -> int:
        return self._restarts[name]
