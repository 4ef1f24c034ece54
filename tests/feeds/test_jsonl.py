"""JSON lines feed parsing: record shape, variants, bad lines, types, duplicates."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.feeds import FeedError, ParsedFeed, parse_feed, parse_jsonl


def _line(**fields: object) -> str:
    record: dict[str, object] = {
        "handle": "notebook-a5",
        "sku": "NB-A5",
        "title": "Dot Grid Notebook",
        "description": "<p>192 pages.</p>",
        "vendor": "Paper Bay",
        "product_type": "Notebooks",
        "tags": ["paper", "notebook"],
        "price": "14.00",
    }
    return json.dumps(record | fields) + "\n"


def test_line_without_variants_builds_one_variant_from_the_top_level_fields() -> None:
    line = _line(compare_at_price="16.00", barcode="4006381333931", inventory_qty=12)
    (product,) = parse_jsonl(line).products
    (variant,) = product.variants
    assert (product.handle, product.title, product.vendor, product.product_type) == (
        "notebook-a5",
        "Dot Grid Notebook",
        "Paper Bay",
        "Notebooks",
    )
    assert (product.description, product.tags) == ("<p>192 pages.</p>", ("paper", "notebook"))
    assert (variant.sku, variant.price, variant.compare_at_price) == (
        "NB-A5",
        Decimal("14.00"),
        Decimal("16.00"),
    )
    assert (variant.barcode, variant.inventory_qty) == ("4006381333931", 12)


def test_variants_list_builds_each_variant_with_its_options() -> None:
    variants = [
        {"sku": "PEN-F", "price": "48.00", "options": {"Nib": "Fine", "Color": "Brass"}},
        {"sku": "PEN-M", "price": 52, "inventory_qty": 3, "options": {"Nib": "Medium"}},
    ]
    (product,) = parse_jsonl(_line(variants=variants)).products
    assert [(v.sku, v.price, v.inventory_qty, v.options) for v in product.variants] == [
        ("PEN-F", Decimal("48.00"), None, {"Nib": "Fine", "Color": "Brass"}),
        ("PEN-M", Decimal("52"), 3, {"Nib": "Medium"}),
    ]
    assert product.option_names == ("Nib", "Color")


def test_images_are_read_in_order() -> None:
    images = ["https://cdn.example.com/1.jpg", "https://cdn.example.com/2.jpg"]
    (product,) = parse_jsonl(_line(images=images)).products
    assert product.images == tuple(images)


def test_product_id_is_the_sku_when_there_is_no_handle() -> None:
    (product,) = parse_jsonl(_line(handle="")).products
    assert (product.handle, product.product_id) == ("", "NB-A5")


def test_json_number_price_is_read_exactly() -> None:
    (product,) = parse_jsonl(_line(price=19.99)).products
    assert product.price == Decimal("19.99")


def test_line_that_is_not_json_is_a_problem_and_the_other_lines_parse() -> None:
    feed = parse_jsonl(_line() + "{not json\n" + _line(handle="pen", sku="PEN"))
    assert [p.handle for p in feed.products] == ["notebook-a5", "pen"]
    assert [str(problem) for problem in feed.problems] == [
        "row 2: not valid JSON: Expecting property name enclosed in double quotes (column 2)"
    ]


def test_line_that_is_not_an_object_is_a_problem() -> None:
    feed = parse_jsonl('["a", "list"]\n')
    assert feed.products == ()
    assert [str(problem) for problem in feed.problems] == ["row 1: not a JSON object but a list"]


def test_blank_lines_are_skipped_but_counted() -> None:
    feed = parse_jsonl("\n" + _line() + "\n  \n" + _line(handle="pen", sku="PEN"))
    assert [p.source_row for p in feed.products] == [2, 5]
    assert feed.problems == ()


def test_empty_file_raises_feed_error() -> None:
    with pytest.raises(FeedError, match="empty file"):
        parse_jsonl(" \n\n")


def test_non_utf8_bytes_raise_feed_error_naming_the_line() -> None:
    data = _line().encode() + '{"title": "Café"}\n'.encode("latin-1")
    with pytest.raises(FeedError, match="not UTF-8") as raised:
        parse_jsonl(data)
    assert raised.value.row == 2


def test_byte_order_mark_is_accepted() -> None:
    (product,) = parse_jsonl("\ufeff".encode() + _line().encode()).products
    assert product.handle == "notebook-a5"


def test_unreadable_price_keeps_the_product_and_fills_its_feed_errors() -> None:
    (product,) = parse_jsonl(_line(price="free")).products
    assert product.feed_errors == ("price: not a number: 'free' (row 1)",)
    assert product.variants == ()


def test_boolean_price_is_a_problem() -> None:
    (product,) = parse_jsonl(_line(price=True)).products
    assert product.feed_errors == ("price: must be a number or a string, not a boolean (row 1)",)


def test_barcode_given_as_a_number_is_a_problem_not_guessed() -> None:
    (product,) = parse_jsonl(_line(barcode=36000291452)).products
    assert product.variants[0].barcode == ""
    assert product.feed_errors == (
        "barcode: must be a string in quotes (as a number it loses leading zeros), "
        "not a number (row 1)",
    )


def test_tags_that_are_not_a_list_of_strings_are_a_problem() -> None:
    (product,) = parse_jsonl(_line(tags="paper, notebook")).products
    assert product.tags == ()
    assert product.feed_errors == ("tags: must be a list of strings, not a string (row 1)",)


def test_variant_that_is_not_an_object_is_a_problem() -> None:
    (product,) = parse_jsonl(_line(variants=[{"sku": "A", "price": "1"}, 7])).products
    assert len(product.variants) == 1
    assert product.feed_errors == ("variants[1]: must be an object, not a number (row 1)",)


def test_same_handle_on_two_lines_fails_the_first_and_leaves_out_the_second() -> None:
    feed = parse_jsonl(_line() + _line(sku="OTHER"))
    (product,) = feed.products
    assert product.feed_errors == (
        "Handle: 'notebook-a5' is used again by a separate product at row 2; "
        "give each product one line (row 1)",
    )
    assert str(feed.problems[-1]) == (
        "row 2 (handle 'notebook-a5'), field 'Handle': "
        "'notebook-a5' already belongs to the product at row 1; its row is left out"
    )


def test_same_sku_on_two_lines_fails_the_later_product() -> None:
    first, second = parse_jsonl(_line() + _line(handle="notebook-b5")).products
    assert first.feed_errors == ()
    assert second.feed_errors == (
        "Variant SKU: 'NB-A5' is already used by handle 'notebook-a5' at row 1 (row 2)",
    )


def test_deeply_nested_json_is_a_problem_not_a_crash() -> None:
    feed = parse_jsonl("[" * 100_000 + "]" * 100_000 + "\n" + _line())
    assert len(feed.products) == 1
    assert feed.problems[0].reason == "not valid JSON: a number too long or nesting too deep"


def test_integer_too_long_for_python_is_a_problem_not_a_crash() -> None:
    feed = parse_jsonl(
        _line(inventory_qty=0).replace('"inventory_qty": 0', '"inventory_qty": ' + "9" * 5000)
    )
    assert feed.products == ()
    assert feed.problems[0].reason == "not valid JSON: a number too long or nesting too deep"


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".json"])
def test_parse_feed_reads_json_lines_by_suffix(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"feed{suffix}"
    path.write_text(_line(), encoding="utf-8")
    assert [p.handle for p in parse_feed(path).products] == ["notebook-a5"]


def _parses_or_raises_feed_error(text: str) -> None:
    try:
        result = parse_jsonl(text)
    except FeedError:
        return
    assert isinstance(result, ParsedFeed)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_parses_or_raises_feed_error(text: str) -> None:
    _parses_or_raises_feed_error(text)


_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_keys = st.sampled_from(
    [
        *("handle", "sku", "title", "description", "vendor", "product_type", "tags", "price"),
        *("compare_at_price", "barcode", "inventory_qty", "images", "options", "status"),
        "published",
    ]
)
_value = (
    _scalar
    | st.lists(_scalar, max_size=3)
    | st.dictionaries(st.text(max_size=4), _scalar, max_size=2)
    | st.lists(st.dictionaries(_keys, _scalar, max_size=4), max_size=2)
)
_record = st.dictionaries(_keys | st.just("variants"), _value, max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(_record, max_size=4))
def test_any_json_objects_parse_or_raise_feed_error(records: list[dict[str, object]]) -> None:
    _parses_or_raises_feed_error("".join(json.dumps(record) + "\n" for record in records))
