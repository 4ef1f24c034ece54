"""The LLM ledger and a workflow's story, from event records as the log holds them."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from actors.events import (
    CrashInjected,
    Event,
    ListingGenerated,
    ProductValidated,
    UploadConfirmed,
    WorkflowAccepted,
    encode_event,
)
from actors.llm_pricing import ModelPrice, PriceTable
from actors.models import Listing, Product, TokenUsage, UploadReceipt, Variant
from actors.ports import LLMProvenance
from storage.records import EventRecord
from swarm.ledger import totals
from swarm.settings import DEFAULT_LLM_PRICES
from swarm.workflow_story import build_story

PRICES = PriceTable(prices=DEFAULT_LLM_PRICES)
_seq = itertools.count(1)


def record(stream: str, workflow: str, event: Event, at: float) -> EventRecord:
    seq = next(_seq)
    return EventRecord(
        stream_id=stream,
        seq=seq,
        event_id=f"e{seq}",
        type=event.kind,
        workflow_id=workflow,
        payload=encode_event(event),
        recorded_at=at,
    )


def listing_event(model: str, tokens_in: int, tokens_out: int) -> ListingGenerated:
    listing = Listing(
        title="Wool Beanie",
        description="Warm.",
        bullet_points=["Wool"],
        tags=["winter"],
        seo_title="Wool Beanie",
        seo_description="Warm.",
    )
    usage = TokenUsage(input_tokens=tokens_in, output_tokens=tokens_out)
    provenance = LLMProvenance(model=model, prompt_version="listing-v1", usage=usage)
    return ListingGenerated(listing=listing, provenance=provenance)


PRODUCT = Product(
    handle="wool-beanie",
    title="Wool Beanie",
    vendor="Northwind",
    variants=(Variant(sku="WB-1", price=Decimal("24.00")),),
)


def test_a_dated_model_is_priced_as_its_family() -> None:
    cost = PRICES.cost("gpt-4o-mini-2024-07-18", TokenUsage(input_tokens=1000, output_tokens=500))
    assert cost.priced
    assert cost.usd == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    assert PRICES.price_of("gpt-4o-2024-08-06") == DEFAULT_LLM_PRICES["gpt-4o"]


def test_an_unknown_model_is_unpriced_not_guessed() -> None:
    cost = PRICES.cost("mystery-model", TokenUsage(input_tokens=10, output_tokens=10))
    assert (cost.usd, cost.priced) == (0.0, False)
    ledger = totals(
        [record("product-agent-0", "w1", listing_event("mystery-model", 5, 5), 1.0)], PRICES
    )
    assert ledger.unpriced_models == ("mystery-model",)


def test_the_ledger_sums_tokens_and_cost_and_counts_repeats_and_crashes() -> None:
    prices = PriceTable(prices={"m": ModelPrice(input=1.0, output=2.0)})
    records = [
        record("product-agent-0", "w1", listing_event("m", 100, 10), 1.0),
        record("product-agent-0", "w1", CrashInjected(step="confirm_upload"), 2.0),
        record("product-agent-1", "w2", listing_event("m", 200, 20), 3.0),
        record("product-agent-1", "w2", listing_event("m", 200, 20), 4.0),  # paid twice
    ]
    ledger = totals(records, prices)
    assert (ledger.calls, ledger.input_tokens, ledger.output_tokens) == (3, 500, 50)
    assert ledger.cost_usd == pytest.approx((500 * 1.0 + 50 * 2.0) / 1e6)
    assert ledger.repeated_calls == 1
    assert ledger.repeated_cost_usd == pytest.approx((200 * 1.0 + 20 * 2.0) / 1e6)
    assert ledger.crashes == 1
    assert ledger.calls_by_model == {"m": 3}


def test_a_story_tells_a_crash_and_the_recovery_after_it() -> None:
    wf, agent = "run-1:wool-beanie", "product-agent-0"
    accepted = WorkflowAccepted(
        message_id="m1", run_id="run-1", first_step="validate_product_data", product=PRODUCT
    )
    receipt = UploadReceipt(product_id="wool-beanie", marketplace="local", created=True)
    records = [
        record(agent, wf, accepted, 10.0),
        record(agent, wf, ProductValidated(), 10.1),
        record(agent, wf, CrashInjected(step="generate_listing"), 10.2),
        record(agent, wf, listing_event("gpt-4o-mini", 300, 100), 12.7),
        record(agent, wf, UploadConfirmed(receipt=receipt), 12.8),
    ]
    story = build_story(wf, None, list(enumerate(records, start=1)), PRICES)
    [recovery] = story.recoveries
    assert (recovery.agent, recovery.step) == (agent, "generate_listing")
    assert recovery.resumed_at is not None
    assert recovery.resumed_at - recovery.crashed_at == pytest.approx(2.5)
    assert [line.step for line in story.lines] == [
        "validate_product_data",
        "validate_product_data",
        "generate_listing",
        "generate_listing",
        "confirm_upload",
    ]
    assert story.listing is not None
    assert story.listing.variants == PRODUCT.variants  # the facts come from the product
    assert story.upload == receipt
    assert story.tokens == (300, 100)
    assert story.cost_usd == pytest.approx((300 * 0.15 + 100 * 0.60) / 1e6)


def test_a_crash_without_a_later_event_is_not_yet_recovered() -> None:
    crash = record("product-agent-0", "w", CrashInjected(step="confirm_upload"), 5.0)
    story = build_story("w", None, [(1, crash)], PRICES)
    assert [r.resumed_at for r in story.recoveries] == [None]
