"""The `local` marketplace (the catalog table, through the journal actor) on a local Ray:
puts from many workflows at once are batched into few actor calls, and still each writes
its listing once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from storage.journal_actor import JournalActor
from swarm.marketplace_local import LocalMarketplace
from tests.contract.test_marketplace_contract import make_listing

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def journal_actor(ray_local: None, tmp_path: Path) -> Iterator[Any]:
    """A fresh journal actor named `journal` (where the local marketplace looks for it)."""
    options = {"name": "journal", "namespace": "swarm", "num_cpus": 0}
    actor_class: Any = ray.remote(JournalActor)
    handle = actor_class.options(**options).remote(str(tmp_path / "catalog.db"))
    ray.get(handle.start.remote())
    yield handle
    ray.kill(handle, no_restart=True)


def test_concurrent_puts_each_write_once_and_replays_write_nothing(journal_actor: Any) -> None:
    listings = [make_listing(f"shirt-{i}", f"Shirt {i}") for i in range(200)]

    async def scenario() -> tuple[list[bool], list[str], list[object]]:
        market = LocalMarketplace()
        first = await asyncio.gather(
            *(market.put_listing(x, f"key-{x.product_id}") for x in listings)
        )
        again = await asyncio.gather(
            *(market.put_listing(x, f"key-{x.product_id}") for x in listings)
        )
        stored = await asyncio.gather(*(market.get_listing(x.product_id) for x in listings))
        return [r.created for r in first], [r.revision for r in again], list(stored)

    created, revisions, stored = asyncio.run(scenario())
    assert all(created)
    assert set(revisions) == {"1"}  # the replays wrote nothing: still the first revision
    assert stored == listings
    assert ray.get(journal_actor.catalog_count.remote()) == 200
