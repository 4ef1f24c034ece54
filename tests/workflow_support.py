"""What the workflow and recovery tests share: products, settings for the stub servers,
waiting on a condition, and the invariants every event log must keep."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from actors.events import StepFailed, WorkflowAccepted, decode_event
from actors.models import Product, Variant
from storage.records import EventQuery, EventRecord
from swarm.settings import SwarmSettings
from tests.conftest import make_settings, read_store
from tests.servers.marketplace_stub import MarketplaceStub
from tests.servers.openai_stub import OpenAIStub
from tests.waiting import eventually

API_KEY = "sk-recovery-7c1d-not-a-real-key"
STEP_EVENTS = ("product_validated", "listing_generated", "upload_confirmed", "campaign_generated")


def product(handle: str = "wool-beanie", title: str = "Wool Beanie") -> Product:
    return Product(
        handle=handle,
        title=title,
        description="<p>Warm merino wool, one size.</p>",
        vendor="Northwind",
        product_type="Hats",
        tags=("winter", "wool"),
        variants=(Variant(sku=f"{handle}-1", price=Decimal("24.00"), barcode="4006381333931"),),
    )


def initial_state(
    task_id: str, agent_id: str = "agent-001", **product_fields: str
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "agent_id": agent_id,
        "product_data": product(**product_fields).model_dump(mode="json"),
    }


def server_settings(
    db_path: Path, llm: OpenAIStub, shop: MarketplaceStub, **overrides: Any
) -> SwarmSettings:
    """Settings that send LLM calls and uploads to the suite's own servers."""
    return make_settings(
        db_path,
        openai_api_key=SecretStr(API_KEY),
        openai_base_url=llm.base_url,
        marketplace_url=shop.url,
        step_attempts=1,
        **overrides,
    )


def llm_calls(llm: OpenAIStub, title: str) -> Counter[str]:
    """Paid LLM calls about the product titled `title`, by output schema."""
    return Counter(
        r.schema_name or ""
        for r in llm.requests
        if r.status == 200 and f'"title": "{title}"' in r.message_text()
    )


def all_events(db_path: Path) -> list[EventRecord]:
    rows = read_store(db_path, lambda s: s.query_events(EventQuery(limit=1_000_000)))
    return [record for _, record in rows]


def log_problems(events: Iterable[EventRecord], completed: Iterable[str]) -> list[str]:
    """What breaks the log's invariants; `completed` are workflow ids that must have ended.

    Every stream gapless from 1; no event id twice; no message accepted twice;
    each step of a completed workflow recorded exactly once; one completion each.
    """
    events = list(events)
    problems: list[str] = []
    seqs: dict[str, list[int]] = {}
    for e in events:
        seqs.setdefault(e.stream_id, []).append(e.seq)
    for stream, numbers in seqs.items():
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            problems.append(f"stream {stream} is not gapless: {sorted(numbers)}")
    ids = Counter(e.event_id for e in events)
    problems += [f"event {i} recorded {n} times" for i, n in ids.items() if n > 1]
    accepted = Counter(
        decoded.message_id
        for e in events
        if e.type == "workflow_accepted"
        and isinstance(
            decoded := decode_event(e.type, e.schema_version, e.payload), WorkflowAccepted
        )
    )
    problems += [f"message {m} accepted {n} times" for m, n in accepted.items() if n > 1]
    kinds = Counter((e.workflow_id, e.type) for e in events)
    for workflow_id in completed:
        for kind in (*STEP_EVENTS, "workflow_completed"):
            if kinds[(workflow_id, kind)] != 1:
                problems.append(
                    f"{workflow_id}: {kind} recorded {kinds[(workflow_id, kind)]} times"
                )
    return problems


def step_failures(events: Iterable[EventRecord]) -> list[StepFailed]:
    return [
        decoded
        for e in events
        if isinstance(decoded := decode_event(e.type, e.schema_version, e.payload), StepFailed)
    ]


async def eventually_async(
    condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0
) -> None:
    """`eventually` for a condition that has to ask something (the journal)."""
    await eventually(condition, timeout_s)
