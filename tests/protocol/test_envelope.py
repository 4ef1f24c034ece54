"""Protocol messages: round trip, and rejection of what this swarm cannot read."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from actors.models import Product, Variant
from actors.protocol import (
    Envelope,
    ProcessProduct,
    ProtocolError,
    WorkflowFinished,
    decode_envelope,
)

PRODUCT = Product(
    handle="wool-socks",
    title="Wool Socks",
    variants=(Variant(sku="WS-1", price=Decimal("12.50"), options={"Size": "M"}),),
)


def _message() -> Envelope:
    return Envelope.wrap(
        ProcessProduct(run_id="r1", product=PRODUCT),
        sender="coordinator",
        recipient="product-agent-0",
        workflow_id="r1:wool-socks",
    )


def test_envelope_round_trips_through_json() -> None:
    message = _message()
    assert decode_envelope(message.model_dump_json()) == message


def test_payload_type_is_restored_from_its_discriminator() -> None:
    decoded = decode_envelope(_message().model_dump_json())
    assert isinstance(decoded.payload, ProcessProduct)
    assert decoded.payload.product.variants[0].price == Decimal("12.50")


def test_unknown_message_type_is_rejected_with_the_type_named() -> None:
    raw = json.loads(_message().model_dump_json())
    raw["type"] = "launch_rockets"
    with pytest.raises(ProtocolError, match="unknown message type 'launch_rockets'"):
        decode_envelope(json.dumps(raw))


def test_newer_schema_version_is_rejected() -> None:
    raw = json.loads(_message().model_dump_json())
    raw["schema_version"] = 99
    with pytest.raises(ProtocolError, match="unsupported schema version 99"):
        decode_envelope(json.dumps(raw))


def test_type_that_does_not_match_the_payload_is_rejected() -> None:
    raw = json.loads(_message().model_dump_json())
    raw["type"] = WorkflowFinished(run_id="r", status="completed", step="x").kind
    with pytest.raises(ProtocolError):
        decode_envelope(json.dumps(raw))


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '{"type": 3}', "{" * 10])
def test_malformed_text_is_a_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError):
        decode_envelope(text)


def test_oversized_message_is_rejected_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_envelope("x" * 2_000_000)
