"""A recovered agent, in one process over a real journal: it runs no step before its host
releases it, takes each message once however late a push of it arrives, and advances each
workflow in one loop. Each incarnation "dies" through the agent's own crash hook."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from actors.durable import AgentConfig
from actors.product_agent import ProductAgent
from actors.protocol import Envelope, FaultPlan
from storage.memory import InMemoryEventStore
from storage.records import AppendBatch, AppendResult, MessageRecord
from tests.agents.harness import (
    AGENT,
    CatalogMarketplace,
    LocalTransport,
    RecordingJournal,
    WatchedWriter,
    process_product,
    run,
)
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


class ProcessDiedError(Exception):
    """What the crash hook raises: this incarnation is dead from here on."""


class CheckedJournal(RecordingJournal):
    """The journal; `unprocessed` and `pending_messages` can be held at their answer."""

    def __init__(self) -> None:
        super().__init__(InMemoryEventStore())
        self.hold_unprocessed: asyncio.Event | None = None
        self.hold_pending: asyncio.Event | None = None
        self.asked = asyncio.Event()

    async def unprocessed(self, message_ids: Sequence[str]) -> set[str]:
        answer = await super().unprocessed(message_ids)
        if self.hold_unprocessed is not None:  # answered now, heard later: a slow reply
            self.asked.set()
            await self.hold_unprocessed.wait()
        return answer

    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[Any]:
        answer = await super().pending_messages(recipient, limit)
        if self.hold_pending is not None:
            self.asked.set()
            await self.hold_pending.wait()
        return answer


class Incarnations:
    """Successive incarnations of one product agent on one journal."""

    def __init__(self) -> None:
        self.journal = CheckedJournal()
        self.transport = LocalTransport()
        self.writer = WatchedWriter()
        self.marketplace = CatalogMarketplace(self.journal)
        self.deaths = 0
        self.refused: list[BaseException] = []
        self.stopping: list[asyncio.Task[None]] = []

    def new(self) -> ProductAgent:
        config = AgentConfig(name=AGENT, role="product-upload")

        def crash() -> None:
            self.deaths += 1
            self.transport.agents.pop(AGENT, None)
            self.stopping.append(asyncio.ensure_future(agent.stop()))
            raise ProcessDiedError(f"{AGENT} died")

        agent = ProductAgent(
            config, self.journal, self.transport, self.writer, self.marketplace,
            ("marketing-agent-0",), crash=crash,
        )  # fmt: skip
        agent.end_process = self.refused.append
        self.transport.agents[AGENT] = agent
        return agent

    async def settled(self, workflow_id: str) -> None:
        """Until the workflow is handed off, or a commit was refused."""
        await eventually(
            lambda: "workflow_handed_off" in self.committed(workflow_id) or bool(self.refused),
            timeout_s=10,
        )

    def committed(self, workflow_id: str) -> list[str]:
        return self.journal.committed_types(workflow_id)

    async def post(self, envelope: Envelope) -> str:
        """Commit the message to the agent's mailbox, as its sender does; returns its body."""
        body = envelope.model_dump_json()
        record = MessageRecord(
            message_id=envelope.message_id, recipient=envelope.recipient,
            sender=envelope.sender, type=envelope.type, workflow_id=envelope.workflow_id,
            body=body,
        )  # fmt: skip
        position = await self.journal.open_stream(envelope.sender)
        batch = AppendBatch(stream_id=envelope.sender, epoch=position.epoch, send=(record,))
        assert isinstance(await self.journal.append(batch), AppendResult)
        return body


def test_a_held_incarnation_runs_no_step_until_released() -> None:
    """A step that kills the process must die where the supervisor can see it: a recovered
    incarnation neither resumes nor runs a workflow before its host releases it."""

    async def scenario() -> tuple[list[str], int, list[str], int]:
        lives = Incarnations()
        await lives.journal.start()
        poison = process_product(0, FaultPlan(poison_step="generate_listing"))
        first = lives.new()
        await first.start()
        await first.deliver([await lives.post(poison)])
        await eventually(lambda: lives.deaths == 1, what="the poison kills the first incarnation")

        second = lives.new()
        await second.start(held=True)
        # a message taken while held is committed (its workflow waits too): once it is,
        # the inherited workflow's task has had every chance to run
        other = process_product(1)
        await second.deliver([await lives.post(other)])
        await eventually(lambda: "workflow_accepted" in lives.committed(other.workflow_id))
        held = (lives.committed(poison.workflow_id), lives.deaths)

        second.release()
        await eventually(lambda: lives.deaths == 2, what="the released poison kills it again")
        return (*held, lives.committed(poison.workflow_id), lives.deaths)

    held_types, held_deaths, types, deaths = run(scenario())
    assert held_deaths == 1
    assert "workflow_resumed" not in held_types
    assert types.count("workflow_resumed") == 1  # the one incarnation that ran it
    assert deaths == 2


