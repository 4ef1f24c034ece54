"""The `waiting` state in the pure workflow fold: it starts with `step_waiting`, ends with the
next event, and a failure that cannot be retried still fails."""

from __future__ import annotations

from decimal import Decimal

from actors.events import ProductValidated, StepFailed, StepWaiting, WorkflowSubmitted
from actors.models import Product, Variant
from actors.steps import waiting_delay
from actors.workflow import WorkflowState, accept, apply


def _state() -> WorkflowState:
    product = Product(
        handle="mug", title="Mug", variants=(Variant(sku="MUG-1", price=Decimal("9.50")),)
    )
    submitted = WorkflowSubmitted(run_id="run-1", product=product, agent_id="product-agent-0")
    return apply(accept("run-1:mug", "product-agent-0", submitted), ProductValidated())


def test_a_step_whose_endpoint_is_down_leaves_the_workflow_waiting_with_the_reason() -> None:
    waiting = apply(_state(), StepWaiting(step="generate_listing", reason="LLMError: HTTP 503"))
    again = apply(waiting, StepWaiting(step="generate_listing", reason="LLMError: HTTP 503"))
    assert (again.status, again.current_step, again.error) == (
        "waiting",
        "generate_listing",
        "LLMError: HTTP 503",
    )
    assert again.waits == 2
    assert not again.terminal


def test_the_next_event_ends_the_wait() -> None:
    waiting = apply(_state(), StepWaiting(step="generate_listing", reason="LLMError: HTTP 503"))
    failed = apply(waiting, StepFailed(step="generate_listing", error="LLMError: HTTP 400"))
    assert (failed.status, failed.error) == ("failed", "LLMError: HTTP 400")
    resumed = apply(waiting, ProductValidated())
    assert (resumed.status, resumed.error, resumed.waits) == ("running", "", 0)


def test_waits_back_off_exponentially_up_to_the_cap_and_honour_retry_after() -> None:
    delays = [waiting_delay(n, None, base_s=1.0, cap_s=30.0) for n in range(1, 10)]
    assert 0.5 <= delays[0] <= 1.0
    assert 4.0 <= delays[3] <= 8.0
    assert all(d <= 30.0 for d in delays)
    assert waiting_delay(1, 12.0, base_s=1.0, cap_s=30.0) == 12.0
    assert waiting_delay(1, 300.0, base_s=1.0, cap_s=30.0) == 30.0
