"""Ray at the edge: the client of the journal actor, the message transport, the agent actor.

The agents are plain classes; this module runs one inside a Ray actor and
gives it a `JournalPort` and a `Transport` that talk to other named actors in
the swarm's namespace. Both retry across the death of the actor they talk to:
journal appends are idempotent, and a redelivered message is checked against
the log by its recipient before it is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Sequence
from typing import Any, Literal

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayError, RayTaskError

from actors.coordinator import Coordinator, FaultSettings
from actors.durable import AgentConfig, DurableAgent, RecoveryReport
from actors.llm_pricing import PriceTable
from actors.marketing_agent import MarketingAgent
from actors.metrics import RayMetrics
from actors.models import FrozenModel, Product
from actors.ports import ContentWriter, Marketplace
from actors.product_agent import ProductAgent, StepAgent
from actors.protocol import FaultPlan
from actors.workflow import WorkflowState
from storage.journal import JournalNotStartedError
from storage.process_gc import freeze_alive, tune_gc
from storage.process_memory import release_free_memory, tune_malloc
from storage.records import (
    AppendBatch,
    AppendRefusal,
    AppendResult,
    EventRecord,
    MessageRecord,
    StreamRecovery,
    StreamTail,
)

log = logging.getLogger(__name__)
NAMESPACE = "swarm"


class StandbyError(RuntimeError):
    """A call reached a warm standby that serves no role yet: ask again shortly."""


_ACTOR_GONE = (RayActorError, ActorUnavailableError, JournalNotStartedError, StandbyError)
"""A peer that is dead, unreachable, or a standby not yet serving: ask again."""
FOLLOW_EVERY_S = 10.0
"""How often a warm standby folds what its role's agent wrote since. It starts from the
latest snapshot when one is newer, so under load (a snapshot every second or two) most
events are never folded by the standby at all: the four standbys cost 0.16 ms of CPU per
product following every 2 s, 0.08 every 10 s. A take-over folds at most the events since
the latest snapshot (`snapshot_every`) either way."""
SAMPLE_EVERY_S = 1.0
"""How often an agent's gauges (mailbox depth, workflows by status) are sampled, its counts
handed to Ray (`RayMetrics.flush`) and its freed heap pages given back to the system
(`release_free_memory`). A trim takes 0.1-0.6 ms; each second instead of every five keeps
an agent 2-4 MB lower after a burst (100k products: product agents 110-112 MB, not 111-117)."""


async def sample_every(agent: DurableAgent, interval_s: float) -> None:
    """Keep the agent's gauges current (they describe state, so they are sampled, not
    counted), hand the counts gathered since the last round to Ray, and trim the heap.

    A round whose metrics fail is logged (the first of a run of failures, and the
    recovery) and the loop goes on: the trim still runs, and a metrics backend that
    comes back gets the next rounds' figures. The counts of a failed round are lost
    (`flush` takes them before it sends): counters then read low, never double.
    """
    failing = False
    while True:
        try:
            held = len(agent.workflows)
            waiting = sum(1 for w in agent.workflows.values() if w.status == "waiting")
            handed_off = agent.processed - held - agent.completed - agent.failed
            workflows = {
                "running": held - waiting,
                "waiting": waiting,
                "handed_off": max(handed_off, 0),
                "completed": agent.completed,
                "failed": agent.failed,
            }
            agent.metrics.sampled(mailbox_depth=agent.mailbox_depth, workflows=workflows)
            agent.metrics.flush()
        except Exception:
            if not failing:
                log.exception("%s: metrics failed; retrying every %g s", agent.name, interval_s)
            failing = True
        else:
            if failing:
                log.info("%s: metrics recorded again", agent.name)
            failing = False
        release_free_memory()  # pages freed below live heap blocks
        await asyncio.sleep(interval_s)


class ActorLookupError(Exception):
    """A named swarm actor could not be found or reached in time."""


SUPERVISOR = "supervisor"
QUIET_LOGGERS = ("httpx", "httpx2", "openai", "httpcore")
"""HTTP client loggers that log every request at INFO."""
WHEREIS_WAIT_S = 1.0
"""How long `whereis` may hold a caller while the role it asks for is being restarted."""


async def resolve(name: str, deadline_s: float) -> Any:
    """The live handle of the named actor, waiting up to `deadline_s` for it to (re)appear."""
    end = time.monotonic() + deadline_s
    delay = 0.01
    while True:
        try:
            return ray.get_actor(name, namespace=NAMESPACE)
        except ValueError as e:
            if time.monotonic() > end:
                raise ActorLookupError(f"actor {name!r} not found in {deadline_s:.0f} s") from e
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def locate(role: str, deadline_s: float, wait_s: float = WHEREIS_WAIT_S) -> Any:
    """The actor serving `role` now, as the supervisor's registry says (Erlang's `whereis`).

    A restarted role is served by a new actor (`product-agent-0~2`, ...); while the
    supervisor itself is down, the role's first actor name is tried.
    """
    end = time.monotonic() + deadline_s
    delay = 0.01
    while True:
        name: str | None = role  # the role's first actor, if the supervisor cannot be asked
        try:
            supervisor = ray.get_actor(SUPERVISOR, namespace=NAMESPACE)
            # while the role restarts, the supervisor answers the moment it serves again
            name = await asyncio.wait_for(supervisor.whereis.remote(role, wait_s), wait_s + 1.0)
        except (ValueError, TimeoutError, *_ACTOR_GONE):
            pass
        try:
            if name is None:  # the supervisor says: being restarted right now
                raise ValueError(f"{role} is restarting")
            return ray.get_actor(name, namespace=NAMESPACE)
        except ValueError as e:
            if time.monotonic() > end:
                raise ActorLookupError(f"no actor serves {role!r} after {deadline_s:.0f} s") from e
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


class RayJournalClient:
    """`JournalPort` over the named journal actor; retries while the journal restarts."""

    def __init__(self, name: str = "journal", retry_deadline_s: float = 60.0) -> None:
        self.name = name
        self.retry_deadline_s = retry_deadline_s
        self._handle: Any = None

    async def _call(self, method: str, *args: Any) -> Any:
        end = time.monotonic() + self.retry_deadline_s
        delay = 0.02
        while True:
            if self._handle is None:
                self._handle = await locate(self.name, self.retry_deadline_s)
            try:
                return await getattr(self._handle, method).remote(*args)
            except _ACTOR_GONE:
                self._handle = None
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    async def recover(
        self, stream_id: str, recipient: str, after_seq: int, max_events: int, max_messages: int
    ) -> StreamRecovery:
        result: StreamRecovery = await self._call(
            "recover", stream_id, recipient, after_seq, max_events, max_messages
        )
        return result

    async def read_tail(self, stream_id: str, after_seq: int, max_events: int) -> StreamTail:
        result: StreamTail = await self._call("read_tail", stream_id, after_seq, max_events)
        return result

    async def append(self, batch: AppendBatch) -> AppendResult | AppendRefusal:
        result: AppendResult | AppendRefusal = await self._call("append", batch)
        return result

    async def read_stream(
        self, stream_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        result: list[EventRecord] = await self._call("read_stream", stream_id, after_seq, limit)
        return result

    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[MessageRecord]:
        result: list[MessageRecord] = await self._call("pending_messages", recipient, limit)
        return result

    async def known_workflows(self, workflow_ids: Sequence[str]) -> set[str]:
        result: set[str] = await self._call("known_workflows", list(workflow_ids))
        return result

    async def unprocessed(self, message_ids: Sequence[str]) -> set[str]:
        result: set[str] = await self._call("unprocessed", list(message_ids))
        return result


class RayTransport:
    """Pushes message bodies to named agents; a failed push is retried as a redelivery.

    A push reaching an actor found after the message was committed is sent as a
    redelivery too (checked against the log by the recipient): the role may have
    been restarted meanwhile, and the incarnation before may have taken the message
    from its mailbox already.
    """

    def __init__(self, retry_deadline_s: float = 60.0) -> None:
        self.retry_deadline_s = retry_deadline_s
        self._handles: dict[str, tuple[Any, float]] = {}
        """Recipient role -> (its actor, `time.monotonic()` when it was looked up)."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self, recipients: Sequence[str]) -> None:
        """Find those of these recipients that serve now, so a first push pays no lookup."""
        for recipient in recipients:
            if recipient not in self._handles:
                with contextlib.suppress(ActorLookupError):  # not up yet: found on first push
                    handle = await locate(recipient, 0.0, wait_s=0.0)
                    self._handles[recipient] = (handle, time.monotonic())

    def send(self, recipient: str, bodies: list[str]) -> None:
        task = asyncio.ensure_future(self._deliver(recipient, bodies, time.monotonic()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, recipient: str, bodies: list[str], sent_at: float) -> None:
        end = time.monotonic() + self.retry_deadline_s
        redelivery, delay = False, 0.02
        while True:
            try:
                found = self._handles.get(recipient)
                if found is None:
                    handle = await locate(recipient, 10.0)
                    found = self._handles[recipient] = (handle, time.monotonic())
                handle, found_at = found
                await handle.deliver.remote(bodies, redelivery or found_at > sent_at)
                return
            except (*_ACTOR_GONE, ActorLookupError, RayTaskError) as e:
                # RayTaskError: e.g. a standby that has not yet taken the role over
                self._handles.pop(recipient, None)
                if time.monotonic() > end:
                    # the messages are durable: the recipient drains them when it is back
                    log.warning("push to %s given up (%s); left in its mailbox", recipient, e)
                    return
                redelivery = True
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)


