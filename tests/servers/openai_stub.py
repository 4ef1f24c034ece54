"""An OpenAI-compatible chat completions server for tests, over real HTTP.

`OpenAIStub` listens on 127.0.0.1 (port 0: the OS picks a free one) and speaks
the chat completions wire protocol at `POST /v1/chat/completions` (and
`/chat/completions`), plus `GET /v1/models`. It answers a structured-output
request with JSON generated from the requested schema:

- `tools` (function calling): a tool call to the function named by
  `tool_choice` (else the first tool), arguments matching its `parameters`;
- `response_format` `json_schema`: message content matching `json_schema.schema`;
- anything else: a short plain-text reply.

Streaming (`"stream": true`) is refused with a 400; it is not needed by
`ainvoke`.

Every answer carries `usage` (token counts estimated from the text sizes) and
`model` (the request's model, or `reported_model` when set). Set `fixed_usage`
to answer with known token counts.

What it promises a test:

- thread-safe counters: every request (`total_calls`, `calls_by_schema`) and
  every answered completion (`paid_calls`, `paid_calls_by_schema`), so a test
  can assert how many LLM calls were paid for; each request is recorded with
  its body and `Authorization` header (`requests`);
- knobs, changeable while it runs: `delay_s` (each request waits, without
  blocking the others: one thread per connection), `fail_next(n, status)`,
  `set_status_sequence([...])` (200 in a sequence means "answer normally"),
  `rate_limit(max_requests, per_s)` (429 with `Retry-After`), `outage(status)`
  (every request fails with `status` until `outage(None)`), `expected_api_key`
  (401 for any other key), `reply_raw_next(text)` (malformed output);
- `wait_for_calls(n, timeout_s)` to wait on a condition instead of sleeping.

Use it as a context manager (`with OpenAIStub() as stub: ...`) or with
`start()` / `stop()`. `python tests/servers/openai_stub.py --port 8000` serves
one from a shell.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

_POLL_INTERVAL_S = 0.02
"""How often the serving thread checks for `stop()` (also bounds how long stop takes)."""

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
MODELS_PATHS = frozenset({"/v1/models", "/models"})

_ERROR_KINDS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("server_error", "timeout"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stub received it, and the status it answered with."""

    method: str
    path: str
    body: dict[str, Any]
    authorization: str | None
    schema_name: str | None
    status: int
    at: float = 0.0
    """When it arrived (`time.monotonic()` in the stub's process)."""

    def message_text(self, role: str | None = None) -> str:
        """The text of the request's messages (of one role, if given), joined by newlines."""
        parts: list[str] = []
        for message in self.body.get("messages", []):
            if role is not None and message.get("role") != role:
                continue
            parts.append(_content_text(message.get("content")))
        return "\n".join(parts)


@dataclass(frozen=True)
class _Reply:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


