"""The coordinator: intake of products, and the record of how each workflow ended.

`submit` turns products into workflows: one `WorkflowSubmitted` event each and
a `ProcessProduct` message to the product agent that serves the product's
handle, all in one commit, so a product is either in the swarm with its
message on the way or not submitted at all. Submitting a workflow id that is
already in flight is a no-op. `WorkflowFinished` messages end workflows as
`completed` or `failed`.

`resume` takes a failed workflow up again: a new `WorkflowSubmitted` at the
failed step and a `ResumeWorkflow` to the agent where it failed, carrying what
the earlier steps produced, in one commit. The resumed run drops the
workflow's injected faults.
Backpressure: at most `config.max_in_flight` workflows are in flight at once;
`submit` waits for room before admitting more, so a long feed keeps every
agent's memory flat.
"""

from __future__ import annotations

import asyncio
import zlib

from actors.durable import AgentConfig, DurableAgent, JournalPort, Transport
from actors.events import Event, WorkflowCompleted, WorkflowFailed, WorkflowSubmitted
from actors.models import FrozenModel, Product
from actors.product_agent import pick
from actors.protocol import (
    STEP_VALIDATE,
    STEPS,
    Envelope,
    FaultPlan,
    ProcessProduct,
    ResumeWorkflow,
    Step,
    WorkflowFinished,
)
from actors.workflow import WorkflowState, results_of


class FaultSettings(FrozenModel):
    """Swarm-wide failure injection: each workflow draws its faults from these rates."""

    fail_step: str | None = None
    fail_rate: float = 0.0
    crash_step: str | None = None
    crash_rate: float = 0.0
    seed: int = 0

    def plan_for(self, workflow_id: str) -> FaultPlan:
        def draw(salt: str) -> float:
            return zlib.crc32(f"{self.seed}:{salt}:{workflow_id}".encode()) / 2**32

        fail = self.fail_step if self.fail_step and draw("fail") < self.fail_rate else None
        crash = self.crash_step if self.crash_step and draw("crash") < self.crash_rate else None
        return FaultPlan(fail_step=fail, crash_step=crash)


def workflow_id_for(run_id: str, product: Product) -> str:
    return f"{run_prefix(run_id)}{product.product_id}"


def run_prefix(run_id: str) -> str:
    """What every workflow id of the run starts with."""
    return f"{run_id}:"


def _step(name: str) -> Step:
    for step in STEPS:
        if step == name:
            return step
    raise ValueError(f"{name!r} is not a step a workflow can be resumed at")


class Coordinator(DurableAgent):
    def __init__(
        self,
        config: AgentConfig,
        journal: JournalPort,
        transport: Transport,
        product_agents: tuple[str, ...],
    ) -> None:
        super().__init__(config, journal, transport)
        self.product_agents = product_agents
        self._room = asyncio.Event()

    async def submit(
        self,
        run_id: str,
        products: list[Product],
        faults: FaultSettings | None = None,
        plans: dict[str, FaultPlan] | None = None,
    ) -> list[str]:
        """Start a workflow per product; returns their ids (already running ones included)."""
        faults = faults or FaultSettings()
        ids = [workflow_id_for(run_id, p) for p in products]
        # a retried submit (the caller lost the answer) must not start finished workflows again
        known = await self.journal.known_workflows([w for w in ids if w not in self.workflows])
        commits = []
        for workflow_id, product in zip(ids, products, strict=True):
            if workflow_id in known:
                continue
            while len(self.workflows) >= self.config.max_in_flight:
                self._room.clear()
                await self._room.wait()
            plan = (plans or {}).get(workflow_id) or faults.plan_for(workflow_id)
            agent = pick(self.product_agents, product.product_id)
            done = self._start(workflow_id, run_id, product, plan, agent)
            if done is not None:
                commits.append(done)
        await asyncio.gather(*commits)
        return ids

    async def submit_workflow(
        self, workflow_id: str, run_id: str, product: Product, plan: FaultPlan | None = None
    ) -> bool:
        """Start one workflow under a chosen id; False if it is already in flight."""
        agent = pick(self.product_agents, product.product_id)
        done = self._start(workflow_id, run_id, product, plan or FaultPlan(), agent)
        if done is None:
            return False
        await done
        return True

    async def resume(self, failed: WorkflowState, agent: str) -> bool:
        """Take up `failed` (its state when its step failed) again at that step, at `agent`.

        False if the workflow is in flight: then there is nothing to resume.
        """
        step: Step = _step(failed.current_step)
        payload = ResumeWorkflow(
            run_id=failed.run_id,
            product=failed.product_data,
            step=step,
            results=results_of(failed),
        )
        done = self._start(
            failed.task_id, failed.run_id, failed.product_data, FaultPlan(), agent, payload=payload
        )
        if done is None:
            return False
        await done
        return True

    def _start(
        self,
        workflow_id: str,
        run_id: str,
        product: Product,
        plan: FaultPlan,
        agent: str,
        *,
        payload: ProcessProduct | ResumeWorkflow | None = None,
    ) -> asyncio.Future[None] | None:
        """Record the workflow's start with its first message; None if it is in flight."""
        if workflow_id in self.workflows:
            return None
        payload = payload or ProcessProduct(run_id=run_id, product=product, faults=plan)
        message = Envelope.wrap(payload, sender=self.name, recipient=agent, workflow_id=workflow_id)
        first_step = payload.step if isinstance(payload, ResumeWorkflow) else STEP_VALIDATE
        submitted = WorkflowSubmitted(
            run_id=run_id, product=product, agent_id=agent, faults=plan, first_step=first_step
        )
        _, done = self._record_nowait(workflow_id, [submitted], send=[message])
        return done

    async def on_message(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if not isinstance(payload, WorkflowFinished):
            await self._dead_letter(
                envelope.message_id,
                f"{self.name} does not handle {envelope.type!r}",
                envelope.model_dump_json(),
            )
            return
        event: Event = (
            WorkflowCompleted()
            if payload.status == "completed"
            else WorkflowFailed(step=payload.step, error=payload.error)
        )
        _, durable = self._record_nowait(
            envelope.workflow_id, [event], processed=[envelope.message_id]
        )
        self._room.set()
        await durable

    async def advance(self, workflow_id: str) -> None:
        """Nothing to do: an in-flight workflow's next message is already durable."""

    def in_flight(self) -> list[WorkflowState]:
        return list(self.workflows.values())
