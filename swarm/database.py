"""The swarm's database, opened from the command line to read it.

SQLite in WAL mode lets these reads run beside a live journal actor that is
writing. Reading never creates a database: a missing file is a clear error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from storage.sqlite import SQLiteEventStore

T = TypeVar("T")


class NoDatabaseError(Exception):
    """There is no swarm database at the configured path."""


def check_database(path: Path) -> None:
    if not path.is_file():
        raise NoDatabaseError(
            f"no swarm database at {path}: run `python -m swarm run` first, "
            "or point SWARM_DB_PATH at the database"
        )


@asynccontextmanager
async def open_database(path: Path) -> AsyncIterator[SQLiteEventStore]:
    """The store at `path`, which must exist (see `check_database`)."""
    store = SQLiteEventStore(path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def read_database(path: Path, call: Callable[[SQLiteEventStore], Awaitable[T]]) -> T:
    """`call(store)` on the database at `path`, from synchronous code."""

    async def run() -> T:
        async with open_database(path) as store:
            return await call(store)

    check_database(path)
    return asyncio.run(run())
