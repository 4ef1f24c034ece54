"""A run against an LLM endpoint that throttles and fails: calls, 429s, 5xx, wall time.

    python scripts/throttled_run.py [--rpm 600] [--retry-after 1] [--fail-every 10]

Starts the suite's OpenAI-compatible stub on 127.0.0.1 with a rate limit
(429 with `Retry-After` past `--rpm` requests a minute, counted in a 1 s
window) and a 503 on every `--fail-every`-th request, then runs the bundled
sample catalog through the swarm (embedded Ray, langchain-openai writer,
local marketplace, a fresh database in a temp dir) and prints what the stub
saw and how the products ended.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import ray
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.coordinator import FaultSettings
from swarm.feeds import parse_feed
from swarm.run import new_run_id, submit_products, summarize, wait_for_run
from swarm.runtime import connect, coordinator, journal, start_swarm, stop_swarm
from swarm.settings import SAMPLE_CATALOG, SwarmSettings
from tests.servers.openai_stub import OpenAIStub

API_KEY = "sk-throttled-run-local-only"


def fail_every(stub: OpenAIStub, n: int, stop: threading.Event) -> None:
    """Keep one 503 scripted for every `n` requests the stub receives."""
    scripted = 0
    while not stop.wait(0.05):
        due = stub.total_calls // n
        if due > scripted:
            stub.fail_next(due - scripted, status=503)
            scripted = due


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=int, default=600, help="requests a minute before 429s")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of a 429")
    parser.add_argument("--fail-every", type=int, default=10, help="a 503 every N requests")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    products = list(parse_feed(SAMPLE_CATALOG).products)
    stop = threading.Event()
    with (
        tempfile.TemporaryDirectory(prefix="swarm-throttled-") as tmp,
        OpenAIStub(expected_api_key=API_KEY) as stub,
    ):
        stub.rate_limit(max(1, args.rpm // 60), per_s=1.0, retry_after_s=args.retry_after)
        feeder = threading.Thread(target=fail_every, args=(stub, args.fail_every, stop))
        feeder.start()
        settings = SwarmSettings(
            db_path=Path(tmp) / "throttled.db",
            openai_api_key=SecretStr(API_KEY),
            openai_base_url=stub.base_url,
            marketplace_url=None,
        )
        connect("local")
        supervisor = start_swarm(settings, detached=False)
        try:
            run_id = new_run_id()
            began = time.perf_counter()
            ids = submit_products(coordinator(), run_id, products, FaultSettings(), 100)
            wait_for_run(journal(), run_id, len(ids), timeout_s=args.timeout)
            wall = time.perf_counter() - began
            summary = summarize(journal(), run_id, len(ids), wall)
        finally:
            stop.set()
            feeder.join()
            stop_swarm(supervisor)
            ray.shutdown()
        statuses = Counter(r.status for r in stub.requests)
    print(
        f"{len(products)} products: {summary.completed} completed, {summary.failed} failed "
        f"in {wall:.1f} s wall time"
    )
    print(
        f"LLM calls {stub.total_calls}: {statuses[200]} answered (paid), {statuses[429]} x 429 "
        f"(Retry-After {args.retry_after:g} s), {statuses[503]} x 503; limit {args.rpm}/min"
    )
    reasons = Counter(step for _, step, _ in summary.failures)
    print(f"failed by step: {dict(reasons)}")


if __name__ == "__main__":
    main()
