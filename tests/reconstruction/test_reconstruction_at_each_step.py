"""Recovery at each step, in both failure modes, through the seed's workflow API.

`fail_step` makes the step raise; `crash_step` kills the agent's incarnation at
the step (in this process: the agent stops dead, the recovery starts a new one
on the same log). Either way `recover_and_resume_workflow` must finish the
workflow without redoing a completed step: LLM calls and uploads are counted
at the suite's own servers, and the log must keep its invariants.
"""

from __future__ import annotations

from collections import Counter

import pytest

from actors.protocol import STEP_CAMPAIGN, STEP_LISTING, STEP_UPLOAD, STEPS
from swarm import create_product_upload_workflow, recover_and_resume_workflow
from swarm.settings import SwarmSettings
from tests.servers.marketplace_stub import MarketplaceStub
from tests.servers.openai_stub import OpenAIStub
from tests.workflow_support import all_events, initial_state, llm_calls, log_problems

pytestmark = pytest.mark.timeout(120)


def _done_before(step: str) -> tuple[Counter[str], int]:
    """LLM calls by schema and uploads that the steps before `step` make."""
    index = STEPS.index(step)
    calls = Counter({"Listing": int(index > STEPS.index(STEP_LISTING))})
    calls["Campaign"] = int(index > STEPS.index(STEP_CAMPAIGN))
    return +calls, int(index > STEPS.index(STEP_UPLOAD))


@pytest.mark.parametrize("mode", ["fail", "crash"])
@pytest.mark.parametrize("step", STEPS)
def test_reconstruction_resumes_at_the_failed_step_and_redoes_nothing(
    step: str, mode: str, settings: SwarmSettings, llm: OpenAIStub, shop: MarketplaceStub
) -> None:
    state = initial_state("task-1")
    workflow = create_product_upload_workflow(settings)
    with pytest.raises(RuntimeError, match=step):
        workflow.invoke(state, {"configurable": {"thread_id": "thread-1", f"{mode}_step": step}})
    calls_before, uploads_before = _done_before(step)
    assert llm_calls(llm, "Wool Beanie") == calls_before
    assert sum(shop.writes.values()) == uploads_before

    result = recover_and_resume_workflow(
        workflow=workflow, agent_id="agent-001", thread_id="thread-1", initial_state=state
    )

    assert result["recovered"] is True
    assert result["failure"]["kind"] == mode
    assert result["failure"]["step"] == step
    final = result["final_result"]
    assert (final["status"], final["current_step"]) == ("completed", "completed")
    assert final["upload"]["product_id"] == "wool-beanie"
    assert final["campaign"]["headline"]
    assert llm_calls(llm, "Wool Beanie") == Counter({"Listing": 1, "Campaign": 1})
    assert shop.writes == Counter({"wool-beanie": 1})
    assert log_problems(all_events(settings.db_path), completed=["task-1"]) == []
    # `workflow_resumed` means a process died with the workflow in flight (it counts toward
    # poison suspicion): a crash records it once, a failed step resumed on request never
    resumed = [e for e in all_events(settings.db_path) if e.type == "workflow_resumed"]
    assert len(resumed) == (1 if mode == "crash" else 0)


def test_an_upload_whose_answer_was_lost_waits_then_looks_the_product_up_first(
    settings: SwarmSettings, shop: MarketplaceStub
) -> None:
    """A failed upload may have reached the marketplace; the next try (the workflow waited
    out the 500 instead of failing) reconciles instead of writing again."""
    state = initial_state("task-1")
    workflow = create_product_upload_workflow(settings)
    shop.fail_after_write_next(1)  # the write lands, the answer is a 500: outcome unknown

    final = workflow.invoke(state, {"configurable": {"thread_id": "thread-1"}})

    assert final["status"] == "completed"
    assert final["upload"]["created"] is False  # found, not written again
    assert shop.writes == Counter({"wool-beanie": 1})
    kinds = [e.type for e in all_events(settings.db_path)]
    assert kinds.count("step_waiting") == 1
