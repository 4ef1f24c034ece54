"""The HTML policy: what survives sanitizing, and what never does, whatever the input."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.safe_html import plain_text, sanitize_html
from swarm.feeds import parse_jsonl, parse_shopify_csv

_DANGER = re.compile(r"<\s*(script|iframe|object|embed|style)|\son\w+\s*=|javascript:", re.I)
_ACTIVE = re.compile(
    r"<\s*(script|iframe|object|embed|style)|<[^>]*(\son\w+\s*=|javascript:)", re.I
)
"""Active content in markup; `javascript:` or `onload=` as mere text is harmless."""

ATTACKS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    '<img src=x onerror="alert(1)">',
    '<p onclick="steal()">hi</p>',
    '<iframe src="https://evil.example"></iframe>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="  JaVaScRiPt:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
    "<svg><script>alert(1)</script></svg>",
    "<object data=x></object><embed src=x>",
    "<scr<script>ipt>alert(1)</script>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<!--<script>alert(1)</script>-->",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_scripts_handlers_frames_and_javascript_links_never_survive(attack: str) -> None:
    assert _DANGER.search(sanitize_html(f"<p>Mug</p>{attack}")) is None
    assert _DANGER.search(plain_text(attack)) is None


def test_allowed_formatting_survives() -> None:
    body = (
        "<p>A <strong>warm</strong> <em>wool</em> hat.<br></p>"
        "<ul><li>Merino</li></ul><ol><li>One</li></ol>"
        '<a href="https://example.com/care">Care guide</a>'
    )
    assert sanitize_html(body) == (
        "<p>A <strong>warm</strong> <em>wool</em> hat.<br></p>"
        "<ul><li>Merino</li></ul><ol><li>One</li></ol>"
        '<a href="https://example.com/care" rel="noopener noreferrer nofollow">Care guide</a>'
    )


def test_event_handler_is_dropped_and_its_element_kept() -> None:
    assert sanitize_html('<p onclick="steal()">hi</p>') == "<p>hi</p>"


def test_plain_text_drops_markup_and_decodes_entities() -> None:
    assert plain_text("Fish &amp; Chips <b>Mug</b>") == "Fish & Chips Mug"


def test_plain_text_drops_markup_hidden_behind_entities() -> None:
    assert plain_text("&lt;script&gt;alert(1)&lt;/script&gt;Mug") == "Mug"


def test_text_without_markup_is_unchanged() -> None:
    text = 'A 5" plate, 100% cotton: it\'s "soft"'
    assert (sanitize_html(text), plain_text(text)) == (text, text)


def test_shopify_body_html_is_sanitized_when_the_feed_is_read() -> None:
    body = '<p>Mug</p><script>steal()</script><a href="javascript:x()" onclick="y()">more</a>'
    quoted = body.replace('"', '""')
    text = f'Handle,Title,Body (HTML),Variant Price\nmug,Mug,"{quoted}",12.00\n'
    (product,) = parse_shopify_csv(text).products
    assert product.description == '<p>Mug</p><a rel="noopener noreferrer nofollow">more</a>'


def test_json_lines_description_is_sanitized_when_the_feed_is_read() -> None:
    line = {"handle": "mug", "title": "Mug", "price": "1", "description": "<iframe>x</iframe>ok"}
    (product,) = parse_jsonl(json.dumps(line) + "\n").products
    assert product.description == "ok"


_TOKENS = [*"<>/=\"' &;:#x1", "script", "iframe", "onload", "href", "javascript:", "<a ", "&lt;"]
_html_ish = st.lists(st.sampled_from(_TOKENS), max_size=30).map("".join)
_TAG_START = re.compile(r"</?[a-zA-Z]")


@settings(max_examples=300, deadline=None)
@given(st.one_of(_html_ish, st.text(max_size=60), st.sampled_from(ATTACKS)))
def test_sanitizing_is_idempotent_and_never_leaves_active_content(text: str) -> None:
    once = sanitize_html(text)
    assert sanitize_html(once) == once
    assert _ACTIVE.search(once) is None
    assert _TAG_START.search(plain_text(text)) is None