class AgentSpec(FrozenModel):
    """Everything needed to build one agent inside its actor process."""

    model_config = FrozenModel.model_config | {"arbitrary_types_allowed": True}

    kind: Literal["coordinator", "product", "marketing"]
    config: AgentConfig
    journal_name: str = "journal"
    product_agents: tuple[str, ...] = ()
    marketing_agents: tuple[str, ...] = ()
    writer: Any = None
    marketplace: Any = None
    effect_concurrency: int = 64
    retry_deadline_s: float = 60.0
    llm_prices: PriceTable = PriceTable()
    """Prices per model for the LLM cost metric."""

    def peers(self) -> tuple[str, ...]:
        """The agents this one sends messages to."""
        if self.kind == "coordinator":
            return self.product_agents
        if self.kind == "product":
            return (*self.marketing_agents, StepAgent.coordinator)
        return (StepAgent.coordinator,)


class AgentStatus(FrozenModel):
    name: str
    role: str
    pid: int
    node_id: str
    epoch: int
    last_seq: int
    in_flight: int
    processed: int
    completed: int
    failed: int
    mailbox: int = 0
    """Messages delivered and not yet processed."""
    snapshot_seq: int = 0


def build_agent(spec: AgentSpec) -> DurableAgent:
    """The agent `spec` describes, recording its metrics through Ray."""
    agent = _build(spec)
    agent.metrics = RayMetrics(spec.config.role, spec.config.name, spec.llm_prices)
    return agent


