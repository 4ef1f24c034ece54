"""The seed's workflow API on the durable agents: run one product, fail it, recover it.

    workflow = create_product_upload_workflow()
    config = {"configurable": {"thread_id": "t-1", "fail_step": "confirm_upload"}}
    workflow.invoke(initial_state, config)  # RuntimeError at confirm_upload
    recover_and_resume_workflow(
        workflow=workflow, agent_id="agent-001", thread_id="t-1", initial_state=initial_state
    )

`invoke` runs the product through the swarm's own agents in this process
(`swarm.local_swarm`: no Ray, no cluster): `validate_product_data` ->
`generate_listing` -> `confirm_upload` -> `generate_campaign`, every step's
result an event in the SQLite log at the settings' `db_path`, with the
settings' LLM and marketplace. It returns the final result, or raises
`StepFailedError` (a `RuntimeError`) at the step that failed (the seed's
`fail_step`), or `AgentCrashedError` when the agent's incarnation died there
(`crash_step`).

The ids are the seed's. `task_id` is the workflow's id (one run of one
product; `invoke` refuses a task id the log already holds). `thread_id`
(from the config) is the run it belongs to. `agent_id` names the product
agent that runs it; its marketing agent and coordinator are
`{agent_id}.marketing` and `{agent_id}.coordinator`.

Recovery contract. `recover_and_resume_workflow` reads the task's events
before any agent runs and decides from them:

- failed (a step failed): the failing agent's state just before the failure
  is rebuilt from the task's events, and the workflow is resumed at that step
  with every earlier result, so no completed step runs again (no second LLM
  call, no second upload); the resumed run has no injected faults;
- running (a crash, or a process that ended mid-way): the agents' own
  recovery (latest snapshot + the events after it, then the pending mailbox)
  resumes it where it stopped;
- completed: nothing to do; absent: it runs from `initial_state`.

It returns `{"recovered": bool, "final_result": {...}, "failure": ...,
"recovery": [...]}`: `recovered` is true when a failed or interrupted
workflow was resumed; `failure` is what the log showed (or None); `recovery`
the agents' recovery reports (snapshot seq, events replayed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from actors.models import Campaign, MarketplaceListing, Product, UploadReceipt
from actors.ports import LLMProvenance
from actors.protocol import FaultPlan, Step, WorkflowFinished
from actors.workflow_history import HistoryStatus, WorkflowHistory
from swarm.local_swarm import LocalSwarm
from swarm.settings import SwarmSettings

DEFAULT_TIMEOUT_S = 300.0
_SWARM_NAMES = re.compile(r"(journal|supervisor|coordinator|product-agent-\d+|marketing-agent-\d+)")


class WorkflowInputError(ValueError):
    """`initial_state` or `config` is not what the workflow takes; the message names the field."""


class WorkflowStateError(ValueError):
    """The log does not allow the call: the task exists already, or belongs to another run."""


class StepFailedError(RuntimeError):
    """A step of the workflow failed (the seed's `fail_step`, an LLM or marketplace error...)."""

    def __init__(self, task_id: str, step: str, error: str) -> None:
        super().__init__(f"task {task_id!r} failed at {step}: {error}")
        self.task_id, self.step, self.error = task_id, step, error


class AgentCrashedError(RuntimeError):
    """The agent running the workflow died (the `crash_step` crash mode)."""

    def __init__(self, task_id: str, agent: str, step: str) -> None:
        super().__init__(f"task {task_id!r}: agent {agent!r} crashed at {step}")
        self.task_id, self.agent, self.step = task_id, agent, step


class WorkflowInput(BaseModel):
    """The seed's `initial_state`: which task, which agent, which product."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(min_length=1, max_length=200)
    agent_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    product_data: Product
    """A `Product` or a dict of its shape (handle, title, description, variants, ...)."""
    thread_id: str | None = None

    @field_validator("agent_id")
    @classmethod
    def _not_a_swarm_name(cls, value: str) -> str:
        if _SWARM_NAMES.fullmatch(value):
            raise ValueError(
                f"{value!r} names one of the Ray swarm's agents; the workflow API runs its "
                "own agents in this process, so choose another agent_id"
            )
        return value


class RunConfig(BaseModel):
    """The seed's `config["configurable"]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thread_id: str = Field(min_length=1, max_length=200)
    fail_step: Step | None = None
    """Raise at this step (`RuntimeError`), every time it runs in this invocation."""
    crash_step: Step | None = None
    """The agent dies at this step, once (in this process: its incarnation stops)."""


class WorkflowResult(BaseModel):
    """What `final_result` holds: the seed's names, and what each step produced."""

    task_id: str
    thread_id: str
    agent_id: str
    status: HistoryStatus
    current_step: str
    error: str = ""
    product_id: str
    listing: MarketplaceListing | None = None
    listing_provenance: LLMProvenance | None = None
    upload: UploadReceipt | None = None
    campaign: Campaign | None = None
    campaign_provenance: LLMProvenance | None = None


class ProductUploadWorkflow:
    """The product workflow over the durable agents, with settings built once."""

    def __init__(self, settings: SwarmSettings) -> None:
        self.settings = settings

    def invoke(
        self, initial_state: Any, config: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> dict[str, Any]:
        """Run the task to its end; returns `final_result`, raises at a failed step."""
        return _run(self.ainvoke(initial_state, config, timeout_s=timeout_s))

    async def ainvoke(
        self, initial_state: Any, config: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> dict[str, Any]:
        task = parse_initial_state(initial_state)
        run = parse_config(config, task)
        swarm = LocalSwarm(self.settings, task.agent_id)
        await swarm.open()
        try:
            history = await swarm.history(task.task_id)
            if history.records:
                raise WorkflowStateError(
                    f"task {task.task_id!r} is in the log already ({history.status}, at "
                    f"{', '.join(sorted({r.stream_id for r in history.records}))}): resume it "
                    "with recover_and_resume_workflow, or run it under a new task_id"
                )
            finished = swarm.coordinator.finished(task.task_id)
            await swarm.start_agents()
            plan = FaultPlan(fail_step=run.fail_step, crash_step=run.crash_step)
            await swarm.coordinator.submit_workflow(
                task.task_id, run.thread_id, task.product_data, plan
            )
            outcome = await _finished(swarm, task.task_id, finished, timeout_s)
            if outcome.status == "failed":
                raise StepFailedError(task.task_id, outcome.step, outcome.error)
            return _final_result(task, await swarm.history(task.task_id))
        finally:
            await swarm.close()

    def recover(
        self,
        *,
        agent_id: str,
        thread_id: str,
        initial_state: Any,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> dict[str, Any]:
        return _run(
            self.arecover(
                agent_id=agent_id,
                thread_id=thread_id,
                initial_state=initial_state,
                timeout_s=timeout_s,
            )
        )

    async def arecover(
        self,
        *,
        agent_id: str,
        thread_id: str,
        initial_state: Any,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> dict[str, Any]:
        """Detect from the log how the task stands, resume it, run it to its end."""
        task = parse_initial_state(initial_state)
        parse_config({"configurable": {"thread_id": thread_id}}, task)
        if agent_id != task.agent_id:
            raise WorkflowInputError(
                f"agent_id {agent_id!r} is not initial_state's agent_id {task.agent_id!r}"
            )
        swarm = LocalSwarm(self.settings, agent_id)
        await swarm.open()
        try:
            before = await swarm.history(task.task_id)
            _check_owner(before, swarm, task, thread_id)
            finished = swarm.coordinator.finished(task.task_id)
            reports = await swarm.start_agents()
            failure: dict[str, str] | None = None
            recovered = before.status in ("failed", "running")
            if before.status == "absent":
                await swarm.coordinator.submit_workflow(task.task_id, thread_id, task.product_data)
            elif before.status == "failed":
                failure = await _resume_failed(swarm, before)
            elif before.status == "running" and before.crashes():
                crash = before.crashes()[-1]
                failure = {"kind": "crash", "agent": crash.agent, "step": crash.step, "error": ""}
            if before.status != "completed":
                await _finished(swarm, task.task_id, finished, timeout_s)
            return {
                "recovered": recovered,
                "final_result": _final_result(task, await swarm.history(task.task_id)),
                "failure": failure,
                "recovery": [r.model_dump() for r in reports.values()],
            }
        finally:
            await swarm.close()


def create_product_upload_workflow(settings: SwarmSettings | None = None) -> ProductUploadWorkflow:
    """The workflow, with settings from the environment and `.env` unless given."""
    return ProductUploadWorkflow(settings or SwarmSettings())


def recover_and_resume_workflow(
    *,
    workflow: ProductUploadWorkflow,
    agent_id: str,
    thread_id: str,
    initial_state: Any,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """Find how the task stands in the log, resume it where it failed, run it to its end."""
    return workflow.recover(
        agent_id=agent_id, thread_id=thread_id, initial_state=initial_state, timeout_s=timeout_s
    )


# --- input ---------------------------------------------------------------------------
def parse_initial_state(initial_state: Any) -> WorkflowInput:
    if isinstance(initial_state, WorkflowInput):
        return initial_state
    if not isinstance(initial_state, dict):
        raise WorkflowInputError(
            f"initial_state must be a dict, not {type(initial_state).__name__}"
        )
    try:
        return WorkflowInput.model_validate(initial_state)
    except ValidationError as e:
        task = initial_state.get("task_id")
        where = f"initial_state of task {task!r}" if isinstance(task, str) else "initial_state"
        raise WorkflowInputError(f"{where}: {_reasons(e)}") from e


def parse_config(config: Any, task: WorkflowInput) -> RunConfig:
    if not isinstance(config, dict) or set(config) != {"configurable"}:
        raise WorkflowInputError(
            'config must be {"configurable": {"thread_id": ..., "fail_step": ...}}'
        )
    try:
        run = RunConfig.model_validate(config["configurable"])
    except ValidationError as e:
        raise WorkflowInputError(f"config of task {task.task_id!r}: {_reasons(e)}") from e
    if task.thread_id is not None and task.thread_id != run.thread_id:
        raise WorkflowInputError(
            f"task {task.task_id!r}: initial_state thread_id {task.thread_id!r} is not "
            f"the config's thread_id {run.thread_id!r}"
        )
    return run


def _reasons(error: ValidationError) -> str:
    """Each problem as `field.path: message`, without echoing the values given."""
    parts = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in problem["loc"]) or "(root)"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


# --- recovery ------------------------------------------------------------------------
def _check_owner(
    history: WorkflowHistory, swarm: LocalSwarm, task: WorkflowInput, thread: str
) -> None:
    """The task's events must be this agent's, and of this thread."""
    streams = {r.stream_id for r in history.records}
    foreign = streams - set(swarm.agents)
    if foreign:
        raise WorkflowStateError(
            f"task {task.task_id!r} ran at {', '.join(sorted(foreign))}, not at agent "
            f"{task.agent_id!r}: recover it with the agent_id it ran under"
        )
    threads = {state.thread_id for state in history.states().values()}
    if threads and threads != {thread}:
        raise WorkflowStateError(
            f"task {task.task_id!r} ran in thread {', '.join(sorted(threads))}, not {thread!r}"
        )


async def _resume_failed(swarm: LocalSwarm, history: WorkflowHistory) -> dict[str, str]:
    failure = history.failure()
    state = history.state_at_failure()
    if failure is None or state is None:
        raise WorkflowStateError(
            f"task {history.workflow_id!r} failed, but its log holds no failed step to resume at"
        )
    await swarm.coordinator.resume(state, failure.agent)
    return {"kind": "fail", "agent": failure.agent, "step": failure.step, "error": failure.error}


async def _finished(
    swarm: LocalSwarm,
    task_id: str,
    finished: asyncio.Future[WorkflowFinished],
    timeout_s: float,
) -> WorkflowFinished:
    """How the task ended; raises if its agent crashed first, or at the deadline."""
    waiting: set[asyncio.Future[Any]] = {finished, swarm.crashed}
    done, _ = await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    if finished in done:
        return finished.result()
    if swarm.crashed in done:
        crashes = (await swarm.history(task_id)).crashes()
        step = crashes[-1].step if crashes else "an unknown step"
        raise AgentCrashedError(task_id, swarm.crashed.result(), step)
    history = await swarm.history(task_id)
    raise TimeoutError(
        f"task {task_id!r} did not finish in {timeout_s:.0f} s (it stands {history.status})"
    )


def _final_result(task: WorkflowInput, history: WorkflowHistory) -> dict[str, Any]:
    states = history.states()
    status = history.status
    failure = history.failure()
    latest = states[history.events[-1][0]] if history.events else None
    product = next((s for s in states.values() if s.upload or s.listing), latest)
    marketing = next((s for s in states.values() if s.campaign), None)
    current_step: str = latest.current_step if latest else ""
    if status == "completed":
        current_step = "completed"
    elif failure is not None:
        current_step = failure.step
    result = WorkflowResult(
        task_id=task.task_id,
        thread_id=latest.thread_id if latest else "",
        agent_id=task.agent_id,
        status=status,
        current_step=current_step,
        error=failure.error if failure else "",
        product_id=(latest.product_data if latest else task.product_data).product_id,
        listing=product.marketplace_listing if product else None,
        listing_provenance=product.listing_provenance if product else None,
        upload=product.upload if product else None,
        campaign=marketing.campaign if marketing else None,
        campaign_provenance=marketing.campaign_provenance if marketing else None,
    )
    return result.model_dump(mode="json")


def _run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError(
        "invoke/recover cannot run inside a running event loop: await ainvoke/arecover instead"
    )
