"""The swarm-wide LLM rate limiter as pure code: the buckets' promises, on a made-up clock."""

from __future__ import annotations

import pytest

from actors.rate_limiter import RateLimiter, RateLimiterActor, RateLimits, TokenBucket


def _starts(limiter: RateLimiter, calls: int, tokens: int = 0, now: float = 0.0) -> list[float]:
    """When each of `calls` requests, all asking at `now`, may be sent."""
    return [now + limiter.acquire(tokens, now) for _ in range(calls)]


def test_without_limits_nobody_waits() -> None:
    limiter = RateLimiter(RateLimits(), now=0.0)
    assert _starts(limiter, 1000, tokens=50_000) == [0.0] * 1000


def test_requests_in_any_sixty_second_window_stay_within_the_limit() -> None:
    limit = 120
    limiter = RateLimiter(RateLimits(requests_per_minute=limit), now=0.0)
    starts = _starts(limiter, 600)
    for i, first in enumerate(starts):
        in_window = sum(1 for s in starts[i:] if s < first + 60.0)
        assert in_window <= limit
    # and they are spread evenly after the first second's burst, not sent in a clump
    bucket = TokenBucket(limit, now=0.0)
    assert starts[-1] >= (600 - bucket.burst) / bucket.rate - 1e-9


def test_short_windows_hold_at_most_the_burst_plus_the_rate() -> None:
    bucket = TokenBucket(120, now=0.0)
    limiter = RateLimiter(RateLimits(requests_per_minute=120), now=0.0)
    starts = _starts(limiter, 50)
    for i in range(len(starts)):
        for j in range(i, len(starts)):
            assert j - i + 1 <= bucket.burst + bucket.rate * (starts[j] - starts[i]) + 1e-9


def test_a_full_bucket_lets_the_first_requests_through_at_once() -> None:
    limiter = RateLimiter(RateLimits(requests_per_minute=610), now=100.0)
    starts = _starts(limiter, 12, now=100.0)
    assert starts[:10] == [100.0] * 10  # one second's worth: 610 / 61 = 10 per second
    assert starts[10:] == pytest.approx([100.1, 100.2])


def test_tokens_are_limited_by_estimate_and_settled_with_the_actual_usage() -> None:
    limits = RateLimits(tokens_per_minute=61_000)  # 1000 tokens per second, burst 1000
    limiter = RateLimiter(limits, now=0.0)
    assert limiter.acquire(1000, now=0.0) == 0.0
    assert limiter.acquire(1000, now=0.0) == 1.0  # the bucket is empty: wait for a refill
    # the second request really used 200 tokens: 800 come back, the next waits less
    limiter.settle(estimated_tokens=1000, actual_tokens=200)
    assert limiter.acquire(1000, now=0.0) == pytest.approx(1.2)


def test_a_request_above_the_burst_waits_for_a_full_bucket_and_leaves_a_debt() -> None:
    limiter = RateLimiter(RateLimits(tokens_per_minute=61_000), now=0.0)
    assert limiter.acquire(5000, now=0.0) == 0.0
    # 4000 tokens of debt, then its own 10
    assert limiter.acquire(10, now=0.0) == pytest.approx(4.01)


def test_both_limits_hold_together() -> None:
    limits = RateLimits(requests_per_minute=61, tokens_per_minute=61_000)  # 1 rps, 1000 tps
    limiter = RateLimiter(limits, now=0.0)
    assert _starts(limiter, 3, tokens=500) == [0.0, 1.0, 2.0]  # requests bind
    assert _starts(limiter, 2, tokens=3000, now=2.0) == [3.0, 6.0]  # then tokens bind


def test_the_actor_takes_new_limits_when_a_caller_brings_them() -> None:
    actor = RateLimiterActor()
    slow = RateLimits(requests_per_minute=1)
    assert actor.acquire(slow, 0) == 0.0
    assert actor.acquire(slow, 0) > 30.0
    assert actor.acquire(RateLimits(requests_per_minute=6000), 0) == 0.0
