"""What parsing a product feed yields and raises, and the limits it obeys.

Owns `ParsedFeed` (the products and the problems found), `FeedProblem` (one
record-level problem), `FeedError` (a problem with the whole file) and
`FeedLimits`. Promises: every message names where the problem is (row, handle,
field) and quotes at most a shortened copy of the offending value, never a
whole record, so messages are safe to log and to show to a vendor.

Rows are 1-based lines of the file where the record starts (a Shopify CSV's
header is row 1; a JSON lines file's first line is row 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.models import Product

SHORT_VALUE_CHARS = 40


def shorten(value: str, limit: int = SHORT_VALUE_CHARS) -> str:
    """`value` cut to `limit` characters, an ellipsis marking the cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def describe(row: int | None, handle: str, field: str, reason: str) -> str:
    """``row 12 (handle 'blue-tee'), field 'Variant Price': not a number: 'abc'``."""
    place = f"row {row}" if row is not None else ""
    if handle:
        quoted = repr(shorten(handle))
        place = f"{place} (handle {quoted})" if place else f"handle {quoted}"
    if field:
        place = f"{place}, field {field!r}" if place else f"field {field!r}"
    return f"{place}: {reason}" if place else reason


class FeedError(Exception):
    """The feed as a whole cannot be read (encoding, header, empty, too large).

    Record-level problems never raise; they are `FeedProblem`s. Pickles with
    its attributes (it may cross a Ray process boundary).
    """

    def __init__(self, reason: str, row: int | None = None, handle: str = "", field: str = ""):
        super().__init__(reason, row, handle, field)
        self.reason = reason
        self.row = row
        self.handle = handle
        self.field = field

    def __str__(self) -> str:
        return describe(self.row, self.handle, self.field, self.reason)


@dataclass(frozen=True)
class FeedProblem:
    """One record-level problem: the record still parses, or is left out."""

    row: int | None
    handle: str
    field: str
    value: str
    """The offending value, shortened."""
    reason: str

    def __str__(self) -> str:
        return describe(self.row, self.handle, self.field, self.reason)

    def as_feed_error(self) -> str:
        """The problem as a `Product.feed_errors` entry: field first, then reason."""
        where = f" (row {self.row})" if self.row is not None else ""
        return f"{self.field or 'Record'}: {self.reason}{where}"


@dataclass(frozen=True)
class ParsedFeed:
    """The products a feed holds, in feed order, and every problem found in it.

    A product with problems is still here, its `feed_errors` filled, so the
    workflow's validation step fails it with those reasons. Records that could
    not become a product at all (a duplicate handle block, a line that is not
    JSON) appear only in `problems`. `problems` also lists what
    `actors.validation.product_findings` reports, so it is a full feed report.
    """

    products: tuple[Product, ...]
    problems: tuple[FeedProblem, ...]


@dataclass(frozen=True)
class FeedLimits:
    """Bounds that keep a hostile or broken feed from exhausting memory."""

    max_field_chars: int = 20_000
    max_title_chars: int = 255
    max_products: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("max_field_chars", "max_title_chars", "max_products"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeedLimits.{name} must be at least 1")
