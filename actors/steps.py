"""What every step shares: the seed's failure injection, the retry policy for effects, and
the limit on effects in flight.

`fail_step` raises `RuntimeError` at the named step, every time the step runs.
`crash_step` records `CrashInjected` and then ends the agent's process (through
the agent's `crash` hook) the first time the step runs; the recorded event
keeps the recovered agent from crashing again at the same step.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

from actors.ports import ExternalCallError
from actors.workflow import WorkflowState

T = TypeVar("T")
MAX_RETRY_WAIT_S = 60.0


class InjectedFailureError(RuntimeError):
    """The seed's `fail_step`: a step raising on purpose."""


def check_fail_step(state: WorkflowState, step: str) -> None:
    if state.faults.fail_step == step:
        raise InjectedFailureError(f"Injected failure at {step}")


def should_crash(state: WorkflowState, step: str) -> bool:
    return state.faults.crash_step == step and step not in state.crashed_steps


def waiting_delay(waits: int, retry_after: float | None, *, base_s: float, cap_s: float) -> float:
    """Seconds before a waiting step's next try: exponential in `waits`, jittered, capped.

    Never sooner than the server's `Retry-After` (itself capped).
    """
    delay = min(cap_s, base_s * 2.0 ** max(waits - 1, 0)) * (0.5 + random.random() / 2)
    return min(cap_s, max(delay, retry_after or 0.0))


async def with_retries(call: Callable[[], Awaitable[T]], *, attempts: int, backoff_s: float) -> T:
    """Run an idempotent effect, retrying retryable errors with exponential backoff and jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except ExternalCallError as e:
            if not e.retryable or attempt == attempts:
                raise
            retry_after = getattr(e, "retry_after", None)
            if retry_after is not None:  # the server said when: never sooner, capped
                delay = min(float(retry_after), MAX_RETRY_WAIT_S)
            else:
                delay = backoff_s * 2 ** (attempt - 1) * (0.5 + random.random())
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class EffectLimiter:
    """At most `limit` effects (LLM calls, uploads) in flight; the others wait in FIFO order.

    An `asyncio.Semaphore` would do, but in Python 3.11 its `acquire` scans every
    waiter, and an agent may hold thousands of workflows waiting for a slot:
    here taking and handing on a slot costs the same however many wait.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"effect limit must be at least 1, got {limit}")
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Effects waiting for a slot."""
        return sum(1 for w in self._waiters if not w.done())

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():  # handed a slot as it was cancelled
                self._release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        """Hand the slot to the longest waiter still waiting, else free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
