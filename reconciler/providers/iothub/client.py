"""HTTP client for an IoT Hub's service REST API (api-version 2021-04-12).

Tokens: a shared access signature for the configured host name (`sr` = the host, HMAC-SHA256
with the policy key), renewed before it expires; requests may go elsewhere
(`RECONCILER_IOTHUB_URL`: the emulator in CI) while the token stays signed for the host.

Pacing: the hub throttles per operation class (identity registry operations, twin reads, twin
updates, queries) per SKU and unit count; the client spaces its requests to those rates so a
hub's queue never fills. The hub sends no Retry-After: 429 and 5xx answers (and 403
IotHubQuotaExceeded) are retried with exponential backoff and full jitter (a Retry-After, if a
proxy sends one, is honoured).

Errors carry the hub's symbolic error code (`PreconditionFailed`, from the `iothub-errorcode`
header or the `Message` body) and a scrubbed excerpt, never a request body or a key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json as jsonlib
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from reconciler import __version__
from reconciler.diagnostics import ReconcilerError
from reconciler.providers.iothub.rules import OperationClass
from reconciler.redact import Redactor
from reconciler.transport import (
    AiohttpTransport,
    HttpLimits,
    HttpResponse,
    HttpxTransport,
    Transport,
    TransportFailure,
    parse_json,
    validate_root_url,
)

if TYPE_CHECKING:
    import httpx

    from reconciler.resources import Secret

API_VERSION = "2021-04-12"
TOKEN_TTL_S = 3600
TOKEN_RENEW_S = 300  # renew this long before expiry
USER_AGENT = f"reconciler/{__version__}"
EXCERPT_CHARS = 200
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class Pacer:
    """Spaces requests per operation class at the hub's rate (a bulk request of n devices
    costs n identity operations). Without a SKU nothing is paced."""

    def __init__(self, rates: Mapping[OperationClass, float] | None = None) -> None:
        self.rates = dict(rates or {})
        self._due: dict[OperationClass, float] = {}

    def delay(self, operation: OperationClass, cost: float = 1.0) -> float:
        """How long to wait before sending (and books the request): GCRA, with one second of
        operations allowed at once, as the hub serves a burst before it queues."""
        rate = self.rates.get(operation)
        if rate is None:
            return 0.0
        now = time.monotonic()
        interval = 1.0 / rate
        burst = max(1.0, rate)
        due = max(self._due.get(operation, now), now) + cost * interval
        self._due[operation] = due
        return max(0.0, due - now - burst * interval)

    async def acquire(self, operation: OperationClass, cost: float = 1.0) -> None:
        wait = self.delay(operation, cost)
        if wait > 0:
            await asyncio.sleep(wait)

    def seconds_for(self, operation: OperationClass, cost: float) -> float | None:
        rate = self.rates.get(operation)
        return None if rate is None else max(0.0, cost - rate) / rate


class IotHubAPIError(ReconcilerError):
    """The hub answered, but not with the documented success."""

    def __init__(self, *, method: str, path: str, status: int, code: str, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"IoT Hub: {self.method} {self.path}: {self.message}"


class IotHubTransportError(ReconcilerError):
    def __init__(self, *, method: str, path: str, reason: str) -> None:
        self.method = method
        self.path = path
        self.status = 0
        self.code = ""
        super().__init__(f"IoT Hub: {method} {path}: no response: {reason}")


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    latency_total: float = 0.0
    answered: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    @property
    def mean_latency(self) -> float | None:
        return self.latency_total / self.answered if self.answered else None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    throttled_attempts: int = 30  # 429s are waited out, not counted as failures
    base_delay: float = 0.2
    max_delay: float = 10.0


def sas_token(host_name: str, key_name: str, key: str, expiry: int) -> str:
    """`SharedAccessSignature sr=&sig=&se=&skn=` for the hub `host_name` (its bare host name,
    lower-case, URL-encoded, then LF and the expiry, signed with the base64-decoded key)."""
    resource = quote_plus(host_name.lower())
    digest = hmac.digest(base64.b64decode(key), f"{resource}\n{expiry}".encode(), hashlib.sha256)
    signature = quote(base64.b64encode(digest).decode(), safe="")
    return f"SharedAccessSignature sr={resource}&sig={signature}&se={expiry}&skn={key_name}"


def parse_error(response: HttpResponse) -> tuple[str, str]:
    """(symbolic code, text) from an IoT Hub error answer: the `iothub-errorcode` header, a
    `Message` of `ErrorCode:<Name>;<text>`, or a `Message` that is itself JSON."""
    code = response.headers.get("iothub-errorcode", "")
    text = ""
    try:
        body = parse_json(response.content)
    except ValueError:
        body = None
    message = body.get("Message") if isinstance(body, dict) else None
    if isinstance(message, str):
        inner = None
        if message.startswith("{"):
            try:
                inner = parse_json(message)
            except ValueError:
                inner = None
        if isinstance(inner, dict):
            text = str(inner.get("message", ""))
            code = code or str(inner.get("errorCode", ""))
        elif message.startswith("ErrorCode:"):
            name, _, rest = message[len("ErrorCode:") :].partition(";")
            code = code or name
            text = rest
        else:
            text = message
    elif not isinstance(body, dict):
        text = response.text
    return code[:100], text


class HubClient:
    """Async client for one IoT Hub over one connection pool."""

    def __init__(
        self,
        endpoint: str,
        host_name: str,
        key_name: str,
        key: Secret,
        *,
        verify: str | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: HttpLimits | None = None,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        max_connections: int = 32,
        redactor: Redactor | None = None,
    ) -> None:
        problem = validate_root_url(endpoint)
        if problem:
            raise ReconcilerError(f"IoT Hub URL: {problem}")
        self.base = endpoint.rstrip("/")
        self.host_name = host_name
        self.key_name = key_name
        self._key = key
        self.limits = limits or HttpLimits()
        self.retry = retry or RetryPolicy()
        self.pacer = pacer or Pacer()
        self.stats = RequestStats()
        self.redactor = redactor or Redactor([key.reveal()])
        self._token = ""
        self._token_expiry = 0
        self.transport: Transport
        if transport is not None:
            self.transport = HttpxTransport(transport, limits=self.limits)
        else:
            self.transport = AiohttpTransport(
                limits=self.limits, verify=verify, max_connections=max_connections
            )

    async def aclose(self) -> None:
        await self.transport.aclose()

    def authorization(self) -> str:
        now = int(time.time())
        if now + TOKEN_RENEW_S >= self._token_expiry:
            self._token_expiry = now + TOKEN_TTL_S
            self._token = sas_token(
                self.host_name, self.key_name, self._key.reveal(), self._token_expiry
            )
        return self._token

    def url(self, path: str) -> str:
        return f"{self.base}{path}?api-version={API_VERSION}"

    async def request(
        self,
        method: str,
        path: str,
        operation: OperationClass,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        cost: float = 1.0,
        success: tuple[int, ...] = (200,),
    ) -> HttpResponse:
        """Send one request, paced for its operation class; retry throttling and transient
        failures; raise IotHubAPIError for any answer but `success`."""
        url = self.url(path)
        body = None if json is None else jsonlib.dumps(json, separators=(",", ":")).encode()
        attempt = 0
        throttled = 0
        while True:
            attempt += 1
            await self.pacer.acquire(operation, cost)
            request_headers = {
                "Authorization": self.authorization(),
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
                **(headers or {}),
            }
            if body is not None:
                request_headers["Content-Type"] = "application/json; charset=utf-8"
            self.stats.requests += 1
            started = time.perf_counter()
            try:
                response = await self.transport.send(
                    method, url, request_headers, body, self.limits.request_timeout
                )
            except TransportFailure as failure:
                if not failure.retryable or attempt >= self.retry.attempts:
                    tries = f" (after {attempt} tries)" if attempt > 1 else ""
                    raise IotHubTransportError(
                        method=method, path=path, reason=f"{failure}{tries}"
                    ) from None
                self.stats.retries += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            status = response.status_code
            self.stats.latency_total += time.perf_counter() - started
            self.stats.answered += 1
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
            if status in success:
                return response
            code, _ = parse_error(response)
            transient = status in RETRYABLE_STATUS or code == "IotHubQuotaExceeded"
            if status == 429 and throttled < self.retry.throttled_attempts:
                throttled += 1
                attempt -= 1
                self.stats.retries += 1
                self.stats.throttled += 1
                await asyncio.sleep(self._wait(response, throttled))
                continue
            if transient and status != 429 and attempt < self.retry.attempts:
                self.stats.retries += 1
                await asyncio.sleep(self._wait(response, attempt))
                continue
            raise self.error(method, path, response)

    def error(self, method: str, path: str, response: HttpResponse) -> IotHubAPIError:
        status = response.status_code
        code, text = parse_error(response)
        if 300 <= status < 400:
            text = "redirect (redirects are not followed)"
        excerpt = self.redactor.excerpt(text, EXCERPT_CHARS)
        name = f" {code}" if code else ""
        message = f"HTTP {status}{name}" + (f": {excerpt}" if excerpt else "")
        return IotHubAPIError(method=method, path=path, status=status, code=code, message=message)

    def malformed(
        self, method: str, path: str, response: HttpResponse, problem: str
    ) -> IotHubAPIError:
        excerpt = self.redactor.excerpt(response.text, EXCERPT_CHARS)
        return IotHubAPIError(
            method=method,
            path=path,
            status=response.status_code,
            code="",
            message=f"HTTP {response.status_code}: {problem}: {excerpt or '(empty)'}",
        )

    def _wait(self, response: HttpResponse, attempt: int) -> float:
        retry_after = response.headers.get("Retry-After")
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.limits.max_server_wait)
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def quote_id(value: str) -> str:
    """A device or module id as a path segment (every reserved character escaped)."""
    return quote(value, safe="")


def if_match(etag: str | None) -> dict[str, str]:
    """The If-Match header: the etag as an HTTP entity tag in double quotes (the hub ignores an
    unquoted one), or `"*"` when there is none."""
    return {"If-Match": f'"{etag}"' if etag else '"*"'}
