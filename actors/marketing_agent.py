"""The marketing agent: step 4, `generate_campaign`, then reports the workflow completed.

It takes `CreateCampaign` from product agents, writes the campaign with the
LLM (the result is an event, so a recovered agent never pays for it again),
and hands the workflow to the coordinator with `WorkflowFinished(completed)`.
A `ResumeWorkflow` at `generate_campaign` takes a workflow whose campaign
failed up again, with the uploaded listing it carries.
"""

from __future__ import annotations

from collections.abc import Callable

from actors.durable import AgentConfig, JournalPort, Transport
from actors.events import CampaignGenerated, Event, WorkflowAccepted, WorkflowHandedOff
from actors.listing_guard import safe_campaign
from actors.ports import ContentWriter
from actors.product_agent import StepAgent
from actors.protocol import STEP_CAMPAIGN, CreateCampaign, Envelope
from actors.steps import EffectLimiter, with_retries
from actors.workflow import WorkflowState


class MarketingAgent(StepAgent):
    steps = (STEP_CAMPAIGN,)

    def __init__(
        self,
        config: AgentConfig,
        journal: JournalPort,
        transport: Transport,
        writer: ContentWriter,
        *,
        effect_concurrency: int = 64,
        crash: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config, journal, transport, crash)
        self.writer = writer
        self._effects = EffectLimiter(effect_concurrency)

    def acceptance(self, envelope: Envelope) -> WorkflowAccepted | None:
        payload = envelope.payload
        if isinstance(payload, CreateCampaign):
            return WorkflowAccepted(
                message_id=envelope.message_id,
                run_id=payload.run_id,
                first_step=STEP_CAMPAIGN,
                product=payload.product,
                faults=payload.faults,
                results=payload.results,
            )
        return super().acceptance(envelope)

    async def run_step(self, state: WorkflowState, step: str) -> tuple[list[Event], list[Envelope]]:
        if step == STEP_CAMPAIGN:
            listing = state.marketplace_listing
            assert listing is not None
            async with self._effects:
                generated = await with_retries(
                    lambda: self.writer.write_campaign(state.product_data, listing.written_copy()),
                    attempts=self.config.step_attempts,
                    backoff_s=self.config.retry_backoff_s,
                )
            self.metrics.llm_call(step, generated.provenance)
            campaign = safe_campaign(generated.campaign)
            event = CampaignGenerated(campaign=campaign, provenance=generated.provenance)
            return [event], []
        message = self.finished(state, "completed", "completed")
        handed = WorkflowHandedOff(
            recipient=self.coordinator, message_id=message.message_id, next_step="completed"
        )
        return [handed], [message]
