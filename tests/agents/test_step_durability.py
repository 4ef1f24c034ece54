"""Steps and commits: an effect starts only once everything before it is durable, a message
leaves only after the commit that records it, and the coordinator holds new workflows back
past its in-flight limit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.coordinator import Coordinator
from actors.durable import AgentConfig, AgentSnapshot
from actors.marketing_agent import MarketingAgent
from actors.models import Product
from actors.product_agent import ProductAgent
from actors.protocol import Envelope, FaultPlan, WorkflowFinished, decode_envelope
from storage.memory import InMemoryEventStore
from tests.agents.harness import (
    AGENT,
    CatalogMarketplace,
    LocalTransport,
    RecordingJournal,
    WatchedWriter,
    process_product,
    product,
    run,
)
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def process_product_body(i: int) -> str:
    return process_product(i).model_dump_json()


class ProductAgentRig:
    """A product agent with its journal, transport, writer and marketplace, in this loop."""

    def __init__(
        self,
        snapshot_every: int = 2_000,
        effect_concurrency: int = 64,
        commit_linger_s: float = 0.0,
        commit_batch_records: int = 64,
        row_delay_s: float = 0.0,
    ) -> None:
        self.journal = RecordingJournal(InMemoryEventStore())
        self.transport = LocalTransport()
        self.writer = WatchedWriter()
        self.marketplace = CatalogMarketplace(self.journal)
        self.snapshot_every = snapshot_every
        self.effect_concurrency = effect_concurrency
        self.commit = {
            "commit_linger_s": commit_linger_s, "commit_batch_records": commit_batch_records,
            "row_delay_s": row_delay_s,
        }  # fmt: skip
        self.agent = self.new_agent()

    def new_agent(self) -> ProductAgent:
        config = AgentConfig(
            name=AGENT, role="product-upload", snapshot_every=self.snapshot_every, **self.commit
        )
        return ProductAgent(
            config, self.journal, self.transport, self.writer, self.marketplace,
            ("marketing-agent-0",), effect_concurrency=self.effect_concurrency,
        )  # fmt: skip

    def handed_off(self) -> list[str]:
        return [
            body for r, bodies in self.transport.pushed if r != "coordinator" for body in bodies
        ]


def test_listing_starts_only_once_accept_and_validation_are_durable() -> None:
    async def scenario() -> dict[str, list[str]]:
        rig = ProductAgentRig()
        await rig.journal.start()
        seen: dict[str, list[str]] = {}

        def on_listing(p: Product) -> None:
            seen[p.product_id] = rig.journal.committed_types(f"r:{p.product_id}")

        rig.writer.on_listing = on_listing
        await rig.agent.start()
        await rig.agent.deliver([process_product_body(i) for i in range(20)])
        await eventually(lambda: len(rig.handed_off()) == 20)
        return seen

    seen = run(scenario())
    assert len(seen) == 20
    assert all(types == ["workflow_accepted", "product_validated"] for types in seen.values())


def test_upload_starts_only_once_the_listing_is_durable() -> None:
    async def scenario() -> list[list[str]]:
        rig = ProductAgentRig()
        await rig.journal.start()
        seen: list[list[str]] = []
        rig.marketplace.on_put = lambda listing: seen.append(
            rig.journal.committed_types(f"r:{listing.product_id}")
        )
        await rig.agent.start()
        await rig.agent.deliver([process_product_body(i) for i in range(20)])
        await eventually(lambda: len(rig.handed_off()) == 20)
        return seen

    seen = run(scenario())
    assert len(seen) == 20
    assert all(types[-1] == "listing_generated" for types in seen)


def test_completions_that_trickle_in_share_a_lingering_commit() -> None:
    """LLM calls finish one by one; a small commit waits `commit_linger_s` for company."""

    async def scenario() -> list[int]:
        rig = ProductAgentRig(commit_linger_s=0.5)
        await rig.journal.start()
        ids = [product(i).product_id for i in range(4)]
        rig.writer.held = {pid: asyncio.Event() for pid in ids}
        started: list[str] = []
        rig.writer.on_listing = lambda p: started.append(p.product_id)
        await rig.agent.start()
        await rig.agent.deliver([process_product_body(i) for i in range(4)])
        await eventually(lambda: len(started) == 4)
        for pid in ids:  # each listing finishes after the last one's commit began to wait
            rig.writer.held[pid].set()
            await eventually(lambda: bool(rig.agent._pending))
        await eventually(lambda: len(rig.handed_off()) == 4)
        return [
            sum(1 for e in batch.events if e.type == "listing_generated")
            for batch in rig.journal.committed
            if any(e.type == "listing_generated" for e in batch.events)
        ]

    assert run(scenario()) == [4]


def test_a_commit_that_fills_its_batch_does_not_linger() -> None:
    async def scenario() -> int:
        rig = ProductAgentRig(commit_linger_s=60.0, commit_batch_records=1)
        await rig.journal.start()
        await rig.agent.start()
        await rig.agent.deliver([process_product_body(i) for i in range(20)])
        await eventually(lambda: len(rig.handed_off()) == 20, timeout_s=20)
        return len(rig.handed_off())

    assert run(scenario()) == 20


def test_hand_off_message_leaves_only_after_its_commit() -> None:
    async def scenario() -> list[list[str]]:
        rig = ProductAgentRig()
        await rig.journal.start()
        seen: list[list[str]] = []

        def on_send(recipient: str, bodies: list[str]) -> None:
            for body in bodies:
                seen.append(rig.journal.committed_types(decode_envelope(body).workflow_id))

        rig.transport.on_send = on_send
        await rig.agent.start()
        await rig.agent.deliver([process_product_body(i) for i in range(20)])
        await eventually(lambda: len(rig.handed_off()) == 20)
        return seen

    seen = run(scenario())
    assert len(seen) == 20
    assert all(types[-2:] == ["upload_confirmed", "workflow_handed_off"] for types in seen)


def test_an_upload_does_not_wait_for_listings_still_being_written() -> None:
    """Every LLM slot busy must not stop a workflow whose listing is done from moving on."""

    async def scenario() -> tuple[int, bool]:
        rig = ProductAgentRig(effect_concurrency=1)
        await rig.journal.start()
        gate = rig.writer.held["beanie-1"] = asyncio.Event()
        await rig.agent.start()
        # beanie-0 gets the only LLM slot first; as it lets go, beanie-1 takes it and keeps it
        await rig.agent.deliver([process_product_body(0), process_product_body(1)])
        await eventually(lambda: len(rig.handed_off()) == 1)
        handed_off_while_held = not gate.is_set()
        gate.set()
        await eventually(lambda: len(rig.handed_off()) == 2)
        return len(rig.handed_off()), handed_off_while_held

    assert run(scenario()) == (2, True)


def test_snapshot_is_the_agents_state_as_its_state_changes() -> None:
    """Snapshots reuse the JSON of unchanged workflows; the result must be today's state."""

    async def scenario() -> list[tuple[str, str]]:
        rig = ProductAgentRig()
        await rig.journal.start()
        for i in range(8):
            rig.writer.held[f"beanie-{i}"] = asyncio.Event()
        await rig.agent.start()
        agent = rig.agent
        pairs: list[tuple[str, str]] = []

        def expected() -> str:
            return AgentSnapshot(
                workflows=tuple(agent.workflows.values()),
                processed=agent.processed,
                completed=agent.completed,
                failed=agent.failed,
            ).model_dump_json()

        await agent.deliver([process_product_body(i) for i in range(6)])
        await eventually(lambda: len(agent.workflows) == 6)
        pairs.append((agent.snapshot_json(), expected()))
        for i in range(3):
            rig.writer.held[f"beanie-{i}"].set()
        await agent.deliver([process_product_body(i) for i in range(6, 8)])
        await eventually(lambda: len(rig.handed_off()) == 3 and len(agent.workflows) == 5)
        pairs.append((agent.snapshot_json(), expected()))
        return pairs

    for got, want in run(scenario()):
        assert got == want


