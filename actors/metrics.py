"""The swarm's metrics: every definition in one place, behind the hooks agents call.

`SwarmMetrics` is the interface and its own no-op implementation: plain unit
tests and agents built outside Ray use `NO_METRICS`. `RayMetrics` records
through `ray.util.metrics`, which Ray exports from every node's metrics agent
to Prometheus and the dashboard (each name gets Ray's `ray_` prefix, counters
a `_total` suffix). Every series carries `role` and `agent` tags, so the
dashboard groups by role and singles out one actor.

Counters and histograms count from each process's start: after a restart a
new series begins (Ray adds a `WorkerId` tag), which Prometheus' `rate` and
`increase` handle. Gauges are sampled state (mailbox depth, workflows by
status) or describe the latest recovery; they are set, never summed.

Recording is cheap (a few microseconds a call), so hooks sit on the hot path
directly; nothing here blocks or raises into the agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from actors.llm_pricing import PriceTable
from actors.ports import LLMProvenance

STEP_SECONDS_BOUNDARIES = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120]
RECOVERY_SECONDS_BOUNDARIES = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60]

_AGENT = ("role", "agent")


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    kind: str
    """"counter", "gauge" or "histogram"."""
    tags: tuple[str, ...]
    description: str
    boundaries: tuple[float, ...] = ()


DEFINITIONS: tuple[MetricDefinition, ...] = (
    MetricDefinition("swarm_messages_processed", "counter", (*_AGENT, "type"),
                     "Messages an agent handled to the end, by message type."),
    MetricDefinition("swarm_messages_failed", "counter", (*_AGENT, "type"),
                     "Messages whose handling raised, or that could not be decoded "
                     "(type 'invalid'), by message type."),
    MetricDefinition("swarm_dead_letters", "counter", _AGENT,
                     "Messages an agent rejected to the dead-letter table."),
    MetricDefinition("swarm_mailbox_depth", "gauge", _AGENT,
                     "Messages delivered to an agent and not yet processed."),
    MetricDefinition("swarm_workflows", "gauge", (*_AGENT, "status"),
                     "Workflows an agent holds or has finished, by status (running, "
                     "handed_off, completed, failed); the coordinator's are the swarm's."),
    MetricDefinition("swarm_step_seconds", "histogram", (*_AGENT, "step", "outcome"),
                     "Time of one workflow step at an agent, effect and commit included.",
                     tuple(STEP_SECONDS_BOUNDARIES)),
    MetricDefinition("swarm_llm_calls", "counter", (*_AGENT, "step", "model"),
                     "LLM calls that returned a result (the run ledger counts recorded ones)."),
    MetricDefinition("swarm_llm_tokens", "counter", (*_AGENT, "model", "kind"),
                     "LLM tokens from the responses' usage; kind is input or output."),
    MetricDefinition("swarm_llm_cost_usd", "counter", (*_AGENT, "model"),
                     "Estimated LLM cost in USD from the configured prices per model."),
    MetricDefinition("swarm_recoveries", "counter", _AGENT,
                     "Agent starts, each a recovery from snapshot and log."),
    MetricDefinition("swarm_recovery_seconds", "histogram", _AGENT,
                     "Time from an agent's start to serving again.",
                     tuple(RECOVERY_SECONDS_BOUNDARIES)),
    MetricDefinition("swarm_recovery_events_replayed", "gauge", _AGENT,
                     "Events the latest recovery replayed after its snapshot."),
    MetricDefinition("swarm_recovery_snapshot_age_seconds", "gauge", _AGENT,
                     "Age of the snapshot the latest recovery started from (-1: none)."),
    MetricDefinition("swarm_recovery_serve_ms", "gauge", _AGENT,
                     "Milliseconds the latest recovery took until the agent served again."),
    MetricDefinition("swarm_actor_starts", "counter", _AGENT,
                     "Children the supervisor started (first starts and restarts)."),
    MetricDefinition("swarm_restarts", "counter", _AGENT,
                     "Children the supervisor restarted."),
)  # fmt: skip


class SwarmMetrics:
    """The hooks the swarm records through. This base records nothing."""

    def message_processed(self, message_type: str) -> None:
        """A delivered message was handled to the end."""

    def message_failed(self, message_type: str) -> None:
        """A delivered message's handler raised, or the message could not be decoded."""

    def message_dead_lettered(self) -> None:
        """A message went to the dead-letter table."""

    def step_finished(self, step: str, seconds: float, *, failed: bool) -> None:
        """A workflow step ran and its result (or failure) was committed."""

    def llm_call(self, step: str, provenance: LLMProvenance) -> None:
        """An LLM call's result was recorded; its usage says what it cost."""

    def recovered(
        self, *, events_replayed: int, snapshot_age_s: float | None, serve_ms: float
    ) -> None:
        """An agent incarnation rebuilt its state and serves again."""

    def sampled(self, *, mailbox_depth: int, workflows: Mapping[str, int]) -> None:
        """The agent's current state, sampled periodically."""

    def child_started(self, role: str, name: str) -> None:
        """The supervisor started a child (any start, a restart included)."""

    def child_restarted(self, role: str, name: str) -> None:
        """The supervisor restarted a child that had run before."""


