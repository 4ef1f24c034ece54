"""One product's story, told from the event log: `python -m swarm show WORKFLOW`.

Every agent that worked on the workflow wrote its part to its own stream; the
story merges them in commit order: each step and what it produced (the
listing, the marketplace's reply, the campaign), failures with their reasons,
injected crashes and the recovery that followed each (the crashed agent's next
event for the workflow, and how long after), and the LLM ledger lines with
tokens and cost. Pure: it reads records, it does not query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from actors.events import (
    CampaignGenerated,
    CrashInjected,
    Event,
    EventDecodeError,
    ListingGenerated,
    ProductValidated,
    StepFailed,
    UploadConfirmed,
    WorkflowAccepted,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowHandedOff,
    WorkflowSubmitted,
    decode_event,
)
from actors.llm_pricing import PriceTable
from actors.models import Campaign, FrozenModel, MarketplaceListing, Product, UploadReceipt
from actors.protocol import STEP_CAMPAIGN, STEP_LISTING, STEP_UPLOAD, STEP_VALIDATE
from storage.records import EventRecord, WorkflowRow
from swarm.ledger import LedgerEntry, ledger_entry


class StoryLine(FrozenModel):
    position: int
    at: float
    agent: str
    step: str
    type: str
    text: str


class Recovery(FrozenModel):
    agent: str
    step: str
    crashed_at: float
    resumed_at: float | None
    """When the agent's next incarnation recorded its next event for the workflow."""


class WorkflowStory(FrozenModel):
    workflow_id: str
    product_id: str = ""
    title: str = ""
    status: str = "unknown"
    current_step: str = ""
    error: str = ""
    lines: tuple[StoryLine, ...] = ()
    listing: MarketplaceListing | None = None
    upload: UploadReceipt | None = None
    campaign: Campaign | None = None
    failures: tuple[str, ...] = ()
    recoveries: tuple[Recovery, ...] = ()
    llm: tuple[LedgerEntry, ...] = ()

    @property
    def tokens(self) -> tuple[int, int]:
        return sum(e.input_tokens for e in self.llm), sum(e.output_tokens for e in self.llm)

    @property
    def cost_usd(self) -> float:
        return sum(e.cost_usd for e in self.llm)


def decode(record: EventRecord) -> Event | None:
    """The record's event, or None when this version of the swarm cannot read it."""
    try:
        return decode_event(record.type, record.schema_version, record.payload)
    except (EventDecodeError, ValueError):
        return None


def event_step(event: Event) -> str:
    """The workflow step an event belongs to."""
    match event:
        case WorkflowSubmitted():
            return "submit"
        case WorkflowAccepted(first_step=step) | StepFailed(step=step) | CrashInjected(step=step):
            return step
        case ProductValidated():
            return STEP_VALIDATE
        case ListingGenerated():
            return STEP_LISTING
        case UploadConfirmed():
            return STEP_UPLOAD
        case CampaignGenerated():
            return STEP_CAMPAIGN
        case WorkflowHandedOff():
            return "handoff"
        case WorkflowFailed(step=step):
            return step
        case WorkflowCompleted():
            return "completed"
    return ""  # pragma: no cover


