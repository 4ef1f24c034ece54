"""A workflow's state and the pure fold that builds it from events.

`apply(state, event)` is the only way a workflow's state changes, live or in
replay; it is pure (no I/O, no clock) so replaying the log always rebuilds
the same state. The field names are the seed's: `task_id` (the workflow's id),
`agent_id` (the agent it is at), `thread_id` (the run it belongs to: the
seed's `thread_id` in the workflow API, the run id of a feed run),
`current_step`, `status`, `product_data`.
"""

from __future__ import annotations

from typing import Literal

from actors.events import (
    CampaignGenerated,
    CrashInjected,
    Event,
    IsolatedAttempt,
    ListingGenerated,
    ListingRejected,
    ProductValidated,
    StepFailed,
    StepWaiting,
    UploadConfirmed,
    WorkflowAccepted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowHandedOff,
    WorkflowResumed,
    WorkflowSubmitted,
)
from actors.models import (
    Campaign,
    FrozenModel,
    Listing,
    MarketplaceListing,
    Product,
    UploadReceipt,
)
from actors.ports import LLMProvenance
from actors.protocol import (
    STEP_CAMPAIGN,
    STEP_HANDOFF,
    STEP_LISTING,
    STEP_UPLOAD,
    FaultPlan,
    StepResults,
)

Status = Literal["pending", "running", "waiting", "failed", "completed", "handed_off"]
TERMINAL: frozenset[str] = frozenset({"failed", "completed", "handed_off"})

NEXT_STEP = {
    "validate_product_data": STEP_LISTING,
    STEP_LISTING: STEP_UPLOAD,
    STEP_UPLOAD: STEP_HANDOFF,
    STEP_CAMPAIGN: STEP_HANDOFF,
}


class WorkflowState(FrozenModel):
    task_id: str
    thread_id: str
    agent_id: str
    run_id: str
    product_data: Product
    current_step: str
    status: Status = "running"
    faults: FaultPlan = FaultPlan()
    crashed_steps: tuple[str, ...] = ()
    resumed: int = 0
    """How many times an agent died with this workflow in flight and a new one took it over."""
    isolated_attempts: int = 0
    """Runs of a step alone in its agent after repeated deaths (poison detection)."""
    inbox_message_id: str = ""
    listing: Listing | None = None
    listing_provenance: LLMProvenance | None = None
    listing_rejections: int = 0
    """Generated listings rejected for contradicting the feed (then regenerated)."""
    marketplace_listing: MarketplaceListing | None = None
    upload: UploadReceipt | None = None
    campaign: Campaign | None = None
    campaign_provenance: LLMProvenance | None = None
    error: str = ""
    """Why it failed, or, while `waiting`, why its step cannot run now."""
    waits: int = 0
    """`StepWaiting` events since the workflow last got on (paces the next try)."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def accept(
    workflow_id: str, agent_id: str, event: WorkflowAccepted | WorkflowSubmitted
) -> WorkflowState:
    """The state a workflow starts with at an agent."""
    if isinstance(event, WorkflowSubmitted):
        return WorkflowState(
            task_id=workflow_id,
            thread_id=event.run_id,
            agent_id=event.agent_id,
            run_id=event.run_id,
            product_data=event.product,
            current_step=event.first_step,
            faults=event.faults,
        )
    results = event.results
    return WorkflowState(
        task_id=workflow_id,
        thread_id=event.run_id,
        agent_id=agent_id,
        run_id=event.run_id,
        product_data=event.product,
        current_step=event.first_step,
        faults=event.faults,
        inbox_message_id=event.message_id,
        listing=results.listing,
        listing_provenance=results.listing_provenance,
        marketplace_listing=results.marketplace_listing,
        upload=results.upload,
    )


def results_of(state: WorkflowState) -> StepResults:
    """What the workflow's finished steps produced, to hand on with it."""
    return StepResults(
        listing=state.listing,
        listing_provenance=state.listing_provenance,
        marketplace_listing=state.marketplace_listing,
        upload=state.upload,
    )


def apply(state: WorkflowState, event: Event) -> WorkflowState:
    """The state after `event`. Pure."""
    if state.status == "waiting" and not isinstance(event, StepWaiting):
        # any other event (the step's result, a failure, a take-over) ends the wait
        state = state.model_copy(update={"status": "running", "error": "", "waits": 0})
    match event:
        case ProductValidated():
            return state.model_copy(update={"current_step": NEXT_STEP[state.current_step]})
        case ListingGenerated(listing=listing, provenance=provenance):
            return state.model_copy(
                update={
                    "listing": listing,
                    "listing_provenance": provenance,
                    "marketplace_listing": MarketplaceListing.build(state.product_data, listing),
                    "current_step": STEP_UPLOAD,
                }
            )
        case ListingRejected():
            return state.model_copy(update={"listing_rejections": state.listing_rejections + 1})
        case UploadConfirmed(receipt=receipt):
            return state.model_copy(update={"upload": receipt, "current_step": STEP_HANDOFF})
        case CampaignGenerated(campaign=campaign, provenance=provenance):
            return state.model_copy(
                update={
                    "campaign": campaign,
                    "campaign_provenance": provenance,
                    "current_step": STEP_HANDOFF,
                }
            )
        case CrashInjected(step=step):
            return state.model_copy(update={"crashed_steps": (*state.crashed_steps, step)})
        case WorkflowResumed():
            return state.model_copy(update={"resumed": state.resumed + 1})
        case IsolatedAttempt():
            return state.model_copy(update={"isolated_attempts": state.isolated_attempts + 1})
        case StepFailed(step=step, error=error):
            return state.model_copy(
                update={"status": "failed", "current_step": step, "error": error}
            )
        case StepWaiting(step=step, reason=reason):
            return state.model_copy(
                update={
                    "status": "waiting",
                    "current_step": step,
                    "error": reason,
                    "waits": state.waits + 1,
                }
            )
        case WorkflowHandedOff(recipient=recipient, next_step=next_step):
            return state.model_copy(
                update={"status": "handed_off", "current_step": next_step, "agent_id": recipient}
            )
        case WorkflowCompleted():
            return state.model_copy(update={"status": "completed", "current_step": "completed"})
        case WorkflowFailed(step=step, error=error):
            return state.model_copy(
                update={"status": "failed", "current_step": step, "error": error}
            )
        case WorkflowAccepted() | WorkflowSubmitted():
            return state
    raise AssertionError(f"unhandled event {event!r}")  # pragma: no cover