def test_recovered_agent_has_the_state_it_had_before_the_restart() -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], int]:
        rig = ProductAgentRig(snapshot_every=5)
        await rig.journal.start()
        for i in range(0, 12, 2):
            rig.writer.held[f"beanie-{i}"] = asyncio.Event()
        await rig.agent.start()
        await rig.agent.deliver([process_product_body(i) for i in range(12)])
        # 6 products went all the way (5 events each), 6 wait for their listing (2 each)
        await eventually(lambda: sum(len(b.events) for b in rig.journal.committed) == 42)
        before = {k: v.model_dump() for k, v in rig.agent.workflows.items()}
        await rig.agent.stop()
        again = rig.new_agent()
        report = await again.start()
        await again.stop()
        after = {k: v.model_dump() for k, v in again.workflows.items()}
        return before, after, report.snapshot_seq

    before, after, snapshot_seq = run(scenario())
    assert snapshot_seq > 0  # recovered from a snapshot, then the events after it
    assert after == before
    assert len(after) == 6


def test_coordinator_admits_no_more_than_max_in_flight() -> None:
    async def scenario() -> tuple[int, bool, int, list[str]]:
        journal = RecordingJournal(InMemoryEventStore())
        await journal.start()
        config = AgentConfig(name="coordinator", role="coordinator", max_in_flight=3)
        coordinator = Coordinator(config, journal, LocalTransport(), (AGENT,))
        await coordinator.start()
        submit = asyncio.ensure_future(coordinator.submit("r", [product(i) for i in range(5)]))
        await eventually(lambda: len(coordinator.workflows) == 3)
        in_flight_at_limit, held_back = len(coordinator.workflows), not submit.done()

        async def finish(workflow_id: str) -> None:
            message = Envelope.wrap(
                WorkflowFinished(run_id="r", status="completed", step="completed"),
                sender=AGENT,
                recipient="coordinator",
                workflow_id=workflow_id,
            )
            await coordinator.deliver([message.model_dump_json()])

        await finish("r:beanie-0")
        await eventually(lambda: "r:beanie-3" in coordinator.workflows)
        after_one = len(coordinator.workflows)
        await finish("r:beanie-1")
        ids = await submit
        return in_flight_at_limit, held_back, after_one, ids

    at_limit, held_back, after_one, ids = run(scenario())
    assert (at_limit, held_back, after_one) == (3, True, 3)
    assert ids == [f"r:beanie-{i}" for i in range(5)]


