"""The storage contract (in the spirit of Akka's JournalSpec), run on every backend.

`EventStoreContract` is written against `storage.store.EventStore` only; each
backend subclasses it and provides the `store` fixture.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from storage.memory import InMemoryEventStore
from storage.records import (
    AppendBatch,
    AppendResult,
    DuplicateDeliveryError,
    EventQuery,
    EventRecord,
    FencedError,
    MessageRecord,
    SequenceConflictError,
    SnapshotRecord,
    WorkflowRow,
)
from storage.sqlite import SQLiteEventStore
from storage.store import EventStore

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def events(stream: str, first: int, count: int) -> tuple[EventRecord, ...]:
    return tuple(
        EventRecord(stream_id=stream, seq=s, event_id=uuid.uuid4().hex, type="t", payload="{}")
        for s in range(first, first + count)
    )


def workflow_events(stream: str, first: int, workflow_ids: list[str]) -> tuple[EventRecord, ...]:
    return tuple(
        EventRecord(
            stream_id=stream, seq=first + i, event_id=uuid.uuid4().hex, type="t",
            workflow_id=w, payload="{}",
        )
        for i, w in enumerate(workflow_ids)
    )  # fmt: skip


def message(recipient: str) -> MessageRecord:
    return MessageRecord(
        message_id=uuid.uuid4().hex, recipient=recipient, sender="x", type="t", body="{}"
    )


class EventStoreContract:
    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        raise NotImplementedError

    def test_appends_continue_the_stream_gaplessly(self, store: EventStore) -> None:
        async def scenario() -> list[int]:
            pos = await store.open_stream("a")
            await store.commit(
                [AppendBatch(stream_id="a", epoch=pos.epoch, events=events("a", 1, 3))]
            )
            await store.commit(
                [AppendBatch(stream_id="a", epoch=pos.epoch, events=events("a", 4, 2))]
            )
            return [e.seq for e in await store.read_stream("a")]

        assert run(scenario()) == [1, 2, 3, 4, 5]

    def test_a_gap_is_refused(self, store: EventStore) -> None:
        async def scenario() -> object:
            pos = await store.open_stream("a")
            [outcome] = await store.commit(
                [AppendBatch(stream_id="a", epoch=pos.epoch, events=events("a", 2, 1))]
            )
            return outcome

        assert isinstance(run(scenario()), SequenceConflictError)

    def test_retrying_a_committed_batch_is_a_harmless_duplicate(self, store: EventStore) -> None:
        async def scenario() -> tuple[object, int]:
            pos = await store.open_stream("a")
            batch = AppendBatch(stream_id="a", epoch=pos.epoch, events=events("a", 1, 2))
            await store.commit([batch])
            [again] = await store.commit([batch])
            return again, len(await store.read_stream("a"))

        outcome, count = run(scenario())
        assert isinstance(outcome, AppendResult)
        assert outcome.duplicate
        assert count == 2

    def test_an_older_epoch_is_fenced_off(self, store: EventStore) -> None:
        async def scenario() -> object:
            old = await store.open_stream("a")
            await store.open_stream("a")  # a new incarnation takes over
            [outcome] = await store.commit(
                [AppendBatch(stream_id="a", epoch=old.epoch, events=events("a", 1, 1))]
            )
            return outcome

        assert isinstance(run(scenario()), FencedError)

    def test_an_older_epoch_is_fenced_off_without_events_too(self, store: EventStore) -> None:
        """A batch of view rows only (an agent's held rows) is fenced like any other."""

        async def scenario() -> tuple[object, WorkflowRow | None]:
            old = await store.open_stream("a")
            await store.open_stream("a")
            row = WorkflowRow(workflow_id="w", status="running", current_step="generate_listing")
            [outcome] = await store.commit(
                [AppendBatch(stream_id="a", epoch=old.epoch, workflows=(row,))]
            )
            return outcome, await store.workflow("w")

        outcome, written = run(scenario())
        assert isinstance(outcome, FencedError)
        assert written is None

    def test_a_refused_batch_does_not_spoil_the_others_in_its_group(
        self, store: EventStore
    ) -> None:
        async def scenario() -> tuple[list[object], int]:
            a = await store.open_stream("a")
            b = await store.open_stream("b")
            outcomes = await store.commit(
                [
                    AppendBatch(stream_id="a", epoch=a.epoch, events=events("a", 5, 1)),
                    AppendBatch(stream_id="b", epoch=b.epoch, events=events("b", 1, 1)),
                ]
            )
            return list(outcomes), len(await store.read_stream("b"))

        outcomes, b_count = run(scenario())
        assert isinstance(outcomes[0], SequenceConflictError)
        assert isinstance(outcomes[1], AppendResult)
        assert b_count == 1

    def test_a_message_is_pending_until_consumed_and_consumed_once(self, store: EventStore) -> None:
        async def scenario() -> tuple[int, int, object]:
            s = await store.open_stream("sender")
            r = await store.open_stream("recv")
            m = message("recv")
            await store.commit([AppendBatch(stream_id="sender", epoch=s.epoch, send=(m,))])
            pending = len(await store.pending_messages("recv"))
            consume = AppendBatch(
                stream_id="recv", epoch=r.epoch, events=events("recv", 1, 1),
                mark_processed=(m.message_id,),
            )  # fmt: skip
            await store.commit([consume])
            after = len(await store.pending_messages("recv"))
            again = AppendBatch(
                stream_id="recv", epoch=r.epoch, events=events("recv", 2, 1),
                mark_processed=(m.message_id,),
            )  # fmt: skip
            [outcome] = await store.commit([again])
            return pending, after, outcome

        pending, after, outcome = run(scenario())
        assert (pending, after) == (1, 0)
        assert isinstance(outcome, DuplicateDeliveryError)

    def test_latest_snapshot_is_returned(self, store: EventStore) -> None:
        async def scenario() -> SnapshotRecord | None:
            pos = await store.open_stream("a")
            for first in (1, 3):
                snap = SnapshotRecord(stream_id="a", seq=first + 1, state=f'{{"at": {first}}}')
                batch = AppendBatch(
                    stream_id="a", epoch=pos.epoch, events=events("a", first, 2), snapshot=snap
                )
                await store.commit([batch])
            return await store.latest_snapshot("a")

        snapshot = run(scenario())
        assert snapshot is not None
        assert snapshot.seq == 4

    def test_catalog_replay_of_a_key_writes_nothing(self, store: EventStore) -> None:
        async def scenario() -> tuple[bool, bool, int]:
            _, first = await store.catalog_put("p1", '{"v": 1}', "k1")
            entry, second = await store.catalog_put("p1", '{"v": 2}', "k1")
            return first, second, entry.revision

        assert run(scenario()) == (True, True, 1)

    def test_a_workflow_prefix_selects_one_runs_events(self, store: EventStore) -> None:
        async def scenario() -> list[str]:
            pos = await store.open_stream("a")
            ids = ["run-1:a", "run-10:a", "run-1:b", "run-2:a", "run-1:"]
            batch = AppendBatch(stream_id="a", epoch=pos.epoch, events=workflow_events("a", 1, ids))
            await store.commit([batch])
            rows = await store.query_events(EventQuery(workflow_prefix="run-1:"))
            return [e.workflow_id for _, e in rows]

        assert run(scenario()) == ["run-1:a", "run-1:b", "run-1:"]

    def test_stream_ids_select_any_of_several_streams(self, store: EventStore) -> None:
        async def scenario() -> tuple[list[str], int]:
            for stream in ("a", "b", "c"):
                pos = await store.open_stream(stream)
                await store.commit(
                    [AppendBatch(stream_id=stream, epoch=pos.epoch, events=events(stream, 1, 2))]
                )
            rows = await store.query_events(EventQuery(stream_ids=("a", "c")))
            none = await store.query_events(EventQuery(stream_ids=()))
            return [e.stream_id for _, e in rows], len(none)

        assert run(scenario()) == (["a", "a", "c", "c"], 0)

    def test_since_and_until_split_the_log_at_a_time(self, store: EventStore) -> None:
        async def scenario() -> tuple[int, list[tuple[int, EventRecord]], list[int]]:
            pos = await store.open_stream("a")
            for first in (1, 3, 5):
                await store.commit(
                    [AppendBatch(stream_id="a", epoch=pos.epoch, events=events("a", first, 2))]
                )
            stored = await store.read_stream("a")
            cut = stored[2].recorded_at  # when the second batch was committed
            before = await store.query_events(EventQuery(until=cut))
            after = await store.query_events(EventQuery(since=cut))
            return len(stored), before, [e.seq for _, e in after]

        total, before, after = run(scenario())
        assert all(e.seq < 3 for _, e in before)  # until is exclusive
        assert {3, 4, 5, 6} <= set(after)
        assert len(before) + len(after) == total


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> EventStore:
        return InMemoryEventStore()


class TestSQLiteEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        store = SQLiteEventStore(tmp_path / "contract.db")
        run(store.open())
        yield store
        run(store.close())