class OpenAIStub:
    """A chat completions server on 127.0.0.1 with counters and failure knobs."""

    def __init__(
        self,
        *,
        port: int = 0,
        delay_s: float = 0.0,
        reported_model: str | None = None,
        expected_api_key: str | None = None,
        fixed_usage: tuple[int, int] | None = None,
    ) -> None:
        self.delay_s = delay_s
        """Seconds each request waits before it is answered (set any time)."""
        self.reported_model = reported_model
        """The `model` answered; None echoes the request's model ("" answers an empty one)."""
        self.expected_api_key = expected_api_key
        """When set, a request with another bearer token gets a 401."""
        self.fixed_usage = fixed_usage
        """(prompt_tokens, completion_tokens) to answer; None estimates them from the text."""
        self._port = port
        self._lock = threading.Lock()
        self._calls_changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _StubHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._scripted: deque[_ScriptedStatus] = deque()
        self._raw_replies: deque[str] = deque()
        self._rate_limit: _RateLimit | None = None
        self._outage: int | None = None
        self._requests: list[RecordedRequest] = []
        self._calls_by_schema: Counter[str] = Counter()
        self._paid_by_schema: Counter[str] = Counter()
        self._paid_calls = 0

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> OpenAIStub:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("OpenAIStub is already running")
        self._stopping.clear()
        self._server = _StubHTTPServer(("127.0.0.1", self._port), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name="openai-stub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still waiting out `delay_s` are released."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("OpenAIStub is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI base URL to configure a client with (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- knobs ---------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500, retry_after_s: float | None = None) -> None:
        """Answer the next `n` requests with `status` (after those already scripted).

        With `retry_after_s` the answers carry `Retry-After` (and `retry-after-ms`).
        """
        with self._lock:
            self._scripted.extend([_ScriptedStatus(status, retry_after_s)] * n)

    def set_status_sequence(self, statuses: Iterable[int]) -> None:
        """Answer the next requests with these statuses in order; 200 answers normally."""
        with self._lock:
            self._scripted = deque(_ScriptedStatus(status) for status in statuses)

    def rate_limit(
        self, max_requests: int | None, per_s: float = 1.0, retry_after_s: float = 1.0
    ) -> None:
        """Allow `max_requests` per `per_s` seconds, 429 past it; None lifts the limit."""
        with self._lock:
            self._rate_limit = (
                None if max_requests is None else _RateLimit(max_requests, per_s, retry_after_s)
            )

    def outage(self, status: int | None = 503) -> None:
        """Answer every request with `status` from now on (a down endpoint); None ends it."""
        with self._lock:
            self._outage = status

    def reply_raw_next(self, text: str, n: int = 1) -> None:
        """Answer the next `n` completions with `text` verbatim as the content/arguments."""
        with self._lock:
            self._raw_replies.extend([text] * n)

    def clear_faults(self) -> None:
        """Drop scripted statuses, raw replies, the outage and the rate limit."""
        with self._lock:
            self._outage = None
            self._scripted.clear()
            self._raw_replies.clear()
            self._rate_limit = None

    # -- observations --------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def total_calls(self) -> int:
        """Chat completion requests received, answered or failed."""
        with self._lock:
            return len(self._requests)

    @property
    def paid_calls(self) -> int:
        """Chat completion requests answered with a completion (status 200)."""
        with self._lock:
            return self._paid_calls

    @property
    def calls_by_schema(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls_by_schema)

    @property
    def paid_calls_by_schema(self) -> dict[str, int]:
        with self._lock:
            return dict(self._paid_by_schema)

    def wait_for_calls(self, count: int, timeout_s: float = 10.0) -> bool:
        """Wait until `count` requests have arrived; False if the deadline passed first."""
        with self._calls_changed:
            return self._calls_changed.wait_for(
                lambda: len(self._requests) >= count, timeout=timeout_s
            )

    def reset(self) -> None:
        """Forget recorded requests and counters, and drop the faults."""
        self.clear_faults()
        with self._lock:
            self._requests.clear()
            self._calls_by_schema.clear()
            self._paid_by_schema.clear()
            self._paid_calls = 0

    # -- request handling (called from the server's threads) -----------------

    def _handle_chat(self, body: dict[str, Any], authorization: str | None, path: str) -> _Reply:
        target = _structured_target(body)
        schema_name = target.name if target else None
        with self._lock:
            status, headers = self._decide_status(authorization)
            raw = self._raw_replies.popleft() if status == 200 and self._raw_replies else None
            request = RecordedRequest(
                "POST", path, body, authorization, schema_name, status, time.monotonic()
            )
            self._record(request)
            number = len(self._requests)
        self._wait_delay()
        if status != 200:
            return _Reply(status, _error_body(status, authorization), headers)
        return _Reply(200, self._completion(body, target, raw, number))

    def _decide_status(self, authorization: str | None) -> tuple[int, tuple[tuple[str, str], ...]]:
        if self.expected_api_key is not None and authorization != (
            f"Bearer {self.expected_api_key}"
        ):
            return 401, ()
        if self._scripted:
            scripted = self._scripted.popleft()
            return scripted.status, _retry_after_headers(scripted.retry_after_s)
        if self._outage is not None:
            return self._outage, ()
        if self._rate_limit is not None and not self._rate_limit.admit(time.monotonic()):
            return 429, _retry_after_headers(self._rate_limit.retry_after_s)
        return 200, ()

    def _record(self, request: RecordedRequest) -> None:
        self._requests.append(request)
        key = request.schema_name or ""
        self._calls_by_schema[key] += 1
        if request.status == 200:
            self._paid_calls += 1
            self._paid_by_schema[key] += 1
        self._calls_changed.notify_all()

    def _wait_delay(self) -> None:
        delay = self.delay_s
        if delay > 0:
            self._stopping.wait(delay)

    def _completion(
        self, body: dict[str, Any], target: _Target | None, raw: str | None, number: int
    ) -> dict[str, Any]:
        if target is None:
            text = raw if raw is not None else "This is a reply from the OpenAI stub."
            message: dict[str, Any] = {"role": "assistant", "content": text}
            finish = "stop"
        else:
            text = raw if raw is not None else json.dumps(sample_from_schema(target.schema))
            message, finish = target.message(text, number)
        model = self.reported_model
        return {
            "id": f"chatcmpl-stub-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "stub-model")) if model is None else model,
            "system_fingerprint": "fp_stub",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": self._usage(body, text),
        }

    def _usage(self, body: dict[str, Any], completion: str) -> dict[str, int]:
        if self.fixed_usage is not None:
            prompt_tokens, completion_tokens = self.fixed_usage
        else:
            prompt_tokens = _estimate_tokens(json.dumps(body.get("messages", [])))
            completion_tokens = _estimate_tokens(completion)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def _models(self) -> dict[str, Any]:
        model = self.reported_model or "stub-model"
        return {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "stub"}]}


