"""The swarm-wide LLM rate limit: requests and tokens per minute, across processes and nodes.

One named actor (`llm-limiter`, namespace `swarm`, no CPU) holds the buckets;
every LLM client asks it before each request. The actor never waits: it
reserves the request's place and answers how long the caller must wait before
sending; the caller sleeps. Reservations are first come, first served.

The guarantee, per limit `L` per minute: each bucket refills at `L / 61` per
second and holds at most one second's worth (at least one request), so the
requests started in any window of `t` seconds are at most
`burst + rate * t`, which over any 60 s window is at most `L`. Token counts
are estimates when the request is reserved (the prompt's size plus an answer
allowance) and are corrected with the response's usage afterwards
(`settle`), so the token limit holds as well as the estimates do; a request
estimated above one second's worth of tokens is let through once the bucket
is full and leaves it in debt.

The actor is created on first use with `get_if_exists=True` and
`lifetime="detached"`, and Ray restarts it if it dies; its buckets restart
full then (a killed limiter forgets the last second's reservations). Limits
travel with every call, so a limiter left over from a run with other
settings takes the new ones. Without Ray (the in-process swarm), a limiter in
the process does the same for that process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ray
from pydantic import Field
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.models import FrozenModel

LIMITER_NAME = "llm-limiter"
LIMITER_NAMESPACE = "swarm"
BURST_S = 1.0
"""A bucket holds this many seconds' worth of its rate (at least one request)."""


class RateLimits(FrozenModel):
    """Per-minute limits for the LLM endpoint; 0 means no limit."""

    requests_per_minute: int = Field(default=0, ge=0)
    tokens_per_minute: int = Field(default=0, ge=0)

    @property
    def enabled(self) -> bool:
        return self.requests_per_minute > 0 or self.tokens_per_minute > 0


class TokenBucket:
    """A token bucket on which reservations are made at a future start time. Pure: no clock."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.rate = per_minute / (60.0 + BURST_S)
        """Units per second; with the burst, any 60 s window holds at most `per_minute`."""
        self.burst = max(1.0, self.rate * BURST_S)
        self.level = self.burst
        self.updated = now

    def level_at(self, when: float) -> float:
        """The level at `when` (not before the last reservation's start)."""
        return min(self.burst, self.level + self.rate * (when - self.updated))

    def earliest(self, amount: float, now: float) -> float:
        """The earliest start, at or after `now` and after every earlier reservation."""
        start = max(now, self.updated)
        missing = min(amount, self.burst) - self.level_at(start)
        return start + missing / self.rate if missing > 0 else start

    def take(self, amount: float, start: float) -> None:
        """Reserve `amount` at `start` (from `earliest`, or later)."""
        self.level = self.level_at(start) - amount
        self.updated = start

    def give_back(self, amount: float) -> None:
        """Correct a reservation: a positive `amount` was not used, a negative one was extra."""
        self.level = min(self.burst, self.level + amount)


class RateLimiter:
    """Requests and tokens per minute, as buckets; answers how long a caller must wait."""

    def __init__(self, limits: RateLimits, now: float) -> None:
        self.limits = limits
        self._requests = (
            TokenBucket(limits.requests_per_minute, now) if limits.requests_per_minute else None
        )
        self._tokens = (
            TokenBucket(limits.tokens_per_minute, now) if limits.tokens_per_minute else None
        )

    def acquire(self, estimated_tokens: int, now: float) -> float:
        """Reserve one request of `estimated_tokens`; the seconds to wait before sending it."""
        wanted = [(b, n) for b, n in ((self._requests, 1), (self._tokens, estimated_tokens)) if b]
        start = max([now, *(bucket.earliest(amount, now) for bucket, amount in wanted)])
        for bucket, amount in wanted:
            bucket.take(amount, start)
        return start - now

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """The request used `actual_tokens`, not the estimate: correct the token bucket."""
        if self._tokens is not None:
            self._tokens.give_back(estimated_tokens - actual_tokens)


class RateLimiterActor:
    """The body of the `llm-limiter` actor: one `RateLimiter`, on the actor's clock."""

    def __init__(self) -> None:
        self._limiter: RateLimiter | None = None

    def acquire(self, limits: RateLimits, estimated_tokens: int) -> float:
        return self._for(limits).acquire(estimated_tokens, time.monotonic())

    def settle(self, limits: RateLimits, estimated_tokens: int, actual_tokens: int) -> None:
        self._for(limits).settle(estimated_tokens, actual_tokens)

    def _for(self, limits: RateLimits) -> RateLimiter:
        if self._limiter is None or self._limiter.limits != limits:
            self._limiter = RateLimiter(limits, time.monotonic())
        return self._limiter


class RateLimitClient:
    """What an LLM client calls before each request: waits its turn under the swarm's limits.

    Picklable: only the limits travel; the actor is found (or created) in the
    process that first calls `acquire`. With no limits it does nothing.
    """

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._actor: Any = None
        self._local: RateLimiter | None = None
        self._resolving = asyncio.Lock()

    async def acquire(self, estimated_tokens: int) -> None:
        """Wait until a request of `estimated_tokens` may be sent."""
        if not self.limits.enabled:
            return
        if not ray.is_initialized():
            if self._local is None:
                self._local = RateLimiter(self.limits, time.monotonic())
            wait = self._local.acquire(estimated_tokens, time.monotonic())
        else:
            wait = await self._ask_actor(estimated_tokens)
        if wait > 0:
            await asyncio.sleep(wait)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Report the tokens the request really used (no wait: the actor is told, not asked)."""
        if not self.limits.enabled or estimated_tokens == actual_tokens:
            return
        if self._local is not None:
            self._local.settle(estimated_tokens, actual_tokens)
        elif self._actor is not None:
            self._actor.settle.remote(self.limits, estimated_tokens, actual_tokens)

    async def _ask_actor(self, estimated_tokens: int) -> float:
        for attempt in range(2):
            actor = await self._handle(fresh=attempt > 0)
            try:
                wait: float = await actor.acquire.remote(self.limits, estimated_tokens)
                return wait
            except (RayActorError, ActorUnavailableError):
                if attempt > 0:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _handle(self, *, fresh: bool) -> Any:
        async with self._resolving:
            if self._actor is None or fresh:
                self._actor = await asyncio.to_thread(limiter_actor)
            return self._actor

    def __getstate__(self) -> dict[str, Any]:
        return {"limits": self.limits}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.limits = state["limits"]
        self._actor = None
        self._local = None
        self._resolving = asyncio.Lock()


def limiter_actor() -> Any:
    """The swarm's `llm-limiter` actor: the running one, else a new one (needs Ray)."""
    return (
        ray.remote(RateLimiterActor)
        .options(
            name=LIMITER_NAME,
            namespace=LIMITER_NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            num_cpus=0,
            max_restarts=-1,
        )
        .remote()
    )
