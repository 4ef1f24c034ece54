"""`python -m swarm export`: a run's generated listings and campaigns, for the vendor.

`csv` writes Shopify's product import format, so the file imports into a
Shopify store as is: the classic template's column names, one row per
variant (the product's own columns on its first row only), images on the
variant rows in order and extra rows (Handle, Image Src, Image Position) for
images beyond the variants, `Title`/`Default Title` as the option of a
product without options. The text is the LLM's (title, body, tags, SEO);
the facts are the vendor's (prices, SKUs, barcodes, options, inventory,
images). Shopify's product CSV has no place for campaign copy, so the
campaigns go to a second CSV next to it (`<name>-campaigns.csv`).

`jsonl` writes one JSON object per product: the marketplace listing, the
campaign, the workflow's status and its LLM tokens and cost.

Every workflow of the run with a generated listing is exported, in feed order.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Iterable, Sequence
from typing import TextIO

from actors.coordinator import run_prefix
from actors.events import CampaignGenerated, ListingGenerated, WorkflowSubmitted
from actors.llm_pricing import PriceTable
from actors.models import Campaign, FrozenModel, MarketplaceListing, Product, Variant
from storage.records import EventQuery, EventRecord
from storage.store import EventStore
from swarm.ledger import LedgerEntry, ledger_entry
from swarm.workflow_story import decode

SHOPIFY_COLUMNS = (
    *("Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags"),
    *("Published", "Option1 Name", "Option1 Value", "Option2 Name", "Option2 Value"),
    *("Option3 Name", "Option3 Value", "Variant SKU", "Variant Inventory Tracker"),
    *("Variant Inventory Qty", "Variant Inventory Policy", "Variant Fulfillment Service"),
    *("Variant Price", "Variant Compare At Price", "Variant Barcode", "Image Src"),
    *("Image Position", "Image Alt Text", "Gift Card", "SEO Title", "SEO Description"),
    "Status",
)
"""Columns of Shopify's product import template that the export fills, in its order."""

CAMPAIGN_COLUMNS = ("Handle", "Title", "Headline", "Email Subject", "Email Body", "Social Posts")
_NO_OPTION = ("Title", "Default Title")
_MAX_OPTIONS = 3


class ExportError(Exception):
    """Nothing to export, or a run that does not exist."""


class ExportedProduct(FrozenModel):
    workflow_id: str
    run_id: str
    status: str
    product: Product
    listing: MarketplaceListing
    campaign: Campaign | None = None
    llm: tuple[LedgerEntry, ...] = ()


async def latest_run(store: EventStore) -> str:
    rows = await store.query_events(
        EventQuery(type="workflow_submitted", newest_first=True, limit=1)
    )
    event = decode(rows[0][1]) if rows else None
    if not isinstance(event, WorkflowSubmitted):
        raise ExportError("no run in the database yet: `python -m swarm run` first")
    return event.run_id


async def load_run_outputs(
    store: EventStore, run_id: str, prices: PriceTable
) -> list[ExportedProduct]:
    """The run's products that have a generated listing, in feed order."""

    async def of_type(kind: str) -> list[EventRecord]:
        query = EventQuery(workflow_prefix=run_prefix(run_id), type=kind, limit=10_000_000)
        return [record for _, record in await store.query_events(query)]

    submitted = await of_type("workflow_submitted")
    if not submitted:
        raise ExportError(f"no run {run_id!r} in the database")
    products: dict[str, Product] = {}
    for record in submitted:
        event = decode(record)
        if isinstance(event, WorkflowSubmitted):
            products.setdefault(record.workflow_id, event.product)
    listings: dict[str, MarketplaceListing] = {}
    campaigns: dict[str, Campaign] = {}
    llm: dict[str, list[LedgerEntry]] = {}
    for record in [*await of_type("listing_generated"), *await of_type("campaign_generated")]:
        event, product = decode(record), products.get(record.workflow_id)
        if isinstance(event, ListingGenerated) and product is not None:
            listings[record.workflow_id] = MarketplaceListing.build(product, event.listing)
        elif isinstance(event, CampaignGenerated):
            campaigns[record.workflow_id] = event.campaign
        entry = ledger_entry(record, prices)
        if entry is not None:
            llm.setdefault(record.workflow_id, []).append(entry)
    statuses = {w.workflow_id: w.status for w in await store.workflows(run_id, limit=10_000_000)}
    exported = [
        ExportedProduct(
            workflow_id=workflow_id,
            run_id=run_id,
            status=statuses.get(workflow_id, "unknown"),
            product=product,
            listing=listings[workflow_id],
            campaign=campaigns.get(workflow_id),
            llm=tuple(llm.get(workflow_id, ())),
        )
        for workflow_id, product in products.items()
        if workflow_id in listings
    ]
    # chunks of a feed are submitted concurrently: the feed's own row order is the order
    return sorted(exported, key=lambda e: e.product.source_row or 0)


