"""Protocol messages: one envelope, typed payloads, a schema version on each.

Agents exchange envelopes as JSON text (the same text the durable mailbox
stores), and every receiver decodes with `decode_envelope`, which either
returns today's `Envelope` or raises `ProtocolError` with the reason: unknown
type, unsupported schema version, malformed or oversized body. A receiver
never crashes on a bad message; it dead-letters it with that reason.

Older schema versions are read through `UPCASTERS`, (type, version) ->
function from the old JSON object to the next version's, applied in a chain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from actors.ids import new_id
from actors.models import FrozenModel, MarketplaceListing, Product, UploadReceipt

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 1_000_000

STEP_VALIDATE = "validate_product_data"
STEP_LISTING = "generate_listing"
STEP_UPLOAD = "confirm_upload"
STEP_CAMPAIGN = "generate_campaign"
STEPS = (STEP_VALIDATE, STEP_LISTING, STEP_UPLOAD, STEP_CAMPAIGN)


class FaultPlan(FrozenModel):
    """The seed's failure injection for one workflow: raise, or kill the process, at a step."""

    fail_step: str | None = None
    crash_step: str | None = None


class ProcessProduct(FrozenModel):
    """Coordinator -> product agent: run steps 1-3 for this product."""

    kind: Literal["process_product"] = "process_product"
    run_id: str
    product: Product
    faults: FaultPlan = FaultPlan()


class CreateCampaign(FrozenModel):
    """Product agent -> marketing agent: the product is live, write its campaign."""

    kind: Literal["create_campaign"] = "create_campaign"
    run_id: str
    product: Product
    listing: MarketplaceListing
    receipt: UploadReceipt
    faults: FaultPlan = FaultPlan()


class WorkflowFinished(FrozenModel):
    """Any agent -> coordinator: the workflow reached a terminal state."""

    kind: Literal["workflow_finished"] = "workflow_finished"
    run_id: str
    status: Literal["completed", "failed"]
    step: str
    error: str = ""


Payload = Annotated[ProcessProduct | CreateCampaign | WorkflowFinished, Field(discriminator="kind")]
MESSAGE_TYPES = frozenset({"process_product", "create_campaign", "workflow_finished"})


class Envelope(FrozenModel):
    message_id: str
    type: str
    schema_version: int = SCHEMA_VERSION
    sender: str
    recipient: str
    workflow_id: str
    causation_id: str | None = None
    timestamp: float
    attempt: int = 1
    payload: Payload

    @classmethod
    def wrap(
        cls,
        payload: ProcessProduct | CreateCampaign | WorkflowFinished,
        *,
        sender: str,
        recipient: str,
        workflow_id: str,
        causation_id: str | None = None,
    ) -> Envelope:
        return cls(
            message_id=new_id(),
            type=payload.kind,
            sender=sender,
            recipient=recipient,
            workflow_id=workflow_id,
            causation_id=causation_id,
            timestamp=time.time(),
            payload=payload,
        )


class ProtocolError(Exception):
    """A message that cannot be read; `reason` goes to the dead-letter record."""

    def __init__(self, reason: str, message_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(type, version) -> function turning that version's envelope into the next version's."""


def decode_envelope(text: str | bytes) -> Envelope:
    """Today's Envelope from JSON text, or ProtocolError saying why not."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(text)} bytes exceeds {MAX_MESSAGE_BYTES}")
    fast = _decode_current(text)
    if fast is not None:
        return fast
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed envelope: not JSON ({e.__class__.__name__})") from e
    if not isinstance(raw, dict):
        raise ProtocolError("malformed envelope: not a JSON object")
    message_id = str(raw.get("message_id", ""))
    raw = _upcast(raw, message_id)
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProtocolError(f"malformed envelope: {where}: {first['msg']}", message_id) from e
    if envelope.type != envelope.payload.kind:
        raise ProtocolError(
            f"envelope type {envelope.type!r} does not match payload {envelope.payload.kind!r}",
            message_id,
        )
    return envelope


def _decode_current(text: str | bytes) -> Envelope | None:
    """The common case in one parse: a well-formed envelope of today's version, else None.

    Anything else (older version, unknown type, bad JSON) returns None and goes
    the long way, which upcasts or says exactly what is wrong.
    """
    try:
        envelope = Envelope.model_validate_json(text)
    except ValidationError:
        return None
    if envelope.schema_version != SCHEMA_VERSION or envelope.type != envelope.payload.kind:
        return None
    return envelope


def _upcast(raw: dict[str, Any], message_id: str) -> dict[str, Any]:
    kind = raw.get("type")
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {kind!r}", message_id)
    version = raw.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version < 1 or version > SCHEMA_VERSION:
        raise ProtocolError(
            f"unsupported schema version {version!r} for {kind!r} "
            f"(this swarm reads 1..{SCHEMA_VERSION})",
            message_id,
        )
    while version < SCHEMA_VERSION:
        upcaster = UPCASTERS.get((str(kind), version))
        if upcaster is None:
            raise ProtocolError(f"no upcaster for {kind!r} v{version}", message_id)
        raw, version = upcaster(raw), version + 1
        raw["schema_version"] = version
    return raw
