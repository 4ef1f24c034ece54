"""Events: every state change of an agent, as typed, versioned records.

An event is a fact that happened. Agents append them to their own streams;
`decode_event` reads one back, upcasting older schema versions through
`EVENT_UPCASTERS` so that a log written by an older release replays into
today's models.

Versions (one number for the whole vocabulary): v2 nests what earlier steps
produced in `WorkflowAccepted.results` (v1 had `marketplace_listing` and
`receipt` beside the other fields) and adds `WorkflowSubmitted.first_step`;
every other kind reads the same in v1 and v2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter

from actors.models import Campaign, FrozenModel, Listing, Product, UploadReceipt
from actors.ports import LLMProvenance
from actors.protocol import STEP_VALIDATE, FaultPlan, StepResults

EVENT_SCHEMA_VERSION = 2


class WorkflowSubmitted(FrozenModel):
    """Coordinator: a product entered the swarm as a workflow (or a failed one was resumed).

    `agent_id` is the agent the workflow was sent to and `first_step` the step it
    starts at there: `validate_product_data`, or the failed step on a resume.
    """

    kind: Literal["workflow_submitted"] = "workflow_submitted"
    run_id: str
    product: Product
    agent_id: str
    faults: FaultPlan = FaultPlan()
    first_step: str = STEP_VALIDATE


class WorkflowAccepted(FrozenModel):
    """An agent took charge of a workflow's next steps (its inbox message consumed).

    `results` are what earlier steps produced: at another agent (a hand-off), or
    before the failure this acceptance resumes after.
    """

    kind: Literal["workflow_accepted"] = "workflow_accepted"
    message_id: str
    run_id: str
    first_step: str
    product: Product
    faults: FaultPlan = FaultPlan()
    results: StepResults = StepResults()


class ProductValidated(FrozenModel):
    kind: Literal["product_validated"] = "product_validated"


class ListingGenerated(FrozenModel):
    kind: Literal["listing_generated"] = "listing_generated"
    listing: Listing
    provenance: LLMProvenance


class ListingRejected(FrozenModel):
    """Generated copy contradicted the feed (`actors.listing_guard`); it is not used.

    Recorded so the regeneration budget and the tokens paid survive a crash.
    """

    kind: Literal["listing_rejected"] = "listing_rejected"
    reason: str
    provenance: LLMProvenance


class UploadConfirmed(FrozenModel):
    kind: Literal["upload_confirmed"] = "upload_confirmed"
    receipt: UploadReceipt
    reconciled: bool = False
    """True when a lookup found the product already there and no write was made."""


class CampaignGenerated(FrozenModel):
    kind: Literal["campaign_generated"] = "campaign_generated"
    campaign: Campaign
    provenance: LLMProvenance


class WorkflowResumed(FrozenModel):
    """A recovering agent took over this workflow in flight: its previous process died."""

    kind: Literal["workflow_resumed"] = "workflow_resumed"


class IsolatedAttempt(FrozenModel):
    """The workflow runs `step` alone in its agent: if the process dies now, it is the cause."""

    kind: Literal["isolated_attempt"] = "isolated_attempt"
    step: str


class CrashInjected(FrozenModel):
    """Recorded just before an injected crash, so the fault fires once, not on every replay."""

    kind: Literal["crash_injected"] = "crash_injected"
    step: str


class StepFailed(FrozenModel):
    kind: Literal["step_failed"] = "step_failed"
    step: str
    error: str


class StepWaiting(FrozenModel):
    """An endpoint `step` needs stayed down past the retry budget: the step runs again later.

    The workflow is `waiting` until its next event (the step's result, or a failure
    that cannot be retried).
    """

    kind: Literal["step_waiting"] = "step_waiting"
    step: str
    reason: str
    retry_after_s: float | None = None
    """What the endpoint asked for (`Retry-After`), if it said."""


class WorkflowHandedOff(FrozenModel):
    """This agent's part is done; the workflow went on to `recipient`."""

    kind: Literal["workflow_handed_off"] = "workflow_handed_off"
    recipient: str
    message_id: str
    next_step: str


class WorkflowCompleted(FrozenModel):
    kind: Literal["workflow_completed"] = "workflow_completed"


class WorkflowFailed(FrozenModel):
    kind: Literal["workflow_failed"] = "workflow_failed"
    step: str
    error: str


Event = Annotated[
    WorkflowSubmitted
    | WorkflowAccepted
    | ProductValidated
    | ListingGenerated
    | ListingRejected
    | UploadConfirmed
    | CampaignGenerated
    | CrashInjected
    | WorkflowResumed
    | IsolatedAttempt
    | StepFailed
    | StepWaiting
    | WorkflowHandedOff
    | WorkflowCompleted
    | WorkflowFailed,
    Field(discriminator="kind"),
]
_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(cache_strings="keys"))

EventUpcaster = Callable[[dict[str, Any]], dict[str, Any]]
EVENT_UPCASTERS: dict[tuple[str, int], EventUpcaster] = {}
"""(kind, version) -> function from that version's payload to the next version's."""


def _unchanged(raw: dict[str, Any]) -> dict[str, Any]:
    return raw


def _workflow_accepted_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 kept the hand-off's listing and receipt as `marketplace_listing` and `receipt`."""
    upgraded = dict(raw)
    results = {"marketplace_listing": upgraded.pop("marketplace_listing", None)}
    results["upload"] = upgraded.pop("receipt", None)
    upgraded["results"] = results
    return upgraded


EVENT_UPCASTERS[("workflow_accepted", 1)] = _workflow_accepted_v1_to_v2
for _kind in (
    "workflow_submitted",
    "product_validated",
    "listing_generated",
    "upload_confirmed",
    "campaign_generated",
    "crash_injected",
    "step_failed",
    "workflow_handed_off",
    "workflow_completed",
    "workflow_failed",
):
    EVENT_UPCASTERS[(_kind, 1)] = _unchanged


class EventDecodeError(Exception):
    """A stored event that today's models cannot read."""


def encode_event(event: Event) -> str:
    return event.model_dump_json()


def decode_event(kind: str, schema_version: int, payload: str) -> Event:
    """Today's event model from a stored payload of any supported version."""
    if schema_version == EVENT_SCHEMA_VERSION:
        return _EVENT_ADAPTER.validate_json(payload)
    raw: dict[str, Any] = json.loads(payload)
    version = schema_version
    while version < EVENT_SCHEMA_VERSION:
        upcaster = EVENT_UPCASTERS.get((kind, version))
        if upcaster is None:
            raise EventDecodeError(f"no upcaster for event {kind!r} v{version}")
        raw, version = upcaster(raw), version + 1
    if version != EVENT_SCHEMA_VERSION:
        raise EventDecodeError(f"event {kind!r} v{schema_version} is newer than this swarm reads")
    return _EVENT_ADAPTER.validate_python(raw)
