"""Connecting to Ray and bringing the swarm up.

Where the swarm runs, in order: `--address`, else `RAY_ADDRESS`, else a local
cluster started with `ray start --head` if one answers, else an embedded Ray
that this process starts and stops. An address is probed with a short TCP
connect first, because `ray.init` on an address where nothing listens hangs
for minutes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.durable import AgentConfig
from actors.rate_limiter import RateLimits
from actors.ray_actors import NAMESPACE, AgentSpec
from supervisor.child_spec import ChildSpec, JournalSpec
from supervisor.policy import SupervisionPolicy
from supervisor.supervisor import SupervisorActor
from swarm.llm_offline import OfflineWriter
from swarm.llm_openai import OpenAIWriter, OpenAIWriterConfig
from swarm.marketplace_http import HttpMarketplace, HttpMarketplaceConfig
from swarm.marketplace_local import LocalMarketplace
from swarm.settings import SwarmSettings

log = logging.getLogger(__name__)
SUPERVISOR = "supervisor"
ROLES: dict[str, str] = {
    "journal": "journal",
    "coordinator": "coordinator",
    "product-agent": "product-upload",
    "marketing-agent": "marketing",
    SUPERVISOR: "supervisor",
}
"""Actor name (without the pool index) -> role. An agent's event stream has its name."""


class RayConnectionError(Exception):
    """No Ray cluster answers at the address given."""


@dataclass(frozen=True)
class Connection:
    address: str
    embedded: bool


def _reachable(address: str, timeout_s: float = 2.0) -> bool:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


CLUSTER_ENV = {
    "RAY_max_direct_call_object_size": str(8 * 2**20),
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": str(64 * 2**10),
}
"""Environment for the Ray processes that host the swarm: an embedded Ray inherits it from
this process; give it to `ray start --head` the same way (the README shows the line).

- Calls carry arguments up to 8 MiB themselves (Ray's default is 100 KiB). Larger
  ones go through the shared-memory object store, and every store page an actor
  touches counts in its resident memory for as long as the store lives: an agent's
  grew by 13 MB over 20k products here from message and journal batches alone.
- glibc malloc with a fixed mmap threshold and two arenas, set before any thread
  starts (`storage.process_memory` explains why; each actor also sets what it still
  can when it starts, for a cluster started without this environment).
"""


def running_local_cluster() -> str | None:
    """The address of a `ray start --head` cluster on this machine, if one answers."""
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    try:
        address = current.read_text().strip()
    except OSError:
        return None
    return address if address and _reachable(address) else None


def _send_auth_token_if_any() -> None:
    """Turn on token auth in this driver when a token exists, as `ray start` does.

    Ray 2.60's `ray start --head` enables token auth as soon as `~/.ray/auth_token`
    exists (an embedded `ray.init` writes one), but `ray.init(address=...)` with an
    explicit address does not, and the connection fails with `InvalidAuthToken`.
    Ray reads the mode into a cached config at import, so setting `RAY_AUTH_MODE`
    alone is too late; this is the function Ray itself calls for `address="auto"`.
    """
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def connect(address: str | None, *, quiet: bool = True) -> Connection:
    """Attach to a cluster (explicit address, RAY_ADDRESS, local) or start an embedded Ray."""
    if ray.is_initialized():
        return Connection(address="existing", embedded=False)
    chosen = address or os.environ.get("RAY_ADDRESS") or None
    if chosen in (None, "local"):
        chosen = running_local_cluster() if chosen is None else None
    kwargs: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": not quiet}
    if chosen is None:
        for name, value in CLUSTER_ENV.items():  # the embedded Ray's processes inherit it
            os.environ.setdefault(name, value)
        ray.init(address="local", include_dashboard=True, dashboard_host="127.0.0.1", **kwargs)
        return Connection(address="embedded", embedded=True)
    if chosen != "auto" and not _reachable(chosen):
        raise RayConnectionError(
            f"no Ray cluster answers at {chosen}: start one with `ray start --head`, "
            "or leave --address and RAY_ADDRESS unset to run an embedded Ray"
        )
    _send_auth_token_if_any()
    ray.init(address=chosen, **kwargs)
    return Connection(address=chosen, embedded=False)


def agent_config(settings: SwarmSettings, name: str, role: str) -> AgentConfig:
    """The agent's durability and retry settings, the same on Ray and in-process."""
    return AgentConfig(
        name=name,
        role=role,
        snapshot_every=settings.snapshot_every,
        commit_linger_s=settings.commit_linger_ms / 1000,
        row_delay_s=settings.row_delay_ms / 1000,  # for the agents that hold rows back
        max_in_flight=settings.max_in_flight,
        step_attempts=settings.step_attempts,
        retry_backoff_s=settings.retry_backoff_s,
        wait_max_s=settings.wait_max_s,
        poison_attempts=settings.poison_attempts,
    )


