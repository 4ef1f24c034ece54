"""Chaos: kill the swarm's actors from outside, the way machines and operators do.

Actors are found through Ray's state API (the dashboard), only in the swarm's
namespace. A target is a role (`product-agent-0`), a glob (`product-agent-*`),
`random` (any agent: coordinator, product or marketing), `supervisor`,
`journal`, or `any` (any swarm actor at all, warm standbys included).

Modes: `sigkill` sends SIGKILL to the actor's process, on whatever node it runs
(through a zero-CPU task pinned to that node); `ray-kill` calls `ray.kill`
(the supervisor is killed with restart allowed, as a crash would).
"""

from __future__ import annotations

import fnmatch
import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.ray_actors import NAMESPACE, SUPERVISOR

Mode = Literal["sigkill", "ray-kill"]
AGENT_ROLES = ("coordinator", "product-agent-*", "marketing-agent-*")


@dataclass(frozen=True)
class SwarmActor:
    name: str
    role: str
    pid: int
    node_id: str


@dataclass(frozen=True)
class Kill:
    at: float
    """Unix time of the kill."""
    role: str
    actor: str
    pid: int
    node_id: str
    mode: str


def role_of(actor_name: str) -> str:
    return re.sub(r"~\d+$", "", actor_name)


def swarm_actors() -> list[SwarmActor]:
    """Alive named actors in the swarm's namespace, from the state API."""
    from ray.util.state import list_actors

    found = []
    for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=10_000, timeout=30):
        if actor.ray_namespace != NAMESPACE or not actor.name or not actor.pid:
            continue
        found.append(SwarmActor(actor.name, role_of(actor.name), actor.pid, actor.node_id or ""))
    return found


def _serving(actors: list[SwarmActor]) -> list[SwarmActor]:
    """The actors serving a role now (not warm standbys): the supervisor's registry says."""
    try:
        supervisor: Any = ray.get_actor(SUPERVISOR, namespace=NAMESPACE)
        registry: dict[str, str] = ray.get(supervisor.whereis_all.remote(), timeout=10)
        names = set(registry.values())
    except (ValueError, ray.exceptions.RayError):
        return actors
    return [a for a in actors if a.name in names or a.name == SUPERVISOR]


def choose(target: str, actors: list[SwarmActor], rng: random.Random) -> SwarmActor | None:
    if target == "any":
        pool = actors
    elif target == "random":
        pool = [a for a in _serving(actors) if any(fnmatch.fnmatch(a.role, r) for r in AGENT_ROLES)]
    else:
        pool = [a for a in _serving(actors) if fnmatch.fnmatch(a.role, target)]
    return rng.choice(sorted(pool, key=lambda a: a.name)) if pool else None


@ray.remote(num_cpus=0)
def _sigkill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def kill(actor: SwarmActor, mode: Mode) -> Kill:
    at = time.time()
    if mode == "ray-kill":
        handle = ray.get_actor(actor.name, namespace=NAMESPACE)
        ray.kill(handle, no_restart=actor.name != SUPERVISOR)
    else:
        strategy = NodeAffinitySchedulingStrategy(node_id=actor.node_id, soft=False)
        ray.get(_sigkill.options(scheduling_strategy=strategy).remote(actor.pid), timeout=30)
    return Kill(
        at=at, role=actor.role, actor=actor.name, pid=actor.pid, node_id=actor.node_id, mode=mode
    )


def parse_interval(text: str) -> tuple[float, float]:
    """`2` or `0.5-3` (seconds): a fixed interval or a uniform range."""
    low, _, high = text.partition("-")
    a = float(low)
    b = float(high) if high else a
    if a < 0 or b < a:
        raise ValueError(f"interval {text!r}: expected S or A-B with 0 <= A <= B")
    return a, b


def kill_loop(
    *,
    target: str,
    mode: Mode,
    interval: tuple[float, float],
    count: int | None,
    seed: int,
    stop: threading.Event,
    on_kill: Callable[[Kill], None],
) -> list[Kill]:
    """Kill every `interval` seconds until `count` kills or `stop` is set."""
    rng = random.Random(seed)
    kills: list[Kill] = []
    while count is None or len(kills) < count:
        if stop.wait(rng.uniform(*interval)):
            break
        try:
            victim = choose(target, swarm_actors(), rng)
        except Exception as e:  # noqa: BLE001 - the state API may be briefly down; try again
            print(f"chaos: could not list actors ({type(e).__name__}: {e})", flush=True)
            continue
        if victim is None:
            continue
        try:
            done = kill(victim, mode)
        except (ValueError, ray.exceptions.RayError) as e:
            print(f"chaos: {victim.name} escaped ({type(e).__name__})", flush=True)
            continue
        kills.append(done)
        on_kill(done)
    return kills


def print_kill(k: Kill) -> None:
    stamp = time.strftime("%H:%M:%S", time.localtime(k.at)) + f".{int(k.at % 1 * 1000):03d}"
    print(f"{stamp}  killed {k.actor:<24} role {k.role:<20} pid {k.pid:<8} "
          f"node {k.node_id[:8]}  ({k.mode})", flush=True)  # fmt: skip
