"""`OfflineWriter`: listing and campaign copy without a model, from the product alone.

The default writer when no LLM key is configured, so the swarm runs offline.
It promises:

- determinism: the same product (and listing) always gives the same copy, so
  a replayed or retried step writes exactly what it wrote before;
- readable copy from the feed's own words: the title, the description with HTML
  reduced to text, 3 to 5 bullet points from options, type, vendor and tags,
  SEO title <= 60 and SEO description <= 160 characters, and a campaign
  (headline, email, 3 social posts) built from the listing;
- no commercial facts (price, SKU, barcode), like the LLM writer;
- cheapness: a few string operations per call and no I/O, so its async methods
  never block the event loop (the benchmark calls it thousands of times a second).

Token usage is estimated from word counts, so the ledger has numbers to sum.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Iterable

from actors.models import Campaign, Listing, Product, TokenUsage
from actors.ports import GeneratedCampaign, GeneratedListing, LLMProvenance
from swarm.llm_prompts import (
    CAMPAIGN_SYSTEM_PROMPT,
    LISTING_SYSTEM_PROMPT,
    PROMPT_VERSION_CAMPAIGN,
    PROMPT_VERSION_LISTING,
    SEO_DESCRIPTION_MAX_CHARS,
    SEO_TITLE_MAX_CHARS,
    ProductBrief,
    as_sentence,
    clip_words,
)

OFFLINE_MODEL_NAME = "offline-v1"

_TITLE_MAX_CHARS = 150
_DESCRIPTION_MAX_CHARS = 2000
_MAX_BULLETS = 5
_MIN_BULLETS = 3
_MAX_TAGS = 10
_SOCIAL_POST_MAX_CHARS = 280
_FILLER_BULLETS = (
    "Listed from the vendor's own product data",
    "Full details in the description",
    "Sold through our marketplace",
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TOKENS_PER_WORD = 4 / 3
_LISTING_PROMPT_WORDS = len(LISTING_SYSTEM_PROMPT.split())
_CAMPAIGN_PROMPT_WORDS = len(CAMPAIGN_SYSTEM_PROMPT.split())


class OfflineWriter:
    """A `ContentWriter` that writes deterministic copy from the product's own data.

    `latency_s` makes each call take that long, like a model would (for chaos runs
    and demos where a run should last long enough to watch).
    """

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s

    @property
    def model_name(self) -> str:
        return OFFLINE_MODEL_NAME

    async def write_listing(self, product: Product) -> GeneratedListing:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        brief = ProductBrief.from_product(product)
        listing = offline_listing(brief)
        usage = _usage(_LISTING_PROMPT_WORDS + _brief_words(brief), _listing_words(listing))
        return GeneratedListing(
            listing=listing, provenance=_provenance(PROMPT_VERSION_LISTING, usage)
        )

    async def write_campaign(self, product: Product, listing: Listing) -> GeneratedCampaign:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        brief = ProductBrief.from_product(product)
        campaign = offline_campaign(brief, listing, variant=_variant(product.handle))
        prompt_words = _CAMPAIGN_PROMPT_WORDS + _brief_words(brief) + _listing_words(listing)
        usage = _usage(
            prompt_words, _words(campaign.headline, campaign.email_body, *campaign.social_posts)
        )
        return GeneratedCampaign(
            campaign=campaign, provenance=_provenance(PROMPT_VERSION_CAMPAIGN, usage)
        )

    def __repr__(self) -> str:
        return f"OfflineWriter(latency_s={self.latency_s})"


def offline_listing(brief: ProductBrief) -> Listing:
    """The listing copy for a product brief."""
    title = clip_words(brief.title, _TITLE_MAX_CHARS)
    description = _description(brief)
    return Listing(
        title=title,
        description=description,
        bullet_points=_bullet_points(brief),
        tags=_tags(brief),
        seo_title=_seo_title(brief, title),
        seo_description=clip_words(brief.seo_description or description, SEO_DESCRIPTION_MAX_CHARS),
    )


def offline_campaign(brief: ProductBrief, listing: Listing, *, variant: int = 0) -> Campaign:
    """The campaign copy for a product and its listing; `variant` picks the wording."""
    title = listing.title
    lead = _first_sentences(listing.description, 2)
    brand = brief.vendor or "our store"
    headlines = (f"Discover the {title}", f"New from {brand}: {title}", f"{title}, now available")
    subjects = (f"Just in: {title}", f"New arrival: {title}", f"{title} has landed")
    return Campaign(
        headline=clip_words(headlines[variant % 3], 80),
        email_subject=clip_words(subjects[variant % 3], 70),
        email_body=_email_body(brief, listing, lead),
        social_posts=_social_posts(brief, listing, lead),
    )


def _description(brief: ProductBrief) -> str:
    text = brief.description or _introduction(brief)
    choices = " ".join(
        f"Choose your {name.lower()}: {', '.join(values)}." for name, values in brief.options
    )
    if choices:
        text = f"{as_sentence(text)} {choices}"
    return clip_words(text, _DESCRIPTION_MAX_CHARS)


def _introduction(brief: ProductBrief) -> str:
    kind = (brief.product_type or _category_leaf(brief.product_category) or "product").lower()
    source = f" from {brief.vendor}" if brief.vendor else ""
    return f"The {brief.title} is a {kind}{source}."


def _bullet_points(brief: ProductBrief) -> list[str]:
    bullets = [f"{name}: {', '.join(values[:6])}" for name, values in brief.options[:2]]
    kind = brief.product_type or _category_leaf(brief.product_category)
    if kind:
        bullets.append(f"Type: {kind}")
    if brief.vendor:
        bullets.append(f"Brand: {brief.vendor}")
    if brief.tags:
        bullets.append(f"Keywords: {', '.join(brief.tags[:4])}")
    missing = _MIN_BULLETS - len(bullets)
    if missing > 0:
        bullets.extend(clip_words(s, 120) for s in _sentences(brief.description, missing))
    bullets.extend(_FILLER_BULLETS[: max(0, _MIN_BULLETS - len(bullets))])
    return bullets[:_MAX_BULLETS]


def _tags(brief: ProductBrief) -> list[str]:
    candidates: Iterable[str] = (*brief.tags, brief.product_type, brief.vendor)
    tags = list(dict.fromkeys(t.lower() for t in candidates if t))[:_MAX_TAGS]
    return tags or [w.lower() for w in brief.title.split() if len(w) > 3][:3] or ["product"]


def _seo_title(brief: ProductBrief, title: str) -> str:
    if brief.seo_title:
        return clip_words(brief.seo_title, SEO_TITLE_MAX_CHARS)
    branded = f"{title} | {brief.vendor}"
    if brief.vendor and len(branded) <= SEO_TITLE_MAX_CHARS:
        return branded
    return clip_words(title, SEO_TITLE_MAX_CHARS)


def _email_body(brief: ProductBrief, listing: Listing, lead: str) -> str:
    highlights = "\n".join(f"- {point}" for point in listing.bullet_points[:3])
    sign_off = f"The {brief.vendor} team" if brief.vendor else "The team"
    return (
        f"Hello,\n\n{lead}\n\nHighlights:\n{highlights}\n\n"
        f"Find the {listing.title} in our store today.\n\n{sign_off}"
    )


def _social_posts(brief: ProductBrief, listing: Listing, lead: str) -> list[str]:
    hashtags = " ".join(tag for tag in map(_hashtag, listing.tags[:3]) if len(tag) > 1)
    kind = (brief.product_type or "favourite").lower()
    points = ". ".join(listing.bullet_points[:2])
    posts = (
        f"New in: {listing.title}. {_first_sentences(lead, 1)}".rstrip(),
        f"{points}. Discover the {listing.title}.",
        f"Looking for a new {kind}? Meet the {listing.title}.",
    )
    return [_with_hashtags(post, hashtags) for post in posts]


def _with_hashtags(post: str, hashtags: str) -> str:
    room = _SOCIAL_POST_MAX_CHARS - len(hashtags) - 1
    return f"{clip_words(post, room)} {hashtags}" if hashtags else clip_words(post, room)


def _hashtag(tag: str) -> str:
    return "#" + "".join(ch for ch in tag.title() if ch.isalnum())


def _sentences(text: str, count: int) -> list[str]:
    return [s for s in _SENTENCE_END.split(text, maxsplit=count)[:count] if s]


def _first_sentences(text: str, count: int) -> str:
    return " ".join(_sentences(text, count))


def _category_leaf(category: str) -> str:
    """'Apparel & Accessories > Clothing > Shirts' -> 'Shirts'."""
    return category.rsplit(">", 1)[-1].strip()


def _variant(handle: str) -> int:
    return zlib.crc32(handle.encode())


def _words(*texts: str) -> int:
    return sum(text.count(" ") + 1 for text in texts if text)


def _brief_words(brief: ProductBrief) -> int:
    return _words(brief.title, brief.description, brief.vendor, brief.product_type, *brief.tags)


def _listing_words(listing: Listing) -> int:
    return _words(
        listing.title,
        listing.description,
        listing.seo_title,
        listing.seo_description,
        *listing.bullet_points,
        *listing.tags,
    )


def _usage(prompt_words: int, output_words: int) -> TokenUsage:
    return TokenUsage(
        input_tokens=round(prompt_words * _TOKENS_PER_WORD),
        output_tokens=round(output_words * _TOKENS_PER_WORD),
    )


def _provenance(prompt_version: str, usage: TokenUsage) -> LLMProvenance:
    return LLMProvenance(model=OFFLINE_MODEL_NAME, prompt_version=prompt_version, usage=usage)
