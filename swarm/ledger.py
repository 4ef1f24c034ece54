"""The LLM ledger: each LLM call in the log, its tokens and cost, per workflow and step.

Derived from the events rather than kept beside them: every `ListingGenerated`
and `CampaignGenerated` carries its provenance (model, prompt version, and the
token usage the response reported), and the price per model comes from the
settings. So the ledger is exactly as durable as the results it prices, and
needs no table or migration of its own.

What crashes cost. A step's result is committed before the next step starts,
and a recovered agent never runs a committed step again, so an LLM result is
recorded at most once per workflow and step: `repeated_calls` counts results
recorded more than once and must be 0. A call whose result was never committed
(the process died during the call) is paid but not in the log; the
`swarm_llm_calls_total` metric counts those calls too. `crashes` counts the
injected crashes (`CrashInjected`) among the events read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from actors.coordinator import run_prefix
from actors.events import CampaignGenerated, ListingGenerated, decode_event
from actors.llm_pricing import PriceTable
from actors.models import FrozenModel
from actors.protocol import STEP_CAMPAIGN, STEP_LISTING
from storage.records import EventQuery, EventRecord

LLM_STEPS = {"listing_generated": STEP_LISTING, "campaign_generated": STEP_CAMPAIGN}
"""Event type of an LLM result -> the step that made the call."""
CRASH = "crash_injected"
LEDGER_EVENT_TYPES = (*LLM_STEPS, CRASH)


class LedgerEntry(FrozenModel):
    workflow_id: str
    step: str
    agent: str
    model: str
    prompt_version: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    priced: bool
    recorded_at: float


class LedgerTotals(FrozenModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    repeated_calls: int = 0
    """LLM results recorded more than once for one workflow and step (must be 0)."""
    repeated_cost_usd: float = 0.0
    crashes: int = 0
    unpriced_models: tuple[str, ...] = ()
    calls_by_model: dict[str, int] = {}


def ledger_entry(record: EventRecord, prices: PriceTable) -> LedgerEntry | None:
    """The ledger line of an LLM result event; None for any other event."""
    step = LLM_STEPS.get(record.type)
    if step is None:
        return None
    event = decode_event(record.type, record.schema_version, record.payload)
    if not isinstance(event, ListingGenerated | CampaignGenerated):  # pragma: no cover
        return None
    provenance = event.provenance
    cost = prices.cost(provenance.model, provenance.usage)
    return LedgerEntry(
        workflow_id=record.workflow_id,
        step=step,
        agent=record.stream_id,
        model=provenance.model,
        prompt_version=provenance.prompt_version,
        input_tokens=provenance.usage.input_tokens,
        output_tokens=provenance.usage.output_tokens,
        cost_usd=cost.usd,
        priced=cost.priced,
        recorded_at=record.recorded_at,
    )


def ledger_entries(records: Iterable[EventRecord], prices: PriceTable) -> list[LedgerEntry]:
    return [e for r in records if (e := ledger_entry(r, prices)) is not None]


def totals(records: Iterable[EventRecord], prices: PriceTable) -> LedgerTotals:
    """The ledger's sums over `records` (any events: LLM results and crashes are picked)."""
    records = list(records)
    entries = ledger_entries(records, prices)
    seen: Counter[tuple[str, str]] = Counter()
    repeated, repeated_cost = 0, 0.0
    for entry in entries:
        seen[(entry.workflow_id, entry.step)] += 1
        if seen[(entry.workflow_id, entry.step)] > 1:
            repeated += 1
            repeated_cost += entry.cost_usd
    return LedgerTotals(
        calls=len(entries),
        input_tokens=sum(e.input_tokens for e in entries),
        output_tokens=sum(e.output_tokens for e in entries),
        cost_usd=sum(e.cost_usd for e in entries),
        repeated_calls=repeated,
        repeated_cost_usd=repeated_cost,
        crashes=sum(1 for r in records if r.type == CRASH),
        unpriced_models=tuple(sorted({e.model for e in entries if not e.priced})),
        calls_by_model=dict(Counter(e.model for e in entries)),
    )


def run_ledger_queries(run_id: str) -> list[EventQuery]:
    """The queries that read a run's ledger events (one per event type, all of them)."""
    return [
        EventQuery(workflow_prefix=run_prefix(run_id), type=kind, limit=10_000_000)
        for kind in LEDGER_EVENT_TYPES
    ]
