"""Unique ids for events and messages: 128 random bits as 32 hex digits, like `uuid4().hex`.

Ids must be unique, not unpredictable, and every event and message takes one,
so they come from a generator seeded from the OS (and reseeded in a forked
child) rather than from `uuid.uuid4()`, which makes a system call per id.
"""

from __future__ import annotations

import os
import random

_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def new_id() -> str:
    """A fresh 32-hex-digit id."""
    return f"{_random.getrandbits(128):032x}"
