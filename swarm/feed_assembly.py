"""Putting parsed records together into a `ParsedFeed`: the rules across records.

Owns what no single record can decide, the same way for every feed format:

- **The same product id twice** (a Shopify handle in two separate blocks of
  rows, or two JSON lines with one handle): which rows make up the product is
  ambiguous, so the first product stays in the feed but carries a feed error
  naming the row where the id is used again, and the later block is left out
  and reported as a problem. Product ids in a `ParsedFeed` are unique.
- **The same SKU in two products**: the later product carries the feed error.
- **The product count limit** (`FeedLimits.max_products`): past it the whole
  feed is refused with a `FeedError`.
- **A complete report**: the validation step's model checks
  (`actors.validation.product_findings`) are run here too and listed among the
  problems, at the row of the variant they are about.

Promises: products keep feed order; a record's problems become its product's
`feed_errors`; problems come out ordered by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from actors.models import Product
from actors.validation import Finding, product_findings
from swarm.feed_results import FeedError, FeedLimits, FeedProblem, ParsedFeed, shorten


@dataclass
class ProductRecord:
    """One product as a parser read it, before the cross-record rules apply."""

    product: Product
    row: int
    variant_rows: tuple[int, ...]
    """The row of each of `product.variants`, in order."""
    row_count: int = 1
    """How many rows of the feed the product was read from."""
    problems: list[FeedProblem] = field(default_factory=list)


class FeedAssembler:
    """Collects a feed's records in order and builds the `ParsedFeed`."""

    def __init__(self, limits: FeedLimits, *, repeat_hint: str) -> None:
        """`repeat_hint` tells a vendor how to fix a repeated product id."""
        self._limits = limits
        self._repeat_hint = repeat_hint
        self._records: list[ProductRecord] = []
        self._by_id: dict[str, ProductRecord] = {}
        self._sku_owner: dict[str, ProductRecord] = {}
        self._left_out: list[FeedProblem] = []

    def add_product(self, record: ProductRecord) -> None:
        product_id = record.product.product_id
        first = self._by_id.get(product_id) if product_id else None
        if first is not None:
            self._left_out.extend(record.problems)
            self._reject_repeat(first, record.row, count=record.row_count)
            return
        if len(self._records) >= self._limits.max_products:
            reason = f"more than {self._limits.max_products} products; split the feed"
            raise FeedError(reason, row=record.row)
        self._claim_skus(record)
        self._records.append(record)
        if product_id:
            self._by_id[product_id] = record

    def add_problems(self, problems: Sequence[FeedProblem]) -> None:
        """Problems of records that do not become a product."""
        self._left_out.extend(problems)

    def add_rows_without_product(self, handle: str, rows: Sequence[int], reason: str) -> None:
        """Rows of `handle` that cannot become a product, for `reason`.

        When `handle` already names a product, they are a repeated block and
        reported as such instead.
        """
        first = self._by_id.get(handle)
        if first is not None:
            self._reject_repeat(first, rows[0], count=len(rows))
            return
        left_out = f"{reason}; {_rows(len(rows))} left out"
        self._left_out.append(FeedProblem(rows[0], handle, "Handle", shorten(handle), left_out))

    def result(self) -> ParsedFeed:
        """The products with their feed errors, and all problems by row."""
        products: list[Product] = []
        problems = list(self._left_out)
        for record in self._records:
            errors = tuple(problem.as_feed_error() for problem in record.problems)
            product = record.product.model_copy(
                update={"feed_errors": (*record.product.feed_errors, *errors)}
            )
            products.append(product)
            problems.extend(record.problems)
            problems.extend(
                _finding_problem(record, finding) for finding in product_findings(product)
            )
        problems.sort(key=lambda problem: problem.row or 0)
        return ParsedFeed(products=tuple(products), problems=tuple(problems))

    def _reject_repeat(self, first: ProductRecord, row: int, *, count: int) -> None:
        product = first.product
        field_name = "Handle" if product.handle else "Variant SKU"
        product_id = product.product_id
        quoted = repr(shorten(product_id))
        again = f"{quoted} is used again by a separate product at row {row}; {self._repeat_hint}"
        value = shorten(product_id)
        first.problems.append(FeedProblem(first.row, product_id, field_name, value, again))
        taken = (
            f"{quoted} already belongs to the product at row {first.row}; {_rows(count)} left out"
        )
        self._left_out.append(FeedProblem(row, product_id, field_name, value, taken))

    def _claim_skus(self, record: ProductRecord) -> None:
        for variant, row in zip(record.product.variants, record.variant_rows, strict=True):
            if not variant.sku:
                continue
            owner = self._sku_owner.setdefault(variant.sku, record)
            if owner is record:
                continue
            reason = (
                f"{shorten(variant.sku)!r} is already used by handle "
                f"{shorten(owner.product.product_id)!r} at row {owner.row}"
            )
            problem = FeedProblem(
                row, record.product.product_id, "Variant SKU", shorten(variant.sku), reason
            )
            record.problems.append(problem)


def _finding_problem(record: ProductRecord, finding: Finding) -> FeedProblem:
    index = finding.variant_index
    row = record.variant_rows[index] if index is not None else record.row
    reason = (
        f"{finding.reason} ({finding.variant_label})" if finding.variant_label else finding.reason
    )
    return FeedProblem(
        row, record.product.product_id, finding.field, shorten(finding.value), reason
    )


def _rows(count: int) -> str:
    return "its row is" if count == 1 else f"its {count} rows are"