# --- the workflows view ---------------------------------------------------------------


def test_a_long_step_shows_in_the_workflows_view_on_a_commit_of_its_own() -> None:
    """A row held back for the next step is written on its own once it is due, though the
    agent records nothing else meanwhile."""

    async def scenario() -> tuple[str, str, int]:
        rig = ProductAgentRig(row_delay_s=0.2)
        await rig.journal.start()
        workflow_id = f"r:{product(0).product_id}"
        gate = rig.writer.held[product(0).product_id] = asyncio.Event()
        await rig.agent.start()
        await rig.agent.deliver([process_product_body(0)])

        async def shown() -> bool:
            row = await rig.journal.workflow(workflow_id)
            return row is not None and row.current_step == "generate_listing"

        await eventually(shown, 10, "the row of the workflow waiting for its listing")
        row = await rig.journal.workflow(workflow_id)
        assert row is not None
        # nothing else was recorded meanwhile: the row went in a commit of its own
        rows_alone = sum(1 for b in rig.journal.committed if b.workflows and not b.events)
        gate.set()
        await eventually(lambda: len(rig.handed_off()) == 1)
        return row.agent_id, row.status, rows_alone

    assert run(scenario()) == (AGENT, "running", 1)


def test_rows_held_back_are_dropped_when_the_workflow_moves_on() -> None:
    """Workflows that pass through this agent within the delay leave no row of its own: the
    next agent writes theirs, and a late row from here could only be older than it."""

    async def scenario(row_delay_s: float) -> int:
        rig = ProductAgentRig(row_delay_s=row_delay_s)
        await rig.journal.start()
        await rig.agent.start()
        await rig.agent.deliver([process_product_body(i) for i in range(20)])
        await eventually(lambda: len(rig.handed_off()) == 20)
        await rig.agent.stop()
        return sum(len(b.workflows) for b in rig.journal.committed)

    assert run(scenario(30.0)) == 0
    assert run(scenario(0.0)) >= 20 * 4  # accepted, validated, listed, uploaded, handed off


def test_a_failed_workflow_is_in_the_view_with_its_failure() -> None:
    async def scenario() -> list[tuple[list[str], str]]:
        rig = ProductAgentRig(row_delay_s=30.0)
        await rig.journal.start()
        await rig.agent.start()
        failing = process_product(0, FaultPlan(fail_step="generate_listing"))
        await rig.agent.deliver([failing.model_dump_json()])
        await eventually(lambda: "step_failed" in rig.journal.committed_types(failing.workflow_id))
        await rig.agent.stop()
        return [
            ([e.type for e in b.events], row.status)
            for b in rig.journal.committed
            for row in b.workflows
            if row.workflow_id == failing.workflow_id
        ]

    [(types, status)] = run(scenario())
    assert status == "failed"
    assert types == ["step_failed"]


def test_only_step_agents_hold_rows_back() -> None:
    """The coordinator's rows are submissions and outcomes: the view (and `known_workflows`,
    which a resubmission is checked against) has them with their events, whatever the delay."""

    async def scenario() -> list[tuple[list[str], int]]:
        journal = RecordingJournal(InMemoryEventStore())
        await journal.start()
        config = AgentConfig(name="coordinator", role="coordinator", row_delay_s=30.0)
        coordinator = Coordinator(config, journal, LocalTransport(), (AGENT,))
        await coordinator.start()
        await coordinator.submit("r", [product(i) for i in range(3)])
        await coordinator.stop()
        return [([e.type for e in b.events], len(b.workflows)) for b in journal.committed]

    commits = run(scenario())
    submitted = sum(types.count("workflow_submitted") for types, _ in commits)
    assert submitted == 3
    assert all(types.count("workflow_submitted") == rows for types, rows in commits)
    assert ProductAgent.holds_rows
    assert MarketingAgent.holds_rows
