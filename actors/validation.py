"""Step 1 of the product workflow: is this product fit to be listed?

Owns the pure checks behind `validate_product_data` and the GS1 GTIN check.
Promises: no I/O and no Ray; the same product always yields the same reasons in
the same order; every reason starts with the field it is about, in Shopify's
column names, and names the variant (by SKU, else by position) when it is about
one, e.g. ``"Variant Price: must be greater than 0 (variant 'tee-s')"``.

A product carries the problems its feed parser found in `Product.feed_errors`
(values the model cannot hold: a price that is not a number, a duplicate
handle, ...). Those come first; the checks here then look at what the model
does hold. The feed parsers in `swarm/` run `product_findings` too, so a feed
report and this step word each problem the same way.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from actors.models import Product, Variant

GTIN_LENGTHS = frozenset({8, 12, 13, 14})
"""GTIN-8, UPC-A (GTIN-12), EAN-13 (GTIN-13) and GTIN-14."""

_DIGITS = re.compile(r"[0-9]+")
_SCIENTIFIC = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]*)?[eE][+-]?[0-9]+")
_FLOAT_TAIL = re.compile(r"[0-9]+[.,]0+")
_HTTP_URL = re.compile(r"https?://[^\s<>\"'`]+")
_HANDLE_UNSAFE = re.compile(r"[\s<>\"'`]")
_QUOTE_LIMIT = 40


@dataclass(frozen=True)
class Finding:
    """One reason a product is unfit, tied to a field and maybe a variant."""

    field: str
    reason: str
    value: str = ""
    variant_index: int | None = None
    """Position in `Product.variants` when the finding is about one variant."""
    variant_label: str = ""

    def __str__(self) -> str:
        where = f" ({self.variant_label})" if self.variant_label else ""
        return f"{self.field}: {self.reason}{where}"


def validate_product_data(product: Product) -> list[str]:
    """Return why `product` may not be listed; an empty list means it may."""
    return [*product.feed_errors, *(str(finding) for finding in product_findings(product))]


def product_findings(product: Product) -> list[Finding]:
    """Check what the model holds: identity, variants, prices, barcodes, images."""
    findings = _identity_findings(product)
    if not product.variants:
        findings.append(Finding("Variants", "the product has no variants"))
    for index, variant in enumerate(product.variants):
        findings.extend(_variant_findings(index, variant))
    findings.extend(_duplicate_variant_findings(product.variants))
    findings.extend(_image_findings(product.images))
    return findings


def gtin_is_valid(code: str) -> bool:
    """True for 8, 12, 13 or 14 ASCII digits whose last digit is the GS1 check digit."""
    return (
        _DIGITS.fullmatch(code) is not None
        and len(code) in GTIN_LENGTHS
        and int(code[-1]) == gtin_check_digit(code[:-1])
    )


def gtin_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for `body` (a GTIN without its last digit).

    Weights 3, 1, 3, ... apply from the rightmost digit of the body.
    """
    total = sum(int(digit) * (3 if i % 2 == 0 else 1) for i, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin_problem(code: str) -> str | None:
    """Why `code` is not a valid GTIN, or None when it is one.

    Values a spreadsheet rewrote as a number (``3.65275E+11``, ``4006381333931.0``)
    get their own reason: their digits are lost or doubtful, so they are never
    repaired here.
    """
    quoted = _quote(code)
    if not code:
        return "empty"
    if _SCIENTIFIC.fullmatch(code):
        return (
            f"{quoted} was rewritten by a spreadsheet in scientific notation and its "
            "digits are lost; export the barcode column as text"
        )
    if _FLOAT_TAIL.fullmatch(code):
        return f"{quoted} was rewritten by a spreadsheet as a decimal number; export it as text"
    if _DIGITS.fullmatch(code) is None:
        return f"{quoted} must contain digits only"
    if len(code) not in GTIN_LENGTHS:
        return f"{quoted} has {len(code)} digits; a GTIN has 8, 12, 13 or 14"
    expected = gtin_check_digit(code[:-1])
    if int(code[-1]) != expected:
        return f"{quoted} fails the GS1 check digit (the last digit should be {expected})"
    return None


def _identity_findings(product: Product) -> list[Finding]:
    findings = []
    if not product.title.strip():
        findings.append(Finding("Title", "missing"))
    if not product.product_id.strip():
        findings.append(Finding("Handle", "missing, and there is no SKU to use as the product id"))
    elif _HANDLE_UNSAFE.search(product.product_id):
        reason = f"{_quote(product.product_id)} must not hold spaces, quotes or angle brackets"
        findings.append(Finding("Handle", reason, product.product_id))
    return findings


def _variant_findings(index: int, variant: Variant) -> list[Finding]:
    label = _variant_label(index, variant)
    findings = []
    price_problem = _price_problem(variant)
    if price_problem is not None:
        field, reason, value = price_problem
        findings.append(Finding(field, reason, value, index, label))
    barcode_problem = gtin_problem(variant.barcode) if variant.barcode else None
    if barcode_problem is not None:
        findings.append(Finding("Variant Barcode", barcode_problem, variant.barcode, index, label))
    return findings


def _price_problem(variant: Variant) -> tuple[str, str, str] | None:
    """(field, reason, value) for the variant's first price problem, if any."""
    price, compare_at = variant.price, variant.compare_at_price  # finite: the model refuses NaN
    if price <= 0:
        return "Variant Price", "must be greater than 0", str(price)
    if compare_at is not None and compare_at < price:
        return (
            "Variant Compare At Price",
            f"{compare_at} is below the price {price}",
            str(compare_at),
        )
    return None


def _duplicate_variant_findings(variants: tuple[Variant, ...]) -> list[Finding]:
    findings = []
    skus = Counter(variant.sku for variant in variants if variant.sku)
    for sku, count in skus.items():
        if count > 1:
            reason = f"{_quote(sku)} is used by {count} variants"
            findings.append(Finding("Variant SKU", reason, sku))
    combos = Counter(tuple(variant.options.items()) for variant in variants if variant.options)
    for combo, count in combos.items():
        if count > 1:
            shown = ", ".join(f"{name}={value}" for name, value in combo)
            reason = f"{count} variants have the same options ({_shorten(shown)})"
            findings.append(Finding("Options", reason, shown))
    return findings


def _image_findings(images: tuple[str, ...]) -> list[Finding]:
    return [
        Finding("Image Src", f"not an http(s) URL: {_quote(url)}", url)
        for url in images
        if _HTTP_URL.fullmatch(url) is None
    ]


def _variant_label(index: int, variant: Variant) -> str:
    return f"variant {_quote(variant.sku)}" if variant.sku else f"variant #{index + 1}"


def _quote(text: str) -> str:
    return repr(_shorten(text))


def _shorten(text: str) -> str:
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 1] + "…"
