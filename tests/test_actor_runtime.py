"""What the swarm's actors run on: Ray gives each async actor a uvloop event loop when the
package is installed, which the project's own dependencies make sure of."""

from __future__ import annotations

import asyncio

import pytest
import ray

pytestmark = pytest.mark.timeout(120)


@ray.remote(num_cpus=0)
class LoopProbe:
    async def loop_module(self) -> str:
        return type(asyncio.get_running_loop()).__module__


def test_async_actors_run_on_uvloop(ray_local: None) -> None:
    probe = LoopProbe.remote()  # type: ignore[attr-defined]
    try:
        assert ray.get(probe.loop_module.remote(), timeout=60).startswith("uvloop")
    finally:
        ray.kill(probe)
