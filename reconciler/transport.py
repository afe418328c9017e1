"""The HTTP layer under every provider client: one request in, status + headers + bytes out.

Production sends through aiohttp directly (`AiohttpTransport`): a plan is thousands of small
GETs, and aiohttp's ClientSession costs about a third of the client CPU per request of httpx
(with or without an aiohttp transport underneath; measured, see the README). Tests keep httpx's
transport seam: `HttpxTransport` adapts any `httpx.AsyncBaseTransport` (the in-process emulator
through `httpx.ASGITransport`, or a recording wrapper) to the same interface, so the client
above is the same code either way.

Both enforce the limits an untrusted server must not lift: a deadline per request (connect,
send and the whole body), caps on the body as received and as decompressed, no redirects
followed. Failures to get an answer are one typed error naming the host and the cause
(refused, unknown host, TLS, timeout, connection closed), which the client retries or not.

Answers a server may never end (TTS's event stream) have one way in, `stream_lines`: line by
line as they come, over the network and in-process alike; a silence either ends the reading
(a history read) or means a lost connection (a watch).
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import ssl
import urllib.request
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from reconciler.diagnostics import ReconcilerError

if TYPE_CHECKING:
    import aiohttp
    import httpx
    import yarl

MiB = 1024 * 1024

FailureCause = Literal[
    "refused",
    "unknown host",
    "TLS",
    "timeout",
    "connection closed",
    "proxy",
    "malformed response",
    "too large",
    "network",
]
# Causes that another try may cure. A TLS failure (wrong CA, wrong host name), an unknown host
# or an oversized answer will fail the same way again.
RETRYABLE_CAUSES = frozenset({"refused", "timeout", "connection closed", "network"})


def parse_json(content: bytes | str) -> Any:
    """JSON from a server or a file. Raises ValueError for anything that is not JSON, including
    nesting deeper than the decoder's recursion limit (a RecursionError otherwise, which a
    hostile answer can cause and no caller expects)."""
    try:
        return json.loads(content)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one run allows a server; every field is configurable (CLI options, RunOptions)."""

    request_timeout: float = 30.0  # one request: connect, send, and the whole answer
    connect_timeout: float = 10.0
    run_deadline: float | None = None  # seconds for the whole run; None: no limit
    max_body_bytes: int = 64 * MiB  # as received (compressed or not)
    max_decoded_bytes: int = 64 * MiB  # after decompression
    max_server_wait: float = 60.0  # upper bound on any wait a server asks for
    max_list_pages: int = 1000  # per listing, whatever X-Total-Count says


