"""`RayMetrics` sums the per-product hooks in the process and hands Ray one call per
series on `flush()`; the totals Ray gets are exactly what was recorded. The Ray
instruments are replaced by recorders of the calls they get (no cluster needed)."""

from __future__ import annotations

from actors.llm_pricing import ModelPrice, PriceTable
from actors.metrics import DEFINITIONS, STEP_SECONDS_BOUNDARIES, RayMetrics
from actors.models import TokenUsage
from actors.ports import LLMProvenance


class Instrument:
    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []

    def inc(self, value: float, tags: dict[str, str]) -> None:
        assert value > 0  # Ray refuses anything else
        self.calls.append((value, dict(tags)))

    def observe(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, dict(tags)))

    def set(self, value: float, tags: dict[str, str]) -> None:
        self.calls.append((value, dict(tags)))


def _metrics() -> tuple[RayMetrics, dict[str, Instrument]]:
    instruments = {d.name: Instrument() for d in DEFINITIONS}
    prices = PriceTable(prices={"m": ModelPrice(input=1.0, output=2.0)})
    return RayMetrics("product", "product-agent-0", prices, instruments), instruments


def _provenance(input_tokens: int, output_tokens: int) -> LLMProvenance:
    usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
    return LLMProvenance(model="m", prompt_version="v1", usage=usage)


def test_hooks_reach_ray_only_on_flush_one_call_per_series_with_the_exact_sums() -> None:
    metrics, m = _metrics()
    for _ in range(500):
        metrics.message_processed("process_product")
        metrics.llm_call("generate_listing", _provenance(100, 40))
    for _ in range(3):
        metrics.message_processed("resume_workflow")
    assert all(not i.calls for i in m.values())  # nothing yet: summed in the process

    metrics.flush()
    agent = {"role": "product", "agent": "product-agent-0"}
    assert sorted(m["swarm_messages_processed"].calls, key=lambda c: c[0]) == [
        (3, {**agent, "type": "resume_workflow"}),
        (500, {**agent, "type": "process_product"}),
    ]
    assert m["swarm_llm_calls"].calls == [
        (500, {**agent, "step": "generate_listing", "model": "m"})
    ]
    tokens = {c[1]["kind"]: c[0] for c in m["swarm_llm_tokens"].calls}
    assert tokens == {"input": 50_000, "output": 20_000}
    [(usd, _)] = m["swarm_llm_cost_usd"].calls
    assert abs(usd - 500 * (100 * 1.0 + 40 * 2.0) / 1e6) < 1e-12

    metrics.flush()  # nothing new: no call at all (Ray refuses an increment of 0)
    assert len(m["swarm_messages_processed"].calls) == 2


def test_step_times_arrive_as_cumulative_buckets_count_and_sum() -> None:
    metrics, m = _metrics()
    times = [0.0005, 0.001, 0.003, 0.2, 0.2, 7.0, 500.0]
    for seconds in times:
        metrics.step_finished("generate_listing", seconds, failed=False)
    metrics.step_finished("generate_listing", 0.02, failed=True)
    metrics.flush()

    ok = {"role": "product", "agent": "product-agent-0", "step": "generate_listing",
          "outcome": "ok"}  # fmt: skip
    assert (len(times), ok) in m["swarm_steps"].calls
    [seconds] = [v for v, tags in m["swarm_step_seconds"].calls if tags == ok]
    assert abs(seconds - sum(times)) < 1e-9
    buckets = {t["le"]: v for v, t in m["swarm_step_seconds_bucket"].calls if t["outcome"] == "ok"}
    # cumulative, as Prometheus' buckets: each `le` counts every step at most that long
    for bound in STEP_SECONDS_BOUNDARIES:
        expected = sum(1 for t in times if t <= bound)
        assert buckets.get(repr(float(bound)), 0) == expected
    assert buckets["+Inf"] == len(times)
    failed = {t["le"]: v for v, t in m["swarm_step_seconds_bucket"].calls
              if t["outcome"] == "failed"}  # fmt: skip
    assert failed == {repr(float(b)): 1 for b in STEP_SECONDS_BOUNDARIES if b >= 0.02} | {"+Inf": 1}

    metrics.step_finished("generate_listing", 0.2, failed=False)
    metrics.flush()  # the next flush adds only what came since
    assert m["swarm_steps"].calls[-1] == (1, ok)
