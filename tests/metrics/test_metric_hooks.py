"""The metric hooks, without Ray: a product agent on an in-process journal records
its messages, steps, LLM calls and recoveries through the `SwarmMetrics` it is given.
The marketplace is the HTTP stub on 127.0.0.1, the writer the offline one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import pytest

from actors.durable import AgentConfig
from actors.events import ListingGenerated, decode_event
from actors.metrics import SwarmMetrics
from actors.models import Product
from actors.ports import LLMProvenance
from actors.product_agent import ProductAgent
from actors.protocol import STEP_LISTING, STEP_UPLOAD, STEP_VALIDATE, Envelope, ProcessProduct
from actors.ray_actors import sample_every
from actors.validation import validate_product_data
from storage.journal import Journal
from storage.memory import InMemoryEventStore
from supervisor.child_starts import ChildStarts
from swarm.feeds import parse_feed
from swarm.llm_offline import OfflineWriter
from swarm.marketplace_http import HttpMarketplace, HttpMarketplaceConfig
from swarm.settings import SAMPLE_CATALOG
from tests.servers.marketplace_stub import MarketplaceStub
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


class RecordingMetrics(SwarmMetrics):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def message_processed(self, message_type: str) -> None:
        self.calls.append(("processed", message_type))

    def message_failed(self, message_type: str) -> None:
        self.calls.append(("failed", message_type))

    def message_dead_lettered(self) -> None:
        self.calls.append(("dead_lettered",))

    def step_finished(self, step: str, seconds: float, *, failed: bool) -> None:
        assert seconds >= 0
        self.calls.append(("step", step, failed))

    def llm_call(self, step: str, provenance: LLMProvenance) -> None:
        self.calls.append(("llm", step, provenance))

    def recovered(
        self, *, events_replayed: int, snapshot_age_s: float | None, serve_ms: float
    ) -> None:
        self.calls.append(("recovered", events_replayed, snapshot_age_s, serve_ms))

    def sampled(self, *, mailbox_depth: int, workflows: Mapping[str, int]) -> None:
        self.calls.append(("sampled", mailbox_depth, dict(workflows)))

    def child_started(self, role: str, name: str) -> None:
        self.calls.append(("started", role, name))

    def child_restarted(self, role: str, name: str) -> None:
        self.calls.append(("restarted", role, name))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


class DropTransport:
    """The agent's sends are durable in the journal; nobody else runs in these tests."""

    def send(self, recipient: str, bodies: list[str]) -> None:
        return None


@pytest.fixture
def marketplace_stub() -> Iterator[MarketplaceStub]:
    with MarketplaceStub() as stub:
        yield stub


MakeAgent = Callable[[RecordingMetrics], ProductAgent]
Scenario = Callable[[Journal, MakeAgent], Awaitable[None]]


@pytest.fixture
def run_scenario(marketplace_stub: MarketplaceStub) -> Callable[[Scenario], None]:
    """Run `scenario(journal, make_agent)` in a fresh loop on a fresh in-memory journal."""

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            journal = Journal(InMemoryEventStore())
            await journal.start()
            try:
                await scenario(journal, _agent_factory(journal, marketplace_stub))
            finally:
                await journal.stop()

        asyncio.run(main())

    return run


def _agent_factory(journal: Journal, marketplace_stub: MarketplaceStub) -> MakeAgent:
    def make(metrics: RecordingMetrics) -> ProductAgent:
        config = AgentConfig(name="product-agent-0", role="product-upload", snapshot_every=3)
        marketplace = HttpMarketplace(HttpMarketplaceConfig(base_url=marketplace_stub.url))
        agent = ProductAgent(
            config, journal, DropTransport(), OfflineWriter(), marketplace, ("marketing-agent-0",)
        )
        agent.metrics = metrics
        return agent

    return make


def sample_products(valid: bool) -> list[Product]:
    products = parse_feed(SAMPLE_CATALOG).products
    return [p for p in products if (not validate_product_data(p)) == valid]


def process(product: Product) -> Envelope:
    return Envelope.wrap(
        ProcessProduct(run_id="run-test", product=product),
        sender="coordinator",
        recipient="product-agent-0",
        workflow_id=f"run-test:{product.product_id}",
    )


def test_each_step_and_the_llm_call_are_recorded_once(
    run_scenario: Callable[[Scenario], None],
) -> None:
    run_scenario(_each_step_and_the_llm_call_are_recorded_once)


async def _each_step_and_the_llm_call_are_recorded_once(
    journal: Journal, make_agent: MakeAgent
) -> None:
    metrics = RecordingMetrics()
    agent = make_agent(metrics)
    await agent.start()
    product = sample_products(valid=True)[0]
    await agent.deliver([process(product).model_dump_json()])
    # the message counts as processed once its handler returns, after the hand-off commit
    await eventually(
        lambda: ("step", "handoff", False) in metrics.calls and bool(metrics.of("processed"))
    )
    await agent.stop()

    steps = [c[1:] for c in metrics.of("step")]
    assert steps == [(s, False) for s in (STEP_VALIDATE, STEP_LISTING, STEP_UPLOAD, "handoff")]
    assert metrics.of("processed") == [("processed", "process_product")]
    [listing] = [r for r in await journal.read_stream("product-agent-0")
                 if r.type == "listing_generated"]  # fmt: skip
    event = decode_event(listing.type, listing.schema_version, listing.payload)
    assert isinstance(event, ListingGenerated)
    assert metrics.of("llm") == [("llm", STEP_LISTING, event.provenance)]