# --- Shopify product CSV --------------------------------------------------------------
def write_shopify_csv(items: Iterable[ExportedProduct], out: TextIO) -> int:
    """Write the products in Shopify's import format; returns the number of rows."""
    writer = csv.DictWriter(out, fieldnames=SHOPIFY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for item in items:
        for row in shopify_rows(item):
            writer.writerow(row)
            count += 1
    return count


def shopify_rows(item: ExportedProduct) -> list[dict[str, str]]:
    """One product's rows: its variants, then its images beyond the variants."""
    product, listing = item.product, item.listing
    options = list(product.option_names[:_MAX_OPTIONS])
    variants: Sequence[Variant | None] = product.variants or (None,)
    rows = [_variant_row(listing.handle, options, v) for v in variants]
    for index, image in enumerate(listing.images):
        if index == len(rows):
            rows.append({"Handle": listing.handle})
        rows[index].update(
            {"Image Src": image, "Image Position": str(index + 1), "Image Alt Text": listing.title}
        )
    rows[0].update(_product_columns(product, listing, options))
    return rows


def _product_columns(
    product: Product, listing: MarketplaceListing, options: list[str]
) -> dict[str, str]:
    columns = {
        "Title": listing.title,
        "Body (HTML)": body_html(listing),
        "Vendor": product.vendor,
        "Product Category": product.product_category,
        "Type": product.product_type,
        "Tags": ", ".join(tag.replace(",", " ").strip() for tag in listing.tags),
        "Published": "TRUE" if product.published else "FALSE",
        "Gift Card": "FALSE",
        "SEO Title": listing.seo_title,
        "SEO Description": listing.seo_description,
        "Status": product.status,
    }
    names = options or [_NO_OPTION[0]]
    for slot, name in enumerate(names, start=1):
        columns[f"Option{slot} Name"] = name
    return columns


def _variant_row(handle: str, options: list[str], variant: Variant | None) -> dict[str, str]:
    row = {"Handle": handle}
    if variant is None:
        return row
    if options:
        for slot, name in enumerate(options, start=1):
            row[f"Option{slot} Value"] = variant.options.get(name, "")
    else:
        row["Option1 Value"] = _NO_OPTION[1]
    tracked = variant.inventory_qty is not None
    row.update(
        {
            "Variant SKU": variant.sku,
            "Variant Inventory Tracker": "shopify" if tracked else "",
            "Variant Inventory Qty": str(variant.inventory_qty) if tracked else "",
            "Variant Inventory Policy": "deny",
            "Variant Fulfillment Service": "manual",
            "Variant Price": str(variant.price),
            "Variant Compare At Price": _money(variant.compare_at_price),
            "Variant Barcode": variant.barcode,
        }
    )
    return row


def _money(value: object) -> str:
    return "" if value is None else str(value)


def body_html(listing: MarketplaceListing) -> str:
    """The listing's description and bullet points as the HTML of Shopify's Body (HTML)."""
    body = f"<p>{html.escape(listing.description)}</p>"
    if listing.bullet_points:
        items = "".join(f"<li>{html.escape(b)}</li>" for b in listing.bullet_points)
        body += f"<ul>{items}</ul>"
    return body


def write_campaigns_csv(items: Iterable[ExportedProduct], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=CAMPAIGN_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for item in items:
        if item.campaign is None:
            continue
        c = item.campaign
        writer.writerow(
            {
                "Handle": item.listing.handle,
                "Title": item.listing.title,
                "Headline": c.headline,
                "Email Subject": c.email_subject,
                "Email Body": c.email_body,
                "Social Posts": "\n".join(c.social_posts),
            }
        )
        count += 1
    return count


# --- JSON lines -------------------------------------------------------------------------
def write_jsonl(items: Iterable[ExportedProduct], out: TextIO) -> int:
    count = 0
    for item in items:
        record = {
            "workflow_id": item.workflow_id,
            "run_id": item.run_id,
            "status": item.status,
            "product_id": item.listing.product_id,
            "listing": item.listing.model_dump(mode="json"),
            "campaign": item.campaign.model_dump(mode="json") if item.campaign else None,
            "llm": {
                "calls": len(item.llm),
                "input_tokens": sum(e.input_tokens for e in item.llm),
                "output_tokens": sum(e.output_tokens for e in item.llm),
                "cost_usd": sum(e.cost_usd for e in item.llm),
                "models": sorted({e.model for e in item.llm}),
            },
        }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
