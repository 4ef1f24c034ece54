"""The feed parsers on any bytes: a `ParsedFeed` or a `FeedError`, never anything else.

(Text inputs and structured records are covered next to each parser; these
feed raw bytes, as a vendor's upload arrives, through the decoding path.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.feeds import FeedError, ParsedFeed, parse_feed, parse_jsonl, parse_shopify_csv

_Parser = Callable[[bytes], ParsedFeed]
PARSERS: list[_Parser] = [parse_shopify_csv, parse_jsonl]

_HEADER = b"Handle,Title,Body (HTML),Variant SKU,Variant Price,Variant Barcode\n"
_prefix = st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", _HEADER, b"\xef\xbb\xbf" + _HEADER])
_chunks = st.sampled_from(
    [b",", b"\n", b"\r", b'"', b"{", b"}", b"[", b":", b"\x00", b"\xe9", b"\xc3\xa9", b"12.00",
     b"$", b"3.65275E+11", b"<script>", b"mug", b'"price"', b'"handle"', b"-", b"\t"]
)  # fmt: skip
_feed_bytes = st.builds(
    lambda prefix, parts: prefix + b"".join(parts), _prefix, st.lists(_chunks, max_size=40)
)


def _parses_or_feed_error(parse: _Parser, data: bytes) -> None:
    result: ParsedFeed | FeedError
    try:
        result = parse(data)
    except FeedError as e:
        result = e
    if isinstance(result, FeedError):
        assert str(result)
        return
    assert isinstance(result, ParsedFeed)
    for product in result.products:
        assert "<script" not in product.description.lower()


@pytest.mark.parametrize("parse", PARSERS)
@settings(max_examples=300, deadline=None)
@given(data=st.binary())
def test_any_bytes_parse_or_raise_feed_error(parse: _Parser, data: bytes) -> None:
    _parses_or_feed_error(parse, data)


@pytest.mark.parametrize("parse", PARSERS)
@settings(max_examples=400, deadline=None)
@given(data=_feed_bytes)
def test_feed_like_bytes_parse_or_raise_feed_error(parse: _Parser, data: bytes) -> None:
    _parses_or_feed_error(parse, data)


@settings(max_examples=50, deadline=None)
@given(data=_feed_bytes, suffix=st.sampled_from([".csv", ".jsonl"]))
def test_any_uploaded_file_parses_or_raises_feed_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, suffix: str
) -> None:
    path: Path = tmp_path_factory.mktemp("upload") / f"feed{suffix}"
    path.write_bytes(data)
    _parses_or_feed_error(lambda _: parse_feed(path), data)
