"""Retry timing for the HTTP adapters: what a server asks for, and backoff with jitter.

`retry_after_seconds` reads ``Retry-After`` (delta-seconds or an HTTP date);
`retry_after_from_headers` also reads ``retry-after-ms``, which OpenAI and
compatible servers send. `backoff_delay` is exponential backoff with "equal
jitter": attempt n waits between half and all of ``base * 2**(n-1)``, capped,
so waits grow for sure and concurrent callers still spread out;
`after_retry_after` waits what the server asked plus up to one such step.

Pure apart from the clock an HTTP date is compared with; never raises on a
malformed header (it reads as "not given").
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until_http_date(value)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: ``retry-after-ms`` first, then ``Retry-After``."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(value, 0.0)
    return retry_after_seconds(headers.get("retry-after"))


def backoff_delay(
    attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """The wait before retry number `attempt` (1 for the first retry)."""
    step = min(cap_s, base_s * 2.0 ** min(attempt - 1, 60))
    draw: float = (rng or random).random()
    return step / 2 + step / 2 * draw


def after_retry_after(
    seconds: float, attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """The wait before retry `attempt` when the server asked for `seconds`.

    Never sooner than asked; plus a random part of one backoff step, so that
    callers throttled together (told the same `Retry-After`) do not all come
    back in the same instant and get throttled together again.
    """
    step = min(cap_s, base_s * 2.0 ** min(attempt - 1, 60))
    draw: float = (rng or random).random()
    return seconds + step * draw


def _seconds_until_http_date(value: str) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
