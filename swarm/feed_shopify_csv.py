"""Shopify product CSV, exactly as Shopify exports it.

Owns the column names (Shopify's own, plus the newer export's names through
`COLUMN_ALIASES`) and the row layout. Promises: a readable file yields a
`ParsedFeed` whatever its records hold; only a file-level problem raises
`FeedError` (not UTF-8, empty, not CSV, a required column missing or given
twice, too many products).

Layout: consecutive rows with the same Handle are one product. The block's
first row is the product row (Title, Body (HTML), Vendor, Type, Tags,
Option1..3 Name, ...) and usually also its first variant. Each later row adds a
variant when it has any variant value (Variant SKU, Variant Price, an option
value, ...) and an image when it has an Image Src, so a row with only image
columns is an image row. Other details:

- Header names match ignoring case and runs of spaces; unknown columns are
  ignored. Required: Handle, Title and Variant Price.
- Shopify's placeholder option for single-variant products (Option1 Name
  "Title", value "Default Title") means the product has no options.
- A block whose first row has no product column filled has no product row;
  its rows are reported and left out (as is a block repeating an earlier
  handle, see `swarm.feed_assembly`), and so is a row without a Handle.
- Record positions are the line a record starts on (a quoted Body (HTML) may
  span lines); blank rows are skipped.
- Images are ordered by Image Position, then row; a Variant Image is added to
  the product's images.
- Published is TRUE or FALSE (empty: TRUE); Status is active, draft or
  archived (empty: active).
- Body (HTML) is sanitized (`actors.safe_html`): what a product holds is safe
  to publish.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from actors.models import Product, Variant
from swarm.feed_assembly import FeedAssembler, ProductRecord
from swarm.feed_results import FeedError, FeedLimits, FeedProblem, ParsedFeed, shorten
from swarm.feed_source import FeedSource, iter_text_lines
from swarm.feed_values import FieldReader

REQUIRED_COLUMNS = ("Handle", "Title", "Variant Price")

SHOPIFY_COLUMNS = (
    *("Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags"),
    *("Published", "Option1 Name", "Option1 Value", "Option2 Name", "Option2 Value"),
    *("Option3 Name", "Option3 Value", "Variant SKU", "Variant Grams"),
    *("Variant Inventory Tracker", "Variant Inventory Qty", "Variant Inventory Policy"),
    *("Variant Fulfillment Service", "Variant Price", "Variant Compare At Price"),
    *("Variant Requires Shipping", "Variant Taxable", "Variant Barcode", "Image Src"),
    *("Image Position", "Image Alt Text", "Gift Card", "SEO Title", "SEO Description"),
    *("Variant Image", "Variant Weight Unit", "Cost per item", "Status"),
)
"""The columns of Shopify's classic product export, in its order."""

COLUMN_ALIASES: Mapping[str, str] = {
    "URL handle": "Handle",
    "Description": "Body (HTML)",
    "Category": "Product Category",
    "Published on online store": "Published",
    "SKU": "Variant SKU",
    "Barcode": "Variant Barcode",
    "Price": "Variant Price",
    "Compare-at price": "Variant Compare At Price",
    "Inventory quantity": "Variant Inventory Qty",
    "Inventory tracker": "Variant Inventory Tracker",
    "Continue selling when out of stock": "Variant Inventory Policy",
    "Weight value (grams)": "Variant Grams",
    "Weight unit for display": "Variant Weight Unit",
    "Requires shipping": "Variant Requires Shipping",
    "Fulfillment service": "Variant Fulfillment Service",
    "Charge tax": "Variant Taxable",
    "Product image URL": "Image Src",
    "Variant image URL": "Variant Image",
}
"""Newer (localized) export header names -> the classic column they stand for.

Names differing only in case ("Option1 name", "SEO title", "Image position")
need no alias.
"""