def test_a_failed_validation_is_a_failed_step(run_scenario: Callable[[Scenario], None]) -> None:
    run_scenario(_a_failed_validation_is_a_failed_step)


async def _a_failed_validation_is_a_failed_step(journal: Journal, make_agent: MakeAgent) -> None:
    metrics = RecordingMetrics()
    agent = make_agent(metrics)
    await agent.start()
    await agent.deliver([process(sample_products(valid=False)[0]).model_dump_json()])
    await eventually(lambda: bool(metrics.of("step")))
    await agent.stop()
    assert metrics.of("step") == [("step", STEP_VALIDATE, True)]
    assert metrics.of("llm") == []


def test_an_unreadable_message_counts_as_failed_and_dead_lettered(
    run_scenario: Callable[[Scenario], None],
) -> None:
    run_scenario(_an_unreadable_message_counts_as_failed_and_dead_lettered)


async def _an_unreadable_message_counts_as_failed_and_dead_lettered(
    journal: Journal, make_agent: MakeAgent
) -> None:
    metrics = RecordingMetrics()
    agent = make_agent(metrics)
    await agent.start()
    await agent.deliver(['{"type": "no_such_message", "message_id": "m1"}'])
    await agent.stop()
    assert metrics.of("failed") == [("failed", "invalid")]
    assert metrics.of("dead_lettered") == [("dead_lettered",)]
    assert metrics.of("processed") == []


def test_a_recovery_reports_the_events_it_replayed_after_the_snapshot(
    run_scenario: Callable[[Scenario], None],
) -> None:
    run_scenario(_a_recovery_reports_the_events_it_replayed_after_the_snapshot)


async def _a_recovery_reports_the_events_it_replayed_after_the_snapshot(
    journal: Journal, make_agent: MakeAgent
) -> None:
    first = RecordingMetrics()
    agent = make_agent(first)
    await agent.start()
    for product in sample_products(valid=True)[:3]:
        await agent.deliver([process(product).model_dump_json()])
    await eventually(lambda: sum(1 for c in first.of("step") if c[1] == "handoff") == 3)
    await agent.stop()
    assert first.of("recovered")[0][1:3] == (0, None)  # a fresh stream: nothing to replay

    again = RecordingMetrics()
    recovered = make_agent(again)
    await recovered.start()
    await recovered.stop()
    stream = await journal.read_stream("product-agent-0")
    snapshot = await journal.latest_snapshot("product-agent-0")
    assert snapshot is not None
    [(_, replayed, age, serve_ms)] = again.of("recovered")
    assert replayed == stream[-1].seq - snapshot.seq
    assert age is not None
    assert age >= 0
    assert serve_ms > 0


def test_a_childs_second_start_is_a_restart() -> None:
    metrics = RecordingMetrics()
    starts = ChildStarts(metrics)
    starts.started("product-upload", "product-agent-0")
    starts.started("product-upload", "product-agent-1")
    starts.started("product-upload", "product-agent-0")
    assert (starts.restarts("product-agent-0"), starts.restarts("product-agent-1")) == (1, 0)
    assert metrics.of("started") == [
        ("started", "product-upload", "product-agent-0"),
        ("started", "product-upload", "product-agent-1"),
        ("started", "product-upload", "product-agent-0"),
    ]
    assert metrics.of("restarted") == [("restarted", "product-upload", "product-agent-0")]


class FlakyMetrics(RecordingMetrics):
    """A metrics backend whose first `failures` flushes raise, as an unreachable one would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def flush(self) -> None:
        self.calls.append(("flush",))
        if len(self.of("flush")) <= self.failures:
            raise RuntimeError("metrics backend unreachable")


def test_the_sampler_goes_on_when_metrics_fail(
    run_scenario: Callable[[Scenario], None], caplog: pytest.LogCaptureFixture
) -> None:
    run_scenario(lambda journal, make_agent: _the_sampler_goes_on(make_agent, caplog))


async def _the_sampler_goes_on(make_agent: MakeAgent, caplog: pytest.LogCaptureFixture) -> None:
    metrics = FlakyMetrics(failures=3)
    agent = make_agent(metrics)
    await agent.start()
    with caplog.at_level(logging.INFO, logger="actors.ray_actors"):
        sampler = asyncio.ensure_future(sample_every(agent, 0.001))
        try:
            await eventually(lambda: len(metrics.of("flush")) >= 6, what="six sampling rounds")
            assert not sampler.done()  # three failed rounds did not end it
        finally:
            sampler.cancel()
            await agent.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "actors.ray_actors"]
    # one line when the failures start (with the traceback), one when they end
    assert messages == [
        "product-agent-0: metrics failed; retrying every 0.001 s",
        "product-agent-0: metrics recorded again",
    ]
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.exc_info is not None
