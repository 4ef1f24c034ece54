"""The HTTP marketplace adapter: publishes listings to a REST marketplace.

Wire protocol:

- ``PUT {base}/products/{product_id}`` with the `MarketplaceListing` as JSON and an
  ``Idempotency-Key`` header; 201 means created, 200 updated. A replay of a key
  already seen writes nothing and answers as the first time did, marked with
  ``Idempotent-Replayed: true`` (Stripe's convention): the receipt of a replay says
  ``created=False``, as the port asks. A server that does not mark replays makes a
  replayed 201 read as created.
- ``GET {base}/products/{product_id}`` answers 200 with the stored listing, or 404.

Product ids (Shopify handles, or SKUs) are percent-quoted into one path segment.

What it promises:

- No retries here: every failure becomes one `HttpMarketplaceError` saying whether
  a retry may help (429, 408, 409, 425, 5xx, timeouts, connection errors) and, when
  the server sent ``Retry-After``, how long it asked to wait. The agent owns the
  retry policy and reconciles with `get_listing` after an unknown outcome.
- Messages name the product and the status, never the API token.
- The object is picklable: it ships to a Ray actor process and opens its
  ``httpx.AsyncClient`` lazily there, one per event loop, kept until `aclose`.
  Its `max_connections` are split into small pools (see `_ShardedTransport`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Mapping
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from actors.models import MarketplaceListing, UploadReceipt
from actors.ports import MarketplaceError
from swarm.backoff import retry_after_seconds

__all__ = ["HttpMarketplace", "HttpMarketplaceConfig", "HttpMarketplaceError"]

_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
"""408/425/429 ask to come back later; 409 is how idempotency-key servers answer a
replay that arrives while the first request with that key is still in flight."""

_REPLAY_HEADER = "Idempotent-Replayed"
_ERROR_BODY_EXCERPT = 200
_CONNECTIONS_PER_SHARD = 8
_KEEPALIVE_EXPIRY_S = 30.0


class HttpMarketplaceConfig(BaseModel):
    """Where the REST marketplace is and how to talk to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str
    timeout_s: float = Field(default=10.0, gt=0)
    api_token: SecretStr | None = None
    """Sent as ``Authorization: Bearer <token>``."""
    max_connections: int = Field(default=100, ge=1)
    """Connections per event loop: the most requests in flight at once."""

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as e:
            raise ValueError(f"base_url is not a URL: {e}") from e
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an absolute http(s) URL, got {value!r}")
        return value


class HttpMarketplaceError(MarketplaceError):
    """A marketplace call failed; `status_code` is None when no response came back."""


class _PutReply(BaseModel):
    """The part of a PUT reply body we read; anything else is ignored."""

    model_config = ConfigDict(extra="ignore", cache_strings="keys")

    revision: str | int | None = None