def describe(event: Event) -> str:
    """One line saying what the event means for its workflow."""
    match event:
        case WorkflowSubmitted(agent_id=agent, faults=faults):
            injected = ", ".join(f"{k}={v}" for k, v in faults.model_dump().items() if v)
            return f"submitted to {agent}" + (f" (faults: {injected})" if injected else "")
        case WorkflowAccepted(first_step=step):
            return f"accepted, next step {step}"
        case ProductValidated():
            return "product data valid"
        case ListingGenerated(listing=listing, provenance=p):
            tokens = f"{p.usage.input_tokens}+{p.usage.output_tokens} tokens"
            return f"listing {listing.title!r} by {p.model} ({tokens})"
        case UploadConfirmed(receipt=r, reconciled=reconciled):
            how = "created" if r.created else "already there"
            if reconciled:
                how = "found there on lookup, not written again"
            revision = f", revision {r.revision}" if r.revision else ""
            return f"{r.marketplace} marketplace: {r.product_id} {how}{revision}"
        case CampaignGenerated(campaign=c, provenance=p):
            tokens = f"{p.usage.input_tokens}+{p.usage.output_tokens} tokens"
            return f"campaign {c.headline!r} by {p.model} ({tokens})"
        case CrashInjected(step=step):
            return f"crash injected at {step}: the agent's process is killed"
        case StepFailed(step=step, error=error):
            return f"{step} failed: {error}"
        case WorkflowHandedOff(recipient=recipient, next_step=next_step):
            return f"handed off to {recipient} ({next_step})"
        case WorkflowCompleted():
            return "workflow completed"
        case WorkflowFailed(step=step, error=error):
            return f"workflow failed at {step}: {error}"
    return event.kind  # pragma: no cover


def build_story(
    workflow_id: str,
    row: WorkflowRow | None,
    records: Sequence[tuple[int, EventRecord]],
    prices: PriceTable,
) -> WorkflowStory:
    """The story of `workflow_id` from its events (any order) and its read-model row."""
    ordered = sorted(records, key=lambda pr: pr[0])
    lines: list[StoryLine] = []
    outputs = _Outputs()
    crashes: list[tuple[EventRecord, str]] = []
    llm: list[LedgerEntry] = []
    for position, record in ordered:
        event = decode(record)
        if event is None:
            text, step = f"(an event this swarm cannot read: {record.type})", ""
        else:
            text, step = describe(event), event_step(event)
            outputs.add(event)
            if isinstance(event, CrashInjected):
                crashes.append((record, event.step))
        entry = ledger_entry(record, prices)
        if entry is not None:
            llm.append(entry)
        lines.append(
            StoryLine(
                position=position,
                at=record.recorded_at,
                agent=record.stream_id,
                step=step,
                type=record.type,
                text=text,
            )
        )
    recoveries = [_recovery(crash, step, ordered) for crash, step in crashes]
    product = outputs.product
    return WorkflowStory(
        workflow_id=workflow_id,
        product_id=row.product_id if row else (product.product_id if product else ""),
        title=product.title if product else "",
        status=row.status if row else "unknown",
        current_step=row.current_step if row else "",
        error=row.error if row else "",
        lines=tuple(lines),
        listing=outputs.listing,
        upload=outputs.upload,
        campaign=outputs.campaign,
        failures=tuple(outputs.failures),
        recoveries=tuple(recoveries),
        llm=tuple(llm),
    )


@dataclass
class _Outputs:
    """What the workflow's steps produced, gathered while its events are read in order."""

    product: Product | None = None
    listing: MarketplaceListing | None = None
    upload: UploadReceipt | None = None
    campaign: Campaign | None = None
    failures: list[str] = field(default_factory=list)

    def add(self, event: Event) -> None:
        match event:
            case WorkflowSubmitted(product=product) | WorkflowAccepted(product=product):
                self.product = self.product or product
            case ListingGenerated(listing=listing) if self.product is not None:
                self.listing = MarketplaceListing.build(self.product, listing)
            case UploadConfirmed(receipt=receipt):
                self.upload = receipt
            case CampaignGenerated(campaign=campaign):
                self.campaign = campaign
            case StepFailed(step=step, error=error) | WorkflowFailed(step=step, error=error):
                reason = f"{step}: {error}"
                if reason not in self.failures:
                    self.failures.append(reason)


def _recovery(
    crash: EventRecord, step: str, ordered: Sequence[tuple[int, EventRecord]]
) -> Recovery:
    after = [r for _, r in ordered if r.stream_id == crash.stream_id and r.seq > crash.seq]
    return Recovery(
        agent=crash.stream_id,
        step=step,
        crashed_at=crash.recorded_at,
        resumed_at=after[0].recorded_at if after else None,
    )
