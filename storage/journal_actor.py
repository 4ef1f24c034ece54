"""The journal as a named Ray actor that owns the SQLite file (see `storage.journal`).

Started with no path it is a warm standby: `take_over(path)` opens the file
and starts committing, in milliseconds, when the previous journal died.
"""

from __future__ import annotations

import asyncio
import os

from storage.journal import Journal
from storage.process_gc import tune_gc
from storage.process_memory import tune_malloc
from storage.sqlite import SQLiteEventStore

ROLE = "journal"


class JournalActor(Journal):
    """Ray actor body: the journal over the SQLite store at `path`."""

    def __init__(self, path: str | None = None, synchronous: str = "FULL") -> None:
        tune_malloc()
        self.path = path
        # a standby holds an unopened store: every call says "not started" until take_over
        super().__init__(SQLiteEventStore(path or ":memory:", synchronous=synchronous))
        tune_gc()

    async def take_over(self, path: str, synchronous: str = "FULL") -> None:
        if self.path is not None:
            raise RuntimeError(f"already serving {self.path}")
        self.path = path
        super().__init__(SQLiteEventStore(path, synchronous=synchronous))
        await self.start()

    def serving(self) -> str | None:
        return None if self.path is None else ROLE

    def pid(self) -> int:
        return os.getpid()

    def ready(self) -> int:
        """A standby's answer once its process is up: its pid."""
        return os.getpid()

    async def watch(self) -> None:
        """Never returns while the journal lives: a supervisor's death notification."""
        await asyncio.Event().wait()