_PRODUCT_COLUMNS = ("Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags")
_VARIANT_COLUMNS = (
    *("Variant SKU", "Variant Price", "Variant Compare At Price", "Variant Barcode"),
    *("Variant Inventory Qty", "Option1 Value", "Option2 Value", "Option3 Value"),
)
_OPTION_SLOTS = (1, 2, 3)
_PLACEHOLDER_OPTION = ("Title", "Default Title")
_LAST = 1 << 62
"""Sort position of an image without an Image Position: after the numbered ones."""


def _header_key(name: str) -> str:
    return " ".join(name.split()).lower()


_COLUMN_BY_KEY = {_header_key(name): name for name in SHOPIFY_COLUMNS} | {
    _header_key(alias): name for alias, name in COLUMN_ALIASES.items()
}


@dataclass(frozen=True)
class _Row:
    line: int
    cells: Sequence[str]
    columns: Mapping[str, int]

    def get(self, column: str) -> str:
        index = self.columns.get(column)
        return self.cells[index] if index is not None and index < len(self.cells) else ""

    def has_any(self, columns: Sequence[str]) -> bool:
        return any(self.get(column).strip() for column in columns)


@dataclass
class _Block:
    handle: str
    rows: list[_Row] = field(default_factory=list)


def parse_shopify_csv(source: FeedSource, *, limits: FeedLimits | None = None) -> ParsedFeed:
    """Parse a Shopify product CSV given as text, bytes or an open stream."""
    limits = limits or FeedLimits()
    assembler = FeedAssembler(limits, repeat_hint="keep all rows of a product together")
    block: _Block | None = None
    for row in _read_rows(source):
        handle = row.get("Handle").strip()
        if not handle:
            problem = FeedProblem(row.line, "", "Handle", "", "missing; the row is left out")
            assembler.add_problems([problem])
        elif block is not None and handle == block.handle:
            block.rows.append(row)
        else:
            if block is not None:
                _finish_block(block, assembler, limits)
            block = _Block(handle, [row])
    if block is not None:
        _finish_block(block, assembler, limits)
    return assembler.result()


def _read_rows(source: FeedSource) -> Iterator[_Row]:
    """The non-blank records after the header, each with the line it starts on."""
    reader = csv.reader(iter_text_lines(source))
    try:
        columns = _columns(_header(reader), reader.line_num)
        line = reader.line_num
        for cells in reader:
            row = _Row(line + 1, cells, columns)
            line = reader.line_num
            if any(cell.strip() for cell in cells):
                yield row
    except csv.Error as e:
        raise FeedError(f"not readable as CSV: {e}", row=reader.line_num) from e


def _header(reader: Iterator[list[str]]) -> list[str]:
    for cells in reader:
        if any(cell.strip() for cell in cells):
            return cells
    raise FeedError("empty file: no header row")


def _columns(header: list[str], line: int) -> dict[str, int]:
    """Canonical column name -> index, checking required and repeated columns."""
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = _COLUMN_BY_KEY.get(_header_key(cell))
        if name is None:
            continue
        if name in columns:
            given = f"{shorten(header[columns[name]])!r} and {shorten(cell)!r}"
            raise FeedError(f"column given twice, as {given}", row=line, field=name)
        columns[name] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        reason = "missing required column" + ("s" if len(missing) > 1 else "")
        if len(header) == 1 and ";" in header[0]:
            reason += "; the header looks semicolon-separated, Shopify CSV uses commas"
        raise FeedError(reason, row=line, field=", ".join(missing))
    return columns


def _finish_block(block: _Block, assembler: FeedAssembler, limits: FeedLimits) -> None:
    lines = [row.line for row in block.rows]
    if not block.rows[0].has_any(_PRODUCT_COLUMNS):
        reason = "no product row: the handle's first row has no Title, Vendor, Type or Body (HTML)"
        assembler.add_rows_without_product(block.handle, lines, reason)
        return
    assembler.add_product(_read_product(block, limits))


