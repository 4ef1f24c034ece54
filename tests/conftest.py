"""Shared fixtures: a local Ray the module owns, a temp database, a swarm on it.

`ray_local` starts an embedded Ray (its own processes and temp dir) for the
test module and shuts exactly that down afterwards; nothing else on the
machine is touched. `swarm_factory` brings a swarm up on a fresh SQLite file
and stops its actors at the end of the test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from storage.sqlite import SQLiteEventStore
from swarm.runtime import start_swarm, stop_swarm
from swarm.settings import SwarmSettings


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if ray.is_initialized():
        ray.shutdown()
    # the agents must not inherit the developer's keys or cluster
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(
        address="local",
        namespace="swarm",
        include_dashboard=False,
        num_cpus=2,
        log_to_driver=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    yield
    ray.shutdown()


def make_settings(db_path: Path, **overrides: Any) -> SwarmSettings:
    """Settings from arguments only: the developer's environment and .env are ignored."""
    values: dict[str, Any] = {
        "db_path": db_path,
        "product_agents": 2,
        "marketing_agents": 1,
        "openai_api_key": None,
        "openai_base_url": None,
        "marketplace_url": None,
        "ray_address": None,
    }
    values.update(overrides)
    return SwarmSettings.model_construct(**{**SwarmSettings().model_dump(), **values})


@pytest.fixture
def swarm_factory(ray_local: None, tmp_path: Path) -> Iterator[Callable[..., SwarmSettings]]:
    supervisors: list[Any] = []

    def start(**overrides: Any) -> SwarmSettings:
        settings = make_settings(tmp_path / "swarm.db", **overrides)
        supervisors.append(start_swarm(settings, detached=False))
        return settings

    yield start
    for supervisor in supervisors:
        stop_swarm(supervisor)


def read_store(db_path: Path, call: Callable[[SQLiteEventStore], Any]) -> Any:
    """Run `call(store)` on a read connection to the swarm's database."""

    async def run() -> Any:
        store = SQLiteEventStore(db_path)
        await store.open()
        try:
            return await call(store)
        finally:
            await store.close()

    return asyncio.run(run())
