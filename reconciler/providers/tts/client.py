"""HTTP client for the TTS API v3: one connection pool per server host, typed errors.

Four logical servers (Identity, Network, Application, Join) may live on different hosts (FACTS:
multi-cluster TTS Cloud). Requests name the server; the client picks its base URL. Errors carry
the server's error identity (`namespace:name`) and public attributes, never request bodies, so
no secret can leak through an exception.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from httpx_aiohttp import AiohttpTransport

from reconciler import __version__
from reconciler.diagnostics import ReconcilerError
from reconciler.providers.tts.pacing import RatePacer

Server = Literal["is", "ns", "as", "js"]
SERVER_NAMES: dict[Server, str] = {
    "is": "Identity Server",
    "ns": "Network Server",
    "as": "Application Server",
    "js": "Join Server",
}
API_PREFIX = "/api/v3"
DEFAULT_USER_AGENT = f"reconciler/{__version__} (+https://github.com/reconciler; httpx)"

# Transient conditions worth retrying (issue 5 tunes the policy): rate limited, unavailable.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


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
    """The server answered with an error status."""

    def __init__(
        self,
        *,
        server: Server,
        method: str,
        path: str,
        status: int,
        body: Mapping[str, Any] | None,
    ) -> None:
        self.server = server
        self.method = method
        self.path = path
        self.status = status
        details = (body or {}).get("details") or []
        first = details[0] if details and isinstance(details[0], Mapping) else {}
        self.namespace: str = str(first.get("namespace", ""))
        self.name: str = str(first.get("name", ""))
        self.attributes: dict[str, Any] = dict(first.get("attributes") or {})
        self.grpc_code: int = int((body or {}).get("code", 0) or 0)
        self.message: str = str((body or {}).get("message", "")) or f"HTTP {status}"
        self.correlation_id: str = str(first.get("correlation_id", ""))
        super().__init__(str(self))

    @property
    def error_id(self) -> str:
        """`namespace:name` such as `pkg/identityserver:end_device_euis_taken`."""
        return f"{self.namespace}:{self.name}" if self.name else ""

    def is_not_found(self) -> bool:
        return self.status == 404

    def __str__(self) -> str:
        return (
            f"{SERVER_NAMES[self.server]}: {self.method} {self.path}: "
            f"HTTP {self.status}: {self.message}"
        )


class TTSTransportError(ReconcilerError):
    """The request did not get an answer (connection refused, reset, timeout)."""

    def __init__(self, *, server: Server, method: str, path: str, cause: Exception) -> None:
        self.server = server
        self.method = method
        self.path = path
        self.cause_type = type(cause).__name__
        super().__init__(
            f"{SERVER_NAMES[server]}: {method} {path}: no response ({self.cause_type})"
        )


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    latency_total: float = 0.0
    answered: int = 0

    @property
    def mean_latency(self) -> float | None:
        return self.latency_total / self.answered if self.answered else None

    def record(self, response: httpx.Response, seconds: float) -> None:
        status = response.status_code
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.latency_total += seconds
        self.answered += 1


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 8  # tries per request on transient failures (5xx, transport errors)
    rate_limited_attempts: int = 30  # tries per request on 429 (paced by X-Rate-Limit-Retry)
    base_delay: float = 0.1
    max_delay: float = 5.0


class TTSClient:
    """Async client for the four TTS servers with connection reuse per distinct host."""

    def __init__(
        self,
        urls: ServerURLs,
        api_key: str,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        verify: str | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
    ) -> None:
        self.urls = urls
        self.retry = retry or RetryPolicy()
        self.stats = RequestStats()
        self.pacer = RatePacer()
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._clients: dict[str, httpx.AsyncClient] = {}
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        for server in ("is", "ns", "as", "js"):
            root = urls.for_server(server).rstrip("/")
            if root not in self._clients:
                self._clients[root] = httpx.AsyncClient(
                    base_url=root + API_PREFIX,
                    headers=self._headers,
                    # aiohttp underneath costs a quarter of httpcore's CPU per request
                    # (measured), which is what a 10,000-device plan is made of.
                    transport=transport or AiohttpTransport(verify=verify, limits=limits),
                    timeout=timeout,
                )

    def _client(self, server: Server) -> httpx.AsyncClient:
        return self._clients[self.urls.for_server(server).rstrip("/")]

    async def __aenter__(self) -> TTSClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def request(
        self,
        server: Server,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | list[tuple[str, str]] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send one request, paced by the server's rate-limit headers; retry transient failures
        with backoff; raise TTSAPIError on an error status."""
        client = self._client(server)
        bucket = f"{method} {path}"  # TTS limits per RPC and entity: the concrete path
        query = _query(params)
        attempt = 0
        rate_limited = 0
        while True:
            attempt += 1
            await self.pacer.acquire(bucket)
            self.stats.requests += 1
            started = time.perf_counter()
            try:
                response = await client.request(method, path, params=query, json=json)
            except (httpx.TransportError, httpx.TimeoutException) as error:
                if attempt >= self.retry.attempts:
                    raise TTSTransportError(
                        server=server, method=method, path=path, cause=error
                    ) from None
                self.stats.retries += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            status = response.status_code
            self.stats.record(response, time.perf_counter() - started)
            self.pacer.observe(bucket, status, response.headers)
            if status < 400:
                return response
            if status == 429 and rate_limited < self.retry.rate_limited_attempts:
                rate_limited += 1
                attempt -= 1  # waiting out a rate limit is not a failed attempt
                self.stats.retries += 1
                self.stats.rate_limited += 1
                if "X-Rate-Limit-Retry" not in response.headers:
                    await asyncio.sleep(self._backoff(rate_limited))
                continue  # otherwise the pacer holds this RPC until the server's retry time
            if status in RETRYABLE_STATUS and status != 429 and attempt < self.retry.attempts:
                self.stats.retries += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            raise TTSAPIError(
                server=server,
                method=method,
                path=path,
                status=status,
                body=_json_or_none(response),
            )

    async def get_json(
        self, server: Server, path: str, *, params: Mapping[str, str | int] | None = None
    ) -> dict[str, Any]:
        response = await self.request(server, "GET", path, params=params)
        return _json_object(response)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def _query(params: Mapping[str, str | int] | list[tuple[str, str]] | None) -> httpx.QueryParams:
    if params is None:
        return httpx.QueryParams()
    pairs: list[tuple[str, str | int | float | bool | None]] = list(
        params.items() if isinstance(params, Mapping) else params
    )
    return httpx.QueryParams(pairs)


def _json_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = _json_or_none(response)
    return body if body is not None else {}
