"""Shopify product CSV parsing: layout, headers, encodings, values, duplicates, limits."""

from __future__ import annotations

import csv
import io
import pickle
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.feeds import (
    FeedError,
    FeedLimits,
    ParsedFeed,
    parse_feed,
    parse_price,
    parse_shopify_csv,
)

HEADER = (
    "Handle",
    "Title",
    "Body (HTML)",
    "Vendor",
    "Type",
    "Tags",
    "Option1 Name",
    "Option1 Value",
    "Option2 Name",
    "Option2 Value",
    "Variant SKU",
    "Variant Price",
    "Variant Compare At Price",
    "Variant Barcode",
    "Variant Inventory Qty",
    "Image Src",
    "Image Position",
    "Status",
)


def _csv(*rows: dict[str, str], header: tuple[str, ...] = HEADER) -> str:
    """CSV text with `header` and one line per row (missing cells empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return buffer.getvalue()


def _product_row(handle: str = "blue-tee", **cells: str) -> dict[str, str]:
    row = {
        "Handle": handle,
        "Title": "Blue Tee",
        "Body (HTML)": "<p>Soft cotton.</p>",
        "Vendor": "Acme",
        "Type": "Shirts",
        "Variant SKU": f"{handle}-1",
        "Variant Price": "12.00",
    }
    return row | cells


def _reasons(feed: ParsedFeed) -> list[str]:
    return [str(problem) for problem in feed.problems]


def test_rows_with_the_same_handle_become_one_product_with_a_variant_each() -> None:
    text = _csv(
        _product_row(**{"Option1 Name": "Size", "Option1 Value": "S", "Variant SKU": "tee-s"}),
        {"Handle": "blue-tee", "Option1 Value": "M", "Variant SKU": "tee-m", "Variant Price": "13"},
        {"Handle": "blue-tee", "Option1 Value": "L", "Variant SKU": "tee-l", "Variant Price": "14"},
    )
    (product,) = parse_shopify_csv(text).products
    assert [(v.sku, v.price, v.options) for v in product.variants] == [
        ("tee-s", Decimal("12.00"), {"Size": "S"}),
        ("tee-m", Decimal("13"), {"Size": "M"}),
        ("tee-l", Decimal("14"), {"Size": "L"}),
    ]


def test_option_names_come_from_the_product_row_and_pair_with_each_rows_values() -> None:
    text = _csv(
        _product_row(
            **{"Option1 Name": "Size", "Option1 Value": "S"},
            **{"Option2 Name": "Color", "Option2 Value": "Blue"},
        ),
        {"Handle": "blue-tee", "Option1 Value": "S", "Option2 Value": "Red", "Variant Price": "12"},
    )
    (product,) = parse_shopify_csv(text).products
    assert product.option_names == ("Size", "Color")
    assert [v.options for v in product.variants] == [
        {"Size": "S", "Color": "Blue"},
        {"Size": "S", "Color": "Red"},
    ]


def test_product_fields_come_from_the_first_row_of_a_handle() -> None:
    text = _csv(
        _product_row(Tags="cotton,  summer ,cotton", Status="Draft"),
        {"Handle": "blue-tee", "Title": "Ignored", "Variant Price": "13", "Variant SKU": "x"},
    )
    (product,) = parse_shopify_csv(text).products
    assert (product.title, product.vendor, product.product_type) == ("Blue Tee", "Acme", "Shirts")
    assert product.description == "<p>Soft cotton.</p>"
    assert product.tags == ("cotton", "summer")
    assert product.status == "draft"
    assert product.source_row == 2


def test_image_only_rows_add_images_but_no_variants() -> None:
    text = _csv(
        _product_row(**{"Image Src": "https://cdn.example.com/1.jpg"}),
        {"Handle": "blue-tee", "Image Src": "https://cdn.example.com/2.jpg"},
        {"Handle": "blue-tee", "Image Src": "https://cdn.example.com/3.jpg"},
    )
    (product,) = parse_shopify_csv(text).products
    assert len(product.variants) == 1
    assert product.images == tuple(f"https://cdn.example.com/{n}.jpg" for n in (1, 2, 3))


def test_images_are_ordered_by_image_position() -> None:
    text = _csv(
        _product_row(**{"Image Src": "https://cdn.example.com/b.jpg", "Image Position": "2"}),
        {"Handle": "blue-tee", "Image Src": "https://cdn.example.com/a.jpg", "Image Position": "1"},
    )
    (product,) = parse_shopify_csv(text).products
    assert product.images == ("https://cdn.example.com/a.jpg", "https://cdn.example.com/b.jpg")


def test_default_title_option_means_the_product_has_no_options() -> None:
    text = _csv(_product_row(**{"Option1 Name": "Title", "Option1 Value": "Default Title"}))
    (product,) = parse_shopify_csv(text).products
    assert product.option_names == ()
    assert product.variants[0].options == {}


def test_localized_header_names_are_read_through_the_alias_map() -> None:
    header = (
        "URL handle",
        "Title",
        "Description",
        "Category",
        "SKU",
        "Price",
        "Compare-at price",
        "Barcode",
        "Inventory quantity",
        "Option1 name",
        "Option1 value",
        "Product image URL",
        "SEO title",
        "Published on online store",
    )
    row = {
        "URL handle": "mug",
        "Title": "Mug",
        "Description": "<p>Stoneware.</p>",
        "Category": "Home & Garden > Kitchen & Dining",
        "SKU": "MUG-1",
        "Price": "18.00",
        "Compare-at price": "22.00",
        "Barcode": "4006381333931",
        "Inventory quantity": "7",
        "Option1 name": "Color",
        "Option1 value": "Sand",
        "Product image URL": "https://cdn.example.com/mug.jpg",
        "SEO title": "Stoneware Mug",
        "Published on online store": "FALSE",
    }
    feed = parse_shopify_csv(_csv(row, header=header))
    (product,) = feed.products
    (variant,) = product.variants
    assert (product.handle, product.description, product.seo_title) == (
        "mug",
        "<p>Stoneware.</p>",
        "Stoneware Mug",
    )
    assert product.product_category == "Home & Garden > Kitchen & Dining"
    assert (product.images, product.published) == (("https://cdn.example.com/mug.jpg",), False)
    assert (variant.sku, variant.price, variant.compare_at_price) == (
        "MUG-1",
        Decimal("18.00"),
        Decimal("22.00"),
    )
    assert (variant.barcode, variant.inventory_qty, variant.options) == (
        "4006381333931",
        7,
        {"Color": "Sand"},
    )
    assert feed.problems == ()


def test_header_names_match_ignoring_case_and_extra_spaces() -> None:
    header = ("handle", "TITLE", "Variant  price")
    (product,) = parse_shopify_csv(
        _csv({"handle": "a", "TITLE": "A", "Variant  price": "1"}, header=header)
    ).products
    assert (product.handle, product.title, product.price) == ("a", "A", Decimal("1"))


def test_unknown_columns_are_ignored() -> None:
    header = (*HEADER, "Google Shopping / Gender")
    feed = parse_shopify_csv(
        _csv(_product_row(**{"Google Shopping / Gender": "unisex"}), header=header)
    )
    assert len(feed.products) == 1
    assert feed.problems == ()


def test_utf8_with_byte_order_mark_is_accepted() -> None:
    data = "\ufeff".encode() + _csv(_product_row(Title="Café Tee")).encode()
    (product,) = parse_shopify_csv(data).products
    assert (product.handle, product.title) == ("blue-tee", "Café Tee")


def test_text_with_byte_order_mark_is_accepted() -> None:
    (product,) = parse_shopify_csv("\ufeff" + _csv(_product_row())).products
    assert product.handle == "blue-tee"


def test_non_utf8_file_raises_feed_error_naming_the_line() -> None:
    data = _csv(_product_row(), _product_row("mug", Title="Caf\u00e9 Mug")).encode("latin-1")
    with pytest.raises(FeedError, match="not UTF-8") as raised:
        parse_shopify_csv(data)
    assert raised.value.row == 3


def test_missing_required_column_raises_feed_error_naming_it() -> None:
    header = tuple(column for column in HEADER if column != "Variant Price")
    with pytest.raises(FeedError, match="missing required column") as raised:
        parse_shopify_csv(_csv(_product_row(), header=header))
    assert raised.value.field == "Variant Price"
    assert "'Variant Price'" in str(raised.value)


def test_every_missing_required_column_is_named() -> None:
    with pytest.raises(FeedError) as raised:
        parse_shopify_csv("Handle,Vendor\nmug,Acme\n")
    assert raised.value.field == "Title, Variant Price"


def test_semicolon_separated_header_gets_a_hint() -> None:
    with pytest.raises(FeedError, match="semicolon-separated"):
        parse_shopify_csv("Handle;Title;Variant Price\nmug;Mug;12.00\n")


def test_column_given_twice_under_two_names_raises_feed_error() -> None:
    with pytest.raises(FeedError, match="column given twice") as raised:
        parse_shopify_csv(_csv(header=(*HEADER, "URL handle")))
    assert raised.value.field == "Handle"


def test_empty_file_raises_feed_error() -> None:
    with pytest.raises(FeedError, match="empty file"):
        parse_shopify_csv(b"")


def test_header_only_file_yields_no_products() -> None:
    assert parse_shopify_csv(_csv()) == ParsedFeed(products=(), problems=())


def test_unreadable_price_keeps_the_product_and_fills_its_feed_errors() -> None:
    feed = parse_shopify_csv(_csv(_product_row(), {"Handle": "blue-tee", "Variant Price": "abc"}))
    (product,) = feed.products
    assert product.feed_errors == ("Variant Price: not a number: 'abc' (row 3)",)
    assert len(product.variants) == 1
    assert _reasons(feed) == [
        "row 3 (handle 'blue-tee'), field 'Variant Price': not a number: 'abc'"
    ]


def test_variant_row_without_price_is_a_problem() -> None:
    feed = parse_shopify_csv(_csv(_product_row(), {"Handle": "blue-tee", "Variant SKU": "tee-m"}))
    assert feed.products[0].feed_errors == ("Variant Price: missing (row 3)",)


def test_negative_price_is_reported_as_not_greater_than_zero() -> None:
    feed = parse_shopify_csv(_csv(_product_row(**{"Variant Price": "-5.00"})))
    assert feed.products[0].variants[0].price == Decimal("-5.00")
    assert _reasons(feed) == [
        "row 2 (handle 'blue-tee'), field 'Variant Price': "
        "must be greater than 0 (variant 'blue-tee-1')"
    ]


def test_compare_at_price_below_price_is_a_problem() -> None:
    feed = parse_shopify_csv(_csv(_product_row(**{"Variant Compare At Price": "10.00"})))
    assert _reasons(feed) == [
        "row 2 (handle 'blue-tee'), field 'Variant Compare At Price': "
        "10.00 is below the price 12.00 (variant 'blue-tee-1')"
    ]


def test_spreadsheet_mangled_barcode_is_flagged_and_kept_as_given() -> None:
    feed = parse_shopify_csv(_csv(_product_row(**{"Variant Barcode": "3.65275E+11"})))
    assert feed.products[0].variants[0].barcode == "3.65275E+11"
    (problem,) = feed.problems
    assert (problem.field, problem.value) == ("Variant Barcode", "3.65275E+11")
    assert "scientific notation" in problem.reason


def test_barcode_with_wrong_check_digit_is_a_problem() -> None:
    feed = parse_shopify_csv(_csv(_product_row(**{"Variant Barcode": "4006381333932"})))
    (problem,) = feed.problems
    assert problem.reason.startswith("'4006381333932' fails the GS1 check digit")


def test_same_handle_in_two_separate_blocks_fails_the_first_and_leaves_out_the_second() -> None:
    text = _csv(_product_row(), _product_row("mug"), _product_row(**{"Variant SKU": "other"}))
    feed = parse_shopify_csv(text)
    assert [p.handle for p in feed.products] == ["blue-tee", "mug"]
    assert feed.products[0].feed_errors == (
        "Handle: 'blue-tee' is used again by a separate product at row 4; "
        "keep all rows of a product together (row 2)",
    )
    assert str(feed.problems[-1]) == (
        "row 4 (handle 'blue-tee'), field 'Handle': "
        "'blue-tee' already belongs to the product at row 2; its row is left out"
    )


def test_same_sku_in_two_products_fails_the_later_product() -> None:
    text = _csv(
        _product_row(**{"Variant SKU": "SKU-1"}), _product_row("mug", **{"Variant SKU": "SKU-1"})
    )
    tee, mug = parse_shopify_csv(text).products
    assert tee.feed_errors == ()
    assert mug.feed_errors == (
        "Variant SKU: 'SKU-1' is already used by handle 'blue-tee' at row 2 (row 3)",
    )


def test_variant_rows_of_a_handle_without_product_row_are_problems_only() -> None:
    text = _csv(
        {"Handle": "ghost", "Variant SKU": "g-1", "Variant Price": "5"},
        {"Handle": "ghost", "Variant SKU": "g-2", "Variant Price": "6"},
    )
    feed = parse_shopify_csv(text)
    assert feed.products == ()
    (problem,) = feed.problems
    assert (problem.row, problem.handle) == (2, "ghost")
    assert problem.reason == (
        "no product row: the handle's first row has no Title, Vendor, Type or Body (HTML); "
        "its 2 rows are left out"
    )


def test_row_without_handle_is_a_problem_only() -> None:
    feed = parse_shopify_csv(_csv(_product_row(), _product_row(handle="")))
    assert len(feed.products) == 1
    assert _reasons(feed) == ["row 3, field 'Handle': missing; the row is left out"]


def test_field_longer_than_the_limit_is_a_problem_and_cut() -> None:
    limits = FeedLimits(max_field_chars=100)
    feed = parse_shopify_csv(_csv(_product_row(**{"Body (HTML)": "x" * 150})), limits=limits)
    assert len(feed.products[0].description) == 100
    assert feed.products[0].feed_errors == (
        "Body (HTML): longer than 100 characters (150) (row 2)",
    )


def test_title_longer_than_the_title_limit_is_a_problem() -> None:
    feed = parse_shopify_csv(_csv(_product_row(Title="T" * 300)))
    assert feed.products[0].feed_errors == ("Title: longer than 255 characters (300) (row 2)",)


def test_control_character_in_a_field_is_a_problem_and_removed() -> None:
    feed = parse_shopify_csv(_csv(_product_row(Title="Blue\x07 Tee")))
    assert feed.products[0].title == "Blue Tee"
    assert feed.products[0].feed_errors == ("Title: contains control character U+0007 (row 2)",)


def test_tab_and_newlines_in_a_quoted_body_are_fine() -> None:
    feed = parse_shopify_csv(_csv(_product_row(**{"Body (HTML)": "<p>a</p>\r\n\t<p>b</p>"})))
    assert feed.problems == ()
    # sanitizing parses the body as HTML, which reads every line end as "\n"
    assert feed.products[0].description == "<p>a</p>\n\t<p>b</p>"


def test_row_numbers_are_the_line_where_a_multiline_record_starts() -> None:
    text = _csv(_product_row(**{"Body (HTML)": "line 1\nline 2\nline 3"}), _product_row("mug"))
    assert [p.source_row for p in parse_shopify_csv(text).products] == [2, 5]


def test_old_mac_line_endings_are_read() -> None:
    text = _csv(_product_row(), _product_row("mug")).replace("\n", "\r")
    assert [p.handle for p in parse_shopify_csv(text).products] == ["blue-tee", "mug"]


def test_binary_and_text_streams_parse_like_text() -> None:
    text = _csv(_product_row(), _product_row("mug"))
    expected = parse_shopify_csv(text)
    assert parse_shopify_csv(io.BytesIO(text.encode())) == expected
    assert parse_shopify_csv(io.StringIO(text, newline="")) == expected


def test_more_products_than_the_limit_raises_feed_error() -> None:
    text = _csv(_product_row("a"), _product_row("b"), _product_row("c"))
    with pytest.raises(FeedError, match="more than 2 products") as raised:
        parse_shopify_csv(text, limits=FeedLimits(max_products=2))
    assert raised.value.row == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", "12"),
        ("12.50", "12.50"),
        (" 0.99 ", "0.99"),
        ("$12.00", "12.00"),
        ("€7.5", "7.5"),
        ("12,00", "12.00"),
        ("1,234.50", "1234.50"),
        ("1,234,567.00", "1234567.00"),
        ("-5.00", "-5.00"),
    ],
)
def test_price_text_is_read_as_an_exact_decimal(text: str, expected: str) -> None:
    assert parse_price(text) == Decimal(expected)
    assert str(parse_price(text)) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "missing"),
        ("abc", "not a number: 'abc'"),
        ("12.5.0", "not a number: '12.5.0'"),
        ("NaN", "not a number: 'NaN'"),
        ("1e3", "not a number: '1e3'"),
        ("12 EUR", "not a number: '12 EUR'"),
        ("1,234", "ambiguous decimal separator, write it like 1234.50: '1,234'"),
        ("12,5", "ambiguous decimal separator, write it like 1234.50: '12,5'"),
        ("1.234,50", "ambiguous decimal separator, write it like 1234.50: '1.234,50'"),
        (
            "$1,234.50",
            "a currency sign is accepted only before a plain number like 12.50: '$1,234.50'",
        ),
        ("$12,00", "a currency sign is accepted only before a plain number like 12.50: '$12,00'"),
        ("١٢", "not a number: '١٢'"),
    ],
)
def test_price_text_that_states_no_price_is_rejected_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        parse_price(text)


def test_feed_error_message_names_row_handle_and_field() -> None:
    error = FeedError("not a number: 'abc'", row=12, handle="blue-tee", field="Variant Price")
    assert str(error) == "row 12 (handle 'blue-tee'), field 'Variant Price': not a number: 'abc'"


def test_problem_quotes_only_a_shortened_value() -> None:
    feed = parse_shopify_csv(_csv(_product_row(**{"Variant Price": "9" * 30 + "x" * 500})))
    (problem,) = (problem for problem in feed.problems if problem.field == "Variant Price")
    assert len(problem.value) == 40
    assert len(str(problem)) < 160


def test_feed_error_keeps_its_attributes_through_pickling() -> None:
    error = pickle.loads(pickle.dumps(FeedError("bad", row=3, handle="h", field="Title")))
    assert (error.reason, error.row, error.handle, error.field) == ("bad", 3, "h", "Title")


def test_parse_feed_reads_a_csv_file_as_shopify_csv(tmp_path: Path) -> None:
    path = tmp_path / "feed.CSV"
    path.write_text(_csv(_product_row()), encoding="utf-8")
    assert [p.handle for p in parse_feed(path).products] == ["blue-tee"]


def test_parse_feed_refuses_an_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"unknown feed type '\.xml'"):
        parse_feed(tmp_path / "feed.xml")


def test_parse_feed_turns_a_missing_file_into_feed_error(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"cannot read 'absent\.csv'"):
        parse_feed(tmp_path / "absent.csv")


def _parses_or_raises_feed_error(text: str) -> None:
    try:
        result = parse_shopify_csv(text)
    except FeedError:
        return
    assert isinstance(result, ParsedFeed)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_parses_or_raises_feed_error(text: str) -> None:
    _parses_or_raises_feed_error(text)


_cell = st.text(alphabet=st.sampled_from('ab1-.,$E+"\n\r\t\x00\x07é '), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_cell, max_size=len(HEADER) + 2), max_size=8))
def test_any_rows_under_a_valid_header_parse_or_raise_feed_error(rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([list(HEADER), *rows])
    _parses_or_raises_feed_error(buffer.getvalue())
