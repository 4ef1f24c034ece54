"""`decode_envelope` on any input: an `Envelope` or a `ProtocolError`, never anything else."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.models import Product, Variant
from actors.protocol import (
    MAX_MESSAGE_BYTES,
    Envelope,
    ProcessProduct,
    ProtocolError,
    decode_envelope,
)

_VALID = json.loads(
    Envelope.wrap(
        ProcessProduct(
            run_id="r1",
            product=Product(
                handle="mug", title="Mug", variants=(Variant(sku="M-1", price=Decimal("12.00")),)
            ),
        ),
        sender="coordinator",
        recipient="product-agent-0",
        workflow_id="r1:mug",
    ).model_dump_json()
)


def _decodes_or_protocol_error(body: str | bytes) -> None:
    result: Envelope | ProtocolError
    try:
        result = decode_envelope(body)
    except ProtocolError as e:
        result = e
    if isinstance(result, ProtocolError):
        assert result.reason
        assert isinstance(result.message_id, str)
    else:
        assert isinstance(result, Envelope)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a JSON object, nested objects included."""
    if not isinstance(value, dict):
        return []
    paths = []
    for key, item in value.items():
        paths.append((*prefix, key))
        paths.extend(_paths(item, (*prefix, key)))
    return paths


_PATHS = _paths(_VALID)


def _replaced(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_decodes_or_is_a_protocol_error(text: str) -> None:
    _decodes_or_protocol_error(text)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_any_bytes_decode_or_are_a_protocol_error(data: bytes) -> None:
    _decodes_or_protocol_error(data)


@settings(max_examples=150, deadline=None)
@given(_json)
def test_any_json_value_decodes_or_is_a_protocol_error(value: Any) -> None:
    _decodes_or_protocol_error(json.dumps(value))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_PATHS), _json)
def test_a_valid_envelope_with_any_field_replaced_decodes_or_is_a_protocol_error(
    path: tuple[str, ...], value: Any
) -> None:
    _decodes_or_protocol_error(json.dumps(_replaced(_VALID, path, value)))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_PATHS))
def test_a_valid_envelope_with_any_field_removed_decodes_or_is_a_protocol_error(
    path: tuple[str, ...],
) -> None:
    document = json.loads(json.dumps(_VALID))
    node = document
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    _decodes_or_protocol_error(json.dumps(document))


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # deeper than the JSON parser recurses
        '{"type": ["process_product"], "message_id": "m"}',  # an unhashable type
        '{"type": {"a": 1}, "message_id": [[[["deep"]]]]}',
        json.dumps(_replaced(_VALID, ("schema_version",), True)),
        json.dumps(_replaced(_VALID, ("payload", "product"), [[[]]] * 3)),
    ],
)
def test_hostile_bodies_are_protocol_errors(body: str) -> None:
    with pytest.raises(ProtocolError):
        decode_envelope(body)


def test_message_id_of_a_rejected_message_is_kept_only_when_it_is_text() -> None:
    with pytest.raises(ProtocolError) as raised:
        decode_envelope('{"type": "x", "message_id": {"not": "text"}}')
    assert raised.value.message_id == ""


def test_size_limit_counts_bytes_not_characters() -> None:
    document = _replaced(_VALID, ("sender",), "é" * (MAX_MESSAGE_BYTES // 2 + 10))
    body = json.dumps(document, ensure_ascii=False)
    assert len(body) < MAX_MESSAGE_BYTES < len(body.encode())
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_envelope(body)
