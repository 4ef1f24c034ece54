"""`OpenAIWriter`: listing and campaign copy from any OpenAI-compatible endpoint.

Built on langchain-openai: `ChatOpenAI(...).bind_tools([Listing],
tool_choice="Listing", strict=True, parallel_tool_calls=False)`, which is what
`with_structured_output(Listing, method="function_calling", strict=True)`
binds. On the wire that is a chat completion with one strict tool
(`tools[0].function.strict: true`, `additionalProperties: false`, every field
required) and `tool_choice` naming it, so OpenAI's strict mode and plain
OpenAI-compatible servers (vLLM, Ollama, llama.cpp, LiteLLM...) both answer
with a tool call. The writer validates that tool call against the schema
itself instead of through `with_structured_output`'s parser chain: the
request is the same, and the chain's runnables (a parallel map, an assign, a
fallback, a JSON schema rebuilt for tracing metadata on every call) cost
about as much CPU as the client's own work: 5.8 against 3.0 ms per call,
measured here in one process (`scripts/bench.py --only llm` compares the call
rates of both paths). The
`json_schema` method is not used: langchain-openai hands a pydantic schema to
the OpenAI SDK's `parse()`, which validates inside the SDK, so output that
does not fit raises before the response's token usage can be recorded.

What it promises:

- the client is built lazily, on first use in the process: the writer is
  pickled to an agent's Ray actor and pickles only its config. Its connection
  pool is its own (not langchain-openai's process-wide cache) and belongs to
  the event loop that first used it; `aclose()` releases it;
- the API key lives in a `SecretStr` and appears in no repr, log or error;
- token usage comes from the response (`usage_metadata`) and the model from
  what the server reports (else the configured name), recorded with the prompt
  version in `LLMProvenance`;
- endpoint faults are retried here, explicitly (the OpenAI SDK's own hidden
  retries are off, so every status is seen): a 429 (and 408, 409) waits what
  the server asks in ``retry-after-ms`` / ``Retry-After`` (plus a little
  jitter, never less); a 5xx, a timeout
  or a connection error waits an exponential backoff with jitter
  (`swarm.backoff`). At most `max_retries` retries per call; a server asking
  for more than `max_retry_after_s` is not waited for here;
- output that fails validation (not the schema, or empty required copy) gets
  exactly one repair attempt: the same prompt plus a message naming what was
  wrong. Token usage of both calls is recorded;
- with `rate_limits` set, every request (retries and repairs included) first
  waits its turn at the swarm-wide limiter (`actors.rate_limiter`), with a
  token estimate from the prompt's size that is settled with the response's
  usage; with none set there is no extra call;
- every failure is an `LLMError` that says whether a retry may help (408,
  409, 429, 5xx, timeouts and connection errors may; other statuses and
  output still unfit after the repair may not), with the HTTP status and the
  server's `Retry-After`, so the agent's own retry can honour it.

Output is checked after parsing (the schema is kept plain for strict mode):
text is stripped, empty items dropped, required text must be non-empty, SEO
fields are clipped to their limits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import httpx2
import openai
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from actors.models import Campaign, Listing, Product, TokenUsage
from actors.ports import GeneratedCampaign, GeneratedListing, LLMError, LLMProvenance
from actors.rate_limiter import RateLimitClient, RateLimits
from swarm.backoff import after_retry_after, backoff_delay, retry_after_from_headers
from swarm.llm_prompts import (
    SEO_DESCRIPTION_MAX_CHARS,
    SEO_TITLE_MAX_CHARS,
    ChatPrompt,
    campaign_prompt,
    clip_words,
    listing_prompt,
)

log = logging.getLogger(__name__)

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_AUTH_STATUSES = frozenset({401, 403})
_REASON_MAX_CHARS = 200
_TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)
_CHARS_PER_TOKEN = 4
_ANSWER_TOKENS_ESTIMATE = 600
"""Tokens a listing or campaign answer is assumed to take until the usage says."""

_Output = TypeVar("_Output", bound=BaseModel)
_StructuredChain = Runnable[LanguageModelInput, BaseMessage]


class OpenAIWriterConfig(BaseModel):
    """How to reach the endpoint; built once by the settings, handed to the writer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    """An OpenAI-compatible base URL (ending in /v1); None means api.openai.com."""
    api_key: SecretStr
    timeout_s: float = Field(default=60, gt=0)
    max_retries: int = Field(default=2, ge=0)
    """Retries of a call that hit a 429, 5xx, timeout or connection error."""
    retry_backoff_s: float = Field(default=0.5, ge=0)
    """The first backoff (before jitter); it doubles with each retry."""
    retry_backoff_max_s: float = Field(default=20.0, ge=0)
    max_retry_after_s: float = Field(default=60.0, ge=0)
    """A longer `Retry-After` is not waited here: the error goes up, carrying it."""
    temperature: float = Field(default=0.2, ge=0, le=2)
    rate_limits: RateLimits = RateLimits()
    """Swarm-wide requests and tokens per minute (one limiter actor); 0: no limit."""