NO_METRICS = SwarmMetrics()


@cache
def _instruments() -> dict[str, Any]:
    """This process's Ray metric objects, made once on first use."""
    from ray.util.metrics import Counter, Gauge, Histogram

    made: dict[str, Any] = {}
    for d in DEFINITIONS:
        if d.kind == "counter":
            made[d.name] = Counter(d.name, d.description, tag_keys=d.tags)
        elif d.kind == "gauge":
            made[d.name] = Gauge(d.name, d.description, tag_keys=d.tags)
        else:
            made[d.name] = Histogram(
                d.name, d.description, boundaries=list(d.boundaries), tag_keys=d.tags
            )
    return made


class RayMetrics(SwarmMetrics):
    """Records through `ray.util.metrics`, tagged with this actor's role and name."""

    def __init__(self, role: str, agent: str, prices: PriceTable | None = None) -> None:
        self.tags = {"role": role, "agent": agent}
        self.prices = prices or PriceTable()
        self._m = _instruments()

    def _with(self, **tags: str) -> dict[str, str]:
        return {**self.tags, **tags}

    def message_processed(self, message_type: str) -> None:
        self._m["swarm_messages_processed"].inc(1, self._with(type=message_type))

    def message_failed(self, message_type: str) -> None:
        self._m["swarm_messages_failed"].inc(1, self._with(type=message_type))

    def message_dead_lettered(self) -> None:
        self._m["swarm_dead_letters"].inc(1, self.tags)

    def step_finished(self, step: str, seconds: float, *, failed: bool) -> None:
        tags = self._with(step=step, outcome="failed" if failed else "ok")
        self._m["swarm_step_seconds"].observe(seconds, tags)

    def llm_call(self, step: str, provenance: LLMProvenance) -> None:
        model, usage = provenance.model, provenance.usage
        self._m["swarm_llm_calls"].inc(1, self._with(step=step, model=model))
        for kind, tokens in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            if tokens:
                self._m["swarm_llm_tokens"].inc(tokens, self._with(model=model, kind=kind))
        cost = self.prices.cost(model, usage)
        if cost.usd:
            self._m["swarm_llm_cost_usd"].inc(cost.usd, self._with(model=model))

    def recovered(
        self, *, events_replayed: int, snapshot_age_s: float | None, serve_ms: float
    ) -> None:
        m = self._m
        m["swarm_recoveries"].inc(1, self.tags)
        m["swarm_recovery_seconds"].observe(serve_ms / 1000, self.tags)
        m["swarm_recovery_events_replayed"].set(events_replayed, self.tags)
        age = -1.0 if snapshot_age_s is None else snapshot_age_s
        m["swarm_recovery_snapshot_age_seconds"].set(age, self.tags)
        m["swarm_recovery_serve_ms"].set(serve_ms, self.tags)

    def sampled(self, *, mailbox_depth: int, workflows: Mapping[str, int]) -> None:
        self._m["swarm_mailbox_depth"].set(mailbox_depth, self.tags)
        for status, count in workflows.items():
            self._m["swarm_workflows"].set(count, self._with(status=status))

    def child_started(self, role: str, name: str) -> None:
        self._m["swarm_actor_starts"].inc(1, {"role": role, "agent": name})

    def child_restarted(self, role: str, name: str) -> None:
        self._m["swarm_restarts"].inc(1, {"role": role, "agent": name})
