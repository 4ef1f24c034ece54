"""The workflow API's contract at its edges: what it accepts, what it refuses and how it says so."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from actors.models import Product
from swarm import create_product_upload_workflow, recover_and_resume_workflow
from swarm.settings import SwarmSettings
from swarm.workflow_api import (
    ProductUploadWorkflow,
    StepFailedError,
    WorkflowInputError,
    WorkflowStateError,
)
from tests.conftest import make_settings
from tests.workflow_support import initial_state, product

pytestmark = pytest.mark.timeout(60)
CONFIG = {"configurable": {"thread_id": "thread-1"}}


@pytest.fixture
def settings(tmp_path: Path) -> SwarmSettings:
    return make_settings(tmp_path / "swarm.db")


@pytest.fixture
def workflow(settings: SwarmSettings) -> ProductUploadWorkflow:
    return create_product_upload_workflow(settings)


def test_product_data_may_be_a_product(workflow: ProductUploadWorkflow) -> None:
    state = {"task_id": "task-1", "agent_id": "agent-001", "product_data": product()}

    result = workflow.invoke(state, CONFIG)

    assert (result["task_id"], result["thread_id"], result["agent_id"]) == (
        "task-1",
        "thread-1",
        "agent-001",
    )
    assert (result["status"], result["product_id"]) == ("completed", "wool-beanie")
    assert result["listing_provenance"]["model"] == "offline-v1"


def test_a_bad_product_field_is_named_with_its_task(workflow: ProductUploadWorkflow) -> None:
    state = initial_state("task-1")
    state["product_data"]["variants"][0]["price"] = "twelve"
    del state["product_data"]["title"]

    with pytest.raises(WorkflowInputError) as caught:
        workflow.invoke(state, CONFIG)

    message = str(caught.value)
    assert message.startswith("initial_state of task 'task-1':")
    assert "product_data.title: Field required" in message
    assert "product_data.variants.0.price:" in message
    assert "twelve" not in message  # values are not echoed


def test_an_unknown_initial_state_key_is_refused(workflow: ProductUploadWorkflow) -> None:
    state = {**initial_state("task-1"), "colour": "red"}
    with pytest.raises(WorkflowInputError, match="colour: unknown field"):
        workflow.invoke(state, CONFIG)


@pytest.mark.parametrize("state", [None, "task-1", ["task-1"]])
def test_initial_state_must_be_a_dict(workflow: ProductUploadWorkflow, state: Any) -> None:
    with pytest.raises(WorkflowInputError, match="initial_state must be a dict"):
        workflow.invoke(state, CONFIG)


@pytest.mark.parametrize("agent_id", ["coordinator", "product-agent-0", "journal", "a b"])
def test_agent_ids_of_the_ray_swarm_or_with_spaces_are_refused(
    workflow: ProductUploadWorkflow, agent_id: str
) -> None:
    with pytest.raises(WorkflowInputError, match="agent_id"):
        workflow.invoke(initial_state("task-1", agent_id=agent_id), CONFIG)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"thread_id": "t"}, "config must be"),
        ({"configurable": {}}, "thread_id: Field required"),
        ({"configurable": {"thread_id": "t", "fail_step": "upload"}}, "fail_step: Input should"),
        ({"configurable": {"thread_id": "t", "retries": 3}}, "retries: unknown field"),
    ],
)
def test_a_bad_config_is_refused_with_the_field(
    workflow: ProductUploadWorkflow, config: dict[str, Any], reason: str
) -> None:
    with pytest.raises(WorkflowInputError, match=reason):
        workflow.invoke(initial_state("task-1"), config)


def test_a_thread_id_in_initial_state_must_match_the_config(
    workflow: ProductUploadWorkflow,
) -> None:
    state = {**initial_state("task-1"), "thread_id": "thread-2"}
    with pytest.raises(WorkflowInputError, match="thread_id 'thread-2' is not"):
        workflow.invoke(state, CONFIG)


def test_an_invalid_product_fails_step_one_with_its_reasons(
    workflow: ProductUploadWorkflow,
) -> None:
    state = {
        "task_id": "task-1",
        "agent_id": "agent-001",
        "product_data": Product(handle="x", title=""),
    }

    with pytest.raises(StepFailedError, match="validate_product_data") as caught:
        workflow.invoke(state, CONFIG)

    assert "Title: missing" in caught.value.error
    assert "Variants: the product has no variants" in caught.value.error


def test_invoke_refuses_a_task_the_log_already_holds(workflow: ProductUploadWorkflow) -> None:
    failing = {"configurable": {"thread_id": "thread-1", "fail_step": "generate_listing"}}
    with pytest.raises(StepFailedError):
        workflow.invoke(initial_state("task-1"), failing)

    with pytest.raises(WorkflowStateError, match="task 'task-1' is in the log already"):
        workflow.invoke(initial_state("task-1"), CONFIG)


def test_recovery_refuses_another_thread_or_agent(workflow: ProductUploadWorkflow) -> None:
    state = initial_state("task-1")
    workflow.invoke(state, CONFIG)

    with pytest.raises(WorkflowStateError, match="ran in thread thread-1, not 'thread-2'"):
        recover_and_resume_workflow(
            workflow=workflow, agent_id="agent-001", thread_id="thread-2", initial_state=state
        )
    with pytest.raises(WorkflowInputError, match="agent_id 'agent-002' is not"):
        recover_and_resume_workflow(
            workflow=workflow, agent_id="agent-002", thread_id="thread-1", initial_state=state
        )
    moved = initial_state("task-1", agent_id="agent-002")
    with pytest.raises(WorkflowStateError, match="ran at agent-001"):
        recover_and_resume_workflow(
            workflow=workflow, agent_id="agent-002", thread_id="thread-1", initial_state=moved
        )


def test_the_async_api_runs_inside_an_event_loop(workflow: ProductUploadWorkflow) -> None:
    async def scenario() -> tuple[dict[str, Any], str]:  # one loop throughout
        failing = {"configurable": {"thread_id": "thread-1", "fail_step": "generate_campaign"}}
        with pytest.raises(StepFailedError):
            await workflow.ainvoke(initial_state("task-1"), failing)
        with pytest.raises(RuntimeError, match="await ainvoke/arecover") as caught:
            workflow.invoke(initial_state("task-2"), CONFIG)
        recovered = await workflow.arecover(
            agent_id="agent-001", thread_id="thread-1", initial_state=initial_state("task-1")
        )
        return recovered, str(caught.value)

    recovered, refusal = asyncio.run(scenario())

    assert "cannot run inside a running event loop" in refusal

    assert recovered["recovered"] is True
    assert recovered["final_result"]["status"] == "completed"