def child_specs(settings: SwarmSettings, home_node: str | None = None) -> list[ChildSpec]:
    """The swarm's children, in start order: journal, coordinator, product and marketing agents.

    The journal prefers `home_node`, the node whose disk holds the database (the
    driver's); agents prefer `settings.agent_node` if set.
    """
    products = tuple(f"product-agent-{i}" for i in range(settings.product_agents))
    marketing = tuple(f"marketing-agent-{i}" for i in range(settings.marketing_agents))
    writer = content_writer(settings)
    marketplace = build_marketplace(settings)

    def agent(
        name: str, role: str, kind: Literal["coordinator", "product", "marketing"]
    ) -> ChildSpec:
        config = agent_config(settings, name, role)
        spec = AgentSpec(
            kind=kind,
            config=config,
            product_agents=products,
            marketing_agents=marketing,
            writer=writer,
            marketplace=marketplace,
            effect_concurrency=settings.effect_concurrency,
            retry_deadline_s=settings.retry_deadline_s,
            llm_prices=settings.price_table,
        )
        restart = settings.restart_types.get(name, "permanent")
        return ChildSpec(
            name=name, role=role, agent=spec, restart=restart, node_id=settings.agent_node
        )

    db_path = str(settings.db_path.resolve())
    return [
        ChildSpec(
            name="journal",
            role="journal",
            journal=JournalSpec(path=db_path, synchronous=settings.db_synchronous),
            restart=settings.restart_types.get("journal", "permanent"),
            node_id=home_node,
        ),
        agent("coordinator", "coordinator", "coordinator"),
        *(agent(n, "product-upload", "product") for n in products),
        *(agent(n, "marketing", "marketing") for n in marketing),
    ]


def role_of(name: str) -> str:
    """The role of the swarm actor (or event stream) `name`: `product-agent-3` -> product-upload."""
    base = name.rstrip("0123456789").removesuffix("-") if name[-1:].isdigit() else name
    return ROLES.get(base, base)


def content_writer(settings: SwarmSettings) -> OfflineWriter | OpenAIWriter:
    if settings.openai_api_key is None or not settings.openai_api_key.get_secret_value():
        return OfflineWriter(latency_s=settings.offline_llm_latency_s)
    return OpenAIWriter(
        OpenAIWriterConfig(
            model=settings.llm_model,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            timeout_s=settings.llm_timeout_s,
            rate_limits=RateLimits(
                requests_per_minute=settings.llm_requests_per_minute,
                tokens_per_minute=settings.llm_tokens_per_minute,
            ),
        )
    )


def build_marketplace(settings: SwarmSettings) -> LocalMarketplace | HttpMarketplace:
    if not settings.marketplace_url:
        return LocalMarketplace()
    return HttpMarketplace(
        HttpMarketplaceConfig(
            base_url=settings.marketplace_url,
            timeout_s=settings.marketplace_timeout_s,
            api_token=settings.marketplace_token,
        )
    )


def supervision_policy(settings: SwarmSettings) -> SupervisionPolicy:
    return SupervisionPolicy(
        strategy=settings.supervisor_strategy,
        max_restarts=settings.restart_intensity,
        period_s=settings.restart_period_s,
        backoff_base_s=settings.restart_backoff_s,
        backoff_max_s=settings.restart_backoff_max_s,
        warm_standby=settings.warm_standby,
        poison_attempts=settings.poison_attempts,
    )


def start_swarm(settings: SwarmSettings, *, detached: bool) -> Any:
    """The running swarm's supervisor: the one already on the cluster, or a new one.

    Ray restarts the supervisor if its process dies (`max_restarts=-1`); its
    children are detached so they outlive it and it re-attaches to them.
    """
    try:
        return ray.get_actor(SUPERVISOR, namespace=NAMESPACE)
    except ValueError:
        pass
    home = ray.get_runtime_context().get_node_id()
    options: dict[str, Any] = {
        "name": SUPERVISOR,
        "namespace": NAMESPACE,
        "num_cpus": 0,
        "max_restarts": -1,
        "max_concurrency": 1_000,
        # on the node that holds the database (soft affinity spills even to live nodes)
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=home, soft=False),
    }
    if detached:
        options["lifetime"] = "detached"
    actor_class: Any = ray.remote(SupervisorActor)
    supervisor = actor_class.options(**options).remote(
        child_specs(settings, home), supervision_policy(settings)
    )
    deadline = time.monotonic() + 300
    while True:  # Ray restarts a supervisor killed while it starts; start() is idempotent
        try:
            ray.get(supervisor.start.remote())
            health = ray.get(supervisor.health.remote())
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        raise_if_escalated(health)  # a role could not be started, or it escalated before
        return supervisor


class SwarmEscalatedError(RuntimeError):
    """The supervisor gave up (restart intensity passed, or a role could not be started)
    and stopped the swarm."""


def raise_if_escalated(health: Any) -> None:
    """Raise `SwarmEscalatedError` with the reason if the supervisor's `health()` says so."""
    if health.state == "escalated":
        raise SwarmEscalatedError(f"the supervisor escalated: {health.reason}")


def find_swarm() -> Any | None:
    try:
        return ray.get_actor(SUPERVISOR, namespace=NAMESPACE)
    except ValueError:
        return None


def stop_swarm(supervisor: Any) -> None:
    ray.get(supervisor.stop.remote())
    ray.kill(supervisor, no_restart=True)


def whereis(role: str, deadline_s: float = 30.0) -> Any:
    """The actor serving `role` now (it changes when the supervisor restarts the role)."""
    end = time.monotonic() + deadline_s
    while True:
        supervisor = find_swarm()
        name: str | None = role  # the role's first actor, if there is no supervisor
        if supervisor is not None:
            try:
                name = ray.get(supervisor.whereis.remote(role), timeout=5)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                name = None  # it is being restarted: ask again rather than guess
        try:
            if name is None:  # the supervisor says: being restarted right now
                raise ValueError(f"{role} is restarting")
            return ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            if time.monotonic() > end:
                raise
        time.sleep(0.05)  # polling the registry while the role restarts


def journal() -> Any:
    return whereis("journal")


def coordinator() -> Any:
    return whereis("coordinator")


async def gather_refs(refs: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*refs))
