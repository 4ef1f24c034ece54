"""The coordinator: intake of products, and the record of how each workflow ended.

`submit` turns products into workflows: one `WorkflowSubmitted` event each and
a `ProcessProduct` message to the product agent that serves the product's
handle, all in one commit, so a product is either in the swarm with its
message on the way or not submitted at all. Submitting a workflow id that is
already in flight is a no-op. `WorkflowFinished` messages end workflows as
`completed` or `failed`.

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
from actors.protocol import Envelope, FaultPlan, ProcessProduct, WorkflowFinished
from actors.workflow import WorkflowState


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
    return f"{run_id}:{product.product_id}"


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
        ids: list[str] = []
        commits = []
        for product in products:
            workflow_id = workflow_id_for(run_id, product)
            ids.append(workflow_id)
            if workflow_id in self.workflows:
                continue
            while len(self.workflows) >= self.config.max_in_flight:
                self._room.clear()
                await self._room.wait()
            plan = (plans or {}).get(workflow_id) or faults.plan_for(workflow_id)
            agent = pick(self.product_agents, product.product_id)
            message = Envelope.wrap(
                ProcessProduct(run_id=run_id, product=product, faults=plan),
                sender=self.name,
                recipient=agent,
                workflow_id=workflow_id,
            )
            submitted = WorkflowSubmitted(
                run_id=run_id, product=product, agent_id=agent, faults=plan
            )
            _, done = self._record_nowait(workflow_id, [submitted], send=[message])
            commits.append(done)
        await asyncio.gather(*commits)
        return ids

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
