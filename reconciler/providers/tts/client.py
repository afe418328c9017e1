"""HTTP client for the TTS API v3: pacing, retries, the response contract, typed errors.

Four logical servers (Identity, Network, Application, Join) may live on different hosts (TTS
Cloud runs them on several clusters). Requests name the server; the client picks its base URL.
The bytes travel through `reconciler.transport` (aiohttp in production, any httpx transport in
tests). Errors carry the server's error identity (`namespace:name`) and a scrubbed, shortened
message, never request bodies, so no secret can leak through an exception.

The response contract: a success is HTTP 200 with a JSON object; a write's answer echoes the
identifiers it wrote. Anything else (a redirect, an HTML page from a proxy, malformed JSON,
another entity) is an error naming the server, the request and a short excerpt of the answer.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from reconciler.diagnostics import ReconcilerError
from reconciler.providers.tts.pacing import DeadlineReached, RatePacer
from reconciler.providers.tts.servers import API_PREFIX, DEFAULT_USER_AGENT, SERVER_NAMES, Server
from reconciler.redact import Redactor
from reconciler.transport import (
    AiohttpTransport,
    HttpLimits,
    HttpResponse,
    HttpxTransport,
    Transport,
    TransportFailure,
    host_of,
    parse_json,
    validate_root_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx


# A path made only of characters that quote(path, safe="/-_.~") leaves alone.
_SAFE_PATH = re.compile(r"[A-Za-z0-9/\-_.~]*").fullmatch

# Transient conditions worth retrying: rate limited, unavailable.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
EXCERPT_CHARS = 200

Params = Mapping[str, str | int] | list[tuple[str, str]] | None


@dataclass(frozen=True, slots=True)
class ServerURLs:
    """Root URLs (without /api/v3) of the four servers."""

    identity: str
    network: str
    application: str
    join: str

    @classmethod
    def single(cls, url: str) -> ServerURLs:
        return cls(url, url, url, url)

    def for_server(self, server: Server) -> str:
        return {
            "is": self.identity,
            "ns": self.network,
            "as": self.application,
            "js": self.join,
        }[server]


class TTSAPIError(ReconcilerError):
    """The server answered, but not with the documented success."""

    def __init__(
        self,
        *,
        server: Server,
        method: str,
        path: str,
        status: int,
        body: Mapping[str, Any] | None,
        message: str = "",
    ) -> None:
        self.server = server
        self.method = method
        self.path = path
        self.status = status
        details = (body or {}).get("details") if isinstance(body, Mapping) else None
        details = details if isinstance(details, list) else []
        first = details[0] if details and isinstance(details[0], Mapping) else {}
        self.namespace: str = str(first.get("namespace", ""))[:100]
        self.name: str = str(first.get("name", ""))[:100]
        attributes = first.get("attributes")
        self.attributes: dict[str, Any] = dict(attributes) if isinstance(attributes, dict) else {}
        code = (body or {}).get("code", 0)
        self.grpc_code: int = code if isinstance(code, int) else 0
        self.message: str = message or f"HTTP {status}"
        self.correlation_id: str = str(first.get("correlation_id", ""))[:100]
        super().__init__(str(self))

    @property
    def error_id(self) -> str:
        """`namespace:name` such as `pkg/identityserver:end_device_euis_taken`."""
        return f"{self.namespace}:{self.name}" if self.name else ""

    def __str__(self) -> str:
        return f"{SERVER_NAMES[self.server]}: {self.method} {self.path}: {self.message}"


class TTSTransportError(ReconcilerError):
    """No answer: connection refused, unknown host, TLS failure, timeout, deadline."""

    def __init__(self, *, server: Server, method: str, path: str, reason: str) -> None:
        self.server = server
        self.method = method
        self.path = path
        self.reason = reason
        super().__init__(f"{SERVER_NAMES[server]}: {method} {path}: no response: {reason}")


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    # Requests that got no answer and were sent again, by the cause of the failure.
    unanswered: dict[str, int] = field(default_factory=dict)
    latency_total: float = 0.0
    answered: int = 0

    @property
    def mean_latency(self) -> float | None:
        return self.latency_total / self.answered if self.answered else None

    def record(self, status: int, seconds: float) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.latency_total += seconds
        self.answered += 1


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 8  # tries per request on transient failures (5xx, transport errors)
    rate_limited_attempts: int = 30  # tries per request on 429 (paced by X-Rate-Limit-Retry)
    base_delay: float = 0.1
    max_delay: float = 5.0


@dataclass(slots=True)
class TTSResponse:
    """A successful answer: HTTP 200 and a JSON object."""

    status_code: int
    headers: Mapping[str, str]
    data: dict[str, Any]

    def json(self) -> dict[str, Any]:
        return self.data


class TTSClient:
    """Async client for the four TTS servers over one connection pool."""

    def __init__(
        self,
        urls: ServerURLs,
        api_key: str,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        verify: str | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
        limits: HttpLimits | None = None,
        redactor: Redactor | None = None,
        # Called with (method, url, body) before every attempt (benchmarks record with it).
        observer: Callable[[str, str, bytes | None], None] | None = None,
    ) -> None:
        for server, name in SERVER_NAMES.items():
            problem = validate_root_url(urls.for_server(server))
            if problem:
                raise ReconcilerError(f"{name} URL: {problem}")
        self.urls = urls
        self.retry = retry or RetryPolicy()
        self.limits = limits or HttpLimits()
        if timeout is not None:
            self.limits = replace(self.limits, request_timeout=timeout)
        self.stats = RequestStats()
        self.pacer = RatePacer(max_wait=self.limits.max_server_wait)
        self.redactor = redactor or Redactor([api_key])
        # X-Warning answers (deprecated fields, what will become an error), deduplicated:
        # text -> (the first request that drew it, how many did).
        self.warnings: dict[str, tuple[str, int]] = {}
        # Called after every answer (or transport failure: status None) with the server, the
        # method, the path (no query, no credential) and the latency: `--verbose`.
        self.on_response: Callable[[Server, str, str, int | None, float], None] | None = None
        self.observer = observer
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": user_agent,
        }
        self._write_headers = {**self._headers, "Content-Type": "application/json"}
        # Streams uncompressed: each message must arrive as it is sent.
        self._stream_headers = {**self._write_headers, "Accept-Encoding": "identity"}
        # What a request adds to the transport's default headers (the common ones above).
        self._read_extra: dict[str, str] = {}
        self._write_extra = {"Content-Type": "application/json"}
        self._bases: dict[str, str] = {
            server: urls.for_server(server).rstrip("/") + API_PREFIX for server in SERVER_NAMES
        }
        self._queries: dict[tuple[tuple[str, str | int], ...], str] = {}
        self._deadline = (
            time.monotonic() + self.limits.run_deadline if self.limits.run_deadline else None
        )
        self.transport: Transport
        if transport is not None:
            self.transport = HttpxTransport(
                transport, limits=self.limits, default_headers=self._headers
            )
        else:
            self.transport = AiohttpTransport(
                limits=self.limits,
                verify=verify,
                max_connections=max_connections,
                https=any(base.startswith("https:") for base in self._bases.values()),
                default_headers=self._headers,
            )

    async def __aenter__(self) -> TTSClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    def url(self, server: Server, path: str, params: Params = None) -> str:
        # IDs are lowercase letters, digits and dashes: most paths need no quoting at all.
        url = self._bases[server] + (path if _SAFE_PATH(path) else quote(path, safe="/-_.~"))
        if params:
            pairs = tuple(params.items() if isinstance(params, Mapping) else params)
            # A fleet's reads share a few queries (the field mask of a registry): encoded once.
            query = self._queries.get(pairs)
            if query is None:
                query = urlencode(pairs, safe=",")
                if len(self._queries) < 64:
                    self._queries[pairs] = query
            url += "?" + query
        return url

    async def request(
        self,
        server: Server,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        stream_idle: float | None = None,
    ) -> TTSResponse:
        """Send one request, paced by the server's rate-limit headers; retry transient failures
        with backoff; raise TTSAPIError on anything but the documented success.

        `stream_idle`: the answer is a stream of JSON messages the server never ends (the
        event stream): read until it is quiet that long; `data["messages"]` holds them."""
        url = self.url(server, path, params)
        body = None if json is None else jsonlib.dumps(json, separators=(",", ":")).encode()
        headers = self._read_extra if body is None else self._write_extra
        bucket = f"{method} {path}"  # TTS limits per RPC and entity: the concrete path
        attempt = 0
        rate_limited = 0
        while True:
            attempt += 1
            try:
                await self.pacer.acquire(bucket, self._deadline)
            except DeadlineReached:
                raise self._deadline_error(server, method, path) from None
            timeout = self.limits.request_timeout
            if self._deadline is not None:
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    raise self._deadline_error(server, method, path)
                timeout = min(timeout, remaining)
            self.stats.requests += 1
            if self.observer is not None:
                self.observer(method, url, body)
            started = time.perf_counter()
            try:
                if stream_idle is None:
                    response = await self.transport.send(method, url, headers, body, timeout)
                else:
                    response = await self._read_stream(method, url, body, stream_idle, timeout)
            except TransportFailure as failure:
                # No answer: the request stays counted in flight for the pacer, since the server
                # may have counted it (a lost response), so its estimate errs towards fewer
                # tokens (counting it as returned let the fault test exceed 1% of 429s).
                if self.on_response is not None:
                    self.on_response(server, method, path, None, time.perf_counter() - started)
                if not failure.retryable or attempt >= self.retry.attempts:
                    tries = f" (after {attempt} tries)" if attempt > 1 else ""
                    raise TTSTransportError(
                        server=server, method=method, path=path, reason=f"{failure}{tries}"
                    ) from None
                self.stats.retries += 1
                self.stats.unanswered[failure.cause] = (
                    self.stats.unanswered.get(failure.cause, 0) + 1
                )
                await self._sleep(self._backoff(attempt), server, method, path)
                continue
            status = response.status_code
            elapsed = time.perf_counter() - started
            self.stats.record(status, elapsed)
            if self.on_response is not None:
                self.on_response(server, method, path, status, elapsed)
            warning = response.headers.get("X-Warning")
            if warning:
                self._note_warning(server, method, path, warning)
            self.pacer.observe(bucket, status, response.headers)
            if status == 200:
                if stream_idle is not None:
                    return self._stream_success(server, method, path, response)
                return self._success(server, method, path, response, json)
            if status == 429 and rate_limited < self.retry.rate_limited_attempts:
                rate_limited += 1
                attempt -= 1  # waiting out a rate limit is not a failed attempt
                self.stats.retries += 1
                self.stats.rate_limited += 1
                if "X-Rate-Limit-Retry" not in response.headers:
                    await self._sleep(self._backoff(rate_limited), server, method, path)
                continue  # otherwise the pacer holds this RPC until the server's retry time
            if status in RETRYABLE_STATUS and status != 429 and attempt < self.retry.attempts:
                self.stats.retries += 1
                await self._sleep(self._backoff(attempt), server, method, path)
                continue
            raise self._error(server, method, path, response)

    async def stream(
        self, server: Server, path: str, *, json: Any, idle_timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """POST a server-stream RPC (the event stream) and yield each message's object (one
        JSON object per line). Not retried: the caller reconnects. TTSAPIError when refused,
        on a `{"error": ...}` message or a line that is not a JSON object; TTSTransportError
        when the connection fails or is lost."""
        method = "POST"
        url = self.url(server, path)
        body = jsonlib.dumps(json, separators=(",", ":")).encode()
        self.stats.requests += 1
        if self.observer is not None:
            self.observer(method, url, body)
        started = time.perf_counter()
        lines = self.transport.stream_lines(method, url, self._stream_headers, body, idle_timeout)
        try:
            head = await anext(lines)
            elapsed = time.perf_counter() - started
            self.stats.record(head.status_code, elapsed)
            if self.on_response is not None:
                self.on_response(server, method, path, head.status_code, elapsed)
            async for line in lines:
                if head.status_code != 200:
                    raise self._error(server, method, path, line)
                try:
                    message = parse_json(line.content)
                except ValueError:
                    message = None
                if not isinstance(message, dict):
                    raise self._malformed(server, method, path, line, "a message is not an object")
                error = message.get("error")
                if isinstance(error, dict):
                    raise self._error(
                        server,
                        method,
                        path,
                        HttpResponse(200, line.headers, jsonlib.dumps(error).encode()),
                    )
                yield message
            if head.status_code != 200:
                raise self._error(server, method, path, head)
        except TransportFailure as failure:
            raise TTSTransportError(
                server=server, method=method, path=path, reason=str(failure)
            ) from None
        except StopAsyncIteration:
            raise TTSTransportError(
                server=server, method=method, path=path, reason="no answer"
            ) from None
        finally:
            await lines.aclose()

    async def _read_stream(
        self, method: str, url: str, body: bytes | None, quiet: float, timeout: float
    ) -> HttpResponse:
        """A stream read until it has been quiet `quiet` seconds, as one answer: its
        status, headers and lines (a `request(stream_idle=)` attempt)."""
        lines = self.transport.stream_lines(
            method, url, self._stream_headers, body, quiet, until_quiet=True, timeout=timeout
        )
        try:
            head = await anext(lines)
            content = [line.content async for line in lines]
        finally:
            await lines.aclose()
        return HttpResponse(head.status_code, head.headers, b"\n".join(content))

    def _note_warning(self, server: Server, method: str, path: str, text: str) -> None:
        text = self.redactor.excerpt(text, EXCERPT_CHARS)
        first, count = self.warnings.get(text, (f"{SERVER_NAMES[server]}: {method} {path}", 0))
        self.warnings[text] = (first, count + 1)

    async def get_json(self, server: Server, path: str, *, params: Params = None) -> dict[str, Any]:
        return (await self.request(server, "GET", path, params=params)).data

    def _success(
        self, server: Server, method: str, path: str, response: HttpResponse, sent: Any
    ) -> TTSResponse:
        try:
            data = parse_json(response.content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._malformed(server, method, path, response, "the answer is not a JSON object")
        if sent is not None:
            problem = _ids_echo_problem(sent, data)
            if problem:
                raise self._malformed(server, method, path, response, problem)
        return TTSResponse(response.status_code, response.headers, data)

    def _stream_success(
        self, server: Server, method: str, path: str, response: HttpResponse
    ) -> TTSResponse:
        """A streamed answer: one JSON object per line (or per blank-line-separated block). The
        last one may be cut where reading stopped; it is left out."""
        messages: list[dict[str, Any]] = []
        for line in response.content.splitlines():
            if not line.strip():
                continue
            try:
                message = parse_json(line)
            except ValueError:
                continue  # cut off where reading stopped
            if not isinstance(message, dict):
                raise self._malformed(server, method, path, response, "a message is not an object")
            messages.append(message)
        return TTSResponse(response.status_code, response.headers, {"messages": messages})

    def _malformed(
        self, server: Server, method: str, path: str, response: HttpResponse, problem: str
    ) -> TTSAPIError:
        excerpt = self.redactor.excerpt(response.text, EXCERPT_CHARS)
        return TTSAPIError(
            server=server,
            method=method,
            path=path,
            status=response.status_code,
            body=None,
            message=f"HTTP {response.status_code}: {problem}: {excerpt or '(empty)'}",
        )

    def _error(self, server: Server, method: str, path: str, response: HttpResponse) -> TTSAPIError:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            where = f" to {self.redactor.excerpt(location, 100)}" if location else ""
            message = f"HTTP {status}: redirect{where} (redirects are not followed)"
            return TTSAPIError(
                server=server, method=method, path=path, status=status, body=None, message=message
            )
        try:
            body = parse_json(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            text = body["message"]
        else:
            body = None
            text = response.text
        excerpt = self.redactor.excerpt(text, EXCERPT_CHARS)
        return TTSAPIError(
            server=server,
            method=method,
            path=path,
            status=status,
            body=body,
            message=f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}",
        )

    def _deadline_error(self, server: Server, method: str, path: str) -> TTSTransportError:
        return TTSTransportError(
            server=server,
            method=method,
            path=path,
            reason=f"the run's deadline of {self.limits.run_deadline:g} s has passed",
        )

    async def _sleep(self, seconds: float, server: Server, method: str, path: str) -> None:
        if self._deadline is not None and time.monotonic() + seconds > self._deadline:
            raise self._deadline_error(server, method, path)
        await asyncio.sleep(seconds)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def host(self, server: Server) -> str:
        return host_of(self._bases[server])


# Request parts whose ids are not echoed: the field mask, and a collaborator (SetCollaborator
# answers google.protobuf.Empty).
ANSWERED_EMPTY = frozenset({"field_mask", "collaborator"})


def _ids_echo_problem(sent: Any, answer: dict[str, Any]) -> str:
    """Why the answer to a write is not the entity written ('' when it is): the request's
    `<entity>.ids` identifiers must come back (TTS returns the written entity with its ids)."""
    if not isinstance(sent, dict):
        return ""
    for key, entity in sent.items():
        if key in ANSWERED_EMPTY or not isinstance(entity, dict):
            continue
        ids = entity.get("ids")
        if not isinstance(ids, dict):
            continue
        echoed = answer.get("ids")
        if not isinstance(echoed, dict):
            return "the answer does not name the written entity"
        for name, want in _id_fields(ids):
            if _lookup(echoed, name) != want:
                return f"the answer names another entity ({name})"
    return ""


def _id_fields(ids: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for key, value in ids.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found += _id_fields(value, name + ".")
        elif key.endswith("_id") and isinstance(value, str):
            found.append((name, value))
    return found


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
