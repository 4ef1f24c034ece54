"""The product-upload agent: steps 1-3 of a product's workflow, then the hand-off.

`validate_product_data` (pure) -> `generate_listing` (LLM) -> `confirm_upload`
(marketplace) -> hand-off to the marketing agent. Each step's result is an
event committed before the next step with an effect (LLM, marketplace)
starts; validation and the hand-off have none, so their events share a
commit with the ones before them (accept + validate, upload + hand-off). The
hand-off message goes out only once that commit is durable. An upload carries the
workflow's idempotency key; a workflow inherited from a previous incarnation,
or resumed after a failure, first looks the product up and writes only if the
marketplace does not already hold this listing.

`ResumeWorkflow` takes a failed workflow up again at the step it failed,
with what the earlier steps produced, so those steps are not run again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import zlib
from collections.abc import Awaitable, Callable

from actors.durable import AgentConfig, DurableAgent, JournalPort, Transport
from actors.events import (
    CrashInjected,
    Event,
    IsolatedAttempt,
    ListingGenerated,
    ListingRejected,
    ProductValidated,
    StepFailed,
    StepWaiting,
    UploadConfirmed,
    WorkflowAccepted,
    WorkflowHandedOff,
    WorkflowResumed,
)
from actors.listing_guard import MAX_LISTING_REJECTIONS, ListingRejectedError, guard_listing
from actors.models import UploadReceipt
from actors.ports import ContentWriter, ExternalCallError, GeneratedListing, Marketplace
from actors.protocol import (
    STEP_CAMPAIGN,
    STEP_HANDOFF,
    STEP_LISTING,
    STEP_UPLOAD,
    STEP_VALIDATE,
    CreateCampaign,
    Envelope,
    ProcessProduct,
    ResumeWorkflow,
    StepResults,
    WorkflowFinished,
)
from actors.steps import (
    EffectLimiter,
    InjectedFailureError,
    check_fail_step,
    should_crash,
    waiting_delay,
    with_retries,
)
from actors.validation import validate_product_data
from actors.workflow import WorkflowState
from storage.records import DeadLetter


async def _ignore(state: WorkflowState, reason: str) -> None:
    return None


ISOLATION_WAIT_S = 10.0
"""How long a suspect's isolated step waits for the other running steps to finish."""
log = logging.getLogger(__name__)


class InvalidProductError(ValueError):
    """Step 1 found the product unfit to list; the message gives every reason."""


def pick(agents: tuple[str, ...], key: str) -> str:
    """The agent of a pool that serves `key`: stable across processes and restarts."""
    return agents[zlib.crc32(key.encode()) % len(agents)]


