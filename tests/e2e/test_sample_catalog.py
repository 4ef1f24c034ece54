"""The bundled sample catalog, end to end through the actors on a local Ray."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from actors.coordinator import FaultSettings
from storage.records import EventQuery, EventRecord
from storage.sqlite import SQLiteEventStore
from swarm.feeds import parse_feed
from swarm.run import new_run_id, submit_products, summarize, wait_for_run
from swarm.runtime import coordinator, journal
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from tests.conftest import read_store

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def sample_run(swarm_factory: Callable[..., SwarmSettings]) -> tuple[SwarmSettings, str, int]:
    settings = swarm_factory()
    products = list(parse_feed(SAMPLE_CATALOG).products)
    run_id = new_run_id()
    ids = submit_products(coordinator(), run_id, products, _no_faults(), chunk=20)
    wait_for_run(journal(), run_id, len(ids), timeout_s=120)
    return settings, run_id, len(ids)


def _no_faults() -> FaultSettings:
    return FaultSettings()


def _all_events(db: Path) -> list[EventRecord]:
    rows = read_store(db, lambda s: s.query_events(EventQuery(limit=1_000_000)))
    return [e for _, e in rows]


def test_every_product_reaches_a_terminal_state(sample_run: tuple[SwarmSettings, str, int]) -> None:
    _settings, run_id, total = sample_run
    summary = summarize(journal(), run_id, total, 1.0)
    assert summary.terminal == total
    assert summary.completed >= 50


def test_invalid_products_fail_with_their_reasons(
    sample_run: tuple[SwarmSettings, str, int],
) -> None:
    _settings, run_id, total = sample_run
    summary = summarize(journal(), run_id, total, 1.0)
    assert summary.failed == 5
    for _product_id, step, reason in summary.failures:
        assert step == "validate_product_data"
        assert reason  # the validation reasons, naming the field


def test_each_completed_product_is_in_the_catalog_once(
    sample_run: tuple[SwarmSettings, str, int],
) -> None:
    settings, run_id, total = sample_run
    summary = summarize(journal(), run_id, total, 1.0)
    assert read_store(settings.db_path, lambda s: s.catalog_count()) == summary.completed


def test_each_step_is_recorded_once_per_workflow(
    sample_run: tuple[SwarmSettings, str, int],
) -> None:
    settings, run_id, _total = sample_run
    events = [e for e in _all_events(settings.db_path) if e.workflow_id.startswith(run_id)]
    per_agent = Counter((e.workflow_id, e.stream_id, e.type) for e in events)
    twice = [key for key, n in per_agent.items() if n > 1]
    assert twice == []
    completed = {w for (w, _, t) in per_agent if t == "workflow_completed"}
    for step_event in ("listing_generated", "upload_confirmed", "campaign_generated"):
        assert {w for (w, _, t) in per_agent if t == step_event} == completed


def test_every_stream_is_gapless(sample_run: tuple[SwarmSettings, str, int]) -> None:
    settings, _, _ = sample_run
    by_stream: dict[str, list[int]] = {}
    for e in _all_events(settings.db_path):
        by_stream.setdefault(e.stream_id, []).append(e.seq)
    assert set(by_stream) >= {"coordinator", "product-agent-0", "product-agent-1"}
    for stream, seqs in by_stream.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), stream


def test_every_mailbox_message_is_processed(sample_run: tuple[SwarmSettings, str, int]) -> None:
    settings, _, _ = sample_run
    for agent in ("coordinator", "product-agent-0", "product-agent-1", "marketing-agent-0"):
        pending = read_store(settings.db_path, partial(_pending, agent=agent))
        assert pending == []


async def _pending(store: SQLiteEventStore, agent: str) -> list[object]:
    return list(await store.pending_messages(agent))
