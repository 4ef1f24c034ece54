"""Crash mode on Ray: the agent's process really dies (`os._exit`) at each step.

The swarm runs on the module's own local Ray, with the suite's LLM and
marketplace servers. One product per step is sent with `crash_step` at that
step, one after the other (so a death never interrupts another product's
call). The swarm's supervisor notices each death and restarts the agent,
which recovers from the log and finishes the workflow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import ray

from actors.coordinator import FaultSettings, workflow_id_for
from actors.models import Product
from actors.protocol import STEPS, FaultPlan
from storage.records import EventRecord
from swarm.runtime import coordinator, journal, start_swarm, stop_swarm
from tests.servers.marketplace_stub import MarketplaceStub
from tests.servers.openai_stub import OpenAIStub
from tests.waiting import wait_until
from tests.workflow_support import (
    API_KEY,
    all_events,
    llm_calls,
    log_problems,
    product,
    server_settings,
)

pytestmark = pytest.mark.timeout(300)
RUN = "run-crash"


@dataclass
class CrashRun:
    db_path: Path
    llm: OpenAIStub
    shop: MarketplaceStub
    products: dict[str, Product]
    """step -> the product that crashed its agent there."""
    restarts: Counter[str] = field(default_factory=Counter)


def _finished(workflow_id: str) -> bool:
    row = ray.get(journal().workflow.remote(workflow_id))  # journal(): wherever it runs now
    return row is not None and row.status in ("completed", "failed")


@pytest.fixture(scope="module")
def crash_run(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashRun]:
    with OpenAIStub(expected_api_key=API_KEY) as llm, MarketplaceStub() as shop:
        settings = server_settings(
            tmp_path_factory.mktemp("crash") / "swarm.db",
            llm,
            shop,
            product_agents=1,
            marketing_agents=1,
            retry_deadline_s=60.0,
        )
        supervisor = start_swarm(settings, detached=False)
        run = CrashRun(settings.db_path, llm, shop, {})
        try:
            for step in STEPS:
                item = product(f"crash-{step}", f"Crash At {step.title()}")
                run.products[step] = item
                workflow_id = workflow_id_for(RUN, item)
                plan = {workflow_id: FaultPlan(crash_step=step)}
                ray.get(coordinator().submit.remote(RUN, [item], FaultSettings(), plan))
                wait_until(partial(_finished, workflow_id), 120, f"{workflow_id} to finish")
            run.restarts = Counter(
                {c.name: c.restarts for c in ray.get(supervisor.status.remote()) if c.restarts}
            )
            yield run
        finally:
            stop_swarm(supervisor)


def _events(run: CrashRun) -> list[EventRecord]:
    return all_events(run.db_path)


@pytest.mark.parametrize("step", STEPS)
def test_reconstruction_after_a_process_crash_completes_the_workflow(
    crash_run: CrashRun, step: str
) -> None:
    workflow_id = workflow_id_for(RUN, crash_run.products[step])
    events = [e for e in _events(crash_run) if e.workflow_id == workflow_id]
    crashes = [e.stream_id for e in events if e.type == "crash_injected"]
    agent = "marketing-agent-0" if step == "generate_campaign" else "product-agent-0"
    assert crashes == [agent]
    assert events[-1].type == "workflow_completed"


def test_reconstruction_restarted_each_agent_once_per_crash(crash_run: CrashRun) -> None:
    assert crash_run.restarts == Counter({"product-agent-0": 3, "marketing-agent-0": 1})


@pytest.mark.parametrize("step", STEPS)
def test_reconstruction_after_a_process_crash_pays_each_llm_call_once(
    crash_run: CrashRun, step: str
) -> None:
    title = crash_run.products[step].title
    assert llm_calls(crash_run.llm, title) == Counter({"Listing": 1, "Campaign": 1})


@pytest.mark.parametrize("step", STEPS)
def test_reconstruction_after_a_process_crash_uploads_once(crash_run: CrashRun, step: str) -> None:
    assert crash_run.shop.writes[crash_run.products[step].product_id] == 1


def test_reconstruction_after_process_crashes_leaves_a_valid_log(crash_run: CrashRun) -> None:
    completed = [workflow_id_for(RUN, p) for p in crash_run.products.values()]
    assert log_problems(_events(crash_run), completed) == []
