"""`OpenAIWriter`: listing and campaign copy from any OpenAI-compatible endpoint.

Built on langchain-openai: `ChatOpenAI(...).with_structured_output(Listing,
method="function_calling", strict=True, include_raw=True)`. On the wire that
is a chat completion with one strict tool (`tools[0].function.strict: true`,
`additionalProperties: false`, every field required) and `tool_choice` naming
it, so OpenAI's strict mode and plain OpenAI-compatible servers (vLLM, Ollama,
llama.cpp, LiteLLM...) both answer with a tool call. The `json_schema` method
is not used: langchain-openai hands a pydantic schema to the OpenAI SDK's
`parse()`, which validates inside the SDK, so output that does not fit raises
past `include_raw` and the response's token usage is lost with it.

What it promises:

- the client is built lazily, on first use in the process: the writer is
  pickled to an agent's Ray actor and pickles only its config. Its connection
  pool is its own (not langchain-openai's process-wide cache) and belongs to
  the event loop that first used it; `aclose()` releases it;
- the API key lives in a `SecretStr` and appears in no repr, log or error;
- token usage comes from the response (`usage_metadata`) and the model from
  what the server reports (else the configured name), recorded with the prompt
  version in `LLMProvenance`;
- every failure is an `LLMError` that says whether a retry may help: 408, 409,
  429, 5xx, timeouts and connection errors may; other statuses, output that
  does not fit the schema and empty copy may not. The OpenAI SDK has already
  retried `max_retries` times (with backoff, honouring `Retry-After`) before
  an error reaches the caller.

Output is checked after parsing (the schema is kept plain for strict mode):
text is stripped, empty items dropped, required text must be non-empty, SEO
fields are clipped to their limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import httpx2
import openai
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from actors.models import Campaign, Listing, Product, TokenUsage
from actors.ports import GeneratedCampaign, GeneratedListing, LLMError, LLMProvenance
from swarm.llm_prompts import (
    SEO_DESCRIPTION_MAX_CHARS,
    SEO_TITLE_MAX_CHARS,
    ChatPrompt,
    campaign_prompt,
    clip_words,
    listing_prompt,
)

_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_AUTH_STATUSES = frozenset({401, 403})
_REASON_MAX_CHARS = 200
_TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)

_Output = TypeVar("_Output", bound=BaseModel)
_StructuredChain = Runnable[LanguageModelInput, dict[str, Any] | BaseModel]


class OpenAIWriterConfig(BaseModel):
    """How to reach the endpoint; built once by the settings, handed to the writer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    """An OpenAI-compatible base URL (ending in /v1); None means api.openai.com."""
    api_key: SecretStr
    timeout_s: float = Field(default=60, gt=0)
    max_retries: int = Field(default=2, ge=0)
    """Retries inside the OpenAI SDK (429, 5xx, timeouts) before an error is raised."""
    temperature: float = Field(default=0.2, ge=0, le=2)


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

    @property
    def model_name(self) -> str:
        return self._config.model

    async def write_listing(self, product: Product) -> GeneratedListing:
        prompt = listing_prompt(product)
        what = f"listing of product {product.product_id!r}"
        listing, raw = await self._ask(self._structured().listing, prompt, Listing, what)
        return GeneratedListing(
            listing=_checked_listing(listing, what), provenance=self._provenance(raw, prompt)
        )

    async def write_campaign(self, product: Product, listing: Listing) -> GeneratedCampaign:
        prompt = campaign_prompt(product, listing)
        what = f"campaign of product {product.product_id!r}"
        campaign, raw = await self._ask(self._structured().campaign, prompt, Campaign, what)
        return GeneratedCampaign(
            campaign=_checked_campaign(campaign, what), provenance=self._provenance(raw, prompt)
        )

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

    def __repr__(self) -> str:
        return f"OpenAIWriter(model={self._config.model!r}, base_url={self._config.base_url!r})"

    def _structured(self) -> _Chains:
        if self._chains is None:
            self._chains = _build_chains(self._config)
        return self._chains

    async def _ask(
        self, chain: _StructuredChain, prompt: ChatPrompt, schema: type[_Output], what: str
    ) -> tuple[_Output, AIMessage]:
        messages: list[BaseMessage] = [SystemMessage(prompt.system), HumanMessage(prompt.user)]
        try:
            result = await chain.ainvoke(messages)
        except (openai.OpenAIError, *_TRANSPORT_ERRORS) as e:
            raise self._error(e, what) from e
        return self._parsed(result, schema, what)

    def _parsed(
        self, result: dict[str, Any] | BaseModel, schema: type[_Output], what: str
    ) -> tuple[_Output, AIMessage]:
        if not isinstance(result, dict) or not isinstance(result.get("raw"), AIMessage):
            raise LLMError(f"LLM {what}: unexpected result from the model chain", retryable=False)
        error = result.get("parsing_error")
        if error is not None:
            message = f"LLM {what}: output does not fit {schema.__name__}: {_reason(error)}"
            raise LLMError(self._scrubbed(message), retryable=False) from error
        parsed = result.get("parsed")
        if not isinstance(parsed, schema):
            message = f"LLM {what}: the model returned no {schema.__name__}"
            raise LLMError(message, retryable=False)
        return parsed, result["raw"]

    def _provenance(self, raw: AIMessage, prompt: ChatPrompt) -> LLMProvenance:
        usage = raw.usage_metadata
        tokens = (
            TokenUsage(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"])
            if usage
            else TokenUsage()
        )
        reported = raw.response_metadata.get("model_name")
        model = reported if isinstance(reported, str) and reported else self._config.model
        return LLMProvenance(model=model, prompt_version=prompt.version, usage=tokens)

    def _error(self, error: Exception, what: str) -> LLMError:
        message, retryable = _describe(error, self._config)
        return LLMError(self._scrubbed(f"LLM {what}: {message}"), retryable=retryable)

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
        max_retries=config.max_retries,
        temperature=config.temperature,
        http_async_client=http_client,
    )

    def structured(schema: type[BaseModel]) -> _StructuredChain:
        return model.with_structured_output(
            schema, method="function_calling", strict=True, include_raw=True
        )

    return _Chains(
        listing=structured(Listing), campaign=structured(Campaign), http_client=http_client
    )


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


def _checked_listing(listing: Listing, what: str) -> Listing:
    checked = Listing(
        title=listing.title.strip(),
        description=listing.description.strip(),
        bullet_points=_non_empty(listing.bullet_points),
        tags=_non_empty(listing.tags),
        seo_title=clip_words(listing.seo_title.strip(), SEO_TITLE_MAX_CHARS),
        seo_description=clip_words(listing.seo_description.strip(), SEO_DESCRIPTION_MAX_CHARS),
    )
    _require(what, title=checked.title, description=checked.description)
    _require(what, bullet_points=checked.bullet_points)
    return checked


def _checked_campaign(campaign: Campaign, what: str) -> Campaign:
    checked = Campaign(
        headline=campaign.headline.strip(),
        email_subject=campaign.email_subject.strip(),
        email_body=campaign.email_body.strip(),
        social_posts=_non_empty(campaign.social_posts),
    )
    _require(what, headline=checked.headline, email_subject=checked.email_subject)
    _require(what, email_body=checked.email_body, social_posts=checked.social_posts)
    return checked


def _non_empty(items: list[str]) -> list[str]:
    return [text for text in (item.strip() for item in items) if text]


def _require(what: str, **fields: str | list[str]) -> None:
    empty = [name for name, value in fields.items() if not value]
    if empty:
        raise LLMError(f"LLM {what}: empty {', '.join(empty)}", retryable=False)