class _UnfitOutputError(Exception):
    """The model answered, but its output fails validation; `raw` is its answer."""

    def __init__(self, reason: str, raw: AIMessage | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


@dataclass(frozen=True)
class _Chains:
    listing: _StructuredChain
    campaign: _StructuredChain
    http_client: httpx2.AsyncClient


class OpenAIWriter:
    """A `ContentWriter` that asks an OpenAI-compatible chat model for structured copy."""

    def __init__(self, config: OpenAIWriterConfig) -> None:
        self._config = config
        self._chains: _Chains | None = None
        self._limiter = RateLimitClient(config.rate_limits)

    @property
    def model_name(self) -> str:
        return self._config.model

    async def write_listing(self, product: Product) -> GeneratedListing:
        prompt = listing_prompt(product)
        what = f"listing of product {product.product_id!r}"
        chain = self._structured().listing
        listing, raws = await self._ask(chain, prompt, Listing, _checked_listing, what)
        return GeneratedListing(listing=listing, provenance=self._provenance(raws, prompt))

    async def write_campaign(self, product: Product, listing: Listing) -> GeneratedCampaign:
        prompt = campaign_prompt(product, listing)
        what = f"campaign of product {product.product_id!r}"
        chain = self._structured().campaign
        campaign, raws = await self._ask(chain, prompt, Campaign, _checked_campaign, what)
        return GeneratedCampaign(campaign=campaign, provenance=self._provenance(raws, prompt))

    async def aclose(self) -> None:
        """Close the connection pool; the next call opens a new one."""
        chains, self._chains = self._chains, None
        if chains is not None:
            await chains.http_client.aclose()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the config only: the client is rebuilt in the receiving process."""
        return {"config": self._config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._config = state["config"]
        self._chains = None
        self._limiter = RateLimitClient(self._config.rate_limits)

    def __repr__(self) -> str:
        return f"OpenAIWriter(model={self._config.model!r}, base_url={self._config.base_url!r})"

    def _structured(self) -> _Chains:
        if self._chains is None:
            self._chains = _build_chains(self._config)
        return self._chains

    async def _ask(
        self,
        chain: _StructuredChain,
        prompt: ChatPrompt,
        schema: type[_Output],
        check: Callable[[_Output], _Output],
        what: str,
    ) -> tuple[_Output, list[AIMessage]]:
        """The checked output and every answer paid for; one repair if the output is unfit."""
        messages: list[BaseMessage] = [SystemMessage(prompt.system), HumanMessage(prompt.user)]
        result = await self._invoke(chain, messages, what)
        try:
            output, raw = self._answer(result, schema, check, what)
            return output, [raw]
        except _UnfitOutputError as first:
            log.warning("LLM %s: unfit output, one repair attempt: %s", what, first.reason)
            repair = [*messages, HumanMessage(_repair_request(schema, first.reason))]
            result = await self._invoke(chain, repair, what)
            try:
                output, raw = self._answer(result, schema, check, what)
            except _UnfitOutputError as second:
                message = f"LLM {what}: {second.reason} (still, after one repair attempt)"
                raise LLMError(self._scrubbed(message), retryable=False) from second
            return output, [r for r in (first.raw, raw) if r is not None]

    async def _invoke(
        self, chain: _StructuredChain, messages: list[BaseMessage], what: str
    ) -> BaseMessage:
        """One structured call, retrying endpoint faults as the module docstring says."""
        attempt = 0
        estimate = _estimated_tokens(messages)
        while True:
            await self._limiter.acquire(estimate)
            try:
                result = await chain.ainvoke(messages)
                self._limiter.settle(estimate, _used_tokens(result, estimate))
                return result
            except (openai.OpenAIError, *_TRANSPORT_ERRORS) as e:
                error = self._error(e, what)
                attempt += 1
                delay = self._retry_delay(error, attempt)
                if delay is None:
                    raise error from e
            log.warning(
                "%s; retry %d of %d in %.2fs", error, attempt, self._config.max_retries, delay
            )
            await asyncio.sleep(delay)

    def _retry_delay(self, error: LLMError, attempt: int) -> float | None:
        """How long to wait before retry number `attempt`; None: do not retry here."""
        config = self._config
        if not error.retryable or attempt > config.max_retries:
            return None
        base, cap = config.retry_backoff_s, config.retry_backoff_max_s
        if error.retry_after is not None:
            if error.retry_after > config.max_retry_after_s:
                return None
            return after_retry_after(error.retry_after, attempt, base, cap)
        return backoff_delay(attempt, base, cap)

    def _answer(
        self,
        raw: BaseMessage,
        schema: type[_Output],
        check: Callable[[_Output], _Output],
        what: str,
    ) -> tuple[_Output, AIMessage]:
        """The checked output of one answer, and the answer; `_UnfitOutputError` if unfit."""
        if not isinstance(raw, AIMessage):
            raise LLMError(f"LLM {what}: unexpected result from the model", retryable=False)
        try:
            return check(_parsed(raw, schema)), raw
        except _UnfitOutputError as e:
            raise _UnfitOutputError(e.reason, raw) from e

    def _provenance(self, raws: list[AIMessage], prompt: ChatPrompt) -> LLMProvenance:
        """Model and prompt version of the answer used; tokens of every answer paid for."""
        tokens = TokenUsage()
        for raw in raws:
            usage = raw.usage_metadata
            if usage:
                tokens = TokenUsage(
                    input_tokens=tokens.input_tokens + usage["input_tokens"],
                    output_tokens=tokens.output_tokens + usage["output_tokens"],
                )
        reported = raws[-1].response_metadata.get("model_name")
        model = reported if isinstance(reported, str) and reported else self._config.model
        return LLMProvenance(model=model, prompt_version=prompt.version, usage=tokens)

    def _error(self, error: Exception, what: str) -> LLMError:
        message, retryable = _describe(error, self._config)
        status = error.status_code if isinstance(error, openai.APIStatusError) else None
        retry_after = (
            retry_after_from_headers(error.response.headers)
            if isinstance(error, openai.APIStatusError)
            else None
        )
        return LLMError(
            self._scrubbed(f"LLM {what}: {message}"),
            retryable=retryable,
            status_code=status,
            retry_after=retry_after,
        )

    def _scrubbed(self, message: str) -> str:
        """`message` with the API key masked, whatever the server echoed back."""
        secret = self._config.api_key.get_secret_value()
        return message.replace(secret, "**********") if secret else message


def _build_chains(config: OpenAIWriterConfig) -> _Chains:
    http_client = openai.DefaultAsyncHttpxClient()
    model = ChatOpenAI(
        model=config.model,
        base_url=config.base_url,
        api_key=config.api_key,
        timeout=config.timeout_s,
        max_retries=0,  # the writer retries itself, seeing every status (see the docstring)
        temperature=config.temperature,
        http_async_client=http_client,
    )

    def structured(schema: type[BaseModel]) -> _StructuredChain:
        # what with_structured_output(method="function_calling", strict=True) binds
        return model.bind_tools(
            [schema], tool_choice=_tool_name(schema), strict=True, parallel_tool_calls=False
        )

    return _Chains(
        listing=structured(Listing), campaign=structured(Campaign), http_client=http_client
    )


def _estimated_tokens(messages: list[BaseMessage]) -> int:
    """A request's tokens before it is sent: the prompt's size and an answer allowance."""
    chars = sum(len(str(message.content)) for message in messages)
    return chars // _CHARS_PER_TOKEN + _ANSWER_TOKENS_ESTIMATE


def _used_tokens(raw: BaseMessage, estimate: int) -> int:
    """The tokens the response says it used; the estimate when it does not say."""
    usage = raw.usage_metadata if isinstance(raw, AIMessage) else None
    return usage["input_tokens"] + usage["output_tokens"] if usage else estimate


def _describe(error: Exception, config: OpenAIWriterConfig) -> tuple[str, bool]:
    """A short, key-free account of a failed call, and whether a retry may help."""
    if isinstance(error, openai.APIStatusError):
        return _describe_status(error)
    if isinstance(error, openai.APITimeoutError):
        return f"no answer within {config.timeout_s:g}s", True
    if isinstance(error, (openai.APIConnectionError, *_TRANSPORT_ERRORS)):
        return f"cannot reach the endpoint ({type(error).__name__})", True
    return f"{type(error).__name__}: {_short(str(error))}", False


def _describe_status(error: openai.APIStatusError) -> tuple[str, bool]:
    status = error.status_code
    retryable = status in _RETRYABLE_STATUSES or status >= 500
    code = f" ({error.code})" if error.code else ""
    if status in _AUTH_STATUSES:
        # The server's text may quote the key, even masked: leave it out.
        return f"HTTP {status}{code}: the endpoint refused the credentials", False
    return f"HTTP {status}{code}: {_short(_server_message(error))}", retryable


def _server_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return error.message


def _reason(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "output"
        return f"{error.error_count()} validation error(s), first at {where}: {first['msg']}"
    return f"{type(error).__name__}: {_short(str(error))}"


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_MAX_CHARS else line[: _REASON_MAX_CHARS - 3] + "..."


@functools.cache
def _tool_name(schema: type[BaseModel]) -> str:
    return str(convert_to_openai_tool(schema)["function"]["name"])


def _parsed(raw: AIMessage, schema: type[_Output]) -> _Output:
    """The schema's tool call in `raw`, validated (as langchain's `PydanticToolsParser`)."""
    name = _tool_name(schema)
    calls = [call for call in raw.tool_calls if call["name"] == name]
    if not calls:
        if any(call.get("name") == name for call in raw.invalid_tool_calls):
            reason = f"output does not fit {name}: its arguments are not a JSON object"
            raise _UnfitOutputError(reason, raw)
        raise _UnfitOutputError(f"the model returned no {name}", raw)
    try:
        return schema.model_validate(calls[0]["args"])
    except ValidationError as e:
        raise _UnfitOutputError(f"output does not fit {name}: {_reason(e)}", raw) from e


def _repair_request(schema: type[BaseModel], reason: str) -> str:
    return (
        f"Your previous answer could not be used: {reason}. Answer again with one call of "
        f"the {schema.__name__} tool, every field filled as its schema requires and the "
        "required text non-empty. The product data above is unchanged."
    )


def _checked_listing(listing: Listing) -> Listing:
    checked = Listing(
        title=listing.title.strip(),
        description=listing.description.strip(),
        bullet_points=_non_empty(listing.bullet_points),
        tags=_non_empty(listing.tags),
        seo_title=clip_words(listing.seo_title.strip(), SEO_TITLE_MAX_CHARS),
        seo_description=clip_words(listing.seo_description.strip(), SEO_DESCRIPTION_MAX_CHARS),
    )
    _require(title=checked.title, description=checked.description)
    _require(bullet_points=checked.bullet_points)
    return checked


def _checked_campaign(campaign: Campaign) -> Campaign:
    checked = Campaign(
        headline=campaign.headline.strip(),
        email_subject=campaign.email_subject.strip(),
        email_body=campaign.email_body.strip(),
        social_posts=_non_empty(campaign.social_posts),
    )
    _require(headline=checked.headline, email_subject=checked.email_subject)
    _require(email_body=checked.email_body, social_posts=checked.social_posts)
    return checked


def _non_empty(items: list[str]) -> list[str]:
    return [text for text in (item.strip() for item in items) if text]


def _require(**fields: str | list[str]) -> None:
    empty = [name for name, value in fields.items() if not value]
    if empty:
        raise _UnfitOutputError(f"empty {', '.join(empty)}")
