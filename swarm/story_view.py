"""`python -m swarm show WORKFLOW`: finding a workflow and printing its story.

WORKFLOW is a workflow id (`run-...:handle`) or a product id (handle): a
product id means that product's most recent workflow.
"""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from actors.llm_pricing import PriceTable
from storage.records import EventQuery
from storage.store import EventStore
from swarm.workflow_story import WorkflowStory, build_story


class WorkflowNotFoundError(LookupError):
    """No workflow (nor product) with the id given."""


async def load_story(store: EventStore, wanted: str, prices: PriceTable) -> WorkflowStory:
    workflow_id = await resolve_workflow(store, wanted)
    row = await store.workflow(workflow_id)
    records = await store.query_events(EventQuery(workflow_id=workflow_id, limit=100_000))
    return build_story(workflow_id, row, records, prices)


async def resolve_workflow(store: EventStore, wanted: str) -> str:
    """The workflow id for a workflow id or a product id (its latest workflow)."""
    if await store.workflow(wanted) is not None:
        return wanted
    if await store.query_events(EventQuery(workflow_id=wanted, limit=1)):
        return wanted
    runs = [w for w in await store.workflows(limit=10_000_000) if w.product_id == wanted]
    if runs:
        return max(runs, key=lambda w: w.updated_at).workflow_id
    raise WorkflowNotFoundError(
        f"no workflow or product {wanted!r} in the database "
        "(`python -m swarm events` lists workflow ids)"
    )


def render_story(story: WorkflowStory) -> Group:
    parts: list[RenderableType] = [_header(story), _timeline(story)]
    if story.listing is not None:
        listing = story.listing
        body = Text()
        body.append(f"{listing.title}\n", style="bold")
        body.append(f"{listing.description}\n")
        for bullet in listing.bullet_points:
            body.append(f"  • {bullet}\n")
        body.append(f"tags: {', '.join(listing.tags)}\n", style="dim")
        body.append(f"SEO: {listing.seo_title} — {listing.seo_description}", style="dim")
        parts.append(Panel(body, title="Listing (generate_listing)"))
    if story.upload is not None:
        u = story.upload
        reply = f"{u.marketplace}: product {u.product_id}, created={u.created}"
        parts.append(
            Panel(
                Text(reply + (f", revision {u.revision}" if u.revision else "")),
                title="Marketplace reply (confirm_upload)",
            )
        )
    if story.campaign is not None:
        c = story.campaign
        body = Text()
        body.append(f"{c.headline}\n", style="bold")
        body.append(f"Subject: {c.email_subject}\n\n{c.email_body}\n")
        for post in c.social_posts:
            body.append(f"  • {post}\n")
        parts.append(Panel(body, title="Campaign (generate_campaign)"))
    parts.append(_llm_table(story))
    return Group(*parts)


def _header(story: WorkflowStory) -> Panel:
    colour = {"completed": "green", "failed": "red"}.get(story.status, "yellow")
    text = Text()
    text.append(f"{story.title or story.product_id}  ", style="bold")
    text.append(story.status, style=colour)
    text.append(f" at {story.current_step}\n" if story.current_step else "\n")
    for failure in story.failures:
        text.append(f"failure: {failure}\n", style="red")
    for r in story.recoveries:
        resumed = (
            f"resumed {r.resumed_at - r.crashed_at:.2f} s later"
            if r.resumed_at is not None
            else "not resumed yet"
        )
        text.append(f"crash: {r.agent} at {r.step}; {resumed}\n", style="yellow")
    return Panel(text, title=escape(f"Workflow {story.workflow_id}"))


def _timeline(story: WorkflowStory) -> Table:
    table = Table(title="Steps, in commit order")
    for column in ("+s", "agent", "step", "what happened"):
        table.add_column(column, overflow="fold", justify="right" if column == "+s" else "left")
    start = story.lines[0].at if story.lines else 0.0
    style = {"step_failed": "red", "workflow_failed": "red", "crash_injected": "yellow"}
    for line in story.lines:
        table.add_row(
            f"{line.at - start:.3f}",
            line.agent,
            line.step,
            escape(line.text),
            style=style.get(line.type, ""),
        )
    if story.lines:
        first = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start))
        table.caption = f"first event at {first}"
    return table


def _llm_table(story: WorkflowStory) -> Table:
    table = Table(title="LLM calls")
    for column in ("step", "agent", "model", "prompt"):
        table.add_column(column)
    for column in ("input tokens", "output tokens", "cost"):
        table.add_column(column, justify="right")
    for e in story.llm:
        cost = f"${e.cost_usd:.6f}" if e.priced else "unpriced"
        table.add_row(
            e.step,
            e.agent,
            escape(e.model),
            escape(e.prompt_version),
            str(e.input_tokens),
            str(e.output_tokens),
            cost,
        )
    tokens_in, tokens_out = story.tokens
    table.caption = (
        f"{len(story.llm)} calls, {tokens_in} + {tokens_out} tokens, ${story.cost_usd:.6f}"
    )
    return table
