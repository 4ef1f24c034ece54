"""`EffectLimiter`: at most N effects in flight, the rest served in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from actors.steps import EffectLimiter
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)


def test_no_more_than_the_limit_run_at_once_and_waiters_go_in_order() -> None:
    async def scenario() -> tuple[int, list[int]]:
        limiter = EffectLimiter(3)
        gate = asyncio.Event()
        running, peak, order = 0, 0, []
        three_in = asyncio.Event()

        async def effect(i: int) -> None:
            nonlocal running, peak
            async with limiter:
                order.append(i)
                if len(order) == 3:
                    three_in.set()
                running += 1
                peak = max(peak, running)
                await gate.wait()
                running -= 1

        tasks = [asyncio.ensure_future(effect(i)) for i in range(10)]
        await three_in.wait()
        await eventually(lambda: limiter.waiting == 7, 5, "the other seven waiting")
        assert len(order) == 3
        gate.set()
        await asyncio.gather(*tasks)
        return peak, order

    peak, order = asyncio.run(scenario())
    assert peak == 3
    assert order == list(range(10))


def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    async def scenario() -> bool:
        limiter = EffectLimiter(1)
        release, held = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with limiter:
                held.set()
                await release.wait()

        async def waiter() -> None:
            async with limiter:
                pass

        first = asyncio.ensure_future(holder())
        await held.wait()
        cancelled = asyncio.ensure_future(waiter())
        await eventually(lambda: limiter.waiting == 1, 5, "the waiter queued")
        cancelled.cancel()
        release.set()
        await first
        late = asyncio.ensure_future(waiter())
        await asyncio.wait_for(late, 5)
        return cancelled.cancelled()

    assert asyncio.run(scenario())


def test_a_slot_handed_to_a_waiter_cancelled_in_that_moment_goes_to_the_next() -> None:
    async def scenario() -> list[str]:
        limiter = EffectLimiter(1)
        got: list[str] = []

        async def take(name: str) -> None:
            async with limiter:
                got.append(name)

        await limiter.__aenter__()
        second = asyncio.ensure_future(take("second"))
        third = asyncio.ensure_future(take("third"))
        await eventually(lambda: limiter.waiting == 2, 5, "both takers queued")
        await limiter.__aexit__(None, None, None)  # hands the slot to `second`...
        second.cancel()  # ...which is cancelled before it runs
        await asyncio.wait_for(third, 5)
        return got

    assert asyncio.run(scenario()) == ["third"]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EffectLimiter(0)