def _build(spec: AgentSpec) -> DurableAgent:
    journal = RayJournalClient(spec.journal_name, spec.retry_deadline_s)
    transport = RayTransport(spec.retry_deadline_s)
    if spec.kind == "coordinator":
        return Coordinator(spec.config, journal, transport, spec.product_agents)
    writer: ContentWriter = spec.writer
    if spec.kind == "product":
        marketplace: Marketplace = spec.marketplace
        return ProductAgent(
            spec.config,
            journal,
            transport,
            writer,
            marketplace,
            spec.marketing_agents,
            effect_concurrency=spec.effect_concurrency,
        )
    return MarketingAgent(
        spec.config, journal, transport, writer, effect_concurrency=spec.effect_concurrency
    )


def _exit_process(error: BaseException) -> None:
    log.error("ending this process after a refused commit: %s", error)
    logging.shutdown()
    os._exit(1)


class AgentActor:
    """Ray actor body hosting one durable agent, or waiting as a warm standby to take one over.

    A standby is a started process with no agent: `take_over(spec)` builds the agent
    and recovers it from the log, which takes milliseconds instead of the ~0.4 s a new
    actor process needs.
    """

    def __init__(self, spec: AgentSpec | None = None) -> None:
        tune_malloc()
        logging.basicConfig(level=logging.INFO)
        for chatty in QUIET_LOGGERS:  # a line per request costs CPU here and in Ray's log monitor
            logging.getLogger(chatty).setLevel(logging.WARNING)
        self.spec = spec
        # a standby built for a role has its agent ready (imports, adapters, metrics):
        # taking over is then only the recovery from the log
        self._agent = None if spec is None else build_agent(spec)
        self._started = False
        self._sampler: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        tune_gc()

    @property
    def agent(self) -> DurableAgent:
        if self._agent is None or not self._started:
            raise StandbyError("this actor is a standby: it serves no role yet")
        return self._agent

    async def start(self) -> RecoveryReport:
        if self._agent is None:
            raise StandbyError("no role to start: call take_over(spec)")
        self._started = True
        if self._follower is not None:
            self._follower.cancel()
        agent = self.agent
        agent.on_crash = self._report_crash
        agent.end_process = _exit_process
        agent.before_injected_crash = self._announce_crash
        if isinstance(agent, StepAgent):
            agent.on_quarantine = self._report_quarantine
        # steps wait for the supervisor's watch (below): a step that kills this process
        # before the supervisor holds it would die unseen and uncounted
        report = await agent.start(held=True)
        if self._sampler is None:
            self._sampler = asyncio.ensure_future(sample_every(agent, SAMPLE_EVERY_S))
        return report

    async def _report_quarantine(self, state: WorkflowState, reason: str) -> None:
        try:
            supervisor = ray.get_actor(SUPERVISOR, namespace=NAMESPACE)
            await asyncio.wait_for(
                supervisor.quarantined.remote(
                    self.agent.name, state.task_id, state.inbox_message_id, reason,
                    state.isolated_attempts,
                ),
                5,
            )  # fmt: skip
        except (ValueError, TimeoutError, *_ACTOR_GONE):
            log.warning("%s: could not report quarantine of %s", self.agent.name, state.task_id)

    async def _announce_crash(self, step: str) -> None:
        """A crash injected on purpose: the supervisor restarts it without counting it."""
        try:
            supervisor = ray.get_actor(SUPERVISOR, namespace=NAMESPACE)
            await asyncio.wait_for(supervisor.crash_injected.remote(self.agent.name, step), 5)
        except (ValueError, TimeoutError, *_ACTOR_GONE):
            log.warning("%s: could not announce the injected crash", self.agent.name)

    async def take_over(self, spec: AgentSpec) -> RecoveryReport:
        """Become the agent of `spec`: recover it from the log and serve its mailbox."""
        if self._started:
            raise RuntimeError(f"already serving {self.agent.name}")
        if self._agent is None or self._agent.name != spec.config.name:
            self._agent = build_agent(spec)
            freeze_alive()  # the agent's adapters live as long as the process
        self.spec = spec
        return await self.start()

    async def ready(self) -> int:
        """A standby's answer once it can take over at once: its pid.

        A standby built for a role finds the journal and its peers now, so the
        recovery it runs on taking over makes no lookups.
        """
        agent, spec = self._agent, self.spec
        if agent is not None and spec is not None and not self._started:
            transport = agent.transport
            try:
                await asyncio.wait_for(agent.catch_up(), 10)
                if isinstance(transport, RayTransport):
                    await asyncio.wait_for(transport.connect(spec.peers()), 5)
            except (TimeoutError, ActorLookupError, *_ACTOR_GONE):
                pass  # found again on first use
            if self._follower is None:
                self._follower = asyncio.ensure_future(self._follow(agent))
        return os.getpid()

    async def _follow(self, agent: DurableAgent) -> None:
        """A standby keeps close to the log, so a take-over folds only the last moments."""
        while not self._started:
            await asyncio.sleep(FOLLOW_EVERY_S)
            try:
                await agent.catch_up()
            except (ActorLookupError, *_ACTOR_GONE) as e:
                log.info("standby of %s: catch-up failed (%r)", agent.name, e)

    def serving(self) -> str | None:
        """The role this actor serves, None for a standby."""
        return self._agent.name if self._started and self._agent is not None else None

    def _report_crash(self, error: BaseException) -> None:
        """An agent task died of an unexpected error: the supervisor restarts this agent."""
        try:
            supervisor = ray.get_actor(SUPERVISOR, namespace=NAMESPACE)
            supervisor.child_failed.remote(self.agent.name, f"{type(error).__name__}: {error}")
        except ValueError:
            log.error("%s: no supervisor to report %r to", self.agent.name, error)

    async def deliver(self, bodies: list[str], redelivery: bool = False) -> int:
        return await self.agent.deliver(bodies, redelivery=redelivery)

    async def submit(
        self,
        run_id: str,
        products: list[Product],
        faults: FaultSettings | None = None,
        plans: dict[str, FaultPlan] | None = None,
    ) -> list[str]:
        if not isinstance(self.agent, Coordinator):
            raise TypeError(f"{self.agent.name} is not the coordinator")
        return await self.agent.submit(run_id, products, faults, plans)

    def status(self) -> AgentStatus:
        agent = self.agent
        return AgentStatus(
            name=agent.name,
            role=agent.config.role,
            pid=os.getpid(),
            node_id=ray.get_runtime_context().get_node_id(),
            epoch=agent.epoch,
            last_seq=agent._last_seq,
            in_flight=len(agent.workflows),
            processed=agent.processed,
            completed=agent.completed,
            failed=agent.failed,
            mailbox=agent.mailbox_depth,
            snapshot_seq=agent.snapshot_seq,
        )

    def pid(self) -> int:
        return os.getpid()

    async def tasks(self) -> list[str]:
        """Where each of this process's asyncio tasks waits now (for debugging a stall)."""
        out = []
        for task in asyncio.all_tasks():
            frames = task.get_stack(limit=8)
            where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
            out.append(f"{task.get_name()}: {where}")
        return out

    async def watch(self) -> None:
        """Never returns while the agent lives: a supervisor's death notification.

        The first watch releases the agent's workflow steps: from here on, a death
        is noticed by the supervisor as this actor's.
        """
        if self._agent is not None and self._started:
            self._agent.release()
        await asyncio.Event().wait()


