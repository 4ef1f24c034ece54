"""The swarm's metrics as Prometheus sees them: the node's metrics endpoint of a local
Ray this module starts, scraped after a run of the sample catalog and after an agent
is killed and brought back."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import ray

from actors.coordinator import FaultSettings
from actors.models import Product
from actors.ray_actors import NAMESPACE
from actors.validation import validate_product_data
from storage.records import EventQuery, EventRecord
from storage.store import EventStore
from swarm.feeds import parse_feed
from swarm.ledger import run_ledger_queries, totals
from swarm.local_cluster import free_port
from swarm.run import new_run_id, submit_products, wait_for_run
from swarm.runtime import child_specs, coordinator, journal, start_swarm, stop_swarm
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from tests.cluster import wait_until
from tests.conftest import make_settings, read_store
from tests.metrics.prometheus import Sample, Scrape, wait_for_scrape

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory, metrics_port: int) -> Iterator[None]:
    """This module's own Ray: its metrics agent on a known port, reporting every 0.5 s."""
    if ray.is_initialized():
        ray.shutdown()
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(
        address="local",
        namespace="swarm",
        include_dashboard=False,
        num_cpus=2,
        log_to_driver=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        _metrics_export_port=metrics_port,
        _system_config={"metrics_report_interval_ms": 500},
    )
    yield
    ray.shutdown()


@dataclass
class Run:
    settings: SwarmSettings
    run_id: str
    products: list[Product]

    @property
    def valid(self) -> int:
        return sum(1 for p in self.products if not validate_product_data(p))


