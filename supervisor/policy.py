"""The supervisor's decisions, as pure code: whom to restart, when to give up, how long to wait.

Strategies have Erlang/OTP's meaning. When a child dies:

- `one_for_one`: only that child is restarted;
- `one_for_all`: every other child is stopped too, then all are restarted in start order;
- `rest_for_one`: the children started after it are stopped, then it and they are
  restarted in start order.

Restart types, also OTP's: a `permanent` child is always restarted, a
`transient` one only after an abnormal exit, a `temporary` one never.

Restart intensity: more than `max_restarts` restarts within `period_s`
seconds means restarting does not help; the supervisor escalates instead.
Between repeated restarts of one child it waits with exponential backoff and
jitter; the first restart after a quiet spell is immediate.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from typing import Literal

from actors.models import FrozenModel

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]


class SupervisionPolicy(FrozenModel):
    strategy: Strategy = "one_for_one"
    max_restarts: int = 20
    """Restart intensity: at most this many restarts ..."""
    period_s: float = 10.0
    """... within this many seconds, else escalate."""
    backoff_base_s: float = 0.01
    backoff_max_s: float = 0.5
    warm_standby: bool = True
    """Keep an idle process per role ready to take it over (restart in milliseconds)."""
    poison_attempts: int = 3
    """A workflow that kills its agent this many times in isolation is quarantined."""


def should_restart(restart: RestartType, abnormal: bool) -> bool:
    if restart == "permanent":
        return True
    if restart == "transient":
        return abnormal
    return False


def to_restart(strategy: Strategy, order: Sequence[str], failed: str) -> list[str]:
    """The children to (stop and) restart when `failed` dies, in start order."""
    if strategy == "one_for_one":
        return [failed]
    if strategy == "one_for_all":
        return list(order)
    return list(order[order.index(failed) :])


class RestartIntensity:
    """A sliding window of restart times: `allow()` is False once the limit is passed."""

    def __init__(self, max_restarts: int, period_s: float) -> None:
        self.max_restarts = max_restarts
        self.period_s = period_s
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Count a restart at `now`; False if it makes more than the limit within the period."""
        self._times.append(now)
        while self._times and self._times[0] <= now - self.period_s:
            self._times.popleft()
        return len(self._times) <= self.max_restarts

    @property
    def recent(self) -> int:
        return len(self._times)


class Backoff:
    """Per-child delay before a restart: 0 for the first, then base * 2^(n-1) with jitter.

    Only a crash loop backs off: a child that died soon (`healthy_s`) after its last
    restart, within `quiet_s` of it. One that served for a while before it died
    is restarted at once, however often that happens.
    """

    def __init__(self, base_s: float, max_s: float, quiet_s: float, healthy_s: float = 1.0) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.quiet_s = quiet_s
        self.healthy_s = healthy_s
        self._streak: dict[str, tuple[int, float]] = {}

    def delay(
        self,
        child: str,
        now: float,
        rng: random.Random | None = None,
        uptime_s: float = 0.0,
    ) -> float:
        streak, last = self._streak.get(child, (0, float("-inf")))
        looping = now - last < self.quiet_s and uptime_s < self.healthy_s
        streak = streak + 1 if looping else 1
        self._streak[child] = (streak, now)
        if streak == 1:
            return 0.0
        capped = min(self.base_s * 2 ** (streak - 2), self.max_s)
        jitter: float = (rng or random).random()
        return float(capped * (0.5 + jitter / 2))