def test_a_late_push_of_a_message_taken_before_a_restart_is_not_taken_again() -> None:
    """A sender's first push can arrive after the recipient restarted; the incarnation
    before may have taken the message from its mailbox. Taking it again would make the
    journal refuse the commit, and with it every step result committed beside it."""

    async def scenario() -> tuple[int, list[str], list[BaseException]]:
        lives = Incarnations()
        await lives.journal.start()
        message = process_product(0)
        lives.writer.held["beanie-0"] = asyncio.Event()  # in flight at the death
        body = await lives.post(message)
        first = lives.new()
        await first.start()
        await eventually(lambda: "product_validated" in lives.committed(message.workflow_id))
        await first.stop()  # the process dies with the workflow in flight (its listing call)

        second = lives.new()
        await second.start()
        taken = await second.deliver([body])  # the sender's first push, late
        lives.writer.held["beanie-0"].set()
        await lives.settled(message.workflow_id)
        return taken, lives.committed(message.workflow_id), lives.refused

    taken, types, refused = run(scenario())
    assert taken == 0
    assert refused == []
    assert types.count("workflow_accepted") == 1
    assert types.count("listing_generated") == 1


def test_a_redelivery_taken_while_checked_against_the_log_is_not_taken_twice() -> None:
    """The log says 'unprocessed'; before that answer is heard, a push of the same message
    is taken and committed. The redelivery must not take it a second time."""

    async def scenario() -> tuple[int, list[str], list[BaseException]]:
        lives = Incarnations()
        await lives.journal.start()
        message = process_product(0)
        agent = lives.new()
        await agent.start()
        body = await lives.post(message)
        lives.journal.hold_unprocessed = asyncio.Event()
        redelivery = asyncio.ensure_future(agent.deliver([body], redelivery=True))
        await lives.journal.asked.wait()  # the log has answered "unprocessed"
        await agent.deliver([body])
        await eventually(lambda: "workflow_accepted" in lives.committed(message.workflow_id))
        lives.journal.hold_unprocessed.set()
        taken = await redelivery
        await lives.settled(message.workflow_id)
        return taken, lives.committed(message.workflow_id), lives.refused

    taken, types, refused = run(scenario())
    assert taken == 0
    assert refused == []
    assert types.count("workflow_accepted") == 1


def step_loops(workflow_id: str) -> int:
    """The tasks running a step loop (`advance`) for the workflow, read from what they await."""

    def awaiting(task: asyncio.Task[Any]) -> Iterator[Any]:
        coro: Any = task.get_coro()
        while coro is not None and getattr(coro, "cr_frame", None) is not None:
            yield coro.cr_frame
            coro = coro.cr_await

    return sum(
        any(
            f.f_code.co_name == "advance" and f.f_locals.get("workflow_id") == workflow_id
            for f in awaiting(task)
        )
        for task in asyncio.all_tasks()
    )


def test_a_workflow_taken_while_the_mailbox_drains_runs_in_one_step_loop() -> None:
    """A push that arrives while a recovering agent reads its mailbox starts a workflow; the
    recovery must not start a second step loop for it: two loops race for each step, and
    both may run it (an LLM call paid twice)."""

    async def scenario() -> tuple[int, list[str], int]:
        lives = Incarnations()
        await lives.journal.start()
        message = process_product(0)
        calls: list[str] = []
        lives.writer.on_listing = lambda p: calls.append(p.product_id)
        gate = lives.writer.held["beanie-0"] = asyncio.Event()  # keep it in flight
        agent = lives.new()
        lives.journal.hold_pending = asyncio.Event()
        starting = asyncio.ensure_future(agent.start())
        await lives.journal.asked.wait()  # recovered, reading its mailbox
        await agent.deliver([await lives.post(message)])
        await eventually(lambda: "workflow_accepted" in lives.committed(message.workflow_id))
        lives.journal.hold_pending.set()
        await starting
        await eventually(lambda: len(calls) >= 1, what="the listing call")
        loops = step_loops(message.workflow_id)
        gate.set()
        await eventually(lambda: "workflow_handed_off" in lives.committed(message.workflow_id))
        return loops, lives.committed(message.workflow_id), len(calls)

    loops, types, listing_calls = run(scenario())
    assert loops == 1
    assert listing_calls == 1
    assert types.count("listing_generated") == 1
