"""The swarm in one process: a product agent, its marketing agent and a coordinator.

What the workflow API runs on. The agents are the swarm's own
(`ProductAgent`, `MarketingAgent`, `Coordinator`) on this event loop, with
the journal over the settings' SQLite file and a `LocalTransport` between
them, so a workflow run here writes the same events, snapshots and mailbox
records as a run on Ray, and is recovered the same way: each agent's start
takes a new fencing epoch, loads its latest snapshot, replays the events
after it, drains its mailbox and resumes what was in flight. No Ray: it
starts in milliseconds.

Names: the product agent is `agent_id`, its partners `{agent_id}.marketing`
and `{agent_id}.coordinator`, so several agent ids share a database without
sharing a stream. One process at a time runs a given agent id: a second one
takes the streams over and the first is fenced off (its writes refused).

Crash mode (`crash_step`) ends the agent's incarnation, not this process: the
agent stops at once (what it had not committed is lost, as in a real crash),
takes no more messages, and `crashed` resolves with its name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from actors.coordinator import Coordinator
from actors.durable import AgentConfig, DurableAgent, JournalPort, RecoveryReport, Transport
from actors.local_transport import LocalTransport
from actors.marketing_agent import MarketingAgent
from actors.ports import ContentWriter, Marketplace
from actors.product_agent import ProductAgent
from actors.protocol import Envelope, WorkflowFinished
from actors.workflow_history import WorkflowHistory
from storage.journal import Journal
from storage.records import EventQuery
from storage.sqlite import SQLiteEventStore
from swarm.marketplace_local import InProcessCatalog, LocalMarketplace
from swarm.runtime import agent_config, build_marketplace, content_writer
from swarm.settings import SwarmSettings

MAX_WORKFLOW_EVENTS = 10_000


class AgentCrashedError(Exception):
    """Raised inside an agent by its crash hook: this incarnation is dead."""


@runtime_checkable
class _Closable(Protocol):
    async def aclose(self) -> None: ...


class _Coordinator(Coordinator):
    """The coordinator, telling waiters in this process how a workflow finished."""

    def __init__(
        self,
        config: AgentConfig,
        journal: JournalPort,
        transport: Transport,
        product_agents: tuple[str, ...],
    ) -> None:
        super().__init__(config, journal, transport, product_agents)
        self._waiters: dict[str, list[asyncio.Future[WorkflowFinished]]] = {}

    def finished(self, workflow_id: str) -> asyncio.Future[WorkflowFinished]:
        """Resolves when the next `WorkflowFinished` of `workflow_id` is recorded."""
        future: asyncio.Future[WorkflowFinished] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(workflow_id, []).append(future)
        return future

    async def on_message(self, envelope: Envelope) -> None:
        await super().on_message(envelope)
        if isinstance(envelope.payload, WorkflowFinished):
            for future in self._waiters.pop(envelope.workflow_id, []):
                if not future.done():
                    future.set_result(envelope.payload)


class LocalSwarm:
    def __init__(self, settings: SwarmSettings, agent_id: str) -> None:
        self.settings = settings
        self.agent_id = agent_id
        self.marketing_id = f"{agent_id}.marketing"
        self.coordinator_id = f"{agent_id}.coordinator"
        self.journal = Journal(
            SQLiteEventStore(settings.db_path, synchronous=settings.db_synchronous)
        )
        names = (agent_id, self.marketing_id, self.coordinator_id)
        self.transport = LocalTransport(expected=names)
        self.writer: ContentWriter = content_writer(settings)
        self.marketplace: Marketplace = (
            build_marketplace(settings)
            if settings.marketplace_url
            else LocalMarketplace(catalog=InProcessCatalog(self.journal))
        )
        self.coordinator = _Coordinator(
            self._config(self.coordinator_id, "coordinator"),
            self.journal,
            self.transport,
            (agent_id,),
        )
        self.product_agent = ProductAgent(
            self._config(agent_id, "product-upload"),
            self.journal,
            self.transport,
            self.writer,
            self.marketplace,
            (self.marketing_id,),
            effect_concurrency=settings.effect_concurrency,
            crash=self._crash_hook(agent_id),
        )
        self.marketing_agent = MarketingAgent(
            self._config(self.marketing_id, "marketing"),
            self.journal,
            self.transport,
            self.writer,
            effect_concurrency=settings.effect_concurrency,
            crash=self._crash_hook(self.marketing_id),
        )
        self.product_agent.coordinator = self.coordinator_id
        self.marketing_agent.coordinator = self.coordinator_id
        self.agents: dict[str, DurableAgent] = {
            a.name: a for a in (self.product_agent, self.marketing_agent, self.coordinator)
        }
        self.reports: dict[str, RecoveryReport] = {}
        self._crashed: asyncio.Future[str] | None = None
        self._stops: list[asyncio.Task[None]] = []

    def _config(self, name: str, role: str) -> AgentConfig:
        return agent_config(self.settings, name, role)

    # --- lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        """Open the journal (the database); the agents are not started yet."""
        self._crashed = asyncio.get_running_loop().create_future()
        await self.journal.start()

    async def start_agents(self) -> dict[str, RecoveryReport]:
        """Start every agent: each recovers from its snapshot and events and resumes its work."""
        for agent in self.agents.values():
            self.reports[agent.name] = await agent.start()
            self.transport.attach(agent)
        return self.reports

    async def close(self) -> None:
        for agent in self.agents.values():
            self.transport.detach(agent.name)
            await agent.stop()
        await self.transport.close()
        await asyncio.gather(*self._stops)
        for client in (self.writer, self.marketplace):
            if isinstance(client, _Closable):
                await client.aclose()
        await self.journal.stop()

    # --- crash mode ----------------------------------------------------------------
    @property
    def crashed(self) -> asyncio.Future[str]:
        """Resolves with the name of the first agent whose injected crash fired."""
        if self._crashed is None:
            raise RuntimeError("the local swarm is not open")
        return self._crashed

    def _crash_hook(self, name: str) -> Callable[[], None]:
        def crash() -> None:
            agent = self.agents[name]
            self.transport.detach(name)
            self._stops.append(asyncio.ensure_future(agent.stop()))
            if not self.crashed.done():
                self.crashed.set_result(name)
            raise AgentCrashedError(f"{name}: process ended by crash_step")

        return crash

    # --- reading the log -------------------------------------------------------------
    async def history(self, workflow_id: str) -> WorkflowHistory:
        """The workflow's events in commit order, at any agent (not only this swarm's)."""
        rows = await self.journal.query_events(
            EventQuery(workflow_id=workflow_id, limit=MAX_WORKFLOW_EVENTS)
        )
        return WorkflowHistory(workflow_id, [record for _, record in rows])
