"""The durable agent: in-flight workflows as a fold of events, a durable mailbox, group commits.

Recovery contract. `start()` takes a new fencing epoch for the agent's stream,
loads the latest snapshot, replays only the events after it (so recovery cost
follows the events since the last snapshot, not the stream's length), drains
the messages still pending in its mailbox, then resumes every workflow that
was in flight. An incarnation whose epoch was superseded is refused by the
journal and stops: two incarnations never both write. A supervised agent is
started `held`: it takes messages but runs no workflow step until its host
releases it, once the supervisor watches it.

Ordering and delivery. Events are applied to memory when recorded and
committed by one flusher in stream order, many workflows per commit. A
message is sent only after the commit that records it (the send is part of
that commit), and a received message is marked processed in the same commit
as the events it caused. A message is applied at most once: in-flight and
recently consumed ids are skipped, redeliveries are checked against the log,
and the journal refuses to consume a message twice.

Effects (LLM calls, uploads) run in the workflow's own task; a step's result
is committed before the next effect starts, so a completed step is never paid
for twice. (A step with no effect, such as validation or the hand-off, only
computes from the state and may share a commit with the events before it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors.events import (
    EVENT_SCHEMA_VERSION,
    Event,
    WorkflowAccepted,
    WorkflowSubmitted,
    decode_event,
    encode_event,
)
from actors.ids import new_id
from actors.metrics import NO_METRICS, SwarmMetrics
from actors.models import FrozenModel
from actors.protocol import MAX_MESSAGE_BYTES, Envelope, ProtocolError, decode_envelope
from actors.workflow import WorkflowState, accept, apply
from storage.records import (
    AppendBatch,
    AppendRefusal,
    AppendResult,
    DeadLetter,
    EventRecord,
    MessageRecord,
    SnapshotRecord,
    StreamRecovery,
    StreamTail,
    WorkflowRow,
)

log = logging.getLogger(__name__)
REPLAY_PAGE = 5_000
"""Events read per call while replaying a stream."""
MAILBOX_PAGE = 100_000
"""Waiting messages read per call when the mailbox is drained."""
RECENT_IDS = 20_000
"""Consumed message ids remembered to drop a late duplicate push cheaply (~20 s of traffic)."""


class JournalPort(Protocol):
    """What an agent needs from the journal (a local `Journal` or a Ray client of it)."""

    async def recover(
        self, stream_id: str, recipient: str, after_seq: int, max_events: int, max_messages: int
    ) -> StreamRecovery: ...

    async def read_tail(self, stream_id: str, after_seq: int, max_events: int) -> StreamTail: ...

    async def append(self, batch: AppendBatch) -> AppendResult | AppendRefusal: ...

    async def read_stream(
        self, stream_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]: ...

    async def pending_messages(self, recipient: str, limit: int = 1000) -> list[MessageRecord]: ...

    async def unprocessed(self, message_ids: Sequence[str]) -> set[str]: ...

    async def known_workflows(self, workflow_ids: Sequence[str]) -> set[str]: ...


class Transport(Protocol):
    """Pushes committed messages to their recipients; never raises, retries on its own."""

    def send(self, recipient: str, bodies: list[str]) -> None: ...


class AgentConfig(FrozenModel):
    name: str
    role: str
    snapshot_every: int = 2_000
    """Take a snapshot once this many events were appended since the last one."""
    max_batch_events: int = 5_000
    commit_linger_s: float = 0.01
    """How long a small commit waits for more work to share it (0: commit at once)."""
    row_delay_s: float = 0.0
    """How long the workflows view's row of a workflow still running here may wait for
    its next step, in an agent that `holds_rows` (see `_rows`); 0: every change's row goes
    with its events."""
    commit_batch_records: int = 64
    """Events, sends and consumed ids pending that make a commit go without waiting."""
    max_in_flight: int = 500
    """Workflows admitted at once (the coordinator holds back new ones past it): memory stays
    flat however long the feed, and snapshots stay small."""
    mailbox_poll_s: float = 2.0
    step_attempts: int = 3
    poison_attempts: int = 3
    """Isolated runs of a step that may kill the agent before its workflow is quarantined."""
    retry_backoff_s: float = 0.2
    wait_max_s: float = 30.0
    """Longest pause between tries of a step whose endpoint is down (`waiting`)."""


class AgentSnapshot(FrozenModel):
    workflows: tuple[WorkflowState, ...]
    processed: int
    completed: int
    failed: int


class AgentFencedError(Exception):
    """This incarnation lost its stream to a newer one and must stop."""


class RecoveryReport(FrozenModel):
    agent: str
    epoch: int
    snapshot_seq: int
    """The snapshot the state was rebuilt from (0: none): by a warm standby, maybe not the
    latest one, the standby having folded the events since before that one was taken."""
    events_replayed: int
    """Events folded on top of that snapshot (by the standby while waiting, and on taking
    over): the last sequence number minus `snapshot_seq`."""
    last_seq: int
    in_flight: int
    pending_messages: int
    millis: float
    snapshot_age_s: float | None = None
    """Seconds between the snapshot recovery started from and the recovery; None: none."""


@dataclass
class _Pending:
    """One `record` call waiting for its commit: events as (event id, kind, payload JSON)."""

    workflow_id: str
    events: list[tuple[str, str, str]]
    send: list[MessageRecord]
    processed: list[str]
    state: WorkflowState | None
    """The workflow's state after these events (its read-model row is written from it)."""
    dead: list[DeadLetter]
    size: int
    """Records this call adds to a commit: events, sends and consumed message ids."""
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DurableAgent(ABC):
    holds_rows = False
    """Whether `row_delay_s` applies: the rows of workflows this kind of agent runs through
    steps may wait for the next step. The coordinator's rows are submissions and outcomes,
    which the view (and `known_workflows`, which a resubmission is checked against) has
    with their events."""

    def __init__(self, config: AgentConfig, journal: JournalPort, transport: Transport) -> None:
        self.config = config
        self.name = config.name
        self.journal = journal
        self.transport = transport
        self.workflows: dict[str, WorkflowState] = {}
        self.processed = 0
        self.completed = 0
        self.failed = 0
        self.epoch = 0
        self._last_seq = 0
        self._next_seq = 1
        self._snapshot_seq = 0
        self._pending: list[_Pending] = []
        self._dirty = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._pending_size = 0
        self._inflight_ids: set[str] = set()
        self._recent_ids: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fatal: BaseException | None = None
        self._folding = asyncio.Lock()
        """Held while events are folded before serving (a standby's catch-up, the recovery)."""
        self._replayed = 0
        self._restored_from: SnapshotRecord | None = None
        self._recovered = asyncio.Event()
        """Set once the state is rebuilt: messages pushed during recovery wait for it."""
        self.released = asyncio.Event()
        """Set once workflow steps may run (see `start`); messages are taken before it."""
        self._encoded_states: dict[str, tuple[WorkflowState, str]] = {}
        self._held_rows: dict[str, tuple[WorkflowState, float]] = {}
        """Workflow id -> its newest state whose row waits, and since when (oldest first)."""
        self.recovered: set[str] = set()
        """Workflows this incarnation inherited from the log (their effects may be half done)."""
        self.on_crash: Callable[[BaseException], None] = lambda error: None
        """Told when a task dies of an unexpected error (the Ray host tells the supervisor)."""
        self.end_process: Callable[[BaseException], None] = lambda error: None
        """Ends this agent's process after a refused commit (set by the Ray host)."""
        self.before_injected_crash: Callable[[str], Awaitable[None]] = _nothing
        """Awaited before a crash injected on purpose (the supervisor does not count it)."""
        self.metrics: SwarmMetrics = NO_METRICS
        """Where the agent records its metrics (the Ray wrapper sets `RayMetrics`)."""

    # --- lifecycle -----------------------------------------------------------------
    async def start(self, *, held: bool = False) -> RecoveryReport:
        """Recover from the log and serve; with `held`, no workflow step runs until `release()`.

        A supervised host holds the steps until its supervisor watches this
        incarnation: a step that kills the process (a poison message) then dies
        where the supervisor sees it, so every such death is counted as one.
        """
        began = time.perf_counter()
        async with self._folding:
            # one round trip: the fencing epoch, the stream beyond what a warm standby
            # already folded, the mailbox
            recovery = await self.journal.recover(
                self.name, self.name, self._last_seq, REPLAY_PAGE, MAILBOX_PAGE
            )
            self.epoch = recovery.position.epoch
            folded = self._fold_tail(recovery)  # may restore a snapshot: count after it
            self._replayed += folded
            if not recovery.complete:
                self._replayed += await self._replay()
        replayed, restored = self._replayed, self._restored_from
        snapshot_age_s = None if restored is None else max(0.0, time.time() - restored.taken_at)
        self._next_seq = self._last_seq + 1
        inherited = list(self.workflows)
        self.recovered = set(inherited)
        self._spawn(self._flush_loop())
        self._recovered.set()
        pending = len(recovery.pending)
        await self.deliver([m.body for m in recovery.pending])
        # only what was inherited: a workflow accepted while the mailbox drained is
        # advanced by its own message (two loops would run its steps twice)
        for workflow_id in inherited:
            self._spawn(self.advance(workflow_id))
        if not held:
            self.release()
        self._spawn(self._poll_loop())
        report = RecoveryReport(
            agent=self.name,
            epoch=self.epoch,
            snapshot_seq=0 if restored is None else restored.seq,
            events_replayed=replayed,
            last_seq=self._last_seq,
            in_flight=len(self.workflows),
            pending_messages=pending,
            millis=(time.perf_counter() - began) * 1000,
            snapshot_age_s=snapshot_age_s,
        )
        self.metrics.recovered(
            events_replayed=replayed, snapshot_age_s=snapshot_age_s, serve_ms=report.millis
        )
        return report

    async def catch_up(self) -> int:
        """Fold what the log holds beyond this state, without taking the stream.

        A warm standby does this while it waits, so taking the role over only
        folds the events written since. Returns the events folded.
        """
        async with self._folding:
            if self.epoch:
                return 0  # serving: its state is the log's
            tail = await self.journal.read_tail(self.name, self._last_seq, REPLAY_PAGE)
            folded = self._fold_tail(tail)
            self._replayed += folded
            return folded

    def _fold_tail(self, tail: StreamTail) -> int:
        """Restore the tail's snapshot if it has one, then fold its events."""
        if tail.snapshot is not None:
            self._restore(AgentSnapshot.model_validate_json(tail.snapshot.state))
            self._last_seq = tail.snapshot.seq
            self._restored_from = tail.snapshot
            self._replayed = 0  # counted from the snapshot restored
        self._snapshot_seq = max(self._snapshot_seq, tail.snapshot_seq)
        return self._fold_records(tail.events)

    def release(self) -> None:
        """Let workflow steps run (a held `start` waits for this)."""
        self.released.set()

    def _restore(self, snapshot: AgentSnapshot) -> None:
        self.workflows = {w.task_id: w for w in snapshot.workflows}
        self.processed, self.completed, self.failed = (
            snapshot.processed,
            snapshot.completed,
            snapshot.failed,
        )

    async def _replay(self) -> int:
        """Fold the rest of the stream, page by page."""
        replayed = 0
        while records := await self.journal.read_stream(self.name, self._last_seq, REPLAY_PAGE):
            replayed += self._fold_records(records)
        return replayed

    def _fold_records(self, records: Sequence[EventRecord]) -> int:
        for record in records:
            event = decode_event(record.type, record.schema_version, record.payload)
            self._fold(record.workflow_id, event)
            self._last_seq = record.seq
        return len(records)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.error("%s: task failed: %r", self.name, error)
            if isinstance(error, AgentFencedError):
                self._fatal = error
            elif error is not None:
                self.on_crash(error)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    # --- the fold ----------------------------------------------------------------------
    def _fold(self, workflow_id: str, event: Event) -> WorkflowState | None:
        if isinstance(event, WorkflowAccepted | WorkflowSubmitted):
            state = accept(workflow_id, self.name, event)
            self.processed += 1
        else:
            current = self.workflows.get(workflow_id)
            if current is None:
                return None
            state = apply(current, event)
        if state.terminal:
            self.workflows.pop(workflow_id, None)
            # free its cached JSON now, not at the next snapshot
            self._encoded_states.pop(workflow_id, None)
            if state.status == "failed":
                self.failed += 1
            elif state.status == "completed":
                self.completed += 1
        else:
            self.workflows[workflow_id] = state
        return state

    # --- recording ---------------------------------------------------------------------
    async def record(
        self,
        workflow_id: str,
        events: Iterable[Event],
        *,
        send: Iterable[Envelope] = (),
        processed: Iterable[str] = (),
        dead: Iterable[DeadLetter] = (),
    ) -> WorkflowState | None:
        """Apply `events` now and wait until they, the sends and the consumed ids are durable."""
        state, done = self._record_nowait(
            workflow_id, events, send=send, processed=processed, dead=dead
        )
        await done
        return state

    def _record_nowait(
        self,
        workflow_id: str,
        events: Iterable[Event],
        *,
        send: Iterable[Envelope] = (),
        processed: Iterable[str] = (),
        dead: Iterable[DeadLetter] = (),
    ) -> tuple[WorkflowState | None, asyncio.Future[None]]:
        """`record` without waiting: the future completes when the commit is durable."""
        if self._fatal is not None:
            raise AgentFencedError(str(self._fatal))
        records: list[tuple[str, str, str]] = []
        state: WorkflowState | None = None
        for event in events:
            state = self._fold(workflow_id, event)
            records.append((new_id(), event.kind, encode_event(event)))
        sends, consumed = [_message_record(e) for e in send], list(processed)
        pending = _Pending(
            workflow_id=workflow_id,
            events=records,
            send=sends,
            processed=consumed,
            state=state,
            dead=list(dead),
            size=len(records) + len(sends) + len(consumed),
        )
        self._pending.append(pending)
        self._pending_size += pending.size
        if self._pending_size >= self.config.commit_batch_records:
            self._batch_full.set()
        self._dirty.set()
        return state, pending.done

    def workflow_row(self, state: WorkflowState) -> WorkflowRow:
        status = "running" if state.status == "handed_off" else state.status
        return WorkflowRow(
            workflow_id=state.task_id,
            run_id=state.run_id,
            product_id=state.product_data.product_id,
            status=status,
            current_step=state.current_step,
            agent_id=state.agent_id,
            error=state.error,
        )

    async def _flush_loop(self) -> None:
        while True:
            if not await self._work_or_due_rows():
                await self._commit([], whole=True)  # held rows only
                continue
            await self._linger()
            self._dirty.clear()
            while self._pending:
                taken, count = 0, 0
                for p in self._pending:
                    count += len(p.events)
                    taken += 1
                    if count >= self.config.max_batch_events:
                        break
                group, self._pending = self._pending[:taken], self._pending[taken:]
                self._pending_size -= sum(p.size for p in group)
                await self._commit(group, whole=not self._pending)

    async def _work_or_due_rows(self) -> bool:
        """Wait for records to commit (True), or for the oldest held row to be due (False)."""
        if not self._held_rows:
            await self._dirty.wait()
            return True
        _, since = next(iter(self._held_rows.values()))
        wait = since + self.config.row_delay_s - time.monotonic()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), wait)
        return self._dirty.is_set()

    async def _linger(self) -> None:
        """Give a small commit up to `commit_linger_s` to fill before it goes.

        A busy stream fills commits on its own (whatever arrives during one commit
        goes in the next), but completions that trickle in, such as LLM calls
        finishing one by one, would each pay a journal call and a push of their
        own. A commit that reaches `commit_batch_records` goes at once.
        """
        config = self.config
        if config.commit_linger_s <= 0 or self._pending_size >= config.commit_batch_records:
            return
        self._batch_full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._batch_full.wait(), config.commit_linger_s)

    async def _commit(self, group: list[_Pending], *, whole: bool) -> None:
        events: list[EventRecord] = []
        seq, name = self._next_seq, self.name
        latest: dict[str, WorkflowState] = {}
        for p in group:
            for event_id, kind, payload in p.events:
                events.append(
                    EventRecord(
                        stream_id=name, seq=seq, event_id=event_id, type=kind,
                        schema_version=EVENT_SCHEMA_VERSION, workflow_id=p.workflow_id,
                        payload=payload,
                    )
                )  # fmt: skip
                seq += 1
            if p.state is not None:
                latest[p.state.task_id] = p.state
        self._next_seq = seq
        last = seq - 1
        snapshot = None
        if whole and last - self._snapshot_seq >= self.config.snapshot_every:
            snapshot = SnapshotRecord(stream_id=self.name, seq=last, state=self.snapshot_json())
        batch = AppendBatch(
            stream_id=self.name,
            epoch=self.epoch,
            events=tuple(events),
            send=tuple(m for p in group for m in p.send),
            mark_processed=tuple(i for p in group for i in p.processed),
            workflows=self._rows(latest.values()),
            dead_letters=tuple(d for p in group for d in p.dead),
            snapshot=snapshot,
        )
        if not group and not batch.workflows and snapshot is None:
            return  # woken for held rows a moment before they were due: nothing to write
        outcome = await self.journal.append(batch)
        if isinstance(outcome, AppendRefusal):
            error = AgentFencedError(f"{self.name}: journal refused a commit: {outcome.message}")
            self._fatal = error
            for p in group:
                if not p.done.done():  # a cancelled waiter must not keep the process alive
                    p.done.set_exception(error)
            await self.on_fatal(error)
            return
        self._last_seq = last
        if snapshot is not None:
            self._snapshot_seq = last
        for p in group:
            for message_id in p.processed:
                self._consumed(message_id)
            if not p.done.done():
                p.done.set_result(None)
        self._push(batch.send)

    def _rows(self, latest: Iterable[WorkflowState]) -> tuple[WorkflowRow, ...]:
        """The workflows view's rows a commit writes: those of `latest`, and held ones now due.

        A workflow's row goes with the events that changed it, except that with
        `row_delay_s` the row of a workflow still running here is held back up to that
        long, and then its newest state is written. A busy agent's workflows pass through
        their steps in less, so most of those rows are never written: they were 7 of the 9
        rows a product wrote. A workflow handed on drops its held row: its next agent
        writes its own. While the agent runs, the view lags a running workflow's step by
        at most the delay (plus a commit); rows held when the process ends are lost, and
        recovery rewrites them (a step agent records `workflow_resumed` for each workflow
        it inherits). Submissions, waits, failures and outcomes are never held.
        """
        delay = self.config.row_delay_s if self.holds_rows else 0.0
        held, rows = self._held_rows, []
        now = time.monotonic()
        for state in latest:
            if delay > 0 and state.status == "running":
                entry = held.get(state.task_id)
                held[state.task_id] = (state, now if entry is None else entry[1])
                continue
            held.pop(state.task_id, None)
            if delay <= 0 or state.status != "handed_off":
                rows.append(self.workflow_row(state))
        due = now - delay * 0.75  # those nearly due go too: one commit for them, not several
        while held:
            workflow_id, (state, since) = next(iter(held.items()))
            if since > due:
                break
            del held[workflow_id]
            rows.append(self.workflow_row(state))
        return tuple(rows)

    def snapshot_json(self) -> str:
        """`AgentSnapshot` as JSON, re-encoding only the workflows that changed since the last.

        States are immutable, so a workflow whose state object is the one encoded
        last time has the same JSON: the cost of a snapshot follows what changed
        since the previous one, not how many workflows are in flight.
        """
        previous, encoded = self._encoded_states, {}
        parts: list[str] = []
        for workflow_id, state in self.workflows.items():
            cached = previous.get(workflow_id)
            text = cached[1] if cached is not None and cached[0] is state else None
            if text is None:
                text = state.model_dump_json()
            encoded[workflow_id] = (state, text)
            parts.append(text)
        self._encoded_states = encoded
        return (
            f'{{"workflows":[{",".join(parts)}],"processed":{self.processed},'
            f'"completed":{self.completed},"failed":{self.failed}}}'
        )

    def _push(self, messages: Sequence[MessageRecord]) -> None:
        by_recipient: dict[str, list[str]] = {}
        for m in messages:
            by_recipient.setdefault(m.recipient, []).append(m.body)
        for recipient, bodies in by_recipient.items():
            self.transport.send(recipient, bodies)

    async def on_fatal(self, error: AgentFencedError) -> None:
        """Called once the journal refuses this incarnation; the Ray wrapper ends the process.

        A refused commit leaves memory ahead of the log, so the incarnation must not
        go on: `end_process` (the Ray host's) exits, and the supervisor restarts the
        role from the log if this was still its actor (a fenced zombie is not).
        """
        log.error("%s", error)
        self.end_process(error)
        await self.stop()

    # --- the mailbox ----------------------------------------------------------------------
    async def deliver(self, bodies: Sequence[str], *, redelivery: bool = False) -> int:
        """Accept messages; returns how many were taken (duplicates and rejects are not)."""
        # a message folded before the snapshot is restored would be lost from memory
        await self._recovered.wait()
        fresh: list[Envelope] = []
        for body in bodies:
            try:
                envelope = decode_envelope(body)
            except ProtocolError as e:
                self.metrics.message_failed("invalid")
                await self._reject(e, body)
                continue
            if not self._consumed_here(envelope):
                fresh.append(envelope)
        if redelivery and fresh:
            still = await self.journal.unprocessed([e.message_id for e in fresh])
            fresh = [e for e in fresh if e.message_id in still]
        taken = 0
        for envelope in fresh:
            if self._consumed_here(envelope):  # taken while this call awaited
                continue
            self._inflight_ids.add(envelope.message_id)
            self._spawn(self._handle(envelope))
            taken += 1
        return taken

    def _consumed_here(self, envelope: Envelope) -> bool:
        """Whether this incarnation has taken the message already (or inherited it taken).

        A workflow in flight here that this very message started was consumed, by
        this incarnation or by the one it recovered from: a late push of that message
        (its sender's first try can outlive a restart of this agent) is a duplicate,
        which the journal would refuse together with everything committed beside it.
        """
        message_id = envelope.message_id
        if message_id in self._inflight_ids or message_id in self._recent_ids:
            return True
        state = self.workflows.get(envelope.workflow_id)
        return state is not None and state.inbox_message_id == message_id

    async def _handle(self, envelope: Envelope) -> None:
        try:
            await self.on_message(envelope)
        except Exception:
            self.metrics.message_failed(envelope.type)
            raise
        finally:
            self._inflight_ids.discard(envelope.message_id)
        self.metrics.message_processed(envelope.type)

    @property
    def mailbox_depth(self) -> int:
        """Messages delivered to this agent and not yet processed."""
        return len(self._inflight_ids)

    @property
    def snapshot_seq(self) -> int:
        """The sequence number the latest snapshot covers (0: none yet)."""
        return self._snapshot_seq

    def _consumed(self, message_id: str) -> None:
        self._inflight_ids.discard(message_id)
        self._recent_ids[message_id] = None
        if len(self._recent_ids) > RECENT_IDS:
            self._recent_ids.popitem(last=False)

    async def _reject(self, error: ProtocolError, body: str) -> None:
        """Dead-letter a message that cannot be read; the agent goes on.

        It is marked consumed only when it waits in this agent's mailbox: an id
        the log already holds as processed (a replay, or a forged id) must not
        make the journal refuse the commit, which would stop the agent.
        """
        message_id = error.message_id
        waiting = bool(message_id) and message_id in await self.journal.unprocessed([message_id])
        letter_id = message_id or new_id()
        await self._dead_letter(letter_id, error.reason, body[:MAX_MESSAGE_BYTES], consume=waiting)

    async def _dead_letter(
        self, message_id: str, reason: str, body: str, *, consume: bool = True
    ) -> None:
        log.warning("%s: message %.80r dead-lettered: %s", self.name, message_id, reason)
        self.metrics.message_dead_lettered()
        letter = DeadLetter(message_id=message_id, recipient=self.name, reason=reason, body=body)
        await self.record("", (), processed=[message_id] if consume else [], dead=[letter])

    async def _drain_mailbox(self) -> int:
        pending = await self.journal.pending_messages(self.name, limit=MAILBOX_PAGE)
        await self.deliver([m.body for m in pending])
        return len(pending)

    async def _poll_loop(self) -> None:
        """Safety net: pick up messages whose push was lost (sender died after its commit)."""
        while True:
            await asyncio.sleep(self.config.mailbox_poll_s)
            if not self._inflight_ids and not self._pending:
                await self._drain_mailbox()

    # --- what each agent does ---------------------------------------------------------------
    @abstractmethod
    async def on_message(self, envelope: Envelope) -> None:
        """Turn one message into events (recorded with `processed=[envelope.message_id]`)."""

    @abstractmethod
    async def advance(self, workflow_id: str) -> None:
        """Run the workflow's remaining steps at this agent, recording each result."""


async def _nothing(_: str) -> None:
    return None


def _new_future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def _message_record(envelope: Envelope) -> MessageRecord:
    return MessageRecord(
        message_id=envelope.message_id,
        recipient=envelope.recipient,
        sender=envelope.sender,
        type=envelope.type,
        workflow_id=envelope.workflow_id,
        body=envelope.model_dump_json(),
    )
