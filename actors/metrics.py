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

The per-product hooks (messages, steps, LLM calls) sit on the hot path, so
`RayMetrics` only adds them to sums held in the process, and `flush()` (the Ray
host calls it every second) hands each series' sum to Ray in one call. Step times
are counters too, cumulative by bucket like a Prometheus histogram's
(`histogram_quantile` works on `ray_swarm_step_seconds_bucket_total`): Ray's
metrics agent re-records every histogram observation one by one in Python, about
10 µs each, and with a record call per step and message the metrics cost 10% of
the swarm's CPU at 1,000 products/s. Nothing here blocks or raises into the agent.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from actors.llm_pricing import PriceTable
from actors.ports import LLMProvenance

STEP_SECONDS_BOUNDARIES = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120]
RECOVERY_SECONDS_BOUNDARIES = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60]

_AGENT = ("role", "agent")
_STEP = (*_AGENT, "step", "outcome")


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
    MetricDefinition("swarm_steps", "counter", (*_STEP,),
                     "Workflow steps run at an agent, by step and outcome (ok, failed)."),
    MetricDefinition("swarm_step_seconds", "counter", (*_STEP,),
                     "Seconds spent in workflow steps, effect and commit included: its rate "
                     "over swarm_steps' is the mean time of a step."),
    MetricDefinition("swarm_step_seconds_bucket", "counter", (*_STEP, "le"),
                     "Steps that took at most `le` seconds (cumulative buckets, as in a "
                     "Prometheus histogram; a bucket appears with its first step)."),
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

    def flush(self) -> None:
        """Hand what the hooks gathered since the last flush to the metrics backend."""


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


@dataclass
class _StepTimes:
    """One step series' observations since the last flush, bucketed."""

    count: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(STEP_SECONDS_BOUNDARIES) + 1))
    """Steps per bucket: `buckets[i]` took at most `STEP_SECONDS_BOUNDARIES[i]` and more than
    the bound before; the last, more than every bound."""

    def add(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        self.buckets[bisect_left(STEP_SECONDS_BOUNDARIES, seconds)] += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, steps at most that long) for every bound some step fell under, and +Inf."""
        out, running = [], 0
        for bound, count in zip((*STEP_SECONDS_BOUNDARIES, None), self.buckets, strict=True):
            running += count
            if running:
                out.append(("+Inf" if bound is None else repr(float(bound)), running))
        return out


class RayMetrics(SwarmMetrics):
    """Records through `ray.util.metrics`, tagged with this actor's role and name.

    Messages, steps and LLM calls add to this process's sums; `flush()` hands them to
    Ray (see the module's text). The rest (failures, recoveries, samples, starts) is
    rare or periodic and goes to Ray at once.
    """

    def __init__(
        self,
        role: str,
        agent: str,
        prices: PriceTable | None = None,
        instruments: Mapping[str, Any] | None = None,
    ) -> None:
        self.tags = {"role": role, "agent": agent}
        self.prices = prices or PriceTable()
        self._m = _instruments() if instruments is None else instruments
        self._sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        """(counter, its tags beyond role and agent) -> amount since the last flush."""
        self._steps: dict[tuple[str, str], _StepTimes] = {}
        """(step, outcome) -> its times since the last flush."""

    def _with(self, **tags: str) -> dict[str, str]:
        return {**self.tags, **tags}

    def _add(self, name: str, amount: float, *tags: tuple[str, str]) -> None:
        key = (name, tags)
        self._sums[key] = self._sums.get(key, 0) + amount

    def flush(self) -> None:
        sums, self._sums = self._sums, {}
        steps, self._steps = self._steps, {}
        m = self._m
        for (name, extra), amount in sums.items():
            m[name].inc(amount, self._with(**dict(extra)))
        for (step, outcome), times in steps.items():
            tags = self._with(step=step, outcome=outcome)
            m["swarm_steps"].inc(times.count, tags)
            if times.seconds > 0:
                m["swarm_step_seconds"].inc(times.seconds, tags)
            for le, count in times.cumulative():
                m["swarm_step_seconds_bucket"].inc(count, {**tags, "le": le})

    def message_processed(self, message_type: str) -> None:
        self._add("swarm_messages_processed", 1, ("type", message_type))

    def message_failed(self, message_type: str) -> None:
        self._m["swarm_messages_failed"].inc(1, self._with(type=message_type))

    def message_dead_lettered(self) -> None:
        self._m["swarm_dead_letters"].inc(1, self.tags)

    def step_finished(self, step: str, seconds: float, *, failed: bool) -> None:
        key = (step, "failed" if failed else "ok")
        times = self._steps.get(key)
        if times is None:
            times = self._steps[key] = _StepTimes()
        times.add(seconds)

    def llm_call(self, step: str, provenance: LLMProvenance) -> None:
        model, usage = provenance.model, provenance.usage
        self._add("swarm_llm_calls", 1, ("step", step), ("model", model))
        for kind, tokens in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            if tokens:
                self._add("swarm_llm_tokens", tokens, ("model", model), ("kind", kind))
        cost = self.prices.cost(model, usage)
        if cost.usd:
            self._add("swarm_llm_cost_usd", cost.usd, ("model", model))

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