class JournalCatalogClient(RayJournalClient):
    """The local marketplace's access to the catalog table, through the journal actor.

    Puts are batched: while one `catalog_put_many` call is out, new puts wait
    and go together in the next call, so a busy agent pays one actor call for
    many listings and a quiet one sends each put at once.
    """

    max_batch = 1_000

    def __init__(self, name: str = "journal", retry_deadline_s: float = 60.0) -> None:
        super().__init__(name, retry_deadline_s)
        self._puts: list[tuple[tuple[str, str, str], asyncio.Future[tuple[int, bool]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def catalog_put(self, product_id: str, body: str, key: str) -> tuple[int, bool]:
        future: asyncio.Future[tuple[int, bool]] = asyncio.get_running_loop().create_future()
        self._puts.append(((product_id, body, key), future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_puts())
        return await future

    async def _send_puts(self) -> None:
        while self._puts:
            group = self._puts[: self.max_batch]
            del self._puts[: self.max_batch]
            try:
                results = await self._call("catalog_put_many", [item for item, _ in group])
            except (RayError, ActorLookupError) as e:  # each put of the group fails with it
                for _, future in group:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), (entry, created) in zip(group, results, strict=True):
                if not future.done():
                    future.set_result((int(entry.revision), bool(created)))

    async def catalog_get(self, product_id: str) -> str | None:
        entry = await self._call("catalog_get", product_id)
        return None if entry is None else str(entry.body)