class StepAgent(DurableAgent):
    """A durable agent that runs workflow steps, with the seed's failure injection."""

    coordinator = "coordinator"
    holds_rows = True
    steps: tuple[str, ...] = ()
    """The steps this agent runs: the ones a `ResumeWorkflow` may name."""

    def __init__(
        self,
        config: AgentConfig,
        journal: JournalPort,
        transport: Transport,
        crash: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config, journal, transport)
        self._crash = crash or (lambda: os._exit(1))
        self.on_quarantine: Callable[[WorkflowState, str], Awaitable[None]] = _ignore
        """Awaited when a workflow is quarantined (the Ray host tells the supervisor)."""
        self._marked: set[str] = set()
        self.outcome_unknown: set[str] = set()
        """Workflows whose last effect may have happened unseen (resumed after a failure, or
        waiting after a retryable error): an upload looks the product up before it writes.
        Unlike `recovered`, no process died with them: it does not count toward poison."""
        self._open = asyncio.Event()
        self._open.set()
        self._isolation = asyncio.Lock()
        self._active = 0
        self._idle = asyncio.Condition()

    async def on_message(self, envelope: Envelope) -> None:
        accepted = self.acceptance(envelope)
        if accepted is None:
            await self._dead_letter(
                envelope.message_id,
                f"{self.name} does not handle {envelope.type!r}",
                envelope.model_dump_json(),
            )
            return
        workflow_id = envelope.workflow_id
        if isinstance(envelope.payload, ResumeWorkflow):
            if workflow_id in self.workflows:  # still running here: nothing to resume
                await self.record(workflow_id, (), processed=[envelope.message_id])
                return
            # the failed step may have had an effect whose answer was lost: reconcile first
            self.outcome_unknown.add(workflow_id)
        _, durable = self._record_nowait(workflow_id, [accepted], processed=[envelope.message_id])
        await self.advance(workflow_id, after=durable)

    def acceptance(self, envelope: Envelope) -> WorkflowAccepted | None:
        """The event by which this agent takes the message's workflow on; None: not ours."""
        payload = envelope.payload
        if isinstance(payload, ResumeWorkflow) and payload.step in self.steps:
            return WorkflowAccepted(
                message_id=envelope.message_id,
                run_id=payload.run_id,
                first_step=payload.step,
                product=payload.product,
                faults=payload.faults,
                results=payload.results,
            )
        return None

    effect_free_steps: frozenset[str] = frozenset({STEP_VALIDATE, STEP_HANDOFF})
    """Steps that only compute from the workflow's state (no LLM, no marketplace): their events
    may share a commit with the events before them. Every other step starts only once all
    earlier events of its workflow are durable, so a completed effect is never paid twice."""

    async def advance(self, workflow_id: str, *, after: asyncio.Future[None] | None = None) -> None:
        """Run the workflow's remaining steps here.

        `after` is the commit of the events recorded just before (the acceptance): a
        step without an effect may run before it is durable, its events joining the
        same commit; any other step waits for it. Returns once everything is durable.

        Poison detection: a workflow inherited from a dead process is counted
        (`WorkflowResumed`). One that was in flight at two deaths is a suspect: its
        next step runs alone in the agent (others wait at the gate), after an
        `IsolatedAttempt` is committed, so a death then is its doing. After
        `poison_attempts` such deaths it is quarantined instead of run again:
        failed with the reason, its message in dead letters, the supervisor told.
        Nothing runs before the incarnation is released (see `DurableAgent.start`): a
        death the supervisor does not see as this incarnation's would not be counted.
        """
        await self.released.wait()
        durable = after
        state = self.workflows.get(workflow_id)
        if state is not None and workflow_id in self.recovered and workflow_id not in self._marked:
            self._marked.add(workflow_id)
            state = await self.record(workflow_id, [WorkflowResumed()])
        suspect = state is not None and state.resumed >= 2
        while (state := self.workflows.get(workflow_id)) is not None and not state.terminal:
            effect_free = self._effect_free(state)
            if durable is not None and (suspect or not effect_free):
                await durable
                durable = None
            if suspect:
                await self._isolated_step(workflow_id)
                suspect = False
            else:
                if not self._open.is_set():
                    await self._open.wait()
                    continue  # the state may have moved on while the gate was closed
                durable = await self._step(workflow_id, state, effect_free) or durable
        self.outcome_unknown.discard(workflow_id)  # it has left this agent
        if durable is not None:
            await durable

    def _effect_free(self, state: WorkflowState) -> bool:
        """The workflow's next step has no effect and no fault injected: it need not wait."""
        step = state.current_step
        return (
            step in self.effect_free_steps
            and state.faults.poison_step != step
            and not should_crash(state, step)
        )

    async def _isolated_step(self, workflow_id: str) -> None:
        async with self._isolation:
            self._open.clear()
            try:
                try:  # let the steps already running finish, within reason
                    async with asyncio.timeout(ISOLATION_WAIT_S), self._idle:
                        await self._idle.wait_for(lambda: self._active == 0)
                except TimeoutError:
                    log.warning("%s: %d steps still running; isolating %s beside them",
                                self.name, self._active, workflow_id)  # fmt: skip
                state = self.workflows.get(workflow_id)
                if state is None or state.terminal:
                    return
                if state.isolated_attempts >= self.config.poison_attempts:
                    await self._quarantine(state)
                    return
                state = await self.record(workflow_id, [IsolatedAttempt(step=state.current_step)])
                if state is not None and (
                    durable := await self._step(workflow_id, state, self._effect_free(state))
                ):
                    await durable
            finally:
                self._open.set()

    async def _quarantine(self, state: WorkflowState) -> None:
        step = state.current_step
        reason = (
            f"quarantined: the agent's process died {state.isolated_attempts} times running "
            f"{step} for this product alone (a poison message)"
        )
        letter = DeadLetter(
            message_id=state.inbox_message_id or state.task_id,
            recipient=self.name,
            reason=reason,
            body=state.product_data.model_dump_json(),
        )
        events, send = self._failed(state, step, reason)
        await self.record(state.task_id, events, send=send, dead=[letter])
        await self.on_quarantine(state, reason)

    async def _step(
        self, workflow_id: str, state: WorkflowState, effect_free: bool
    ) -> asyncio.Future[None] | None:
        """Run the workflow's next step and record its events: durable on return, or, for a
        step without an effect (`effect_free`, from `_effect_free(state)`), the commit to wait
        for before the next effect."""
        step = state.current_step
        if state.faults.poison_step == step:
            self._crash()  # unannounced, every time: what a poison message does
        if should_crash(state, step):
            await self.record(workflow_id, [CrashInjected(step=step)])
            await self.before_injected_crash(step)
            self._crash()
        self._active += 1
        began = time.perf_counter()
        try:
            try:
                check_fail_step(state, step)
                events, send = await self.run_step(state, step)
            except InvalidProductError as e:
                events, send = self._failed(state, step, str(e))
            except InjectedFailureError as e:
                events, send = self._failed(state, step, f"{type(e).__name__}: {e}")
            except ExternalCallError as e:
                events, send = self._unreachable(state, step, e)
            after, durable = self._record_nowait(workflow_id, events, send=send)
            if not effect_free:
                await durable
        finally:
            self._active -= 1
            if self._active == 0:  # what an isolated step waits for
                async with self._idle:
                    self._idle.notify_all()
        failed = any(isinstance(e, StepFailed) for e in events)
        self.metrics.step_finished(step, time.perf_counter() - began, failed=failed)
        if effect_free:
            return durable
        waiting = events[-1] if events else None
        if after is not None and after.status == "waiting" and isinstance(waiting, StepWaiting):
            config = self.config  # the endpoint is down: try the step again, later
            delay = waiting_delay(
                after.waits,
                waiting.retry_after_s,
                base_s=config.retry_backoff_s,
                cap_s=config.wait_max_s,
            )
            await asyncio.sleep(delay)
        return None

    def _unreachable(
        self, state: WorkflowState, step: str, error: ExternalCallError
    ) -> tuple[list[Event], list[Envelope]]:
        """Past the retry budget: a retryable error makes the workflow wait, others fail it."""
        reason = f"{type(error).__name__}: {error}"
        if error.retryable:
            self.outcome_unknown.add(state.task_id)  # the effect may have happened: look it up
            retry_after = getattr(error, "retry_after", None)
            return [StepWaiting(step=step, reason=reason, retry_after_s=retry_after)], []
        return self._failed(state, step, reason)

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
    steps = (STEP_VALIDATE, STEP_LISTING, STEP_UPLOAD)

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

    def acceptance(self, envelope: Envelope) -> WorkflowAccepted | None:
        payload = envelope.payload
        if isinstance(payload, ProcessProduct):
            return WorkflowAccepted(
                message_id=envelope.message_id,
                run_id=payload.run_id,
                first_step=STEP_VALIDATE,
                product=payload.product,
                faults=payload.faults,
            )
        return super().acceptance(envelope)

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
            self.metrics.llm_call(step, generated.provenance)
            return self._guarded(state, generated)
        if step == STEP_UPLOAD:
            async with self._uploads:
                return [await self._upload(state)], []
        return self._hand_off(state)

    def _guarded(
        self, state: WorkflowState, generated: GeneratedListing
    ) -> tuple[list[Event], list[Envelope]]:
        """The listing, made safe; a contradicting one is rejected, then the workflow fails."""
        try:
            listing = guard_listing(state.product_data, generated.listing)
        except ListingRejectedError as e:
            if state.listing_rejections >= MAX_LISTING_REJECTIONS:
                return self._failed(state, STEP_LISTING, f"ListingRejected: {e}")
            return [ListingRejected(reason=str(e), provenance=generated.provenance)], []
        return [ListingGenerated(listing=listing, provenance=generated.provenance)], []

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
        # an outcome is unknown after a crash (inherited workflow) or a failed attempt:
        # look the product up first and write only if the marketplace lacks this listing
        unknown = state.task_id in self.recovered or state.task_id in self.outcome_unknown

        async def attempt() -> UploadConfirmed:
            nonlocal unknown
            if unknown:
                existing = await self.marketplace.get_listing(listing.product_id)
                if existing == listing:
                    receipt = UploadReceipt(
                        product_id=listing.product_id,
                        marketplace=self.marketplace.name,
                        created=False,
                    )
                    return UploadConfirmed(receipt=receipt, reconciled=True)
            unknown = True
            return UploadConfirmed(receipt=await self.marketplace.put_listing(listing, key))

        return await with_retries(
            attempt, attempts=self.config.step_attempts, backoff_s=self.config.retry_backoff_s
        )

    def _hand_off(self, state: WorkflowState) -> tuple[list[Event], list[Envelope]]:
        assert state.marketplace_listing is not None
        assert state.upload is not None
        recipient = pick(self.marketing_agents, state.task_id)
        message = Envelope.wrap(
            CreateCampaign(
                run_id=state.run_id,
                product=state.product_data,
                # what the campaign needs; the listing's provenance stays in this log
                results=StepResults(
                    marketplace_listing=state.marketplace_listing, upload=state.upload
                ),
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
