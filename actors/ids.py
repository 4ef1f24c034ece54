"""Unique ids for events and messages: 32 hex digits, time first (a UUIDv7's layout).

The first 13 digits are microseconds since the epoch, the other 19 are 76 random
bits. Ids must be unique, not unpredictable. Time first makes ids sort by when
they were made, so a B-tree keyed on them (the messages table's primary key)
grows at its right edge: a commit dirties a page or two there instead of one
random page per message. With random ids the journal wrote 78 KB per product on
a fresh database; with these, 65 KB (and the gap grows with the table).

Ids come from a generator seeded from the OS (and reseeded in a forked child)
rather than from `uuid`, which makes a system call per id.
"""

from __future__ import annotations

import os
import random
import time

_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def new_id() -> str:
    """A fresh 32-hex-digit id: 13 digits of time in microseconds, then 19 random ones."""
    return f"{time.time_ns() // 1000:013x}{_random.getrandbits(76):019x}"
