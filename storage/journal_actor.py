"""The journal as a named Ray actor that owns the SQLite file (see `storage.journal`)."""

from __future__ import annotations

import os

from storage.journal import Journal
from storage.sqlite import SQLiteEventStore


class JournalActor(Journal):
    """Ray actor body: the journal over the SQLite store at `path`."""

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        super().__init__(SQLiteEventStore(path, synchronous=synchronous))

    def pid(self) -> int:
        return os.getpid()

    async def watch(self) -> None:
        """Never returns while the journal lives: a supervisor's death notification."""
        import asyncio

        await asyncio.Event().wait()
