"""Benchmark section `llm`: the swarm's LLM calls/s against bare `ChatOpenAI` calls.

The suite's OpenAI-compatible server (tests/servers/openai_stub.py) runs in its
own process and answers every request after `--llm-delay-s` (0.2 s). Then,
alternating, `--repeat` times:

- bare: `ChatOpenAI(...).with_structured_output(schema, method="function_calling",
  strict=True, include_raw=True).ainvoke(...)`, half listings and half
  campaigns with the writer's prompts, 64 calls in flight in each of as many
  processes as the machine has cores;
- bare writer: the same, through the swarm's `OpenAIWriter` (the same request
  on the wire, bound with `bind_tools` and parsed by the writer), so the swarm's
  own overhead shows apart from the client's;
- swarm: the same number of calls made by the swarm (a listing and a campaign
  per product) for `--llm-products` products, durable as always.

All count answered calls per second of wall time; the target ratio is
swarm/bare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench_common import median, running_swarm, runs, synthetic_products, timed_run
from pydantic import SecretStr

from swarm.settings import SwarmSettings

STUB = Path(__file__).resolve().parent.parent / "tests" / "servers" / "openai_stub.py"
BARE_CONCURRENCY = 64
API_KEY = "sk-bench-not-a-real-key"


def _start_stub(delay_s: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(STUB), "--port", "0", "--delay-s", str(delay_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("OpenAI stub at "):
        proc.kill()
        raise RuntimeError(f"the OpenAI stub did not start: {line!r}")
    return proc, line.removeprefix("OpenAI stub at ")


async def _drive(
    call: Callable[[int], Awaitable[None]], calls: int, concurrency: int
) -> tuple[int, float, float]:
    """`calls` calls, `concurrency` in flight, after a warm-up: (calls, began, ended)."""
    await asyncio.gather(*(call(i) for i in range(4)))  # connect and warm up
    next_call = 0

    async def worker() -> None:
        nonlocal next_call
        while next_call < calls:
            next_call += 1
            await call(next_call)

    began = time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls, began, time.time()


async def _bare(base_url: str, calls: int, concurrency: int) -> tuple[int, float, float]:
    import openai
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    from actors.models import Campaign, Listing
    from swarm.llm_offline import OfflineWriter
    from swarm.llm_prompts import campaign_prompt, listing_prompt

    # a client of this event loop (langchain-openai would reuse one cached per process)
    http_client = openai.DefaultAsyncHttpxClient()
    chat = ChatOpenAI(
        model="gpt-4o-mini", base_url=base_url, api_key=SecretStr(API_KEY), timeout=60,
        max_retries=2, temperature=0.2, http_async_client=http_client,
    )  # fmt: skip
    chains = [
        chat.with_structured_output(s, method="function_calling", strict=True, include_raw=True)
        for s in (Listing, Campaign)
    ]
    product = synthetic_products(1)[0]
    listing = (await OfflineWriter().write_listing(product)).listing
    prompts = [listing_prompt(product), campaign_prompt(product, listing)]
    messages = [[SystemMessage(p.system), HumanMessage(p.user)] for p in prompts]

    async def call(i: int) -> None:
        result = await chains[i % 2].ainvoke(messages[i % 2])
        if not isinstance(result, dict) or result.get("parsed") is None:
            raise RuntimeError(f"bare call got no parsed output: {result!r}")

    try:
        return await _drive(call, calls, concurrency)
    finally:
        await http_client.aclose()


async def _bare_writer(base_url: str, calls: int, concurrency: int) -> tuple[int, float, float]:
    from swarm.llm_offline import OfflineWriter
    from swarm.llm_openai import OpenAIWriter, OpenAIWriterConfig

    writer = OpenAIWriter(
        OpenAIWriterConfig(base_url=base_url, api_key=SecretStr(API_KEY), max_retries=2)
    )
    product = synthetic_products(1)[0]
    listing = (await OfflineWriter().write_listing(product)).listing

    async def call(i: int) -> None:
        if i % 2:
            await writer.write_campaign(product, listing)
        else:
            await writer.write_listing(product)

    try:
        return await _drive(call, calls, concurrency)
    finally:
        await writer.aclose()


def _bare_process(
    base_url: str, calls: int, concurrency: int, writer: bool
) -> tuple[int, float, float]:
    bare = _bare_writer if writer else _bare
    return asyncio.run(bare(base_url, calls, concurrency))


def _bare_rate(
    pool: ProcessPoolExecutor, procs: int, base_url: str, calls: int, writer: bool = False
) -> float:
    futures = [
        pool.submit(_bare_process, base_url, calls // procs, BARE_CONCURRENCY, writer)
        for _ in range(procs)
    ]
    results = [f.result() for f in futures]
    done = sum(r[0] for r in results)
    return done / (max(r[2] for r in results) - min(r[1] for r in results))


def run_llm(args: argparse.Namespace, tmp: Path) -> None:
    procs = os.cpu_count() or 2
    calls = 2 * args.llm_products
    stub, base_url = _start_stub(args.llm_delay_s)
    try:
        settings = SwarmSettings(
            db_path=tmp / "llm.db",
            product_agents=args.product_agents,
            marketing_agents=args.llm_marketing_agents,
            openai_api_key=SecretStr(API_KEY),
            openai_base_url=base_url,
            marketplace_url=None,
        )
        bare: list[float] = []
        bare_writer: list[float] = []
        swarm: list[float] = []
        context: Any = get_context("spawn")
        with (
            ProcessPoolExecutor(max_workers=procs, mp_context=context) as pool,
            running_swarm(settings),
        ):
            timed_run(settings, synthetic_products(40, prefix="llm-warmup"))
            for i in range(args.repeat):
                bare.append(_bare_rate(pool, procs, base_url, calls))
                bare_writer.append(_bare_rate(pool, procs, base_url, calls, writer=True))
                result = timed_run(
                    settings, synthetic_products(args.llm_products, prefix=f"llm{i}")
                )
                swarm.append(2 * result.products / result.wall_s)
    finally:
        stub.terminate()
        stub.wait(timeout=10)
    print(
        f"llm: swarm {median(swarm):.0f} LLM calls/s, bare ChatOpenAI {median(bare):.0f} calls/s: "
        f"swarm/bare = {median(swarm) / median(bare):.2f} (target >= 0.8; medians; runs "
        f"{runs(swarm)} / {runs(bare)}; server answers after {args.llm_delay_s:g} s, "
        f"{args.llm_products} products = {calls} calls; swarm: {args.product_agents} product + "
        f"{args.llm_marketing_agents} marketing agents; bare: {procs} processes x "
        f"{BARE_CONCURRENCY} in flight)"
    )
    print(
        f"llm: bare OpenAIWriter (the swarm's client path, no swarm) {median(bare_writer):.0f} "
        f"calls/s: swarm/bare writer = {median(swarm) / median(bare_writer):.2f} (the swarm's "
        f"own overhead; runs {runs(bare_writer)})"
    )
