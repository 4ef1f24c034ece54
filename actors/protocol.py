"""Protocol messages: one envelope, typed payloads, a schema version on each.

Agents exchange envelopes as JSON text (the same text the durable mailbox
stores), and every receiver decodes with `decode_envelope`, which either
returns today's `Envelope` or raises `ProtocolError` with the reason: unknown
type, unsupported schema version, malformed or oversized body. A receiver
never crashes on a bad message; it dead-letters it with that reason.

Older schema versions are read through `UPCASTERS`, (type, version) ->
function from the old JSON object to the next version's, applied in a chain.

Versions: v2 carries what a workflow's finished steps produced as one
`StepResults` (`CreateCampaign.results`; v1 had `listing` and `receipt`) and
adds `ResumeWorkflow`. A v1 body still waiting in a mailbox is read as v2.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

from pydantic import Field, ValidationError, model_validator

from actors.ids import new_id
from actors.models import FrozenModel, Listing, MarketplaceListing, Product, UploadReceipt
from actors.ports import LLMProvenance

SCHEMA_VERSION = 2
MAX_MESSAGE_BYTES = 1_000_000

Step = Literal["validate_product_data", "generate_listing", "confirm_upload", "generate_campaign"]
STEP_VALIDATE: Final = "validate_product_data"
STEP_LISTING: Final = "generate_listing"
STEP_UPLOAD: Final = "confirm_upload"
STEP_CAMPAIGN: Final = "generate_campaign"
STEP_HANDOFF: Final = "handoff"
"""Not a step of its own: the hand-off of a workflow to the next agent, or its end."""
STEPS: tuple[Step, ...] = (STEP_VALIDATE, STEP_LISTING, STEP_UPLOAD, STEP_CAMPAIGN)


class FaultPlan(FrozenModel):
    """The seed's failure injection for one workflow: raise, or kill the process, at a step."""

    fail_step: str | None = None
    crash_step: str | None = None
    poison_step: str | None = None
    """Kill the agent's process at this step every time, unannounced: a poison workflow."""


class ProcessProduct(FrozenModel):
    """Coordinator -> product agent: run steps 1-3 for this product."""

    kind: Literal["process_product"] = "process_product"
    run_id: str
    product: Product
    faults: FaultPlan = FaultPlan()


class StepResults(FrozenModel):
    """What a workflow's finished steps produced; it travels with the workflow to the next agent."""

    listing: Listing | None = None
    listing_provenance: LLMProvenance | None = None
    marketplace_listing: MarketplaceListing | None = None
    upload: UploadReceipt | None = None


class CreateCampaign(FrozenModel):
    """Product agent -> marketing agent: the product is live, write its campaign."""

    kind: Literal["create_campaign"] = "create_campaign"
    run_id: str
    product: Product
    results: StepResults
    faults: FaultPlan = FaultPlan()

    @model_validator(mode="after")
    def _uploaded(self) -> CreateCampaign:
        if self.results.marketplace_listing is None or self.results.upload is None:
            raise ValueError("results.marketplace_listing and results.upload are required")
        return self


class ResumeWorkflow(FrozenModel):
    """Coordinator -> the agent where a workflow failed: take it up again at `step`.

    `results` are what the steps before `step` produced, so they are not run again.
    """

    kind: Literal["resume_workflow"] = "resume_workflow"
    run_id: str
    product: Product
    step: Step
    results: StepResults = StepResults()
    faults: FaultPlan = FaultPlan()


class WorkflowFinished(FrozenModel):
    """Any agent -> coordinator: the workflow reached a terminal state."""

    kind: Literal["workflow_finished"] = "workflow_finished"
    run_id: str
    status: Literal["completed", "failed"]
    step: str
    error: str = ""


Payload = Annotated[
    ProcessProduct | CreateCampaign | ResumeWorkflow | WorkflowFinished,
    Field(discriminator="kind"),
]
MESSAGE_TYPES = frozenset(
    {"process_product", "create_campaign", "resume_workflow", "workflow_finished"}
)


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
        payload: ProcessProduct | CreateCampaign | ResumeWorkflow | WorkflowFinished,
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


def _unchanged(raw: dict[str, Any]) -> dict[str, Any]:
    return raw


def _create_campaign_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 carried the uploaded listing and its receipt as `listing` and `receipt`."""
    payload = raw.get("payload")
    if not isinstance(payload, dict):
        return raw  # left for validation to name
    payload = dict(payload)
    results = {"marketplace_listing": payload.pop("listing", None)}
    results["upload"] = payload.pop("receipt", None)
    return {**raw, "payload": {**payload, "results": results}}


UPCASTERS[("create_campaign", 1)] = _create_campaign_v1_to_v2
UPCASTERS[("process_product", 1)] = _unchanged
UPCASTERS[("workflow_finished", 1)] = _unchanged


def decode_envelope(text: str | bytes) -> Envelope:
    """Today's Envelope from JSON text, or ProtocolError saying why not.

    Any input at all gives one or the other: a body of another shape, type or
    depth is a `ProtocolError`, never another exception.
    """
    size = _size_in_bytes(text)
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes exceeds {MAX_MESSAGE_BYTES}")
    fast = _decode_current(text)
    if fast is not None:
        return fast
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise ProtocolError(f"malformed envelope: not JSON ({e.__class__.__name__})") from e
    if not isinstance(raw, dict):
        raise ProtocolError("malformed envelope: not a JSON object")
    given_id = raw.get("message_id")
    message_id = given_id if isinstance(given_id, str) else ""
    raw = _upcast(raw, message_id)
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProtocolError(f"malformed envelope: {where}: {first['msg']}", message_id) from e
    except RecursionError as e:
        raise ProtocolError("malformed envelope: nested too deeply", message_id) from e
    if envelope.type != envelope.payload.kind:
        raise ProtocolError(
            f"envelope type {envelope.type!r} does not match payload {envelope.payload.kind!r}",
            message_id,
        )
    return envelope


def _size_in_bytes(text: str | bytes) -> int:
    """The UTF-8 size of `text`, encoding only when its length alone cannot tell."""
    if isinstance(text, bytes) or len(text) > MAX_MESSAGE_BYTES or text.isascii():
        return len(text)  # for str past the limit: at least this many bytes
    return len(text.encode("utf-8", "surrogatepass"))


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
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        shown = repr(kind) if isinstance(kind, str | int | float | None) else type(kind).__name__
        raise ProtocolError(f"unknown message type {shown[:80]}", message_id)
    version = raw.get("schema_version", SCHEMA_VERSION)
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or version < 1
        or version > SCHEMA_VERSION
    ):
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
