"""Step 1, validate_product_data, the GTIN check, and the bundled sample catalogs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from actors.models import Product, Variant
from actors.validation import gtin_is_valid, gtin_problem, validate_product_data
from swarm.feeds import parse_feed

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "swarm" / "sample_data"


def _variant(**fields: object) -> Variant:
    values: dict[str, object] = {"sku": "tee-s", "price": Decimal("12.00")}
    return Variant.model_validate(values | fields)


def _product(*variants: Variant, **fields: object) -> Product:
    values: dict[str, object] = {
        "handle": "blue-tee",
        "title": "Blue Tee",
        "variants": variants or (_variant(),),
    }
    return Product.model_validate(values | fields)


def test_complete_product_has_no_reasons() -> None:
    product = _product(
        _variant(compare_at_price=Decimal("15.00"), barcode="4006381333931"),
        images=("https://cdn.example.com/tee.jpg",),
    )
    assert validate_product_data(product) == []


def test_feed_errors_are_reasons_and_come_first() -> None:
    product = _product(title="", feed_errors=("Variant Price: not a number: 'abc' (row 3)",))
    assert validate_product_data(product) == [
        "Variant Price: not a number: 'abc' (row 3)",
        "Title: missing",
    ]


def test_blank_title_is_missing() -> None:
    assert validate_product_data(_product(title="   ")) == ["Title: missing"]


def test_product_without_variants_is_invalid() -> None:
    product = Product(handle="blue-tee", title="Blue Tee")
    assert validate_product_data(product) == ["Variants: the product has no variants"]


def test_product_without_handle_or_sku_has_no_id() -> None:
    product = _product(_variant(sku=""), handle="")
    assert validate_product_data(product) == [
        "Handle: missing, and there is no SKU to use as the product id"
    ]


def test_zero_price_is_a_reason_naming_field_and_variant() -> None:
    product = _product(_variant(price=Decimal("0")))
    assert validate_product_data(product) == [
        "Variant Price: must be greater than 0 (variant 'tee-s')"
    ]


def test_variant_without_sku_is_named_by_its_position() -> None:
    product = _product(_variant(sku="a"), _variant(sku="", price=Decimal("-1")))
    assert validate_product_data(product) == ["Variant Price: must be greater than 0 (variant #2)"]


def test_compare_at_price_below_price_is_a_reason() -> None:
    product = _product(_variant(compare_at_price=Decimal("10.00")))
    assert validate_product_data(product) == [
        "Variant Compare At Price: 10.00 is below the price 12.00 (variant 'tee-s')"
    ]


def test_compare_at_price_equal_to_price_is_fine() -> None:
    assert validate_product_data(_product(_variant(compare_at_price=Decimal("12.00")))) == []


def test_invalid_barcode_is_a_reason() -> None:
    product = _product(_variant(barcode="4006381333932"))
    assert validate_product_data(product) == [
        "Variant Barcode: '4006381333932' fails the GS1 check digit "
        "(the last digit should be 1) (variant 'tee-s')"
    ]


def test_empty_barcode_is_fine() -> None:
    assert validate_product_data(_product(_variant(barcode=""))) == []


def test_sku_used_by_two_variants_is_a_reason() -> None:
    product = _product(_variant(options={"Size": "S"}), _variant(options={"Size": "M"}))
    assert validate_product_data(product) == ["Variant SKU: 'tee-s' is used by 2 variants"]


def test_two_variants_with_the_same_options_are_a_reason() -> None:
    product = _product(
        _variant(sku="a", options={"Size": "S"}), _variant(sku="b", options={"Size": "S"})
    )
    assert validate_product_data(product) == ["Options: 2 variants have the same options (Size=S)"]


def test_image_that_is_not_an_http_url_is_a_reason() -> None:
    product = _product(images=("file:///etc/passwd",))
    assert validate_product_data(product) == ["Image Src: not an http(s) URL: 'file:///etc/passwd'"]


def test_image_url_with_quotes_or_angle_brackets_is_a_reason() -> None:
    url = 'https://cdn.example.com/a.jpg"><script>x()</script>'
    product = _product(images=(url,))
    assert validate_product_data(product) == [
        "Image Src: not an http(s) URL: 'https://cdn.example.com/a.jpg\"><script>…'"
    ]


@pytest.mark.parametrize("handle", ["blue tee", "<b>tee</b>", 'tee"x'])
def test_handle_with_spaces_quotes_or_angle_brackets_is_a_reason(handle: str) -> None:
    (reason,) = validate_product_data(_product(handle=handle))
    assert reason.startswith("Handle: ")
    assert reason.endswith("must not hold spaces, quotes or angle brackets")


@pytest.mark.parametrize(
    "code",
    [
        "96385074",  # GTIN-8
        "036000291452",  # UPC-A (GTIN-12)
        "4006381333931",  # EAN-13
        "5901234123457",  # EAN-13
        "10614141000415",  # GTIN-14
    ],
)
def test_gtin_with_correct_check_digit_is_valid(code: str) -> None:
    assert gtin_is_valid(code)
    assert gtin_problem(code) is None


@pytest.mark.parametrize("code", ["96385075", "036000291453", "4006381333930", "10614141000416"])
def test_gtin_with_wrong_check_digit_is_invalid(code: str) -> None:
    assert not gtin_is_valid(code)


@pytest.mark.parametrize("code", ["", "1234567", "36000291452", "123456789012345"])
def test_gtin_of_a_length_gs1_does_not_define_is_invalid(code: str) -> None:
    assert not gtin_is_valid(code)


@pytest.mark.parametrize(
    "code", ["4006381 333931", "400638133393A", "٤٠٠٦٣٨١٣٣٣٩٣١", "-4006381333931"]
)
def test_gtin_with_anything_but_ascii_digits_is_invalid(code: str) -> None:
    assert not gtin_is_valid(code)


def test_gtin_problem_names_the_expected_check_digit() -> None:
    assert gtin_problem("4006381333932") == (
        "'4006381333932' fails the GS1 check digit (the last digit should be 1)"
    )


def test_gtin_problem_names_the_digit_count() -> None:
    assert gtin_problem("36000291452") == "'36000291452' has 11 digits; a GTIN has 8, 12, 13 or 14"


@pytest.mark.parametrize("code", ["3.65275E+11", "3,65275E+11", "4.00638E12"])
def test_barcode_in_scientific_notation_is_blamed_on_a_spreadsheet(code: str) -> None:
    assert not gtin_is_valid(code)
    assert f"{code!r} was rewritten by a spreadsheet in scientific notation" in str(
        gtin_problem(code)
    )


def test_barcode_with_a_decimal_tail_is_blamed_on_a_spreadsheet() -> None:
    assert gtin_problem("4006381333931.0") == (
        "'4006381333931.0' was rewritten by a spreadsheet as a decimal number; export it as text"
    )


def test_sample_catalog_has_at_least_55_products_in_several_categories() -> None:
    feed = parse_feed(SAMPLE_DATA / "catalog.csv")
    assert len(feed.products) >= 55
    assert len({p.product_category.split(" > ")[0] for p in feed.products}) >= 4
    assert any(2 <= len(p.variants) <= 6 and len(p.option_names) == 2 for p in feed.products)
    assert any(len(p.images) > len(p.variants) for p in feed.products)


def test_sample_catalog_fails_exactly_the_five_intended_products() -> None:
    feed = parse_feed(SAMPLE_DATA / "catalog.csv")
    failing = {
        p.handle: validate_product_data(p) for p in feed.products if validate_product_data(p)
    }
    assert failing == {
        "pre-seasoned-cast-iron-skillet": [
            "Variant Price: must be greater than 0 (variant 'CK-PRE-SEAS-CAST')"
        ],
        "whipped-shea-body-butter": [
            "Variant Barcode: '4053587554342' fails the GS1 check digit "
            "(the last digit should be 9) (variant 'WB-WHIP-SHEA-BODY-LAV')"
        ],
        "rosewater-balancing-toner": [
            "Variant Compare At Price: 15.00 is below the price 19.00 (variant 'WB-ROSE-BALA-TONE')"
        ],
        "collapsible-silicone-camp-mug": ["Title: missing"],
        "braided-lightning-cable": [
            "Variant Barcode: '3.65275E+11' was rewritten by a spreadsheet in scientific "
            "notation and its digits are lost; export the barcode column as text "
            "(variant 'V-BRAI-LIGH-CABL')"
        ],
    }


def test_sample_json_lines_catalog_fails_exactly_the_one_intended_product() -> None:
    feed = parse_feed(SAMPLE_DATA / "catalog.jsonl")
    failing = {
        p.product_id: validate_product_data(p) for p in feed.products if validate_product_data(p)
    }
    assert len(feed.products) == 10
    assert failing == {
        "stainless-pet-bowl-set": [
            "barcode: must be a string in quotes (as a number it loses leading zeros), "
            "not a number (row 7)"
        ]
    }
