"""The LLM rate limit holds across processes: writers in two Ray actors share one limiter.

The OpenAI stub records when each request arrived; the requests it saw must fit
the limiter's bucket (one second's burst, then the per-minute rate), give or
take one request for the time between a request's turn and its arrival.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import pytest
import ray

from actors.models import Product
from actors.rate_limiter import LIMITER_NAME, RateLimits, TokenBucket
from swarm.llm_openai import OpenAIWriter, OpenAIWriterConfig
from tests.servers.openai_stub import OpenAIStub

pytestmark = pytest.mark.timeout(120)
ARRIVAL_SLACK = 1
"""Requests a window may hold beyond the bucket: a request's turn comes before it arrives."""


@ray.remote(num_cpus=0)
class WriterHost:
    """An agent-like process holding a pickled writer."""

    def __init__(self, writer: OpenAIWriter) -> None:
        self.writer = writer

    async def write_listings(self, products: Sequence[Product]) -> int:
        await asyncio.gather(*(self.writer.write_listing(p) for p in products))
        return os.getpid()


def _limiter_exists() -> bool:
    named = ray.util.list_named_actors(all_namespaces=True)
    return any(actor["name"] == LIMITER_NAME for actor in named)


def test_without_limits_no_limiter_is_created(
    ray_local: None, openai_stub: OpenAIStub, writer_config: OpenAIWriterConfig, product: Product
) -> None:
    # first in this module: the module's Ray has no limiter from an earlier test
    host = WriterHost.remote(OpenAIWriter(writer_config))  # type: ignore[attr-defined]
    ray.get(host.write_listings.remote([product] * 3), timeout=60)
    assert openai_stub.paid_calls == 3
    assert not _limiter_exists()


def test_writers_in_two_processes_share_the_requests_per_minute_limit(
    ray_local: None, openai_stub: OpenAIStub, writer_config: OpenAIWriterConfig, product: Product
) -> None:
    limits = RateLimits(requests_per_minute=120)
    writer = OpenAIWriter(writer_config.model_copy(update={"rate_limits": limits}))
    hosts = [WriterHost.remote(writer) for _ in range(2)]  # type: ignore[attr-defined]
    pids = ray.get([h.write_listings.remote([product] * 4) for h in hosts], timeout=90)

    assert len(set(pids)) == 2
    assert os.getpid() not in pids
    assert _limiter_exists()
    arrivals = sorted(r.at for r in openai_stub.requests)
    assert len(arrivals) == 8
    assert openai_stub.paid_calls == 8
    bucket = TokenBucket(limits.requests_per_minute, now=0.0)  # burst 1.97, 1.97 per second
    for i in range(len(arrivals)):
        for j in range(i + 1, len(arrivals)):
            allowed = bucket.burst + bucket.rate * (arrivals[j] - arrivals[i]) + ARRIVAL_SLACK
            assert j - i + 1 <= allowed, f"requests {i}..{j} arrived within too short a time"
