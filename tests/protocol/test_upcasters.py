"""Reading what an older release wrote: v1 events and v1 envelopes into today's models.

v2 moved a hand-off's uploaded listing and receipt into `results`
(`WorkflowAccepted` events, `CreateCampaign` messages). A v1 log must replay
and a v1 message waiting in a mailbox must be processed, by today's agents.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from actors.durable import AgentConfig
from actors.events import (
    EVENT_SCHEMA_VERSION,
    EventDecodeError,
    ProductValidated,
    StepFailed,
    WorkflowAccepted,
    decode_event,
)
from actors.local_transport import LocalTransport
from actors.marketing_agent import MarketingAgent
from actors.models import MarketplaceListing, UploadReceipt
from actors.protocol import (
    SCHEMA_VERSION,
    CreateCampaign,
    ProcessProduct,
    ProtocolError,
    decode_envelope,
)
from storage.journal import Journal
from storage.records import AppendBatch, EventRecord, MessageRecord
from storage.sqlite import SQLiteEventStore
from swarm.llm_offline import OfflineWriter
from tests.workflow_support import eventually_async, product

T = TypeVar("T")
PRODUCT = product()
LISTING = MarketplaceListing.build(
    PRODUCT,
    asyncio.run(OfflineWriter().write_listing(PRODUCT)).listing.model_copy(
        update={"title": "Listing written by v1"}
    ),
)
RECEIPT = UploadReceipt(product_id="wool-beanie", marketplace="local", created=True, revision="1")
NO_FAULTS = {"fail_step": None, "crash_step": None}

V1_ACCEPTED = {
    "kind": "workflow_accepted",
    "message_id": "m-v1",
    "run_id": "run-v1",
    "first_step": "generate_campaign",
    "product": PRODUCT.model_dump(mode="json"),
    "faults": NO_FAULTS,
    "marketplace_listing": LISTING.model_dump(mode="json"),
    "receipt": RECEIPT.model_dump(mode="json"),
}
V1_CREATE_CAMPAIGN = {
    "message_id": "m-v1-campaign",
    "type": "create_campaign",
    "schema_version": 1,
    "sender": "product-agent-0",
    "recipient": "marketing-agent-0",
    "workflow_id": "run-v1:wool-beanie",
    "causation_id": None,
    "timestamp": 1_700_000_000.0,
    "attempt": 1,
    "payload": {
        "kind": "create_campaign",
        "run_id": "run-v1",
        "product": PRODUCT.model_dump(mode="json"),
        "listing": LISTING.model_dump(mode="json"),
        "receipt": RECEIPT.model_dump(mode="json"),
        "faults": NO_FAULTS,
    },
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- events ----------------------------------------------------------------------
def test_a_v1_workflow_accepted_reads_with_its_results_nested() -> None:
    event = decode_event("workflow_accepted", 1, json.dumps(V1_ACCEPTED))

    assert isinstance(event, WorkflowAccepted)
    assert event.results.marketplace_listing == LISTING
    assert event.results.upload == RECEIPT
    assert event.results.listing is None
    assert (event.first_step, event.product) == ("generate_campaign", PRODUCT)


def test_v1_events_of_unchanged_kinds_read_as_they_were() -> None:
    assert decode_event("product_validated", 1, '{"kind": "product_validated"}') == (
        ProductValidated()
    )
    failed = '{"kind": "step_failed", "step": "generate_listing", "error": "boom"}'
    assert decode_event("step_failed", 1, failed) == StepFailed(
        step="generate_listing", error="boom"
    )


def test_an_event_newer_than_this_swarm_is_refused_with_its_kind() -> None:
    with pytest.raises(EventDecodeError, match="product_validated"):
        decode_event("product_validated", EVENT_SCHEMA_VERSION + 1, '{"kind": "product_validated"}')


async def _marketing_agent_on(db: Path, batch: AppendBatch | None = None) -> list[EventRecord]:
    """Write `batch` (an older release's records), start today's marketing agent, wait."""
    journal = Journal(SQLiteEventStore(db))
    await journal.start()
    try:
        if batch is not None:
            position = await journal.open_stream(batch.stream_id)
            await journal.append(batch.model_copy(update={"epoch": position.epoch}))
        config = AgentConfig(name="marketing-agent-0", role="marketing")
        agent = MarketingAgent(config, journal, LocalTransport(), OfflineWriter())
        await agent.start()

        async def reported() -> bool:  # the workflow reached the coordinator's mailbox
            return len(await journal.pending_messages("coordinator")) == 1

        await eventually_async(reported)
        await agent.stop()
        return await journal.read_stream("marketing-agent-0")
    finally:
        await journal.stop()


def test_a_log_written_in_v1_replays_and_its_workflow_finishes(tmp_path: Path) -> None:
    v1_event = EventRecord(
        stream_id="marketing-agent-0",
        seq=1,
        event_id="e-v1",
        type="workflow_accepted",
        schema_version=1,
        workflow_id="run-v1:wool-beanie",
        payload=json.dumps(V1_ACCEPTED),
    )
    batch = AppendBatch(stream_id="marketing-agent-0", epoch=0, events=(v1_event,))

    log = run(_marketing_agent_on(tmp_path / "swarm.db", batch))

    assert [(e.type, e.schema_version) for e in log] == [
        ("workflow_accepted", 1),
        ("workflow_resumed", EVENT_SCHEMA_VERSION),  # inherited in flight from the log
        ("campaign_generated", EVENT_SCHEMA_VERSION),
        ("workflow_handed_off", EVENT_SCHEMA_VERSION),
    ]
    assert "Listing written by v1" in log[2].payload  # the campaign is about the v1 listing


# --- envelopes -----------------------------------------------------------------------
def test_a_v1_create_campaign_envelope_reads_with_its_results_nested() -> None:
    envelope = decode_envelope(json.dumps(V1_CREATE_CAMPAIGN))

    assert envelope.schema_version == SCHEMA_VERSION
    assert isinstance(envelope.payload, CreateCampaign)
    assert envelope.payload.results.marketplace_listing == LISTING
    assert envelope.payload.results.upload == RECEIPT


def test_a_v1_process_product_envelope_reads_as_it_was() -> None:
    raw = {
        **V1_CREATE_CAMPAIGN,
        "type": "process_product",
        "payload": {
            "kind": "process_product",
            "run_id": "r",
            "product": PRODUCT.model_dump(mode="json"),
        },
    }
    envelope = decode_envelope(json.dumps(raw))

    assert isinstance(envelope.payload, ProcessProduct)
    assert envelope.payload.product == PRODUCT


def test_a_message_type_that_v1_did_not_have_is_refused_in_v1() -> None:
    raw = {**V1_CREATE_CAMPAIGN, "type": "resume_workflow", "payload": {"kind": "resume_workflow"}}
    with pytest.raises(ProtocolError, match="no upcaster for 'resume_workflow' v1"):
        decode_envelope(json.dumps(raw))


def test_a_v1_campaign_without_its_receipt_is_a_protocol_error() -> None:
    raw = json.loads(json.dumps(V1_CREATE_CAMPAIGN))
    del raw["payload"]["receipt"]
    with pytest.raises(ProtocolError, match="results"):
        decode_envelope(json.dumps(raw))


def test_a_v1_message_waiting_in_a_mailbox_is_processed_by_todays_agent(tmp_path: Path) -> None:
    waiting = MessageRecord(
        message_id="m-v1-campaign",
        recipient="marketing-agent-0",
        sender="product-agent-0",
        type="create_campaign",
        workflow_id="run-v1:wool-beanie",
        body=json.dumps(V1_CREATE_CAMPAIGN),
    )
    batch = AppendBatch(stream_id="product-agent-0", epoch=0, send=(waiting,))

    log = run(_marketing_agent_on(tmp_path / "swarm.db", batch))

    assert [e.type for e in log] == [
        "workflow_accepted",
        "campaign_generated",
        "workflow_handed_off",
    ]
    assert "Listing written by v1" in log[1].payload