class HttpMarketplace:
    """A `Marketplace` speaking the REST wire protocol above over httpx."""

    def __init__(self, config: HttpMarketplaceConfig) -> None:
        self._config = config
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    @property
    def name(self) -> str:
        return "http"

    @property
    def config(self) -> HttpMarketplaceConfig:
        return self._config

    def __getstate__(self) -> dict[str, object]:
        return {"config": self._config}

    def __setstate__(self, state: dict[str, object]) -> None:
        config = state["config"]
        if not isinstance(config, HttpMarketplaceConfig):
            raise TypeError(f"cannot restore HttpMarketplace from {type(config).__name__}")
        self._config = config
        self._clients = {}

    async def put_listing(self, listing: MarketplaceListing, idempotency_key: str) -> UploadReceipt:
        if not idempotency_key:
            raise ValueError("put_listing needs a non-empty idempotency key")
        product_id = listing.product_id
        response = await self._send(
            "PUT",
            product_id,
            content=listing.model_dump_json().encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
        )
        if not response.is_success:
            raise self._status_error("PUT", product_id, response)
        return UploadReceipt(
            product_id=product_id,
            marketplace=self.name,
            created=response.status_code == 201 and not _is_replay(response),
            revision=_revision_of(response),
        )

    async def get_listing(self, product_id: str) -> MarketplaceListing | None:
        response = await self._send("GET", product_id)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._status_error("GET", product_id, response)
        return _parse_listing(product_id, response.content)

    async def aclose(self) -> None:
        """Close the client of the running event loop and forget those of closed loops."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        self._forget_clients_of_closed_loops()
        if client is not None:
            await client.aclose()

    async def _send(
        self,
        method: str,
        product_id: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        path = _product_path(product_id)
        try:
            return await self._client().request(method, path, content=content, headers=headers)
        except httpx.HTTPError as e:
            raise _transport_error(method, product_id, e) from e

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            self._forget_clients_of_closed_loops()
            client = self._clients[loop] = self._open_client()
        return client

    def _open_client(self) -> httpx.AsyncClient:
        config = self._config
        headers = {"Accept": "application/json"}
        if config.api_token is not None:
            headers["Authorization"] = f"Bearer {config.api_token.get_secret_value()}"
        return httpx.AsyncClient(
            base_url=config.base_url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            transport=_ShardedTransport(config.max_connections),
        )

    def _forget_clients_of_closed_loops(self) -> None:
        # A client cannot be closed once its loop is gone; dropping it lets GC reap it.
        for loop in [loop for loop in self._clients if loop.is_closed()]:
            del self._clients[loop]

    def _status_error(
        self, method: str, product_id: str, response: httpx.Response
    ) -> HttpMarketplaceError:
        status = response.status_code
        excerpt = self._redact(response.text[:_ERROR_BODY_EXCERPT].strip())
        detail = f": {excerpt}" if excerpt else ""
        return HttpMarketplaceError(
            f"marketplace {method} of product {product_id!r} answered HTTP {status}{detail}",
            retryable=status in _RETRYABLE_4XX or status >= 500,
            status_code=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )

    def _redact(self, text: str) -> str:
        token = self._config.api_token
        if token is None or not token.get_secret_value():
            return text
        return text.replace(token.get_secret_value(), "**********")


class _ShardedTransport(httpx.AsyncBaseTransport):
    """Connection pools of at most `_CONNECTIONS_PER_SHARD`, used round-robin.

    httpcore 1.0.9 rescans its whole pool (quadratically, for idle connections) on
    every request start and end: against the stub, one pool of 100 connections costs
    about 5 ms of CPU per request at 50 in flight, pools of 8 about 0.7 ms
    (encode/httpcore#1035). A request waits for a connection of its own shard.
    """

    def __init__(self, max_connections: int) -> None:
        count = math.ceil(max_connections / _CONNECTIONS_PER_SHARD)
        size, extra = divmod(max_connections, count)
        sizes = [size + 1 if i < extra else size for i in range(count)]
        tls = httpx.create_ssl_context()  # loading the CA bundle takes ~25 ms: share it
        self._shards = [httpx.AsyncHTTPTransport(verify=tls, limits=_limits(n)) for n in sizes]
        self._next_shard = itertools.cycle(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next_shard).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def _limits(connections: int) -> httpx.Limits:
    return httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=_KEEPALIVE_EXPIRY_S,
    )


def _product_path(product_id: str) -> str:
    if product_id in ("", ".", ".."):
        # "." and ".." would be resolved as path segments and address another resource.
        raise HttpMarketplaceError(
            f"product id {product_id!r} cannot be addressed in a URL", retryable=False
        )
    return "products/" + quote(product_id, safe="")


def _transport_error(method: str, product_id: str, error: httpx.HTTPError) -> HttpMarketplaceError:
    retryable = isinstance(
        error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
    )
    reason = str(error) or "no detail"
    return HttpMarketplaceError(
        f"marketplace {method} of product {product_id!r} failed: {type(error).__name__}: {reason}",
        retryable=retryable,
    )


def _is_replay(response: httpx.Response) -> bool:
    marker: str = response.headers.get(_REPLAY_HEADER, "")
    return marker.strip().lower() == "true"


def _revision_of(response: httpx.Response) -> str:
    etag: str | None = response.headers.get("ETag")
    if etag:
        return etag.removeprefix("W/").strip('"')
    try:
        reply = _PutReply.model_validate_json(response.content)
    except ValidationError:
        return ""
    return "" if reply.revision is None else str(reply.revision)


def _parse_listing(product_id: str, body: bytes) -> MarketplaceListing:
    """The stored listing; top-level fields the marketplace adds are ignored."""
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError("body is not a JSON object")
        known = {k: v for k, v in document.items() if k in MarketplaceListing.model_fields}
        listing = MarketplaceListing.model_validate(known)
    except ValueError as e:  # JSONDecodeError and ValidationError are ValueErrors
        raise HttpMarketplaceError(
            f"marketplace GET of product {product_id!r} returned an unreadable listing: {e}",
            retryable=False,
        ) from e
    if listing.product_id != product_id:
        raise HttpMarketplaceError(
            f"marketplace GET of product {product_id!r} returned product {listing.product_id!r}",
            retryable=False,
        )
    return listing
