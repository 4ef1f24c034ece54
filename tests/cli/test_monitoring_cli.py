"""`python -m swarm status / events / show` on a swarm that ran the sample catalog on a
local Ray, called as a user calls them (the CLI's `main`, or a separate process)."""

from __future__ import annotations

import csv
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from actors.coordinator import FaultSettings, workflow_id_for
from actors.events import CrashInjected, ListingGenerated, decode_event, encode_event
from actors.models import Listing, Product
from actors.validation import validate_product_data
from storage.records import AppendBatch, EventQuery, EventRecord
from storage.store import EventStore
from swarm import cli as cli_module
from swarm.cli import main
from swarm.feeds import parse_feed
from swarm.run import new_run_id, submit_products, wait_for_run
from swarm.runtime import coordinator, journal, start_swarm, stop_swarm
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from tests.conftest import make_settings, read_store

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    settings: SwarmSettings
    run_id: str
    products: list[Product]

    def workflow(self, product: Product) -> str:
        return workflow_id_for(self.run_id, product)

    def valid(self) -> list[Product]:
        return [p for p in self.products if not validate_product_data(p)]

    def invalid(self) -> list[Product]:
        return [p for p in self.products if validate_product_data(p)]


@pytest.fixture(scope="module")
def finished_run(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    settings = make_settings(tmp_path_factory.mktemp("cli") / "swarm.db")
    supervisor = start_swarm(settings, detached=False)
    products = list(parse_feed(SAMPLE_CATALOG).products)
    run_id = new_run_id()
    ids = submit_products(coordinator(), run_id, products, FaultSettings(), chunk=20)
    wait_for_run(journal(), run_id, len(ids), timeout_s=120)
    yield Run(settings, run_id, products)
    stop_swarm(supervisor)


@pytest.fixture
def cli(
    finished_run: Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """`cli("events", "--json")` -> (exit code, stdout, stderr), on the run's database."""
    monkeypatch.setenv("SWARM_DB_PATH", str(finished_run.settings.db_path))
    monkeypatch.setattr(cli_module.console, "width", 250)  # a wide terminal: no folded cells

    def call(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return call


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def separate_process(argv: list[str], db: Path, tmp: Path) -> subprocess.Popen[str]:
    """`python -m swarm ...` in its own process, seeing no Ray cluster of this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SWARM_"))}
    env |= {"SWARM_DB_PATH": str(db), "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "swarm", *argv],
        env=env,
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- status ---------------------------------------------------------------------------------
def test_status_lists_each_running_actor_with_role_node_pid_and_sequence(cli: Any) -> None:
    code, out, _ = cli("status", "--json")
    assert code == 0
    status = json.loads(out)
    assert status["running"] is True
    actors = {a["name"]: a for a in status["actors"]}
    assert set(actors) == {
        "journal",
        "coordinator",
        "product-agent-0",
        "product-agent-1",
        "marketing-agent-0",
    }
    for name in ("coordinator", "product-agent-0", "product-agent-1", "marketing-agent-0"):
        actor = actors[name]
        assert actor["state"] == "alive"
        assert actor["pid"] > 0
        assert actor["node"]
        assert actor["restarts"] == 0
        assert actor["mailbox"] == 0
        assert actor["last_seq"] > 0
    assert actors["product-agent-1"]["role"] == "product-upload"
    assert actors["marketing-agent-0"]["role"] == "marketing"


def test_status_counts_workflows_by_status(cli: Any, finished_run: Run) -> None:
    _, out, _ = cli("status", "--json")
    workflows = json.loads(out)["workflows"]
    assert workflows == {
        "completed": len(finished_run.valid()),
        "failed": len(finished_run.invalid()),
    }


def test_status_table_names_the_actors_and_counts(cli: Any, finished_run: Run) -> None:
    code, out, _ = cli("status")
    assert code == 0
    assert "product-agent-0" in out
    assert "product-upload" in out
    assert f"completed {len(finished_run.valid())}" in out


def test_status_watch_refreshes_as_often_as_asked(cli: Any) -> None:
    code, out, _ = cli("status", "--watch", "--json", "--iterations", "3", "--interval", "0.01")
    assert code == 0
    assert [s["running"] for s in json_lines(out)] == [True, True, True]


def test_status_watch_redraws_the_tables(cli: Any) -> None:
    code, out, _ = cli("status", "--watch", "--iterations", "2", "--interval", "0.01")
    assert code == 0
    assert "marketing-agent-0" in out
    assert "Workflows in" in out


def test_status_without_a_swarm_shows_the_database(finished_run: Run, tmp_path: Path) -> None:
    process = separate_process(["status", "--json"], finished_run.settings.db_path, tmp_path)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    status = json.loads(out)
    assert status["running"] is False
    actors = {a["name"]: a for a in status["actors"]}
    assert {a["state"] for a in actors.values()} == {"not running"}
    stream = read_store(
        finished_run.settings.db_path,
        lambda s: s.read_stream("product-agent-0"),
    )
    assert actors["product-agent-0"]["last_seq"] == stream[-1].seq
    assert status["workflows"]["completed"] == len(finished_run.valid())


# --- events ---------------------------------------------------------------------------------
def test_events_of_one_workflow_are_its_steps_in_order(cli: Any, finished_run: Run) -> None:
    workflow = finished_run.workflow(finished_run.valid()[0])
    code, out, _ = cli("events", "--workflow", workflow, "--json")
    assert code == 0
    events = json_lines(out)
    assert {e["workflow_id"] for e in events} == {workflow}
    assert [e["type"] for e in events] == [
        "workflow_submitted",
        "workflow_accepted",
        "product_validated",
        "listing_generated",
        "upload_confirmed",
        "workflow_handed_off",
        "workflow_accepted",
        "campaign_generated",
        "workflow_handed_off",
        "workflow_completed",
    ]
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)
    assert events[3]["event"]["provenance"]["usage"]["input_tokens"] > 0


def test_events_of_a_role_come_from_its_agents_streams(cli: Any) -> None:
    _, out, _ = cli("events", "--role", "product-upload", "--limit", "500", "--json")
    events = json_lines(out)
    assert {e["stream"] for e in events} == {"product-agent-0", "product-agent-1"}
    assert {e["role"] for e in events} == {"product-upload"}
    _, out, _ = cli("events", "--role", "product-agent-1", "--limit", "500", "--json")
    assert {e["stream"] for e in json_lines(out)} == {"product-agent-1"}


def test_events_of_a_type(cli: Any, finished_run: Run) -> None:
    _, out, _ = cli("events", "--type", "step_failed", "--json")
    failed = json_lines(out)
    expected = {finished_run.workflow(p) for p in finished_run.invalid()}
    assert {e["workflow_id"] for e in failed} == expected
    assert all(e["event"]["step"] == "validate_product_data" for e in failed)


def test_events_in_a_time_window(cli: Any, finished_run: Run) -> None:
    everything = read_store(
        finished_run.settings.db_path, lambda s: s.query_events(EventQuery(limit=100_000))
    )
    first = min(e.recorded_at for _, e in everything)
    _, out, _ = cli("events", "--until", str(first), "--json")
    assert json_lines(out) == []
    _, out, _ = cli("events", "--since", "1h", "--limit", "100000", "--json")
    assert len(json_lines(out)) == len(everything)


def test_events_table_says_what_happened(cli: Any, finished_run: Run) -> None:
    workflow = finished_run.workflow(finished_run.invalid()[0])
    code, out, _ = cli("events", "--workflow", workflow)
    assert code == 0
    assert "validate_product_data failed" in out


def test_a_bad_time_is_an_error_naming_the_option(cli: Any) -> None:
    code, _, err = cli("events", "--since", "last tuesday")
    assert code == 2
    assert "--since 'last tuesday'" in err


def test_an_unknown_role_is_an_error_listing_the_roles(cli: Any) -> None:
    code, _, err = cli("events", "--role", "painter")
    assert code == 2
    assert "product-upload" in err


# --- show -----------------------------------------------------------------------------------
def test_show_tells_a_completed_products_story(cli: Any, finished_run: Run) -> None:
    product = finished_run.valid()[0]
    code, out, _ = cli("show", finished_run.workflow(product), "--json")
    assert code == 0
    story = json.loads(out)
    assert story["status"] == "completed"
    steps = [line["step"] for line in story["lines"]]
    for step in (
        "validate_product_data",
        "generate_listing",
        "confirm_upload",
        "generate_campaign",
        "completed",
    ):
        assert step in steps
    assert story["listing"]["variants"][0]["sku"] == product.variants[0].sku
    assert story["upload"]["product_id"] == product.product_id
    assert story["campaign"]["headline"]
    assert [e["step"] for e in story["llm"]] == ["generate_listing", "generate_campaign"]
    assert story["input_tokens"] == sum(e["input_tokens"] for e in story["llm"]) > 0
    assert story["failures"] == []
    assert story["recoveries"] == []


def test_show_finds_a_products_latest_workflow_by_its_handle(cli: Any, finished_run: Run) -> None:
    product = finished_run.valid()[1]
    _, out, _ = cli("show", product.handle, "--json")
    assert json.loads(out)["workflow_id"] == finished_run.workflow(product)


def test_show_of_a_failed_product_gives_the_reasons(cli: Any, finished_run: Run) -> None:
    product = finished_run.invalid()[0]
    code, out, _ = cli("show", finished_run.workflow(product))
    assert code == 0
    flat = " ".join(out.split())
    assert "failed" in flat
    for reason in validate_product_data(product):
        assert reason.split(":")[0] in flat  # the field each reason names


def test_show_of_an_unknown_workflow_is_a_clear_error(cli: Any) -> None:
    code, _, err = cli("show", "no-such-product")
    assert code == 2
    assert "no-such-product" in err


# --- follow ---------------------------------------------------------------------------------
def test_follow_prints_events_as_they_are_committed(finished_run: Run, tmp_path: Path) -> None:
    db = tmp_path / "follow.db"
    read_store(db, lambda s: s.open_stream("coordinator"))  # an empty swarm database
    follower = separate_process(
        ["events", "--follow", "--json", "--interval", "0.05"], db, tmp_path
    )
    lines = _lines_of(follower)
    try:
        _append_events(db, "coordinator", 1, ["wf-1", "wf-2"])
        seen = [json.loads(lines.get(timeout=60)) for _ in range(2)]
        assert [e["workflow_id"] for e in seen] == ["wf-1", "wf-2"]
        _append_events(db, "coordinator", 3, ["wf-3"])
        assert json.loads(lines.get(timeout=60))["workflow_id"] == "wf-3"
    finally:
        follower.terminate()
        follower.communicate(timeout=30)


def _lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output lines as they come, to wait on with a deadline."""
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _append_events(db: Path, stream: str, first: int, workflows: list[str]) -> None:
    async def append(store: EventStore) -> None:
        position = await store.open_stream(stream)
        event = CrashInjected(step="generate_listing")
        records = tuple(
            EventRecord(
                stream_id=stream,
                seq=first + i,
                event_id=f"{stream}-{first + i}",
                type=event.kind,
                workflow_id=w,
                payload=encode_event(event),
            )
            for i, w in enumerate(workflows)
        )
        await store.commit([AppendBatch(stream_id=stream, epoch=position.epoch, events=records)])

    read_store(db, append)


# --- export ---------------------------------------------------------------------------------
def _listings(finished_run: Run) -> dict[str, Listing]:
    query = EventQuery(
        workflow_prefix=f"{finished_run.run_id}:", type="listing_generated", limit=100_000
    )
    rows = read_store(finished_run.settings.db_path, lambda s: s.query_events(query))
    listings = {}
    for _, record in rows:
        event = decode_event(record.type, record.schema_version, record.payload)
        assert isinstance(event, ListingGenerated)
        listings[record.workflow_id] = event.listing
    return listings


def test_export_csv_imports_back_as_the_same_products_with_the_written_copy(
    cli: Any, finished_run: Run, tmp_path: Path
) -> None:
    path = tmp_path / "listings.csv"
    code, _, err = cli("export", "--format", "csv", "--output", str(path))
    assert code == 0, err
    feed = parse_feed(path)
    assert feed.problems == ()
    back = {p.handle: p for p in feed.products}
    valid = finished_run.valid()
    assert list(back) == [p.handle for p in valid]  # feed order
    listings = _listings(finished_run)
    for original in valid:
        product, listing = back[original.handle], listings[finished_run.workflow(original)]
        assert product.variants == original.variants
        assert product.images == original.images
        assert product.option_names == original.option_names
        assert (product.vendor, product.product_type, product.product_category) == (
            original.vendor,
            original.product_type,
            original.product_category,
        )
        assert (product.published, product.status) == (original.published, original.status)
        assert product.title == listing.title
        assert product.tags == tuple(listing.tags)
        assert (product.seo_title, product.seo_description) == (
            listing.seo_title,
            listing.seo_description,
        )
        assert listing.bullet_points[0] in product.description
        assert validate_product_data(product) == []


def test_export_csv_writes_the_campaigns_beside_the_listings(
    cli: Any, finished_run: Run, tmp_path: Path
) -> None:
    cli("export", "--output", str(tmp_path / "out.csv"))
    with (tmp_path / "out-campaigns.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["Handle"] for r in rows] == [p.handle for p in finished_run.valid()]
    assert all(r["Headline"] and r["Email Body"] and r["Social Posts"] for r in rows)


def test_export_jsonl_has_a_listing_campaign_and_cost_per_product(
    cli: Any, finished_run: Run
) -> None:
    code, out, _ = cli("export", "--format", "jsonl", "--run", finished_run.run_id)
    assert code == 0
    records = json_lines(out)
    assert [r["product_id"] for r in records] == [p.product_id for p in finished_run.valid()]
    for record in records:
        assert record["status"] == "completed"
        assert record["listing"]["variants"]
        assert record["campaign"]["headline"]
        assert record["llm"]["calls"] == 2


def test_export_of_an_unknown_run_is_a_clear_error(cli: Any) -> None:
    code, _, err = cli("export", "--run", "run-that-never-was")
    assert code == 2
    assert "run-that-never-was" in err
