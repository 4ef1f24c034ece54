"""The supervisor's decisions as pure code: strategies, restart types, intensity, backoff."""

from __future__ import annotations

import random

import pytest

from supervisor.policy import Backoff, RestartIntensity, should_restart, to_restart

ORDER = ["journal", "coordinator", "product-agent-0", "product-agent-1", "marketing-agent-0"]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("one_for_one", ["product-agent-0"]),
        ("one_for_all", ORDER),
        ("rest_for_one", ["product-agent-0", "product-agent-1", "marketing-agent-0"]),
    ],
)
def test_each_strategy_restarts_the_children_otp_says(strategy: str, expected: list[str]) -> None:
    assert to_restart(strategy, ORDER, "product-agent-0") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("restart", "abnormal", "expected"),
    [
        ("permanent", True, True),
        ("permanent", False, True),
        ("transient", True, True),
        ("transient", False, False),
        ("temporary", True, False),
        ("temporary", False, False),
    ],
)
def test_restart_types(restart: str, abnormal: bool, expected: bool) -> None:
    assert should_restart(restart, abnormal) is expected  # type: ignore[arg-type]


def test_intensity_allows_r_restarts_in_t_seconds_then_refuses() -> None:
    intensity = RestartIntensity(max_restarts=3, period_s=10)
    assert [intensity.allow(t) for t in (0, 1, 2)] == [True, True, True]
    assert intensity.allow(3) is False
    # restarts older than the period no longer count
    fresh = RestartIntensity(max_restarts=3, period_s=10)
    assert all(fresh.allow(t) for t in (0, 5, 11, 16, 22, 27))


def test_backoff_is_immediate_first_then_grows_with_jitter_and_resets_when_quiet() -> None:
    backoff = Backoff(base_s=0.1, max_s=1.0, quiet_s=10)
    rng = random.Random(7)
    delays = [backoff.delay("a", t, rng) for t in (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
    assert delays[0] == 0.0
    for n, delay in enumerate(delays[1:]):
        nominal = min(0.1 * 2**n, 1.0)
        assert nominal / 2 <= delay <= nominal
    assert delays[-1] <= 1.0
    assert backoff.delay("b", 0.7, rng) == 0.0  # per child
    assert backoff.delay("a", 20, rng) == 0.0  # quiet for longer than the period: a fresh start


def test_a_child_that_served_a_while_before_dying_is_restarted_at_once() -> None:
    backoff = Backoff(base_s=0.1, max_s=1.0, quiet_s=10, healthy_s=1.0)
    rng = random.Random(3)
    assert [backoff.delay("a", t, rng, uptime_s=2.0) for t in (0, 2, 4, 6)] == [0.0] * 4
    assert backoff.delay("a", 6.1, rng, uptime_s=0.1) > 0  # died right after its restart