@dataclass(frozen=True)
class _Target:
    """The structured output a request asks for: a forced tool call or a JSON schema."""

    name: str
    schema: dict[str, Any]
    via_tool: bool

    def message(self, text: str, number: int) -> tuple[dict[str, Any], str]:
        if not self.via_tool:
            return {"role": "assistant", "content": text, "refusal": None}, "stop"
        call = {
            "id": f"call_stub_{number}",
            "type": "function",
            "function": {"name": self.name, "arguments": text},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"


def _structured_target(body: dict[str, Any]) -> _Target | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if tools and choice != "none":
        functions = [t["function"] for t in tools if t.get("type") == "function"]
        wanted = choice["function"]["name"] if isinstance(choice, dict) else None
        for function in functions:
            if wanted is None or function.get("name") == wanted:
                return _Target(function["name"], function.get("parameters", {}), via_tool=True)
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema", {})
        return _Target(spec.get("name", "response"), spec.get("schema", {}), via_tool=False)
    return None


class _RateLimit:
    """A sliding window of admitted requests (callers hold the stub's lock)."""

    def __init__(self, max_requests: int, per_s: float, retry_after_s: float) -> None:
        self.max_requests = max_requests
        self.per_s = per_s
        self.retry_after_s = retry_after_s
        self._admitted: deque[float] = deque()

    def admit(self, now: float) -> bool:
        while self._admitted and now - self._admitted[0] >= self.per_s:
            self._admitted.popleft()
        if len(self._admitted) >= self.max_requests:
            return False
        self._admitted.append(now)
        return True


@dataclass(frozen=True)
class _ScriptedStatus:
    status: int
    retry_after_s: float | None = None


def _retry_after_headers(retry_after_s: float | None) -> tuple[tuple[str, str], ...]:
    """`Retry-After` in whole seconds (HTTP) and `retry-after-ms` (honoured by the OpenAI SDK)."""
    if retry_after_s is None:
        return ()
    return (
        ("Retry-After", str(max(1, math.ceil(retry_after_s)))),
        ("retry-after-ms", str(max(1, round(retry_after_s * 1000)))),
    )


def sample_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A plausible value matching a JSON schema (the subset pydantic and OpenAI emit)."""
    return _sample(schema, root if root is not None else schema, "value")


def _sample(schema: dict[str, Any], root: dict[str, Any], hint: str) -> Any:
    if "$ref" in schema:
        return _sample(_resolve_ref(root, schema["$ref"]), root, hint)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _sample(options[0], root, hint)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _SAMPLERS.get(kind, _sample_string)(schema, root, hint)


def _sample_object(schema: dict[str, Any], root: dict[str, Any], hint: str) -> Any:
    properties: dict[str, Any] = schema.get("properties", {})
    return {name: _sample(sub, root, name) for name, sub in properties.items()}


def _sample_array(schema: dict[str, Any], root: dict[str, Any], hint: str) -> Any:
    count = max(schema.get("minItems", 0), min(schema.get("maxItems", 3), 3))
    items = schema.get("items", {"type": "string"})
    return [_sample(items, root, f"{hint} {i + 1}") for i in range(count)]


def _sample_string(schema: dict[str, Any], root: dict[str, Any], hint: str) -> Any:
    formats = {
        "date-time": "2024-01-01T00:00:00Z",
        "date": "2024-01-01",
        "email": "stub@example.com",
        "uri": "https://example.com/stub",
    }
    text = formats.get(schema.get("format", ""), f"Stub {hint.replace('_', ' ')}")
    text = text.ljust(schema.get("minLength", 0), "x")
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def _sample_integer(schema: dict[str, Any], root: dict[str, Any], hint: str) -> Any:
    return int(max(schema.get("minimum", 1), 1))


def _sample_number(schema: dict[str, Any], root: dict[str, Any], hint: str) -> Any:
    return float(max(schema.get("minimum", 1.0), 1.0))


def _sample_boolean(schema: dict[str, Any], root: dict[str, Any], hint: str) -> Any:
    return True


def _sample_null(schema: dict[str, Any], root: dict[str, Any], hint: str) -> Any:
    return None


_SAMPLERS: dict[str, Callable[[dict[str, Any], dict[str, Any], str], Any]] = {
    "object": _sample_object,
    "array": _sample_array,
    "string": _sample_string,
    "integer": _sample_integer,
    "number": _sample_number,
    "boolean": _sample_boolean,
    "null": _sample_null,
}


def _resolve_ref(root: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _error_body(status: int, authorization: str | None) -> dict[str, Any]:
    kind, code = _ERROR_KINDS.get(status, ("server_error", "server_error"))
    if status == 401:
        # Like OpenAI: the rejected key is named, masked.
        message = f"Incorrect API key provided: {_masked(authorization)}."
    elif status == 429:
        message = "Rate limit reached for requests (OpenAI stub)."
    else:
        message = f"The OpenAI stub answered {status}."
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _masked(authorization: str | None) -> str:
    key = (authorization or "").removeprefix("Bearer ")
    return f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"


class _StubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    """Listen backlog: many clients connect at once (agents, the benchmark); the default 5
    drops connection attempts, which then wait a full TCP retransmit before trying again."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        stub: OpenAIStub,
    ) -> None:
        super().__init__(address, handler)
        self.stub = stub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint
    disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall
    server: _StubHTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path not in CHAT_PATHS:
            self._send(_Reply(404, _error_body(404, None)))
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(_Reply(400, _error_body(400, None)))
            return
        if not isinstance(body, dict) or body.get("stream"):
            self._send(_Reply(400, _error_body(400, None)))
            return
        stub = self.server.stub
        self._send(stub._handle_chat(body, self.headers.get("Authorization"), self.path))

    def do_GET(self) -> None:
        if self.path in MODELS_PATHS:
            self._send(_Reply(200, self.server.stub._models()))
        else:
            self._send(_Reply(404, _error_body(404, None)))

    def _send(self, reply: _Reply) -> None:
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the recorded requests instead."""


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the OpenAI stub until interrupted.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args()
    with OpenAIStub(port=args.port, delay_s=args.delay_s) as stub:
        print(f"OpenAI stub at {stub.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
