"""The product-upload agent: steps 1-3 of a product's workflow, then the hand-off.

`validate_product_data` (pure) -> `generate_listing` (LLM) -> `confirm_upload`
(marketplace) -> hand-off to the marketing agent. Each step's result is an
event committed before the next step with an effect (LLM, marketplace)
starts; validation and the hand-off have none, so their events share a
commit with the ones before them (accept + validate, upload + hand-off, each
one commit). The hand-off message goes out only once that commit is durable.
An upload carries the
workflow's idempotency key; a workflow inherited from a previous incarnation
first looks the product up and writes only if the marketplace does not
already hold this listing.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Callable

from actors.durable import AgentConfig, DurableAgent, JournalPort, Transport
from actors.events import (
    CrashInjected,
    Event,
    ListingGenerated,
    ProductValidated,
    StepFailed,
    UploadConfirmed,
    WorkflowAccepted,
    WorkflowHandedOff,
)
from actors.models import UploadReceipt
from actors.ports import ContentWriter, ExternalCallError, Marketplace
from actors.protocol import (
    STEP_CAMPAIGN,
    STEP_LISTING,
    STEP_UPLOAD,
    STEP_VALIDATE,
    CreateCampaign,
    Envelope,
    ProcessProduct,
    WorkflowFinished,
)
from actors.steps import (
    EffectLimiter,
    InjectedFailureError,
    check_fail_step,
    should_crash,
    with_retries,
)
from actors.validation import validate_product_data
from actors.workflow import WorkflowState


class InvalidProductError(ValueError):
    """Step 1 found the product unfit to list; the message gives every reason."""


def pick(agents: tuple[str, ...], key: str) -> str:
    """The agent of a pool that serves `key`: stable across processes and restarts."""
    return agents[zlib.crc32(key.encode()) % len(agents)]


class StepAgent(DurableAgent):
    """A durable agent that runs workflow steps, with the seed's failure injection."""

    coordinator = "coordinator"

    def __init__(
        self,
        config: AgentConfig,
        journal: JournalPort,
        transport: Transport,
        crash: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config, journal, transport)
        self._crash = crash or (lambda: os._exit(1))

    effect_free_steps: frozenset[str] = frozenset({STEP_VALIDATE, "handoff"})
    """Steps that only compute from the workflow's state (no LLM, no marketplace): their events
    may ride in the same commit as the events before them. Every other step is an external
    effect and starts only once all earlier events of its workflow are durable."""

    async def advance(self, workflow_id: str, *, after: asyncio.Future[None] | None = None) -> None:
        """Run the remaining steps; `after` is the commit of events recorded just before."""
        durable = after
        while (state := self.workflows.get(workflow_id)) is not None and not state.terminal:
            step = state.current_step
            crash = should_crash(state, step)
            if durable is not None and (crash or step not in self.effect_free_steps):
                await durable
                durable = None
            if crash:
                await self.record(workflow_id, [CrashInjected(step=step)])
                self._crash()
            try:
                check_fail_step(state, step)
                events, send = await self.run_step(state, step)
            except InvalidProductError as e:
                events, send = self._failed(state, step, str(e))
            except (InjectedFailureError, ExternalCallError) as e:
                events, send = self._failed(state, step, f"{type(e).__name__}: {e}")
            _, durable = self._record_nowait(workflow_id, events, send=send)
        if durable is not None:
            await durable

    async def run_step(self, state: WorkflowState, step: str) -> tuple[list[Event], list[Envelope]]:
        raise NotImplementedError

    def _failed(
        self, state: WorkflowState, step: str, error: str
    ) -> tuple[list[Event], list[Envelope]]:
        """The workflow ends `failed` at `step`; the coordinator is told why."""
        return [StepFailed(step=step, error=error)], [self.finished(state, "failed", step, error)]

    def finished(self, state: WorkflowState, status: str, step: str, error: str = "") -> Envelope:
        return Envelope.wrap(
            WorkflowFinished(run_id=state.run_id, status=status, step=step, error=error),
            sender=self.name,
            recipient=self.coordinator,
            workflow_id=state.task_id,
            causation_id=state.inbox_message_id,
        )


