"""Reading one record's values: text, prices, whole numbers, flags and tags.

Owns the value rules both feed formats share. Promises: a rejected value never
raises out of a `FieldReader`; it becomes a `FeedProblem` on the reader and the
reader returns a stand-in (cleaned text, ``None``) so the record still parses.

Text: surrounding whitespace is stripped; control characters other than tab,
newline and carriage return are a problem (and removed); a value longer than
its limit is a problem (and cut to the limit). HTML fields (`FieldReader.html`:
Shopify's Body (HTML), a JSON line's description) are then sanitized by
`actors.safe_html.sanitize_html`: scripts, iframes, event handlers and
``javascript:`` links are dropped without a problem being raised, allowed
formatting stays.

Prices (`parse_price`), read into `Decimal`, never through float:

- a plain dot decimal: ``12``, ``12.5``, ``1234.50``;
- a leading currency sign (``$ € £ ¥``) only before a plain dot decimal:
  ``$12.00`` is 12.00, ``$1,234.50`` is rejected;
- a decimal comma only when it cannot be anything else: one comma, exactly two
  digits after it, no dot: ``12,00`` is 12.00;
- comma thousands separators only in groups of three *and* with a dot decimal
  part, which makes them unambiguous: ``1,234.50`` is 1234.50, while ``1,234``
  (1.234 or 1234?) and ``1.234,50`` are rejected as ambiguous;
- a leading minus is read, so the validation step reports the price as not
  greater than 0 in its own words; anything else, empty included, is rejected.
"""

from __future__ import annotations

import re
from decimal import Decimal

from actors.safe_html import sanitize_html
from swarm.feed_results import FeedLimits, FeedProblem, shorten

CURRENCY_SIGNS = "$€£¥"
PRODUCT_STATUSES = ("active", "draft", "archived")

_PLAIN = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DECIMAL_COMMA = re.compile(r"[0-9]+,[0-9]{2}")
_GROUPED_WITH_DOT = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+\.[0-9]+")
_SEPARATED_DIGITS = re.compile(r"[0-9.,]+")
_WHOLE = re.compile(r"[+-]?[0-9]{1,18}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def parse_price(text: str) -> Decimal:
    """The price `text` states; ValueError with the reason when it states none."""
    value = text.strip()
    if not value:
        raise ValueError("missing")
    sign, body = ("-", value[1:]) if value.startswith("-") else ("", value)
    if body.startswith(tuple(CURRENCY_SIGNS)):
        if not _PLAIN.fullmatch(body[1:]):
            raise ValueError(
                f"a currency sign is accepted only before a plain number like 12.50: {_q(value)}"
            )
        return Decimal(sign + body[1:])
    if _PLAIN.fullmatch(body):
        return Decimal(sign + body)
    if _DECIMAL_COMMA.fullmatch(body):
        return Decimal(sign + body.replace(",", "."))
    if _GROUPED_WITH_DOT.fullmatch(body):
        return Decimal(sign + body.replace(",", ""))
    if "," in body and _SEPARATED_DIGITS.fullmatch(body):
        raise ValueError(f"ambiguous decimal separator, write it like 1234.50: {_q(value)}")
    raise ValueError(f"not a number: {_q(value)}")


class FieldReader:
    """Reads the values of one record, recording a problem for each it rejects."""

    def __init__(self, row: int, handle: str, limits: FeedLimits) -> None:
        self.row = row
        self.handle = handle
        self.limits = limits
        self.problems: list[FeedProblem] = []

    def reject(self, field: str, value: str, reason: str) -> None:
        self.problems.append(FeedProblem(self.row, self.handle, field, shorten(value), reason))

    def text(self, field: str, raw: str, *, max_chars: int | None = None) -> str:
        """`raw` stripped, without control characters, within its length limit."""
        value = raw.strip()
        control = _CONTROL.search(value)
        if control is not None:
            reason = f"contains control character U+{ord(control.group()):04X}"
            self.reject(field, value, reason)
            value = _CONTROL.sub("", value)
        limit = max_chars or self.limits.max_field_chars
        if len(value) > limit:
            self.reject(field, value, f"longer than {limit} characters ({len(value)})")
            value = value[:limit]
        return value

    def html(self, field: str, raw: str) -> str:
        """`raw` read as `text`, then sanitized: only the allowed formatting is left."""
        return sanitize_html(self.text(field, raw))

    def price(self, field: str, raw: str, *, required: bool) -> Decimal | None:
        """The price in `raw`; None when it is empty (a problem if `required`) or bad."""
        value = raw.strip()
        if not value:
            if required:
                self.reject(field, value, "missing")
            return None
        try:
            return parse_price(value)
        except ValueError as e:
            self.reject(field, value, str(e))
            return None

    def whole_number(self, field: str, raw: str) -> int | None:
        """The integer in `raw`; None when it is empty or not a whole number."""
        value = raw.strip()
        if not value:
            return None
        if _WHOLE.fullmatch(value) is None:
            self.reject(field, value, f"not a whole number: {_q(value)}")
            return None
        return int(value)

    def flag(self, field: str, raw: str, *, default: bool) -> bool:
        """TRUE or FALSE in any case; `default` when empty or unreadable."""
        value = raw.strip().lower()
        if value in ("true", "false"):
            return value == "true"
        if value:
            self.reject(field, value, f"must be TRUE or FALSE: {_q(value)}")
        return default

    def status(self, field: str, raw: str) -> str:
        """active, draft or archived (empty: active); a bad value reads as draft."""
        status = self.text(field, raw).lower()
        if not status:
            return "active"
        if status not in PRODUCT_STATUSES:
            self.reject(field, status, f"must be active, draft or archived: {_q(status)}")
            return "draft"
        return status

    def tags(self, field: str, raw: str) -> tuple[str, ...]:
        """Comma-separated tags, stripped, empty ones and repeats dropped."""
        tags = (tag.strip() for tag in self.text(field, raw).split(","))
        return tuple(dict.fromkeys(tag for tag in tags if tag))


def _q(value: str) -> str:
    return repr(shorten(value))
