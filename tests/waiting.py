"""Waiting on a condition with a deadline: the suite's only way to wait for something to happen.

The pause between checks is a poll interval, never the synchronisation itself:
the wait ends as soon as the condition holds, and fails loudly at the deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


def wait_until(
    condition: Callable[[], object], timeout_s: float, what: str, *, poll_s: float = 0.05
) -> None:
    """Poll `condition()` until it is true; fail naming `what` after `timeout_s`."""
    end = time.monotonic() + timeout_s
    delay = min(poll_s, 0.05)
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, max(poll_s, 1.0))


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout_s: float = 30.0,
    what: str = "the condition",
) -> None:
    """Async `wait_until`: check as the event loop turns (the condition may be async)."""
    end = time.monotonic() + timeout_s
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.005)
