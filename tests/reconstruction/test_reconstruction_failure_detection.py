"""Failure detection: what the log alone says about a workflow, before any agent runs."""

from __future__ import annotations

from collections import Counter

import pytest

from actors.workflow_history import StepCrash, StepFailure, WorkflowHistory
from storage.records import EventQuery
from swarm import create_product_upload_workflow, recover_and_resume_workflow
from swarm.settings import SwarmSettings
from tests.conftest import read_store
from tests.servers.openai_stub import OpenAIStub
from tests.workflow_support import initial_state, llm_calls

pytestmark = pytest.mark.timeout(60)
CONFIG = {"configurable": {"thread_id": "thread-1"}}


def _history(settings: SwarmSettings, task_id: str) -> WorkflowHistory:
    rows = read_store(settings.db_path, lambda s: s.query_events(EventQuery(workflow_id=task_id)))
    return WorkflowHistory(task_id, [record for _, record in rows])


def _invoke_failing(settings: SwarmSettings, **configurable: str) -> None:
    workflow = create_product_upload_workflow(settings)
    with pytest.raises(RuntimeError):
        workflow.invoke(
            initial_state("task-1"), {"configurable": {"thread_id": "thread-1", **configurable}}
        )


def test_reconstruction_detects_the_failed_step_and_agent(settings: SwarmSettings) -> None:
    _invoke_failing(settings, fail_step="confirm_upload")

    history = _history(settings, "task-1")

    assert history.status == "failed"
    assert history.failure() == StepFailure(
        agent="agent-001",
        step="confirm_upload",
        error="InjectedFailureError: Injected failure at confirm_upload",
    )
    assert history.crashes() == []


def test_reconstruction_detects_a_failure_at_the_marketing_agent(settings: SwarmSettings) -> None:
    _invoke_failing(settings, fail_step="generate_campaign")

    failure = _history(settings, "task-1").failure()

    assert failure is not None
    assert (failure.agent, failure.step) == ("agent-001.marketing", "generate_campaign")


def test_reconstruction_rebuilds_the_state_just_before_the_failure(
    settings: SwarmSettings,
) -> None:
    _invoke_failing(settings, fail_step="confirm_upload")

    state = _history(settings, "task-1").state_at_failure()

    assert state is not None
    assert (state.task_id, state.thread_id, state.agent_id) == ("task-1", "thread-1", "agent-001")
    assert (state.status, state.current_step) == ("running", "confirm_upload")
    assert state.listing is not None
    assert state.listing_provenance is not None
    assert state.marketplace_listing is not None
    assert state.marketplace_listing.product_id == "wool-beanie"
    assert state.upload is None


def test_reconstruction_sees_a_crashed_workflow_as_interrupted_not_failed(
    settings: SwarmSettings,
) -> None:
    _invoke_failing(settings, crash_step="generate_listing")

    history = _history(settings, "task-1")

    assert history.status == "running"
    assert history.failure() is None
    assert history.crashes() == [StepCrash(agent="agent-001", step="generate_listing")]


def test_reconstruction_of_a_completed_task_recovers_nothing_and_calls_nothing(
    settings: SwarmSettings, llm: OpenAIStub
) -> None:
    state = initial_state("task-1")
    workflow = create_product_upload_workflow(settings)
    workflow.invoke(state, CONFIG)

    result = recover_and_resume_workflow(
        workflow=workflow, agent_id="agent-001", thread_id="thread-1", initial_state=state
    )

    assert result["recovered"] is False
    assert result["failure"] is None
    assert result["final_result"]["status"] == "completed"
    assert llm_calls(llm, "Wool Beanie") == Counter({"Listing": 1, "Campaign": 1})


def test_reconstruction_of_an_unknown_task_runs_it_from_the_initial_state(
    settings: SwarmSettings,
) -> None:
    workflow = create_product_upload_workflow(settings)

    result = recover_and_resume_workflow(
        workflow=workflow,
        agent_id="agent-001",
        thread_id="thread-1",
        initial_state=initial_state("task-new"),
    )

    assert result["recovered"] is False
    assert result["final_result"]["status"] == "completed"
