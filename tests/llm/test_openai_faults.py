"""`OpenAIWriter` against an endpoint that throttles, fails and answers badly, over real HTTP.

The writer retries endpoint faults itself (the SDK's hidden retries are off,
so the stub counts every call): a 429 waits what `Retry-After` asks, a 5xx or
a timeout waits an exponential backoff with jitter, at most `max_retries`
times; output that fails validation gets exactly one repair attempt.
"""

from __future__ import annotations

import json
import pickle
import random
import time

import pytest

from actors.models import Product
from actors.ports import LLMError
from actors.steps import with_retries
from swarm.backoff import after_retry_after, backoff_delay, retry_after_from_headers
from swarm.llm_openai import OpenAIWriter, OpenAIWriterConfig
from tests.llm.test_openai_writer import (
    STUB_LISTING,
    listing_failure,
    listing_reply,
    run,
    write_listing,
)
from tests.servers.openai_stub import OpenAIStub


def _writer(config: OpenAIWriterConfig, **changes: object) -> OpenAIWriter:
    defaults: dict[str, object] = {"retry_backoff_s": 0.01, "retry_backoff_max_s": 0.05}
    return OpenAIWriter(config.model_copy(update=defaults | changes))


def test_rate_limited_call_waits_the_retry_after_the_server_asks(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    openai_stub.fail_next(1, status=429, retry_after_s=1.0)
    began = time.monotonic()

    generated = write_listing(_writer(writer_config, max_retries=1), product)

    assert time.monotonic() - began >= 0.95  # a lower bound: never sooner than asked
    assert generated.listing == STUB_LISTING
    assert [r.status for r in openai_stub.requests] == [429, 200]


def test_retry_after_longer_than_the_limit_is_handed_up_not_waited(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    openai_stub.fail_next(1, status=429, retry_after_s=30.0)

    error = listing_failure(_writer(writer_config, max_retries=3, max_retry_after_s=5), product)

    assert (error.retryable, error.status_code, error.retry_after) == (True, 429, 30.0)
    assert openai_stub.total_calls == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_until_an_answer(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product, status: int
) -> None:
    openai_stub.set_status_sequence([status, status, 200])

    generated = write_listing(_writer(writer_config, max_retries=2), product)

    assert generated.listing == STUB_LISTING
    assert (openai_stub.total_calls, openai_stub.paid_calls) == (3, 1)


def test_retries_are_bounded_and_the_last_status_is_reported(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    openai_stub.fail_next(10, status=503)

    error = listing_failure(_writer(writer_config, max_retries=2), product)

    assert openai_stub.total_calls == 3
    assert (error.retryable, error.status_code) == (True, 503)
    assert "HTTP 503" in str(error)


def test_without_retries_each_fault_is_one_call(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    openai_stub.fail_next(1, status=500)

    listing_failure(_writer(writer_config, max_retries=0), product)

    assert openai_stub.total_calls == 1


def test_client_errors_are_not_retried(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    openai_stub.fail_next(1, status=400)

    error = listing_failure(_writer(writer_config, max_retries=3), product)

    assert (error.retryable, error.status_code, openai_stub.total_calls) == (False, 400, 1)


def test_timeouts_are_retried_within_the_bound(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    openai_stub.delay_s = 5.0

    error = listing_failure(_writer(writer_config, max_retries=1, timeout_s=0.3), product)

    assert openai_stub.wait_for_calls(2, timeout_s=5)
    assert error.retryable is True
    assert "no answer within 0.3s" in str(error)
    assert openai_stub.total_calls == 2


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt, step in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 20.0), (200, 20.0)]:
        draws = [backoff_delay(attempt, 0.5, 20.0, rng) for _ in range(50)]
        assert all(step / 2 <= d <= step for d in draws), (attempt, draws)
        assert len(set(draws)) > 1  # jittered: concurrent callers spread out


def test_waits_after_a_retry_after_are_never_shorter_and_spread_out() -> None:
    rng = random.Random(3)
    draws = [after_retry_after(1.0, 1, 0.5, 20.0, rng) for _ in range(50)]
    assert all(1.0 <= d <= 1.5 for d in draws)
    assert len(set(draws)) > 1


def test_retry_after_is_read_from_milliseconds_first_then_seconds() -> None:
    assert retry_after_from_headers({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert retry_after_from_headers({"retry-after": "3"}) == 3.0
    assert retry_after_from_headers({"retry-after": "soon"}) is None
    assert retry_after_from_headers({}) is None


def test_output_that_fails_validation_is_repaired_once(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    openai_stub.fixed_usage = (100, 10)
    openai_stub.reply_raw_next(json.dumps({"title": 7}))

    generated = write_listing(_writer(writer_config), product)

    assert generated.listing == STUB_LISTING
    first, repair = openai_stub.requests
    assert repair.message_text("user").startswith(first.message_text("user"))
    assert "could not be used: output does not fit Listing" in repair.message_text("user")
    # both answers were paid for, and both are on the ledger
    assert (generated.provenance.usage.input_tokens, generated.provenance.usage.output_tokens) == (
        200,
        20,
    )


def test_empty_required_copy_is_repaired_once(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    openai_stub.reply_raw_next(listing_reply(title=" ", bullet_points=[]))

    generated = write_listing(_writer(writer_config), product)

    assert generated.listing == STUB_LISTING
    assert "empty title" in openai_stub.requests[1].message_text("user")


def test_there_is_exactly_one_repair_attempt(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    openai_stub.reply_raw_next("not json at all", n=5)

    error = listing_failure(_writer(writer_config, max_retries=3), product)

    assert openai_stub.total_calls == 2
    assert error.retryable is False
    assert "after one repair attempt" in str(error)


def test_the_agents_retry_honours_the_retry_after_of_the_llm(
    writer_config: OpenAIWriterConfig, openai_stub: OpenAIStub, product: Product
) -> None:
    writer = _writer(writer_config, max_retries=0)
    openai_stub.fail_next(1, status=429, retry_after_s=1.0)
    began = time.monotonic()

    generated = run(
        writer,
        lambda: with_retries(lambda: writer.write_listing(product), attempts=2, backoff_s=0),
    )

    assert time.monotonic() - began >= 0.95
    assert generated.listing == STUB_LISTING


def test_llm_error_keeps_status_and_retry_after_through_pickling() -> None:
    error = LLMError("LLM listing: HTTP 429", retryable=True, status_code=429, retry_after=2.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.retryable, copy.status_code, copy.retry_after) == (
        "LLM listing: HTTP 429",
        True,
        429,
        2.5,
    )
