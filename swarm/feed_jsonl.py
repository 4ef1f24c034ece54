"""Product feeds as JSON lines: one product object per line.

Owns the record shape. A line holds at least a title, a price (or variants)
and a handle or SKU; in full:

- ``handle``, ``sku``, ``title``, ``description``, ``vendor``,
  ``product_type``: strings; ``tags``: a list of strings; ``price``;
- optional ``compare_at_price``, ``barcode``, ``inventory_qty``, ``images``
  (a list of URLs), ``product_category``, ``status``, ``published`` (a
  boolean), ``seo_title``, ``seo_description``;
- optional ``variants``: a list of objects with ``sku``, ``price``,
  ``compare_at_price``, ``barcode``, ``inventory_qty`` and ``options``
  (``{name: value}``). When it is missing or empty, one variant is built from
  the top-level sku, price, compare_at_price, barcode and inventory_qty.

The product id is the handle, else the SKU. Prices are JSON numbers or strings
read by `swarm.feed_values.parse_price`; SKUs and barcodes must be strings (a
number would lose a barcode's leading zeros). Unknown keys are ignored. The
description is HTML and is sanitized like a Shopify Body (HTML).

Promises: a line that is not JSON, or not a JSON object, is a problem naming
its line and the other lines still parse; blank lines are skipped. Only
file-level problems raise `FeedError`: not UTF-8, no lines at all, too many
products.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TypeAlias

from actors.models import Product, Variant
from actors.safe_html import sanitize_html
from swarm.feed_assembly import FeedAssembler, ProductRecord
from swarm.feed_results import FeedError, FeedLimits, FeedProblem, ParsedFeed, shorten
from swarm.feed_source import FeedSource, iter_text_lines
from swarm.feed_values import FieldReader

_JsonObject: TypeAlias = dict[str, object]
_MAX_WHOLE = 10**18
_CODES = ("sku", "barcode")
_QUOTE_CODES = "a string in quotes (as a number it loses leading zeros)"


def parse_jsonl(source: FeedSource, *, limits: FeedLimits | None = None) -> ParsedFeed:
    """Parse a JSON lines product feed given as text, bytes or an open stream."""
    limits = limits or FeedLimits()
    assembler = FeedAssembler(limits, repeat_hint="give each product one line")
    saw_line = False
    for row, line in enumerate(iter_text_lines(source), start=1):
        if not line.strip():
            continue
        saw_line = True
        decoded = _decode_line(row, line)
        if isinstance(decoded, FeedProblem):
            assembler.add_problems([decoded])
        else:
            assembler.add_product(_read_product(row, decoded, limits))
    if not saw_line:
        raise FeedError("empty file: no JSON lines")
    return assembler.result()


def _decode_line(row: int, line: str) -> _JsonObject | FeedProblem:
    """The line's object, or the problem that keeps it from being one."""
    value = shorten(line.strip())
    try:
        decoded = json.loads(line)
    except json.JSONDecodeError as e:
        return FeedProblem(row, "", "", value, f"not valid JSON: {e.msg} (column {e.colno})")
    except (ValueError, RecursionError):
        # json refuses integers past sys.get_int_max_str_digits() with a plain
        # ValueError and gives up on deep nesting with RecursionError.
        reason = "not valid JSON: a number too long or nesting too deep"
        return FeedProblem(row, "", "", value, reason)
    if not isinstance(decoded, dict):
        return FeedProblem(row, "", "", value, f"not a JSON object but {_json_type(decoded)}")
    return decoded


def _read_product(row: int, record: _JsonObject, limits: FeedLimits) -> ProductRecord:
    reader = FieldReader(row, _peek_product_id(record), limits)
    fields = _JsonFields(record, "", reader)
    variants = _read_variants(record, reader)
    product = Product(
        handle=fields.string("handle"),
        title=fields.string("title", max_chars=limits.max_title_chars),
        description=fields.html("description"),
        vendor=fields.string("vendor"),
        product_category=fields.string("product_category"),
        product_type=fields.string("product_type"),
        tags=tuple(dict.fromkeys(tag for tag in fields.strings("tags") if tag)),
        published=fields.flag("published", default=True),
        status=reader.status("status", fields.string("status")),
        option_names=tuple(dict.fromkeys(name for v in variants for name in v.options)),
        variants=tuple(variants),
        images=tuple(dict.fromkeys(url for url in fields.strings("images") if url)),
        seo_title=fields.string("seo_title"),
        seo_description=fields.string("seo_description"),
        source_row=row,
    )
    return ProductRecord(product, row, (row,) * len(variants), problems=reader.problems)


