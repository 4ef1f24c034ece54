"""The feed validation report: what `python -m swarm validate FILE` shows and writes.

Owns the report's two forms: a rich table (row, handle, field, value,
reason) and a JSON document with the same rows. The checks themselves are
the feed parsers' and step 1's (`swarm.feeds`, `actors.validation`), so a
report lists exactly the reasons a `run` of the same feed fails products
with: a product with a problem ends `failed` with it, rows that make no
product are left out, the rest go on.

Promises: a feed that cannot be read at all (not UTF-8, a required column
missing, ...) gives a report with `error` set and no problems, never an
exception; values are quoted shortened, never whole records.

JSON shape::

    {"feed": "catalog.csv", "products": 60, "valid_products": 55,
     "error": null,
     "problems": [{"row": 12, "handle": "blue-tee", "field": "Variant Price",
                   "value": "abc", "reason": "not a number: 'abc'"}]}
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text

from actors.validation import validate_product_data
from swarm.feed_results import FeedError, FeedLimits, FeedProblem
from swarm.feeds import parse_feed

REPORT_SUFFIX = ".validation.json"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class FeedReport:
    """Every problem found in one feed, or the reason it could not be read."""

    feed: Path
    products: int
    valid_products: int
    problems: tuple[FeedProblem, ...]
    error: FeedError | None = None

    @property
    def clean(self) -> bool:
        """True when the feed was read and has no problem at all."""
        return self.error is None and not self.problems

    def as_json(self) -> str:
        error = self.error
        document = {
            "feed": str(self.feed),
            "products": self.products,
            "valid_products": self.valid_products,
            "error": None
            if error is None
            else {"row": error.row, "field": error.field, "reason": error.reason},
            "problems": [
                {
                    "row": p.row,
                    "handle": p.handle,
                    "field": p.field,
                    "value": p.value,
                    "reason": p.reason,
                }
                for p in self.problems
            ],
        }
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def validate_feed(path: Path, limits: FeedLimits | None = None) -> FeedReport:
    """Read the feed at `path` with every check a run applies; never raises `FeedError`."""
    try:
        feed = parse_feed(path, limits=limits)
    except FeedError as e:
        return FeedReport(feed=path, products=0, valid_products=0, problems=(), error=e)
    valid = sum(1 for product in feed.products if not validate_product_data(product))
    return FeedReport(
        feed=path, products=len(feed.products), valid_products=valid, problems=feed.problems
    )


def default_report_path(feed: Path, directory: Path) -> Path:
    """Where the JSON report goes unless told: ``<feed name>.validation.json`` in `directory`."""
    return directory / f"{feed.stem}{REPORT_SUFFIX}"


def write_report(report: FeedReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.as_json(), encoding="utf-8")


def problems_table(
    problems: Sequence[FeedProblem], *, title: str, limit: int | None = None
) -> Table:
    """The problems as a table; with `limit`, the first ones and a line saying how many more."""
    table = Table(title=title, show_lines=False)
    table.add_column("row", justify="right")
    for column in ("handle", "field", "value", "reason"):
        table.add_column(column, overflow="fold")
    shown = problems if limit is None else problems[:limit]
    for p in shown:
        cells = ("" if p.row is None else str(p.row), p.handle, p.field, p.value, p.reason)
        table.add_row(*(terminal_text(cell) for cell in cells))
    hidden = len(problems) - len(shown)
    if hidden:
        table.caption = f"… and {hidden} more"
    return table


def terminal_text(value: str) -> Text:
    """`value` as literal text for a terminal: no rich markup, control characters shown
    as ``\\xNN`` (an escape sequence in a vendor's feed must not drive the terminal)."""
    return Text(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value))