@pytest.fixture(scope="module")
def finished_run(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    settings = make_settings(tmp_path_factory.mktemp("db") / "swarm.db", snapshot_every=20)
    supervisor = start_swarm(settings, detached=False)
    products = list(parse_feed(SAMPLE_CATALOG).products)
    run_id = new_run_id()
    ids = submit_products(coordinator(), run_id, products, FaultSettings(), chunk=20)
    wait_for_run(journal(), run_id, len(ids), timeout_s=120)
    yield Run(settings, run_id, products)
    stop_swarm(supervisor)


def test_workflows_completed_are_the_valid_products(finished_run: Run, metrics_port: int) -> None:
    def done(s: Scrape) -> bool:
        completed = s.select("ray_swarm_workflows", role="coordinator", status="completed")
        return [x.value for x in completed] == [finished_run.valid]

    scraped = wait_for_scrape(metrics_port, done, "the coordinator's completed workflows")
    [failed] = scraped.select("ray_swarm_workflows", role="coordinator", status="failed")
    assert failed.value == len(finished_run.products) - finished_run.valid


def test_messages_and_steps_are_counted_by_type_and_step(
    finished_run: Run, metrics_port: int
) -> None:
    products, valid = len(finished_run.products), finished_run.valid

    def counted(s: Scrape) -> bool:
        return (
            s.total("ray_swarm_messages_processed_total", type="process_product") == products
            and s.total("ray_swarm_messages_processed_total", type="workflow_finished") == products
            and s.total("ray_swarm_steps_total", step="generate_campaign") == valid
        )

    scraped = wait_for_scrape(metrics_port, counted, "every message and step")
    assert scraped.total("ray_swarm_messages_processed_total", role="marketing") == valid
    assert scraped.total("ray_swarm_messages_failed_total") == 0
    for step in ("generate_listing", "confirm_upload"):
        assert scraped.total("ray_swarm_steps_total", step=step, outcome="ok") == valid
    invalid = scraped.total("ray_swarm_steps_total", step="validate_product_data", outcome="failed")
    assert invalid == products - valid

    # a gauge is sampled each second: wait for the sample taken after the run
    def drained(s: Scrape) -> bool:
        depths = s.select("ray_swarm_mailbox_depth", agent="product-agent-0")
        return len(depths) == 1 and depths[0].value == 0

    wait_for_scrape(metrics_port, drained, "an empty mailbox after the run")


def test_llm_calls_and_tokens_match_the_ledger(finished_run: Run, metrics_port: int) -> None:
    async def ledger_events(store: EventStore) -> list[EventRecord]:
        queries = run_ledger_queries(finished_run.run_id)
        return [e for q in queries for _, e in await store.query_events(q)]

    records = read_store(finished_run.settings.db_path, ledger_events)
    ledger = totals(records, finished_run.settings.price_table)
    assert ledger.calls == 2 * finished_run.valid

    def counted(s: Scrape) -> bool:
        return s.total("ray_swarm_llm_calls_total") == ledger.calls

    scraped = wait_for_scrape(metrics_port, counted, "every LLM call")
    assert scraped.total("ray_swarm_llm_tokens_total", kind="input") == ledger.input_tokens
    assert scraped.total("ray_swarm_llm_tokens_total", kind="output") == ledger.output_tokens
    assert scraped.total("ray_swarm_llm_calls_total", step="generate_listing") == finished_run.valid


def test_the_supervisor_counts_starts_per_role(finished_run: Run, metrics_port: int) -> None:
    def counted(s: Scrape) -> bool:
        return s.total("ray_swarm_actor_starts_total") == len(child_specs(finished_run.settings))

    scraped = wait_for_scrape(metrics_port, counted, "a start per child")
    assert scraped.total("ray_swarm_actor_starts_total", role="product-upload") == 2
    assert scraped.total("ray_swarm_actor_starts_total", role="journal") == 1
    assert scraped.select("ray_swarm_restarts_total") == []


def test_a_killed_agent_brought_back_reports_its_recovery(
    finished_run: Run, metrics_port: int
) -> None:
    name = "product-agent-0"
    supervisor: Any = ray.get_actor("supervisor", namespace=NAMESPACE)

    def child() -> Any:
        rows: list[Any] = ray.get(supervisor.status.remote())
        return next(c for c in rows if c.name == name)

    before = child()
    os.kill(before.pid, signal.SIGKILL)  # the supervisor notices and restarts it

    def restarted() -> bool:
        now = child()
        return bool(now.state == "alive" and now.pid != before.pid)

    wait_until(restarted, 60, "the supervisor's restart")
    reports: dict[str, Any] = ray.get(supervisor.recoveries.remote())
    report = reports[name]
    last = read_store(
        finished_run.settings.db_path,
        lambda s: s.query_events(EventQuery(stream_id=name, limit=1, newest_first=True)),
    )[0][1].seq
    snapshot = read_store(finished_run.settings.db_path, lambda s: s.latest_snapshot(name))
    assert snapshot is not None
    # rebuilt from a snapshot (its standby may have folded past it before a later one)
    assert 0 < report.snapshot_seq <= snapshot.seq
    assert report.events_replayed == last - report.snapshot_seq

    def recovered(s: Scrape) -> bool:
        # two processes export on their own schedules: the restarted agent its recovery,
        # the supervisor its restart count
        return bool(_series_of_this_recovery(s, name, report.millis)) and (
            s.total("ray_swarm_restarts_total", agent=name) >= 1
        )

    scraped = wait_for_scrape(metrics_port, recovered, "the second recovery")
    [serve] = _series_of_this_recovery(scraped, name, report.millis)
    this_worker = {"agent": name, "WorkerId": serve.labels["WorkerId"]}
    [replayed] = scraped.select("ray_swarm_recovery_events_replayed", **this_worker)
    assert replayed.value == report.events_replayed
    [age] = scraped.select("ray_swarm_recovery_snapshot_age_seconds", **this_worker)
    assert age.value >= 0  # -1 would mean "no snapshot"
    assert scraped.total("ray_swarm_recoveries_total", agent=name) == 2
    assert scraped.total("ray_swarm_recovery_seconds_count", agent=name) == 2
    assert scraped.total("ray_swarm_restarts_total", agent=name) == 1


def _series_of_this_recovery(scraped: Scrape, agent: str, millis: float) -> list[Sample]:
    serve = scraped.select("ray_swarm_recovery_serve_ms", agent=agent)
    return [x for x in serve if x.value == pytest.approx(millis, rel=1e-6)]
