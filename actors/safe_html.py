"""What markup may reach a listing, the marketplace or an export: the one HTML policy.

Vendor text (a Shopify ``Body (HTML)``) and model output are untrusted. Both
go through this module, built on nh3 (the Python binding of the Rust
``ammonia`` sanitizer, an html5ever parser), never through regular expressions.

- `sanitize_html` keeps formatting a product page uses (paragraphs, line
  breaks, emphasis, lists, headings, tables, links with an http(s) address)
  and drops everything else: scripts and styles with their content, iframes,
  objects, forms, event handler and style attributes, and links whose address
  is not http(s) (``javascript:``, ``data:``...). Text is HTML-escaped, so the
  result is safe to put into a page as it is.
- `plain_text` is for fields shown as text (titles, bullet points, tags, SEO
  fields, campaign copy): no markup at all survives, entities are decoded, and
  markup hidden behind entities (``&lt;script&gt;``) is removed too.

Promises: both are pure and deterministic; `sanitize_html` is idempotent;
neither ever raises on any string.
"""

from __future__ import annotations

import html

import nh3

ALLOWED_TAGS = frozenset(
    {
        *("p", "br", "hr", "div", "span", "blockquote"),
        *("strong", "b", "em", "i", "u", "s", "small", "sub", "sup"),
        *("ul", "ol", "li", "dl", "dt", "dd"),
        *("h1", "h2", "h3", "h4", "h5", "h6"),
        *("table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption"),
        "a",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
}
ALLOWED_URL_SCHEMES = frozenset({"http", "https"})
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "template", "noscript", "svg", "math"}
)
"""Elements removed together with what they hold (the text inside is not content)."""

_PLAIN_PASSES = 4


def sanitize_html(markup: str) -> str:
    """`markup` with only the allowed formatting left, as safe HTML."""
    if "<" not in markup and "&" not in markup and ">" not in markup:
        return markup
    return nh3.clean(
        markup,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )


def plain_text(text: str) -> str:
    """`text` without any markup, entities decoded.

    Repeats strip-and-decode until nothing changes, so markup spelled with
    entities cannot come back to life once decoded; a text that never settles
    (a pathological nesting) loses its angle brackets instead.
    """
    if "<" not in text and "&" not in text:
        return text
    for _ in range(_PLAIN_PASSES):
        stripped = html.unescape(
            nh3.clean(text, tags=set(), clean_content_tags=set(DROPPED_WITH_CONTENT))
        )
        if stripped == text:
            return text
        text = stripped
    return text.replace("<", "").replace(">", "")