class ProductAgent(StepAgent):
    def __init__(
        self,
        config: AgentConfig,
        journal: JournalPort,
        transport: Transport,
        writer: ContentWriter,
        marketplace: Marketplace,
        marketing_agents: tuple[str, ...],
        *,
        effect_concurrency: int = 64,
        crash: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config, journal, transport, crash)
        self.writer = writer
        self.marketplace = marketplace
        self.marketing_agents = marketing_agents
        self._effects = EffectLimiter(effect_concurrency)
        """LLM calls in flight."""
        self._uploads = EffectLimiter(effect_concurrency)
        """Marketplace calls in flight: a limiter of their own, so a workflow whose listing is
        written never queues behind hundreds still waiting for theirs (the pipeline drains)."""

    async def on_message(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if not isinstance(payload, ProcessProduct):
            await self._dead_letter(
                envelope.message_id,
                f"{self.name} does not handle {envelope.type!r}",
                envelope.model_dump_json(),
            )
            return
        accepted = WorkflowAccepted(
            message_id=envelope.message_id,
            run_id=payload.run_id,
            first_step=STEP_VALIDATE,
            product=payload.product,
            faults=payload.faults,
        )
        _, durable = self._record_nowait(
            envelope.workflow_id, [accepted], processed=[envelope.message_id]
        )
        await self.advance(envelope.workflow_id, after=durable)

    async def run_step(self, state: WorkflowState, step: str) -> tuple[list[Event], list[Envelope]]:
        if step == STEP_VALIDATE:
            return self._validate(state), []
        if step == STEP_LISTING:
            async with self._effects:
                generated = await with_retries(
                    lambda: self.writer.write_listing(state.product_data),
                    attempts=self.config.step_attempts,
                    backoff_s=self.config.retry_backoff_s,
                )
            return [
                ListingGenerated(listing=generated.listing, provenance=generated.provenance)
            ], []
        if step == STEP_UPLOAD:
            async with self._uploads:
                return [await self._upload(state)], []
        return self._hand_off(state)

    def _validate(self, state: WorkflowState) -> list[Event]:
        reasons = validate_product_data(state.product_data)
        if reasons:
            raise InvalidProductError("; ".join(reasons))
        return [ProductValidated()]

    async def _upload(self, state: WorkflowState) -> UploadConfirmed:
        listing = state.marketplace_listing
        if listing is None:  # pragma: no cover - the fold sets it with the listing
            raise ValueError("no listing to upload")
        key = f"{state.task_id}:upload"
        if state.task_id in self.recovered:
            existing = await self.marketplace.get_listing(listing.product_id)
            if existing == listing:
                receipt = UploadReceipt(
                    product_id=listing.product_id, marketplace=self.marketplace.name, created=False
                )
                return UploadConfirmed(receipt=receipt, reconciled=True)
        receipt = await with_retries(
            lambda: self.marketplace.put_listing(listing, key),
            attempts=self.config.step_attempts,
            backoff_s=self.config.retry_backoff_s,
        )
        return UploadConfirmed(receipt=receipt)

    def _hand_off(self, state: WorkflowState) -> tuple[list[Event], list[Envelope]]:
        assert state.marketplace_listing is not None
        assert state.upload is not None
        recipient = pick(self.marketing_agents, state.task_id)
        message = Envelope.wrap(
            CreateCampaign(
                run_id=state.run_id,
                product=state.product_data,
                listing=state.marketplace_listing,
                receipt=state.upload,
                faults=state.faults,
            ),
            sender=self.name,
            recipient=recipient,
            workflow_id=state.task_id,
            causation_id=state.inbox_message_id,
        )
        handed = WorkflowHandedOff(
            recipient=recipient, message_id=message.message_id, next_step=STEP_CAMPAIGN
        )
        return [handed], [message]
