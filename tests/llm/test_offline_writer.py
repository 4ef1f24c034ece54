"""`OfflineWriter`: deterministic copy from the product alone.

What it promises: the same product gives the same copy; every field is filled
(3 to 5 bullet points, 3 social posts); SEO title <= 60 and SEO description
<= 160 characters; no HTML and no price, SKU or barcode in the output; usage
estimated so the ledger has numbers.
"""

from __future__ import annotations

import asyncio
import pickle
import re
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.models import Campaign, Listing, Product, Variant
from actors.ports import ContentWriter, GeneratedCampaign, GeneratedListing
from swarm.llm_offline import OfflineWriter
from swarm.llm_prompts import PROMPT_VERSION_CAMPAIGN, PROMPT_VERSION_LISTING

HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>")


def listing_of(product: Product) -> GeneratedListing:
    return asyncio.run(OfflineWriter().write_listing(product))


def campaign_of(product: Product, listing: Listing) -> GeneratedCampaign:
    return asyncio.run(OfflineWriter().write_campaign(product, listing))


def texts_of(copy: Listing | Campaign) -> list[str]:
    """Every string in a piece of copy."""
    texts: list[str] = []
    for value in copy.model_dump().values():
        texts.extend(value if isinstance(value, list) else [value])
    return texts


def test_is_a_content_writer() -> None:
    assert isinstance(OfflineWriter(), ContentWriter)
    assert OfflineWriter().model_name == "offline-v1"


def test_same_product_gives_the_same_listing(product: Product) -> None:
    assert listing_of(product) == listing_of(product.model_copy())


def test_same_product_and_listing_give_the_same_campaign(product: Product) -> None:
    listing = listing_of(product).listing

    assert campaign_of(product, listing) == campaign_of(product, listing.model_copy())


def test_listing_fields_are_filled_from_the_product(product: Product) -> None:
    listing = listing_of(product).listing

    assert listing.title == "Linen Camp Shirt"
    assert "breathable linen shirt for hot days & warm nights" in listing.description
    assert 3 <= len(listing.bullet_points) <= 5
    assert "Size: M, L" in listing.bullet_points
    assert {"summer", "linen", "menswear", "shirts"} <= set(listing.tags)
    assert listing.seo_title
    assert listing.seo_description


def test_bare_product_still_gets_three_bullet_points_and_a_tag() -> None:
    listing = listing_of(Product(handle="widget", title="Widget")).listing

    assert listing.description
    assert len(listing.bullet_points) == 3
    assert listing.tags


def test_campaign_fields_are_filled(product: Product) -> None:
    campaign = campaign_of(product, listing_of(product).listing).campaign

    assert "Linen Camp Shirt" in campaign.headline
    assert "Linen Camp Shirt" in campaign.email_subject
    assert "Linen Camp Shirt" in campaign.email_body
    assert len(campaign.social_posts) == 3
    assert all(0 < len(post) <= 280 for post in campaign.social_posts)


def test_seo_title_and_description_fit_their_limits(product: Product) -> None:
    wordy = product.model_copy(
        update={"title": "Extraordinarily " * 12 + "Shirt", "description": "Linen. " * 100}
    )

    listing = listing_of(wordy).listing

    assert len(listing.seo_title) <= 60
    assert len(listing.seo_description) <= 160


def test_output_contains_no_html(product: Product) -> None:
    tricky = product.model_copy(
        update={
            "title": "<b>Linen</b> Shirt",
            "description": product.description + "&lt;img src=x onerror=alert(1)&gt;",
            "vendor": "<i>Acme</i>",
            "tags": ("<em>summer</em>",),
        }
    )
    listing = listing_of(tricky).listing
    campaign = campaign_of(tricky, listing).campaign

    for text in texts_of(listing) + texts_of(campaign):
        assert not HTML_TAG.search(text), text
        assert "alert" not in text


def test_output_contains_no_price_sku_or_barcode(product: Product) -> None:
    listing = listing_of(product).listing
    campaign = campaign_of(product, listing).campaign

    for text in texts_of(listing) + texts_of(campaign):
        for fact in ("59.90", "LCS-M-SAND", "4006381333931"):
            assert fact not in text


def test_shopify_default_title_option_is_not_a_bullet_point() -> None:
    single = Product(
        handle="mug",
        title="Mug",
        option_names=("Title",),
        variants=(Variant(price=Decimal("9"), options={"Title": "Default Title"}),),
    )

    assert not any("Default Title" in b for b in listing_of(single).listing.bullet_points)


def test_usage_is_estimated_from_word_counts(product: Product) -> None:
    usage = listing_of(product).provenance.usage

    assert usage.input_tokens > 0
    assert usage.output_tokens > 0


def test_provenance_names_the_offline_model_and_prompt_versions(product: Product) -> None:
    listing = listing_of(product)
    campaign = campaign_of(product, listing.listing)

    assert listing.provenance.model == campaign.provenance.model == "offline-v1"
    assert listing.provenance.prompt_version == PROMPT_VERSION_LISTING
    assert campaign.provenance.prompt_version == PROMPT_VERSION_CAMPAIGN


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    title=st.text(min_size=1, max_size=200),
    description=st.text(max_size=600),
    vendor=st.text(max_size=40),
)
def test_any_product_text_gives_valid_copy(title: str, description: str, vendor: str) -> None:
    product = Product(handle="any", title=title, description=description, vendor=vendor)

    listing = listing_of(product).listing
    campaign = campaign_of(product, listing).campaign

    assert listing.title
    assert listing.description
    assert 3 <= len(listing.bullet_points) <= 5
    assert len(listing.seo_title) <= 60
    assert len(listing.seo_description) <= 160
    assert len(campaign.social_posts) == 3
    for text in texts_of(listing) + texts_of(campaign):
        assert not HTML_TAG.search(text), text


def test_pickled_writer_writes_the_same_copy(product: Product) -> None:
    copy = pickle.loads(pickle.dumps(OfflineWriter()))

    assert asyncio.run(copy.write_listing(product)) == listing_of(product)
