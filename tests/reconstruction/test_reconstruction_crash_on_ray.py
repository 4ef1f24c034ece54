"""Crash mode on Ray: the agent's process really dies (`os._exit`) at each step.

The swarm runs on the module's own local Ray, with the suite's LLM and
marketplace servers. One product per step is sent with `crash_step` at that
step, one after the other (so a death never interrupts another product's
call). The supervisor does not restart children yet, so the test does what it
will do: it runs the supervisor's code in this driver (so the driver owns the
children: Ray keeps a dead actor's name taken while its owner holds a
handle), watches each agent with `watch` (which only returns when the agent
dies), drops the dead child's handle and starts a fresh `AgentActor` with the
same spec under the same name, which recovers from the log.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.exceptions import ActorAlreadyExistsError, RayActorError

from actors.coordinator import FaultSettings, workflow_id_for
from actors.models import Product
from actors.protocol import STEPS, FaultPlan
from actors.ray_actors import NAMESPACE, AgentActor
from storage.records import EventRecord
from supervisor.child_spec import ChildSpec
from supervisor.supervisor import Supervisor
from swarm.runtime import child_specs, coordinator, journal
from tests.servers.marketplace_stub import MarketplaceStub
from tests.servers.openai_stub import OpenAIStub
from tests.workflow_support import (
    API_KEY,
    all_events,
    llm_calls,
    log_problems,
    product,
    server_settings,
)

pytestmark = pytest.mark.timeout(300)
AGENTS = ("product-agent-0", "marketing-agent-0")
RUN = "run-crash"


@dataclass
class CrashRun:
    db_path: Path
    llm: OpenAIStub
    shop: MarketplaceStub
    products: dict[str, Product]
    """step -> the product that crashed its agent there."""
    restarts: Counter[str] = field(default_factory=Counter)


class Restarter:
    """Brings dead agents back: a fresh AgentActor with the same spec and name."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.specs = {spec.name: spec for spec in supervisor.children}
        self.watches = {name: supervisor.handles[name].watch.remote() for name in AGENTS}
        self.restarts: Counter[str] = Counter()

    def restart_the_dead(self, wait_s: float) -> None:
        """Wait up to `wait_s` for an agent to die; restart each that did."""
        for name in self._dead(wait_s):
            self.supervisor.handles.pop(name)  # its last handle: Ray then frees the name
            handle = self._respawn(self.specs[name])
            self.supervisor.handles[name] = handle
            self.watches[name] = handle.watch.remote()
            self.restarts[name] += 1

    def _dead(self, wait_s: float) -> list[str]:
        ready, _ = ray.wait(list(self.watches.values()), num_returns=1, timeout=wait_s)
        dead = [name for name, ref in self.watches.items() if ref in ready]
        for name in dead:
            with pytest.raises(RayActorError):
                ray.get(self.watches.pop(name))
        return dead

    @staticmethod
    def _respawn(spec: ChildSpec) -> Any:
        actor_class: Any = ray.remote(AgentActor)
        options = {"name": spec.name, "namespace": NAMESPACE, "num_cpus": 0}
        deadline = time.monotonic() + 30
        while True:
            try:
                handle = actor_class.options(
                    **options, max_concurrency=spec.max_concurrency
                ).remote(spec.agent)
            except ActorAlreadyExistsError:
                assert time.monotonic() < deadline, f"the name {spec.name} stayed taken"
                time.sleep(0.05)  # poll until Ray has released the dead actor's name
                continue
            ray.get(handle.start.remote(), timeout=60)
            return handle


def _finished(workflow_id: str) -> bool:
    row = ray.get(journal().workflow.remote(workflow_id))
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
        supervisor = Supervisor(child_specs(settings))
        asyncio.run(supervisor.start())
        restarter = Restarter(supervisor)
        run = CrashRun(settings.db_path, llm, shop, {})
        try:
            for step in STEPS:
                item = product(f"crash-{step}", f"Crash At {step.title()}")
                run.products[step] = item
                workflow_id = workflow_id_for(RUN, item)
                plan = {workflow_id: FaultPlan(crash_step=step)}
                ray.get(coordinator().submit.remote(RUN, [item], FaultSettings(), plan))
                deadline = time.monotonic() + 120
                while not _finished(workflow_id):
                    assert time.monotonic() < deadline, f"{workflow_id} did not finish"
                    restarter.restart_the_dead(wait_s=0.2)
            run.restarts = restarter.restarts
            yield run
        finally:
            asyncio.run(supervisor.stop())


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
