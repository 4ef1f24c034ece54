"""MTTR: from SIGKILL of an agent's process to that agent serving again with its state restored.

    python scripts/bench_mttr.py [--kills 20]

Measured on an embedded Ray with the whole swarm up and a catalog run behind
it (so each agent has a stream to recover). For each kill, once every role
has its warm standby up (a single failure in a steady swarm): SIGKILL the pid
serving a role, then ask `whereis(role)` and call the new actor until it
answers with its recovered state (a new epoch, the same last sequence
number). In the same run, Ray's own path is measured the same way: an actor
with `max_restarts=-1`, SIGKILLed, until a call answers from the new process.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.coordinator import FaultSettings
from swarm.feeds import parse_feed
from swarm.run import new_run_id, submit_products, wait_for_run
from swarm.runtime import connect, coordinator, journal, start_swarm, stop_swarm
from swarm.settings import SAMPLE_CATALOG, SwarmSettings

ROLES = ("product-agent-0", "product-agent-1", "marketing-agent-0", "coordinator")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_for(predicate: Any, timeout_s: float = 30.0, poll_s: float = 0.001) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("condition not met")
        time.sleep(poll_s)


def swarm_mttr(supervisor: Any, kills: int) -> list[float]:
    samples: list[float] = []
    for i in range(kills):
        role = ROLES[i % len(ROLES)]
        # a single failure in a steady swarm: every role has its standby up (one still
        # starting would take a core from the recovery being measured)
        wait_for(lambda: set(ROLES) <= set(ray.get(supervisor.standbys.remote())), 60, 0.01)
        before = {c.name: c for c in ray.get(supervisor.status.remote())}[role]
        began = time.perf_counter()
        os.kill(before.pid, signal.SIGKILL)
        while True:
            try:
                name = ray.get(supervisor.whereis.remote(role))
                if name is not None:
                    status: Any = ray.get(ray.get_actor(name, namespace="swarm").status.remote())
                    if status.epoch > before.epoch:
                        assert status.last_seq >= before.last_seq, "state not restored"
                        break
            except (ray.exceptions.RayActorError, ValueError):
                pass
            time.sleep(0.001)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


class Plain:
    def pid(self) -> int:
        return os.getpid()


def ray_restart_latency(kills: int) -> list[float]:
    plain: Any = ray.remote(max_restarts=-1, num_cpus=0)(Plain)
    actor = plain.remote()
    samples = []
    for _ in range(kills):
        pid = ray.get(actor.pid.remote())
        began = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        while True:
            try:
                if ray.get(actor.pid.remote(), timeout=10) != pid:
                    break
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                time.sleep(0.001)
        samples.append((time.perf_counter() - began) * 1000)
    ray.kill(actor, no_restart=True)
    return samples


def measure(kills: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = SwarmSettings.model_construct(
            **{
                **SwarmSettings().model_dump(),
                "db_path": Path(tmp) / "mttr.db",
                "openai_api_key": None,
                "marketplace_url": None,
                "restart_intensity": 10_000,
            }
        )
        supervisor = start_swarm(settings, detached=False)
        products = list(parse_feed(SAMPLE_CATALOG).products)
        run_id = new_run_id()
        ids = submit_products(coordinator(), run_id, products, FaultSettings(), 20)
        wait_for_run(journal(), run_id, len(ids), timeout_s=300)
        swarm = swarm_mttr(supervisor, kills)
        stop_swarm(supervisor)
    plain = ray_restart_latency(kills)
    return {
        "swarm": (statistics.median(swarm), percentile(swarm, 0.99)),
        "ray max_restarts": (statistics.median(plain), percentile(plain, 0.99)),
    }


def print_mttr(figures: dict[str, tuple[float, float]], kills: int) -> None:
    print(f"MTTR over {kills} SIGKILLs (kill -> serving with state restored)")
    for path, (p50, p99) in figures.items():
        print(f"  {path:<18} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20)
    args = parser.parse_args()
    connect(None)
    print_mttr(measure(args.kills), args.kills)
    ray.shutdown()


if __name__ == "__main__":
    main()
