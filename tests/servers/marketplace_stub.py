"""A REST marketplace over real HTTP on 127.0.0.1, for tests (stdlib only).

It speaks the wire protocol of `swarm.marketplace_http`:

- ``PUT {url}/products/{id}`` stores the JSON body (whose ``product_id`` must match
  the path) and answers 201 when the product is new, 200 when it replaced one, with
  the stored listing as body and its revision as ``ETag``. The ``Idempotency-Key``
  header is required: a replay of a key writes nothing and answers as the first
  request did (same status, body, ETag) plus ``Idempotent-Replayed: true``; the
  same key with another body answers 422.
- ``GET {url}/products/{id}`` answers 200 with the stored listing, or 404.

What tests can observe (thread-safe): `puts` (PUT requests received, failed ones
included), `stored(id)` and `writes` (per product id, how often its stored value was written).

Knobs:

- `fail_next(n, status, retry_after)`: the next n requests (PUT or GET) answer
  ``status`` without any effect, with ``Retry-After`` when given.
- `fail_after_write_next(n)`: the next n PUTs that would write do write, then
  answer 500 without recording the idempotency key, like a server that died
  after its commit. The caller cannot know the outcome; a blind retry with the
  same key writes again (visible in `writes`), a reconciling GET sees the product.
- `delay_s`: every request waits this long before it is handled (cut short by `stop`).
- `api_token`: when set, requests without ``Authorization: Bearer <token>`` get 401,
  whose body echoes the header they sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self, cast
from urllib.parse import unquote

__all__ = ["MarketplaceStub"]


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def error(cls, status: int, reason: str) -> _Reply:
        return cls(status, json.dumps({"error": reason}).encode())


@dataclass
class _Failure:
    remaining: int
    status: int
    retry_after: str | None


@dataclass
class _Catalog:
    """The stub's state; every method takes the lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    products: dict[str, bytes] = field(default_factory=dict)
    revisions: Counter[str] = field(default_factory=Counter)
    replies: dict[str, tuple[str, _Reply]] = field(default_factory=dict)
    """Idempotency key -> (fingerprint of the request, reply given)."""
    writes: Counter[str] = field(default_factory=Counter)
    puts: int = 0
    failures: list[_Failure] = field(default_factory=list)
    fail_after_write: int = 0

    def receive(self, method: str) -> _Reply | None:
        """Count the request; the injected failure to answer with, if one is due."""
        with self.lock:
            if method == "PUT":
                self.puts += 1
            return self._take_failure()

    def put(self, product_id: str, key: str, body: bytes) -> _Reply:
        with self.lock:
            if not key:
                return _Reply.error(400, "Idempotency-Key header is required")
            fingerprint = hashlib.sha256(product_id.encode() + b"\0" + body).hexdigest()
            if key in self.replies:
                seen_fingerprint, reply = self.replies[key]
                if seen_fingerprint != fingerprint:
                    return _Reply.error(422, "Idempotency-Key reused with another request")
                return replace(reply, headers=(*reply.headers, ("Idempotent-Replayed", "true")))
            problem = _problem_with_listing(product_id, body)
            if problem:
                return _Reply.error(400, problem)
            reply = self._write(product_id, body)
            if self.fail_after_write > 0:
                self.fail_after_write -= 1
                return _Reply.error(500, "failed after the write")
            self.replies[key] = (fingerprint, reply)
            return reply

    def get(self, product_id: str) -> _Reply:
        with self.lock:
            if product_id not in self.products:
                return _Reply.error(404, "no such product")
            return self._listing_reply(200, product_id)

    def fail(self, failure: _Failure) -> None:
        with self.lock:
            self.failures.append(failure)

    def _take_failure(self) -> _Reply | None:
        if not self.failures:
            return None
        failure = self.failures[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            self.failures.pop(0)
        headers = () if failure.retry_after is None else (("Retry-After", failure.retry_after),)
        return _Reply(failure.status, b'{"error": "injected failure"}', headers)

    def _write(self, product_id: str, body: bytes) -> _Reply:
        created = product_id not in self.products
        self.products[product_id] = body
        self.revisions[product_id] += 1
        self.writes[product_id] += 1
        return self._listing_reply(201 if created else 200, product_id)

    def _listing_reply(self, status: int, product_id: str) -> _Reply:
        etag = f'"{self.revisions[product_id]}"'
        return _Reply(status, self.products[product_id], (("ETag", etag),))


def _problem_with_listing(product_id: str, body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return "body is not JSON"
    if not isinstance(document, dict):
        return "body is not a JSON object"
    if document.get("product_id") != product_id:
        return "product_id in the body does not match the path"
    return ""


class _Server(ThreadingHTTPServer):
    """Handler threads are joined on close; open connections are cut first."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 128  # 50+ clients connect at once in the benchmarks

    def __init__(self, stub: MarketplaceStub) -> None:
        self.stub = stub
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
            if self._closing:
                _cut(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (after a timeout, on stop) is not an error here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    def cut_open_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections."""
        with self._connections_lock:
            self._closing = True
            for connection in self._connections:
                _cut(connection)


def _cut(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client
        connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pool expects
    disable_nagle_algorithm = True  # headers and body go out in two writes
    timeout = 30.0

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        self._server.track(self.connection)

    def finish(self) -> None:
        self._server.untrack(self.connection)
        super().finish()

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(self._server.stub._handle("PUT", self.path, self.headers, body))

    def do_GET(self) -> None:
        self._send(self._server.stub._handle("GET", self.path, self.headers, b""))

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests assert on state, not on access logs."""


class MarketplaceStub:
    """An in-memory REST marketplace served on 127.0.0.1 on a free port."""

    def __init__(self, *, prefix: str = "", api_token: str | None = None) -> None:
        self.prefix = prefix.rstrip("/")
        self.api_token = api_token
        self.delay_s = 0.0
        self._catalog = _Catalog()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to configure the client with (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the marketplace stub is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    @property
    def puts(self) -> int:
        with self._catalog.lock:
            return self._catalog.puts

    @property
    def writes(self) -> Counter[str]:
        """A snapshot: product id -> writes (0 for a product never written)."""
        with self._catalog.lock:
            return Counter(self._catalog.writes)

    def stored(self, product_id: str) -> dict[str, object] | None:
        """The listing JSON stored for a product, decoded, or None."""
        with self._catalog.lock:
            body = self._catalog.products.get(product_id)
        return None if body is None else cast(dict[str, object], json.loads(body))

    def fail_next(self, n: int, status: int = 503, retry_after: float | str | None = None) -> None:
        """The next n requests answer `status` without effect; `retry_after` as given."""
        if n < 1:
            raise ValueError(f"fail_next needs n >= 1, got {n}")
        header = None if retry_after is None else _retry_after_header(retry_after)
        self._catalog.fail(_Failure(n, status, header))

    def fail_after_write_next(self, n: int) -> None:
        """The next n writing PUTs write, then answer 500 (unknown outcome)."""
        with self._catalog.lock:
            self._catalog.fail_after_write += n

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the marketplace stub is already started")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="marketplace-stub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.cut_open_connections()
        server.server_close()  # joins the handler threads
        thread.join(timeout=5.0)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _handle(self, method: str, raw_path: str, headers: Message, body: bytes) -> _Reply:
        """One request, called from a handler thread."""
        if self.delay_s > 0:
            self._stopping.wait(self.delay_s)
        injected = self._catalog.receive(method)
        if injected is not None:
            return injected
        product_id = self._product_id_of(raw_path)
        if product_id is None:
            return _Reply.error(404, "no such route")
        authorization = headers.get("Authorization")
        if self.api_token is not None and authorization != f"Bearer {self.api_token}":
            # Echoed like careless servers do: clients must not repeat it in their errors.
            return _Reply.error(401, f"wrong authorization {authorization!r}")
        if method == "PUT":
            return self._catalog.put(product_id, headers.get("Idempotency-Key", ""), body)
        return self._catalog.get(product_id)

    def _product_id_of(self, raw_path: str) -> str | None:
        path = raw_path.split("?", 1)[0]
        route = f"{self.prefix}/products/"
        if not path.startswith(route):
            return None
        quoted = path.removeprefix(route)
        if not quoted or "/" in quoted:
            return None
        return unquote(quoted)


def _retry_after_header(retry_after: float | str) -> str:
    if isinstance(retry_after, str):
        return retry_after
    return str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