def _read_product(block: _Block, limits: FeedLimits) -> ProductRecord:
    first = block.rows[0]
    reader = FieldReader(first.line, block.handle, limits)
    option_slots = {
        slot: name
        for slot in _OPTION_SLOTS
        if (name := reader.text(f"Option{slot} Name", first.get(f"Option{slot} Name")))
    }
    readers = [reader, *(FieldReader(row.line, block.handle, limits) for row in block.rows[1:])]
    variants: list[Variant] = []
    variant_rows: list[int] = []
    images: list[tuple[int, int, str]] = []
    for row, row_reader in zip(block.rows, readers, strict=True):
        variant = _read_variant(row, row_reader, option_slots)
        if variant is not None:
            variants.append(variant)
            variant_rows.append(row.line)
        images.extend(_read_images(row, row_reader, len(images)))
    product = Product(
        handle=reader.text("Handle", block.handle),
        title=reader.text("Title", first.get("Title"), max_chars=limits.max_title_chars),
        description=reader.html("Body (HTML)", first.get("Body (HTML)")),
        vendor=reader.text("Vendor", first.get("Vendor")),
        product_category=reader.text("Product Category", first.get("Product Category")),
        product_type=reader.text("Type", first.get("Type")),
        tags=reader.tags("Tags", first.get("Tags")),
        published=reader.flag("Published", first.get("Published"), default=True),
        status=reader.status("Status", first.get("Status")),
        option_names=_option_names(option_slots, variants),
        variants=tuple(variants),
        images=tuple(dict.fromkeys(url for _, _, url in sorted(images))),
        seo_title=reader.text("SEO Title", first.get("SEO Title")),
        seo_description=reader.text("SEO Description", first.get("SEO Description")),
        source_row=first.line,
    )
    problems = [problem for row_reader in readers for problem in row_reader.problems]
    return ProductRecord(product, first.line, tuple(variant_rows), len(block.rows), problems)


def _read_variant(row: _Row, reader: FieldReader, option_slots: dict[int, str]) -> Variant | None:
    """The row's variant; None for a row without variant values or without a price."""
    if not row.has_any(_VARIANT_COLUMNS):
        return None
    price = reader.price("Variant Price", row.get("Variant Price"), required=True)
    compare_at = reader.price(
        "Variant Compare At Price", row.get("Variant Compare At Price"), required=False
    )
    inventory_qty = reader.whole_number("Variant Inventory Qty", row.get("Variant Inventory Qty"))
    sku = reader.text("Variant SKU", row.get("Variant SKU"))
    barcode = reader.text("Variant Barcode", row.get("Variant Barcode"))
    options = _read_options(row, reader, option_slots)
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


def _read_options(row: _Row, reader: FieldReader, option_slots: dict[int, str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for slot in _OPTION_SLOTS:
        column = f"Option{slot} Value"
        value = reader.text(column, row.get(column))
        name = option_slots.get(slot)
        if not value or (name, value) == _PLACEHOLDER_OPTION:
            continue
        if name is None:
            reason = f"{shorten(value)!r} given, but the product row has no Option{slot} Name"
            reader.reject(column, value, reason)
            continue
        options[name] = value
    return options


def _option_names(option_slots: dict[int, str], variants: list[Variant]) -> tuple[str, ...]:
    """The product's option names, without Shopify's "Title" placeholder."""
    names = option_slots.values()
    return tuple(
        name
        for name in names
        if name != _PLACEHOLDER_OPTION[0] or any(name in v.options for v in variants)
    )


def _read_images(row: _Row, reader: FieldReader, seen: int) -> list[tuple[int, int, str]]:
    """(position, order, url) for the row's Image Src and Variant Image."""
    images = []
    source = reader.text("Image Src", row.get("Image Src"))
    if source:
        position = reader.whole_number("Image Position", row.get("Image Position"))
        images.append((position if position is not None else _LAST, seen, source))
    variant_image = reader.text("Variant Image", row.get("Variant Image"))
    if variant_image:
        images.append((_LAST, seen + len(images), variant_image))
    return images
