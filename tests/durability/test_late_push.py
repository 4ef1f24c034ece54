"""A push whose recipient had to be looked up after the message was committed may reach a
newer incarnation than the one the message was committed for (the one before may have
taken it from its mailbox already): it is checked against the log like a redelivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import pytest
import ray

from actors.protocol import Envelope, ProcessProduct
from actors.ray_actors import RayTransport
from storage.records import AppendBatch, AppendResult, EventQuery, MessageRecord
from swarm.runtime import journal, whereis
from swarm.settings import SwarmSettings
from tests.agents.harness import product
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)
AGENT = "product-agent-0"


def process_product(i: int) -> Envelope:
    p = product(i, prefix="late")
    return Envelope.wrap(
        ProcessProduct(run_id="late", product=p),
        sender="late-sender",
        recipient=AGENT,
        workflow_id=f"late:{p.product_id}",
    )


def commit_to_mailbox(envelope: Envelope) -> None:
    """What a sender does before it pushes: the message is stored with its own commit."""
    record = MessageRecord(
        message_id=envelope.message_id, recipient=envelope.recipient, sender=envelope.sender,
        type=envelope.type, workflow_id=envelope.workflow_id, body=envelope.model_dump_json(),
    )  # fmt: skip
    position = ray.get(journal().open_stream.remote(envelope.sender))
    batch = AppendBatch(stream_id=envelope.sender, epoch=position.epoch, send=(record,))
    assert isinstance(ray.get(journal().append.remote(batch)), AppendResult)


def accepted(workflow_id: str) -> bool:
    """Whether the agent's log holds the workflow's start (its view row may still be held)."""
    query = EventQuery(workflow_id=workflow_id, stream_id=AGENT, type="workflow_accepted")
    return bool(ray.get(journal().query_events.remote(query)))


async def push(recipient: str, bodies: list[str]) -> None:
    """One push by a sender that has not looked its recipient up yet; returns once delivered."""
    RayTransport(retry_deadline_s=30).send(recipient, bodies)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    await asyncio.gather(*others)


def test_a_push_to_an_actor_looked_up_after_the_send_takes_only_what_the_log_holds(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    swarm_factory()
    agent = whereis(AGENT)
    before = cast(int, ray.get(agent.status.remote()).processed)
    stored, never_stored = process_product(1), process_product(2)
    commit_to_mailbox(stored)

    asyncio.run(push(AGENT, [stored.model_dump_json(), never_stored.model_dump_json()]))
    wait_until(
        lambda: accepted(stored.workflow_id),
        60,
        "the stored message's workflow",
    )

    # a message the log does not hold as unprocessed is not taken: had the push been
    # trusted as fresh, the agent would have started both workflows
    assert ray.get(agent.status.remote()).processed == before + 1
    assert not accepted(never_stored.workflow_id)


def test_a_push_through_a_recipient_found_in_advance_is_delivered(
    swarm_factory: Callable[..., SwarmSettings],
) -> None:
    """A warm standby finds its peers before it takes a role over; its pushes then go
    straight to them (not left for the recipient's mailbox poll)."""
    swarm_factory()
    message = process_product(3)
    commit_to_mailbox(message)

    async def push_after_connecting() -> None:
        transport = RayTransport(retry_deadline_s=30)
        await transport.connect([AGENT])
        transport.send(AGENT, [message.model_dump_json()])
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.gather(*others)  # a push that failed raises here

    asyncio.run(push_after_connecting())
    wait_until(
        lambda: accepted(message.workflow_id),
        60,
        "the pushed message's workflow",
    )