def _peek_product_id(record: _JsonObject) -> str:
    """The product id to name in problems, before the fields are checked."""
    for key in ("handle", "sku"):
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _read_variants(record: _JsonObject, reader: FieldReader) -> list[Variant]:
    listed = record.get("variants")
    if listed is None or listed == []:
        single = _read_variant(_JsonFields(record, "", reader), with_options=False)
        return [single] if single is not None else []
    if not isinstance(listed, list):
        reader.reject("variants", _show(listed), f"must be a list, not {_json_type(listed)}")
        return []
    variants = []
    for index, item in enumerate(listed):
        prefix = f"variants[{index}]."
        if not isinstance(item, dict):
            reason = f"must be an object, not {_json_type(item)}"
            reader.reject(prefix.rstrip("."), _show(item), reason)
            continue
        variant = _read_variant(_JsonFields(item, prefix, reader), with_options=True)
        if variant is not None:
            variants.append(variant)
    return variants


def _read_variant(fields: _JsonFields, *, with_options: bool) -> Variant | None:
    """The variant the fields describe; None without a usable price."""
    price = fields.price("price", required=True)
    compare_at = fields.price("compare_at_price", required=False)
    inventory_qty = fields.whole_number("inventory_qty")
    sku = fields.string("sku")
    barcode = fields.string("barcode")
    options = fields.options("options") if with_options else {}
    if price is None:
        return None
    return Variant(
        sku=sku,
        price=price,
        compare_at_price=compare_at,
        inventory_qty=inventory_qty,
        barcode=barcode,
        options=options,
    )


class _JsonFields:
    """Typed reads of one JSON object's keys; problems go to the record's reader."""

    def __init__(self, record: _JsonObject, prefix: str, reader: FieldReader) -> None:
        self._record = record
        self._prefix = prefix
        self._reader = reader

    def string(self, key: str, *, max_chars: int | None = None) -> str:
        value = self._record.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            quote_it = key in _CODES and isinstance(value, int | float)
            self._wrong_type(key, value, _QUOTE_CODES if quote_it else "a string")
            return ""
        return self._reader.text(self._prefix + key, value, max_chars=max_chars)

    def html(self, key: str) -> str:
        """A string of HTML, sanitized (see `FieldReader.html`)."""
        return sanitize_html(self.string(key))

    def strings(self, key: str) -> list[str]:
        value = self._record.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self._wrong_type(key, value, "a list of strings")
            return []
        field = self._prefix + key
        return [self._reader.text(f"{field}[{i}]", item) for i, item in enumerate(value)]

    def price(self, key: str, *, required: bool) -> Decimal | None:
        value = self._record.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int | float | None):
            self._wrong_type(key, value, "a number or a string")
            return None
        text = "" if value is None else value if isinstance(value, str) else repr(value)
        return self._reader.price(self._prefix + key, text, required=required)

    def whole_number(self, key: str) -> int | None:
        value = self._record.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return self._reader.whole_number(self._prefix + key, value)
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= _MAX_WHOLE:
            self._wrong_type(key, value, "a whole number")
            return None
        return value

    def flag(self, key: str, *, default: bool) -> bool:
        value = self._record.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self._wrong_type(key, value, "true or false")
            return default
        return value

    def options(self, key: str) -> dict[str, str]:
        value = self._record.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self._wrong_type(key, value, "an object of option name to string value")
            return {}
        field = self._prefix + key
        options = {
            self._reader.text(field, name): self._reader.text(f"{field}.{shorten(name)}", option)
            for name, option in value.items()
        }
        return {name: option for name, option in options.items() if name and option}

    def _wrong_type(self, key: str, value: object, expected: str) -> None:
        reason = f"must be {expected}, not {_json_type(value)}"
        self._reader.reject(self._prefix + key, _show(value), reason)


def _json_type(value: object) -> str:
    names: tuple[tuple[type, str], ...] = (
        (bool, "a boolean"),
        (int, "a number"),
        (float, "a number"),
        (str, "a string"),
        (list, "a list"),
        (dict, "an object"),
    )
    if value is None:
        return "null"
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def _show(value: object) -> str:
    return shorten(json.dumps(value, ensure_ascii=False))
