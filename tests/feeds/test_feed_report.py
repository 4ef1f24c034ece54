"""`python -m swarm validate FILE`: every problem of a feed as a table and as JSON.

`data/hostile_catalog.csv` holds one product per check (see the comments in
the expectations below); the report must name each by row, handle and field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from swarm.cli import main

HOSTILE = Path(__file__).parent / "data" / "hostile_catalog.csv"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory (no developer .env) with a small field limit."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SWARM_FEED_MAX_FIELD_CHARS", "500")
    return tmp_path


def _validate(*args: str) -> tuple[int, dict[str, Any]]:
    json_out = Path.cwd() / "report.json"
    code = main(["validate", *args, "--json-out", str(json_out)])
    return code, json.loads(json_out.read_text(encoding="utf-8"))


def _problems(report: dict[str, Any]) -> list[tuple[int, str, str, str]]:
    return [(p["row"], p["handle"], p["field"], p["reason"]) for p in report["problems"]]


def _has(report: dict[str, Any], row: int, handle: str, field: str, reason_part: str) -> bool:
    return any(
        (r, h, f) == (row, handle, field) and reason_part in reason
        for r, h, f, reason in _problems(report)
    )


EXPECTED = [
    # (row, handle, field, part of the reason)
    (4, "empty-price", "Variant Price", "missing"),
    (5, "word-price", "Variant Price", "not a number: 'twelve'"),
    (6, "negative-price", "Variant Price", "must be greater than 0"),
    (7, "ambiguous-price", "Variant Price", "ambiguous decimal separator"),
    (8, "currency-grouped", "Variant Price", "a currency sign is accepted only before"),
    (9, "compare-below", "Variant Compare At Price", "15.00 is below the price 20.00"),
    (10, "short-gtin", "Variant Barcode", "has 11 digits; a GTIN has 8, 12, 13 or 14"),
    (11, "bad-check-digit", "Variant Barcode", "fails the GS1 check digit"),
    (12, "mangled-barcode", "Variant Barcode", "rewritten by a spreadsheet in scientific"),
    (13, "orphan-variants", "Handle", "no product row"),
    (15, "repeated-handle", "Handle", "is used again by a separate product at row 17"),
    (17, "repeated-handle", "Handle", "already belongs to the product at row 15"),
    (18, "repeated-sku", "Variant SKU", "'MUG-SAND' is already used by handle 'good-mug'"),
    (19, "oversized-body", "Body (HTML)", "longer than 500 characters"),
    (20, "control-char", "Title", "contains control character U+0007"),
]


@pytest.mark.parametrize(("row", "handle", "field", "reason"), EXPECTED)
def test_report_names_row_handle_field_and_reason_of_each_problem(
    in_tmp: Path, row: int, handle: str, field: str, reason: str
) -> None:
    _code, report = _validate(str(HOSTILE))
    assert _has(report, row, handle, field, reason), _problems(report)


def test_feed_with_problems_exits_non_zero_and_counts_products(in_tmp: Path) -> None:
    code, report = _validate(str(HOSTILE))
    assert code == 1
    assert report["error"] is None
    assert (report["products"], report["valid_products"]) == (15, 2)


def test_unambiguous_currency_sign_and_decimal_comma_are_no_problem(in_tmp: Path) -> None:
    _code, report = _validate(str(HOSTILE))
    assert [p for p in report["problems"] if p["handle"] in ("good-mug", "in-between")] == []


def test_values_are_quoted_shortened(in_tmp: Path) -> None:
    _code, report = _validate(str(HOSTILE))
    (oversized,) = [p for p in report["problems"] if p["handle"] == "oversized-body"]
    assert len(oversized["value"]) <= 40
    assert oversized["value"].endswith("…")


def test_clean_feed_exits_zero(in_tmp: Path) -> None:
    feed = in_tmp / "clean.jsonl"
    feed.write_text(
        '{"handle": "mug", "sku": "MUG-1", "title": "Mug", "price": "$12.00"}\n',
        encoding="utf-8",
    )
    code, report = _validate(str(feed))
    assert code == 0
    assert (report["products"], report["valid_products"], report["problems"]) == (1, 1, [])


def test_localized_headers_validate_like_classic_ones(in_tmp: Path) -> None:
    feed = in_tmp / "new-export.csv"
    feed.write_bytes(
        "\ufeffURL handle,Title,SKU,Price,Compare-at price,Barcode\n"
        "mug,Mug,MUG-1,18.00,12.00,4006381333931\n".encode()
    )
    code, report = _validate(str(feed))
    assert code == 1
    assert _problems(report) == [
        (2, "mug", "Variant Compare At Price", "12.00 is below the price 18.00 (variant 'MUG-1')")
    ]


def test_missing_required_columns_are_named_and_exit_two(in_tmp: Path) -> None:
    feed = in_tmp / "partial.csv"
    feed.write_text("Handle,Vendor\nmug,Acme\n", encoding="utf-8")
    code, report = _validate(str(feed))
    assert code == 2
    assert report["error"] == {
        "row": 1,
        "field": "Title, Variant Price",
        "reason": "missing required columns",
    }
    assert report["problems"] == []


def test_windows_1252_file_is_a_clear_error_naming_line_and_byte(in_tmp: Path) -> None:
    feed = in_tmp / "latin.csv"
    feed.write_bytes("Handle,Title,Variant Price\ncafe,Café Mug,12.00\n".encode("cp1252"))
    code, report = _validate(str(feed))
    assert code == 2
    assert report["error"]["row"] == 2
    assert "not UTF-8 text: byte 0xe9" in report["error"]["reason"]
    assert "Windows-1252 reads it as 'é'" in report["error"]["reason"]


def test_utf16_file_is_named_as_utf16(in_tmp: Path) -> None:
    feed = in_tmp / "unicode.csv"
    feed.write_bytes("Handle,Title,Variant Price\nmug,Mug,12.00\n".encode("utf-16"))
    code, report = _validate(str(feed))
    assert code == 2
    assert "UTF-16" in report["error"]["reason"]


def test_json_report_goes_to_the_current_directory_by_default(in_tmp: Path) -> None:
    code = main(["validate", str(HOSTILE)])
    assert code == 1
    written = json.loads((in_tmp / "hostile_catalog.validation.json").read_text("utf-8"))
    assert len(written["problems"]) >= len(EXPECTED)


def test_table_shows_values_literally_without_markup_or_escape_codes(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = in_tmp / "markup.jsonl"
    feed.write_text(
        json.dumps({"handle": "[bold red]x[/]", "title": "T\u001b[2J", "price": "1"}) + "\n",
        encoding="utf-8",
    )
    main(["validate", str(feed), "--json-out", str(in_tmp / "r.json")])
    out = capsys.readouterr().out
    assert "[bold red]x[/]" in out
    assert "\u001b[2J" not in out
    assert "\\x1b[2J" in out
