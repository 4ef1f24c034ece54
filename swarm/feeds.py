"""Product feeds: the one entry point the rest of the swarm uses.

Owns the choice of parser by file suffix: ``.csv`` is a Shopify product CSV
(`swarm.feed_shopify_csv`); ``.jsonl``, ``.ndjson`` and ``.json`` are JSON
lines (`swarm.feed_jsonl`). Promises what both parsers promise: a readable
feed yields a `ParsedFeed` (products with their `feed_errors`, and every
problem found); a feed that cannot be read at all raises `FeedError`, an
unreadable path included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from swarm.feed_jsonl import parse_jsonl
from swarm.feed_results import FeedError, FeedLimits, FeedProblem, ParsedFeed
from swarm.feed_shopify_csv import COLUMN_ALIASES, REQUIRED_COLUMNS, parse_shopify_csv
from swarm.feed_source import FeedSource
from swarm.feed_values import parse_price

__all__ = [
    "COLUMN_ALIASES",
    "REQUIRED_COLUMNS",
    "FeedError",
    "FeedLimits",
    "FeedProblem",
    "FeedSource",
    "ParsedFeed",
    "parse_feed",
    "parse_jsonl",
    "parse_price",
    "parse_shopify_csv",
]

_Parser = Callable[..., ParsedFeed]
_PARSERS: dict[str, _Parser] = {
    ".csv": parse_shopify_csv,
    ".jsonl": parse_jsonl,
    ".ndjson": parse_jsonl,
    ".json": parse_jsonl,
}


def parse_feed(path: Path, *, limits: FeedLimits | None = None) -> ParsedFeed:
    """Parse the feed at `path`, choosing the format by its suffix."""
    parser = _PARSERS.get(path.suffix.lower())
    if parser is None:
        known = ", ".join(_PARSERS)
        raise FeedError(f"unknown feed type {path.suffix!r} of {path.name!r}; expected {known}")
    try:
        stream: IO[bytes] = path.open("rb")
    except OSError as e:
        raise FeedError(f"cannot read {path.name!r}: {e.strerror or e}") from e
    with stream:
        return parser(stream, limits=limits)