@dataclass(slots=True)
class HttpResponse:
    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    def json(self) -> Any:
        return parse_json(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class TransportFailure(ReconcilerError):
    """No usable answer: the host and the cause, never the request."""

    def __init__(self, cause: FailureCause, host: str, detail: str = "") -> None:
        self.cause: FailureCause = cause
        self.host = host
        self.detail = detail
        self.retryable = cause in RETRYABLE_CAUSES
        super().__init__(f"{host}: {describe(cause)}" + (f" ({detail})" if detail else ""))


def describe(cause: FailureCause) -> str:
    return {
        "refused": "connection refused",
        "unknown host": "unknown host (DNS lookup failed)",
        "TLS": "TLS handshake failed",
        "timeout": "timed out",
        "connection closed": "connection closed without a complete answer",
        "proxy": "proxy failed",
        "malformed response": "not a valid HTTP response",
        "too large": "answer too large",
        "network": "network error",
    }[cause]


class Transport(Protocol):
    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> HttpResponse:
        """One request and its whole answer."""
        ...

    def stream_lines(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        idle_timeout: float,
        *,
        until_quiet: bool = False,
        timeout: float | None = None,
    ) -> AsyncGenerator[HttpResponse, None]:
        """An answer the server may never end (TTS's event stream), line by line: first the
        status and headers (empty content), then one item per non-empty line (content: the
        line); a non-200 status gives its whole (capped) body as the only item after the first.

        Ends when the server ends the stream. Silence for `idle_timeout` seconds is a
        TransportFailure (a lost connection), or with `until_quiet` the end of what there is to
        read (a line cut there is left out). `timeout`: a bound on the whole exchange."""
        ...

    async def aclose(self) -> None: ...


def _split_lines(buffer: bytearray, chunk: bytes, cap: int, host: str) -> list[bytes]:
    """Complete lines from `buffer` + `chunk` (the rest stays in `buffer`); a line longer than
    `cap` is an error (a server must not make us hold an endless line)."""
    buffer.extend(chunk)
    lines: list[bytes] = []
    while True:
        end = buffer.find(b"\n")
        if end < 0:
            break
        lines.append(bytes(buffer[:end]))
        del buffer[: end + 1]
    if len(buffer) > cap:
        raise _too_large(host, cap, "one line of a stream")
    return lines


def _stream_deadline(timeout: float | None) -> float | None:
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


def _stream_head_wait(limits: HttpLimits, idle_timeout: float, timeout: float | None) -> float:
    """How long a stream's status and headers may take."""
    return timeout if timeout is not None else limits.connect_timeout + idle_timeout


async def _lines(
    chunks: AsyncIterator[bytes],
    status: int,
    cap: int,
    host: str,
    idle_timeout: float,
    until_quiet: bool,
    deadline: float | None,
) -> AsyncGenerator[bytes, None]:
    """The non-empty lines of a streamed answer as they come (see `Transport.stream_lines`);
    for a status other than 200, its whole body once."""
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    while True:
        wait = idle_timeout
        if deadline is not None:
            wait = min(wait, deadline - loop.time())
        quiet = asyncio.timeout(max(wait, 0.0))
        try:
            async with quiet:
                chunk = await anext(chunks)
        except StopAsyncIteration:
            break
        except TimeoutError:
            if not quiet.expired():
                raise  # the transport's own timeout, not ours
            if deadline is not None and loop.time() >= deadline:
                raise TransportFailure("timeout", host, "the stream outlasted its time") from None
            if not until_quiet:
                raise TransportFailure("timeout", host, f"silent for {idle_timeout:g} s") from None
            if status == 200:
                buffer.clear()  # a line cut where reading stopped
            break
        if status != 200:
            buffer.extend(chunk)
            if len(buffer) > cap:
                raise _too_large(host, cap)
            continue
        for line in _split_lines(buffer, chunk, cap, host):
            if line.strip():
                yield line
    if status != 200 or buffer.strip():
        yield bytes(buffer)


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or url


def validate_root_url(url: str) -> str | None:
    """Why `url` cannot be a server root URL, or None when it can."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return (
            f"{url!r} is not an http:// or https:// URL (e.g. https://eu1.cloud.thethings.network)"
        )
    if not parts.hostname:
        return f"{url!r} names no host"
    if parts.query or parts.fragment:
        return f"{url!r} must not have a query or fragment"
    try:
        _ = parts.port
    except ValueError:
        return f"{url!r} has an invalid port"
    return None


def ssl_context(verify: str | Path | bool) -> ssl.SSLContext | bool:
    """The TLS context for https:// (certifi's bundle, or a given CA bundle); False: no checks."""
    if verify is False:
        return False
    if verify is True:
        try:
            import certifi

            cafile: str | None = certifi.where()
        except ImportError:  # the system store then
            cafile = None
        return ssl.create_default_context(cafile=cafile)
    path = Path(verify)
    try:
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as error:
        raise ReconcilerError(
            f"ca_bundle {path}: not a PEM certificate bundle ({error.__class__.__name__})"
        ) from None
    except OSError as error:
        raise ReconcilerError(f"ca_bundle {path}: cannot read it ({error.strerror})") from None


def decode_body(raw: bytes, encoding: str | None, limits: HttpLimits, host: str) -> bytes:
    """The body as sent, decompressed within `max_decoded_bytes` (gzip and deflate)."""
    if not encoding or encoding == "identity":
        if len(raw) > limits.max_decoded_bytes:
            raise _too_large(host, limits.max_decoded_bytes)
        return raw
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    elif encoding == "deflate":
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or raw, as servers vary
    else:
        raise TransportFailure("malformed response", host, f"unsupported encoding {encoding!r}")
    try:
        data = decompressor.decompress(raw, limits.max_decoded_bytes + 1)
    except zlib.error:
        raise TransportFailure("malformed response", host, "corrupt compressed body") from None
    if len(data) > limits.max_decoded_bytes or decompressor.unconsumed_tail:
        raise _too_large(host, limits.max_decoded_bytes, "decompressed")
    return data


def _too_large(host: str, cap: int, what: str = "") -> TransportFailure:
    return TransportFailure("too large", host, f"{what} body over {cap // MiB} MiB".strip())


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY), decided
    once per server instead of on every request."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or (parts.hostname and urllib.request.proxy_bypass(parts.hostname)):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


