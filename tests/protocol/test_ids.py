"""Event and message ids: unique, 32 hex digits, and in the order they were made (so the
journal's indexes on them grow at one end)."""

from __future__ import annotations

import re
import time

from actors.ids import new_id


def test_ids_are_unique_hex_and_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    # made one after another: the time part never goes back (ties break at random)
    times = [i[:13] for i in ids]
    assert times == sorted(times)


def test_the_time_part_is_the_clock_in_microseconds() -> None:
    before = time.time_ns() // 1000
    made = int(new_id()[:13], 16)
    after = time.time_ns() // 1000
    assert before <= made <= after