# -- production: aiohttp -----------------------------------------------------------------------

_NO_PROXY: tuple[str | None, Any] = (None, None)


class AiohttpTransport:
    """aiohttp's ClientSession with one connection pool; created in the running event loop."""

    def __init__(
        self,
        *,
        limits: HttpLimits,
        verify: str | Path | bool = True,
        max_connections: int = 32,
        https: bool = False,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.limits = limits
        self.verify = verify
        self.max_connections = max_connections
        # Sent with every request (a request's own headers override them): the session merges
        # them in C, where a request's headers are merged one by one in Python.
        self.default_headers = dict(default_headers or {})
        self._session: aiohttp.ClientSession | None = None
        # Only https:// needs a TLS context (building one costs ~50 ms); built up front then,
        # so a bad CA bundle is reported before any request.
        self._ssl: ssl.SSLContext | bool | None = ssl_context(verify) if https else None
        # The environment's proxies, read once; without any, no request looks one up.
        self._proxies_configured = bool(urllib.request.getproxies())
        self._proxies: dict[str, tuple[str | None, Any]] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._url: type[yarl.URL]
        self._client_error: type[aiohttp.ClientError]
        self._timeout_errors: tuple[type[Exception], ...]

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp
            from yarl import URL

            # Bound once: an import statement in `send` cost ~5 us a request (a package's
            # `from ... import` runs importlib's Python code every time).
            self._url = URL
            self._client_error = aiohttp.ClientError
            self._timeout_errors = (TimeoutError, aiohttp.ServerTimeoutError)
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=0, ttl_dns_cache=300
            )
            # We decompress ourselves, within the caps, and only what we asked for: aiohttp's
            # own Accept-Encoding (which may offer br) is never sent. Skipping it costs a copy
            # of the headers per request, so not when the default headers name one.
            names = {name.lower() for name in self.default_headers}
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self.default_headers,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # cookies are never ours to keep
                skip_auto_headers=() if "accept-encoding" in names else ("Accept-Encoding",),
            )
        return self._session

    def _tls(self) -> ssl.SSLContext | bool:
        if self._ssl is None:
            self._ssl = ssl_context(self.verify)
        return self._ssl

    def _proxy(self, url: str) -> tuple[str | None, Any]:
        if not self._proxies_configured:
            return _NO_PROXY
        end = url.find("/", url.find("//") + 2)
        root = url if end < 0 else url[:end]
        found = self._proxies.get(root)
        if found is None:
            import aiohttp

            proxy = proxy_for(root)
            auth = None
            if proxy:
                parts = urlsplit(proxy)
                if parts.username:
                    auth = aiohttp.BasicAuth(parts.username, parts.password or "")
                    proxy = proxy.replace(parts.netloc, parts.netloc.rpartition("@")[2])
            found = self._proxies[root] = (proxy, auth)
        return found

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            import aiohttp

            timeout = aiohttp.ClientTimeout(
                total=seconds, connect=min(seconds, self.limits.connect_timeout)
            )
            if len(self._timeouts) < 8:  # the usual one, not every shortened one
                self._timeouts[seconds] = timeout
        return timeout

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> HttpResponse:
        session = self._client_session()
        proxy, proxy_auth = self._proxy(url)
        tls = self._tls() if url.startswith("https:") else True
        limits = self.limits
        try:
            async with session.request(
                method,
                self._url(url, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(timeout),
                ssl=tls,
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as response:
                length = response.content_length
                if length is not None and length > limits.max_body_bytes:
                    raise _too_large(response.url.host or url, limits.max_body_bytes)
                if length is not None:
                    raw = await response.read()
                else:
                    chunks: list[bytes] = []
                    size = 0
                    while chunk := await response.content.readany():
                        size += len(chunk)
                        if size > limits.max_body_bytes:
                            raise _too_large(host_of(url), limits.max_body_bytes)
                        chunks.append(chunk)
                    raw = b"".join(chunks)
                encoding = response.headers.get("Content-Encoding")
                if encoding is None and len(raw) <= limits.max_decoded_bytes:
                    return HttpResponse(response.status, response.headers, raw)  # most answers
                content = decode_body(raw, encoding, limits, host_of(url))
                return HttpResponse(response.status, response.headers, content)
        except TransportFailure:
            raise
        except self._timeout_errors:
            raise TransportFailure("timeout", host_of(url), f"after {timeout:g} s") from None
        except self._client_error as error:
            raise _aiohttp_failure(error, host_of(url)) from None
        except OSError as error:
            raise _os_failure(error, host_of(url)) from None

    async def stream_lines(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        idle_timeout: float,
        *,
        until_quiet: bool = False,
        timeout: float | None = None,
    ) -> AsyncGenerator[HttpResponse, None]:
        """See `Transport.stream_lines`."""
        import aiohttp
        from yarl import URL

        session = self._client_session()
        proxy, proxy_auth = self._proxy(url)
        tls = self._tls() if url.startswith("https:") else True
        host = host_of(url)
        limits = self.limits
        deadline = _stream_deadline(timeout)
        try:
            # The waits are ours (`_stream_head_wait`, `_lines`): aiohttp's own would fail
            # where a quiet stream only ends.
            response = await asyncio.wait_for(
                session.request(
                    method,
                    URL(url, encoded=True),
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None, connect=limits.connect_timeout),
                    ssl=tls,
                    proxy=proxy,
                    proxy_auth=proxy_auth,
                ),
                _stream_head_wait(limits, idle_timeout, timeout),
            )
            async with response:
                yield HttpResponse(response.status, response.headers, b"")
                lines = _lines(
                    response.content.iter_any(),
                    response.status,
                    limits.max_body_bytes,
                    host,
                    idle_timeout,
                    until_quiet,
                    deadline,
                )
                async for line in lines:
                    yield HttpResponse(response.status, response.headers, line)
        except TransportFailure:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise TransportFailure("timeout", host, "no answer in time") from None
        except aiohttp.ClientError as error:
            raise _aiohttp_failure(error, host) from None
        except OSError as error:
            raise _os_failure(error, host) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _aiohttp_failure(error: Exception, host: str) -> TransportFailure:
    import aiohttp

    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return TransportFailure("TLS", host, str(error.certificate_error))
    if isinstance(error, aiohttp.ClientSSLError | aiohttp.ClientConnectorSSLError):
        return TransportFailure("TLS", host, _ssl_reason(error))
    if isinstance(error, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return TransportFailure("proxy", host, str(error))
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return TransportFailure("unknown host", host)
    if isinstance(error, aiohttp.ClientConnectorError):
        return _os_failure(error.os_error, host)
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return TransportFailure("connection closed", host)
    if isinstance(error, aiohttp.ClientResponseError):
        return TransportFailure("malformed response", host, error.message[:100])
    if isinstance(error, aiohttp.ClientOSError):
        return _os_failure(error, host)
    return TransportFailure("network", host, type(error).__name__)


def _ssl_reason(error: BaseException) -> str:
    inner = getattr(error, "os_error", None) or error.__cause__ or error
    reason = getattr(inner, "reason", None) or getattr(inner, "verify_message", None)
    return str(reason or type(inner).__name__)


def _os_failure(error: OSError, host: str) -> TransportFailure:
    if isinstance(error, ssl.SSLError):
        return TransportFailure("TLS", host, str(error.reason or error))
    if isinstance(error, socket.gaierror):
        return TransportFailure("unknown host", host)
    if isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED:
        return TransportFailure("refused", host)
    if isinstance(error, TimeoutError):
        return TransportFailure("timeout", host)
    if isinstance(error, ConnectionError):
        return TransportFailure("connection closed", host)
    return TransportFailure("network", host, error.strerror or type(error).__name__)


# -- tests: any httpx transport ----------------------------------------------------------------


class HttpxTransport:
    """Adapts an `httpx.AsyncBaseTransport` (the in-process emulator in tests) to `Transport`;
    the same caps and no redirects. Not for production: httpx costs more CPU per request."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        limits: HttpLimits,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.inner = inner
        self.limits = limits
        self.default_headers = dict(default_headers or {})

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> HttpResponse:
        import httpx

        host = host_of(url)
        request = httpx.Request(
            method, url, headers={**self.default_headers, **headers}, content=body
        )
        try:
            async with asyncio.timeout(timeout):
                response = await self.inner.handle_async_request(request)
                try:
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_raw():
                        size += len(chunk)
                        if size > self.limits.max_body_bytes:
                            raise _too_large(host, self.limits.max_body_bytes)
                        chunks.append(chunk)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise TransportFailure("timeout", host, f"after {timeout:g} s") from None
        except httpx.TransportError as error:
            raise _httpx_failure(error, host) from None
        content = decode_body(
            b"".join(chunks), response.headers.get("Content-Encoding"), self.limits, host
        )
        return HttpResponse(response.status_code, response.headers, content)

    async def stream_lines(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        idle_timeout: float,
        *,
        until_quiet: bool = False,
        timeout: float | None = None,
    ) -> AsyncGenerator[HttpResponse, None]:
        """See `Transport.stream_lines`."""
        import httpx

        host = host_of(url)
        deadline = _stream_deadline(timeout)
        request = httpx.Request(
            method, url, headers={**self.default_headers, **headers}, content=body
        )
        try:
            async with asyncio.timeout(_stream_head_wait(self.limits, idle_timeout, timeout)):
                if isinstance(self.inner, httpx.ASGITransport):
                    response = await _asgi_streamed(self.inner, request, body or b"")
                else:
                    response = await self.inner.handle_async_request(request)
            try:
                yield HttpResponse(response.status_code, response.headers, b"")
                lines = _lines(
                    response.aiter_raw(),
                    response.status_code,
                    self.limits.max_body_bytes,
                    host,
                    idle_timeout,
                    until_quiet,
                    deadline,
                )
                async for line in lines:
                    yield HttpResponse(response.status_code, response.headers, line)
            finally:
                await response.aclose()
        except TimeoutError:
            raise TransportFailure("timeout", host, "no answer in time") from None
        except httpx.TransportError as error:
            raise _httpx_failure(error, host) from None

    async def aclose(self) -> None:
        await self.inner.aclose()


def _httpx_failure(error: httpx.TransportError, host: str) -> TransportFailure:
    import httpx

    if isinstance(error, httpx.ConnectError):
        cause = error.__cause__ or error.__context__
        if isinstance(cause, OSError):
            return _os_failure(cause, host)
        return TransportFailure("refused", host, str(error)[:100])
    if isinstance(error, httpx.TimeoutException):
        return TransportFailure("timeout", host)
    return TransportFailure("connection closed", host, type(error).__name__)


async def _asgi_streamed(
    transport: httpx.ASGITransport, request: httpx.Request, body: bytes
) -> httpx.Response:
    """`request` to the app of `transport`, answered as soon as the app starts its response,
    with the body as the app sends it. httpx.ASGITransport hands a response over only once the
    app has ended it, which an endless stream (TTS's events) never does. Closing the answer
    tells the app the client is gone (`http.disconnect`) and ends it."""
    import httpx

    loop = asyncio.get_running_loop()
    head: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = loop.create_future()
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
    gone = asyncio.Event()
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start" and not head.done():
            head.set_result((message["status"], list(message.get("headers", []))))
        elif message["type"] == "http.response.body":
            if message.get("body"):
                chunks.put_nowait(message["body"])
            if not message.get("more_body", False):
                chunks.put_nowait(None)

    url = request.url
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "scheme": url.scheme,
        "path": url.path,
        "raw_path": url.raw_path.split(b"?")[0],
        "query_string": url.query,
        "server": (url.host, url.port),
        "client": transport.client,
        "root_path": transport.root_path,
    }

    async def run() -> None:
        try:
            await transport.app(scope, receive, send)
        except Exception as error:
            if not head.done():
                # As httpx.ASGITransport: the app's own error where it raises them (tests).
                head.set_exception(
                    error
                    if transport.raise_app_exceptions
                    else httpx.RemoteProtocolError(f"the app failed: {error!r}")
                )
        finally:
            if not head.done():
                head.set_exception(httpx.RemoteProtocolError("the app sent no response"))
            chunks.put_nowait(None)

    task = asyncio.create_task(run())

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while (chunk := await chunks.get()) is not None:
                yield chunk

        async def aclose(self) -> None:
            gone.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        status, headers = await head
    except BaseException:
        await Body().aclose()
        raise
    return httpx.Response(status, headers=headers, stream=Body())
