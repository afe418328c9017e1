"""A server (or a proxy in front of it) may answer anything: the tool must never count a write as
done that the server did not confirm, never crash on a malformed answer, never wait, read or
page without bound, never follow a redirect, and never print a secret the server echoes.

Each test scripts a small HTTP server on 127.0.0.1 (tests/core/hostile.py) and runs the
production client (aiohttp) against it; every test is bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler import engine
from reconciler.diagnostics import ReconcilerError
from reconciler.emulator.tts.config import generate_api_key
from reconciler.engine import RunOptions
from reconciler.plan.model import ApplyReport
from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY
from reconciler.providers.tts.client import (
    RetryPolicy,
    ServerURLs,
    TTSClient,
    TTSTransportError,
)
from reconciler.transport import HttpLimits
from tests.core.hostile import (
    HostileServer,
    Request,
    empty_listing,
    not_found,
    respond,
    response_bytes,
    self_signed_certificate,
)
from tests.core.support import KEYS, site

API_KEY = generate_api_key()[0]
BOUND = 20  # seconds any test may take: a hang is a failure, not a stuck suite


def client(url: str, **kwargs: Any) -> TTSClient:
    kwargs.setdefault("retry", RetryPolicy(attempts=1))
    return TTSClient(ServerURLs.single(url), API_KEY, **kwargs)


def options(tmp_path: Path, url: str, **kwargs: Any) -> RunOptions:
    return RunOptions(
        paths=[site(tmp_path)],
        providers=REGISTRY,
        manifest_kinds=MANIFEST_KINDS,
        url=url,
        environ={**KEYS, "TTS_API_KEY": API_KEY},
        retries=2,
        **kwargs,
    )


async def plan_and_apply(opts: RunOptions) -> ApplyReport:
    loaded = engine.load(opts)
    session = engine.connect(loaded, opts)
    try:
        run = await engine.make_plan(loaded, session, opts)
        assert run.plan.changes, "the plan should create everything"
        return await engine.apply_plan(run, session, opts)
    finally:
        await session.aclose()


async def plan_only(opts: RunOptions) -> None:
    loaded = engine.load(opts)
    session = engine.connect(loaded, opts)
    try:
        await engine.make_plan(loaded, session, opts)
    finally:
        await session.aclose()


# -- finding 3: writes are done only when the server confirms them ------------------------------

WRITE_ANSWERS = {
    "redirect": (
        response_bytes(302, b"", {"Location": "https://login.example.com/"}),
        "HTTP 302: redirect to https://login.example.com/ (redirects are not followed)",
    ),
    "html page": (
        response_bytes(200, b"<html><body>Sign in</body></html>", {"Content-Type": "text/html"}),
        "HTTP 200: the answer is not a JSON object: <html><body>Sign in</body></html>",
    ),
    "malformed json": (
        response_bytes(200, b'{"application": {"ids":', {"Content-Type": "application/json"}),
        "the answer is not a JSON object",
    ),
    "another entity": (
        response_bytes(200, b'{"ids": {"application_id": "someone-else"}}'),
        "the answer names another entity (application_id)",
    ),
    "empty object": (response_bytes(200, b"{}"), "the answer does not name the written entity"),
    "error nested too deeply": (response_bytes(500, b"{" + b'"a":{' * 50_000), "HTTP 500"),
    "no content": (response_bytes(204), "HTTP 204"),
}


@pytest.mark.parametrize("answer", WRITE_ANSWERS, ids=list(WRITE_ANSWERS))
async def test_a_write_without_the_documented_answer_fails_its_resource(
    answer: str, tmp_path: Path
) -> None:
    raw, expected = WRITE_ANSWERS[answer]

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        if await empty_listing(request, writer):
            return
        if request.method == "GET":
            await respond(writer, 404, not_found())  # nothing exists yet: plan creates it all
        else:
            writer.write(raw)
            await writer.drain()

    async with HostileServer(handler) as server:
        report = await asyncio.wait_for(plan_and_apply(options(tmp_path, server.url)), BOUND)
    assert not [r for r in report.results if r.outcome == "done"], report.counts()
    failed = {str(r.key): r.error for r in report.failed}
    assert expected in failed["application field-sensors"], failed
    assert failed["application field-sensors"].startswith(
        "Identity Server: POST /users/admin-user/applications: "
    )
    assert not [r for r in server.requests if r.method != "GET" and "/devices" in r.path], (
        "devices were written into an application that was never confirmed"
    )


READ_ANSWERS = {
    "html page": (b"<html>maintenance</html>", {}, "not a JSON object: <html>maintenance</html>"),
    "malformed json": (b'{"ids": ', {}, "not a JSON object"),
    "json array": (b"[1, 2]", {}, "not a JSON object: [1, 2]"),
    # Deeper than the decoder's recursion limit: RecursionError, not a ValueError, and so a
    # traceback once.
    "json nested too deeply": (b"[" * 100_000 + b"]" * 100_000, {}, "not a JSON object"),
    "attributes not a map": (
        b'{"ids": {"application_id": "field-sensors"}, "attributes": "x", "end_devices": 7}',
        {},
        "`end_devices` is not a list of objects",
    ),
    "total count not a number": (
        b'{"ids": {"application_id": "field-sensors"}, "rights": ["RIGHT_ALL"],'
        b' "end_devices": ['
        + b",".join(b'{"ids": {"device_id": "d%d"}}' % i for i in range(1000))
        + b"]}",
        {"X-Total-Count": "lots"},
        "X-Total-Count is not a number",
    ),
}


@pytest.mark.parametrize("answer", READ_ANSWERS, ids=list(READ_ANSWERS))
async def test_a_malformed_read_is_a_clear_error_naming_the_request(
    answer: str, tmp_path: Path
) -> None:
    body, headers, expected = READ_ANSWERS[answer]

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        if request.path.endswith("/link"):
            await respond(writer, 404, not_found())
        else:
            writer.write(response_bytes(200, body, headers))
            await writer.drain()

    async with HostileServer(handler) as server:
        with pytest.raises(ReconcilerError) as caught:
            await asyncio.wait_for(plan_only(options(tmp_path, server.url)), BOUND)
    message = str(caught.value)
    assert expected in message, message
    assert message.startswith(("Identity Server: GET /", "Application Server: GET /")), message


# -- finding 4: deadlines, caps, bounded waits and pages ----------------------------------------


async def test_a_slow_body_hits_the_request_timeout() -> None:
    """Slowloris: headers at once, then one byte every 0.2 s (each read is quick)."""

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.2)

    async with HostileServer(handler) as server:
        tts = client(server.url, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(TTSTransportError) as caught:
            await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
        await tts.aclose()
    assert time.monotonic() - started < 3
    assert "127.0.0.1" in str(caught.value) and "timed out" in str(caught.value)


async def test_the_run_deadline_stops_retrying() -> None:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 503, {"code": 14, "message": "unavailable"})

    async with HostileServer(handler) as server:
        tts = client(
            server.url,
            retry=RetryPolicy(attempts=100, base_delay=0.2, max_delay=0.4),
            limits=HttpLimits(run_deadline=1.0),
        )
        started = time.monotonic()
        with pytest.raises(TTSTransportError) as caught:
            await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
        await tts.aclose()
    assert time.monotonic() - started < 2
    assert "deadline of 1 s" in str(caught.value)


@pytest.mark.parametrize("retry_header", ["1e9", "inf", "nan", "-5"])
async def test_a_server_requested_wait_is_bounded(retry_header: str) -> None:
    answered: list[int] = []

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        if not answered:
            answered.append(429)
            limit = {
                "X-Rate-Limit-Limit": "10",
                "X-Rate-Limit-Available": "0",
                "X-Rate-Limit-Reset": "1",
                "X-Rate-Limit-Retry": retry_header,
            }
            await respond(writer, 429, {"code": 8, "message": "rate limited"}, limit)
        else:
            await respond(writer, 200, {"ids": {"application_id": "a"}})

    async with HostileServer(handler) as server:
        tts = client(server.url, limits=HttpLimits(max_server_wait=0.5))
        started = time.monotonic()
        data = await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
        await tts.aclose()
    assert data == {"ids": {"application_id": "a"}}
    assert time.monotonic() - started < 1.5  # not 1e9 s, not for ever; at most 1 s (default)


@pytest.mark.parametrize("total", [None, "1000000000"])
async def test_endless_full_pages_stop_at_the_page_ceiling(
    total: str | None, tmp_path: Path
) -> None:
    pages: list[int] = []

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        path = request.path.removeprefix("/api/v3")
        if await empty_listing(request, writer):
            return
        if path == "/applications/field-sensors":
            await respond(writer, 200, {"ids": {"application_id": "field-sensors"}})
        elif path.endswith("/rights"):
            await respond(writer, 200, {"rights": ["RIGHT_ALL"]})
        elif path.startswith("/as/webhooks/"):
            await respond(writer, 200, {"webhooks": []})
        elif path.endswith("/devices"):
            page = int(request.query["page"][0])
            pages.append(page)
            items = [{"ids": {"device_id": f"p{page}-{i}"}} for i in range(1000)]
            headers = {"X-Total-Count": total} if total else {}
            await respond(writer, 200, {"end_devices": items}, headers)
        else:
            await respond(writer, 404, not_found())

    async with HostileServer(handler) as server:
        opts = options(tmp_path, server.url, limits=HttpLimits(max_list_pages=5))
        with pytest.raises(ReconcilerError) as caught:
            await asyncio.wait_for(plan_only(opts), BOUND)
    assert "more than 5 pages of 1000" in str(caught.value)
    assert pages == [1, 2, 3, 4, 5]


async def test_pages_stop_where_x_total_count_says(tmp_path: Path) -> None:
    pages: list[int] = []

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        path = request.path.removeprefix("/api/v3")
        if await empty_listing(request, writer):
            return
        if path.endswith("/devices"):
            pages.append(int(request.query["page"][0]))
            items = [{"ids": {"device_id": f"d{len(pages)}-{i}"}} for i in range(1000)]
            await respond(writer, 200, {"end_devices": items}, {"X-Total-Count": "2000"})
        elif path.endswith("/rights"):
            await respond(writer, 200, {"rights": ["RIGHT_ALL"]})
        elif path.startswith("/as/webhooks/"):
            await respond(writer, 200, {"webhooks": []})
        elif path == "/applications/field-sensors":
            await respond(writer, 200, {"ids": {"application_id": "field-sensors"}})
        else:
            await respond(writer, 404, not_found())

    async with HostileServer(handler) as server:
        await asyncio.wait_for(plan_only(options(tmp_path, server.url)), BOUND)
    assert pages == [1, 2]


def _endless(content_length: str | None) -> Any:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {content_length}\r\n" if content_length else ""
        head += "" if content_length else "Connection: close\r\n"
        writer.write((head + "\r\n").encode())
        chunk = b" " * 65536
        for _ in range(4096):  # up to 256 MiB, unless the client hangs up first
            writer.write(chunk)
            await writer.drain()

    return handler


@pytest.mark.parametrize("content_length", ["3000000000", None], ids=["3 GB declared", "no length"])
async def test_a_huge_body_is_refused_at_the_cap(content_length: str | None) -> None:
    async with HostileServer(_endless(content_length)) as server:
        tts = client(server.url, limits=HttpLimits(max_body_bytes=1024 * 1024))
        with pytest.raises(TTSTransportError) as caught:
            await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
        await tts.aclose()
    assert "answer too large (body over 1 MiB)" in str(caught.value)


async def test_a_decompression_bomb_is_refused_at_the_cap() -> None:
    bomb = gzip.compress(b"{" + b" " * (64 * 1024 * 1024) + b"}", compresslevel=9)
    assert len(bomb) < 1024 * 1024

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 200, bomb, {"Content-Encoding": "gzip"})

    async with HostileServer(handler) as server:
        tts = client(server.url, limits=HttpLimits(max_decoded_bytes=4 * 1024 * 1024))
        with pytest.raises(TTSTransportError) as caught:
            await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
        await tts.aclose()
    assert "decompressed body over 4 MiB" in str(caught.value)


async def test_a_compressed_answer_within_the_caps_is_read() -> None:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        body = gzip.compress(b'{"ids": {"application_id": "a"}}')
        await respond(writer, 200, body, {"Content-Encoding": "gzip"})

    async with HostileServer(handler) as server:
        tts = client(server.url)
        data = await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
        await tts.aclose()
    assert data == {"ids": {"application_id": "a"}}
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


# -- finding 5 (server echo): error messages are scrubbed and short ----------------------------


def _forms(secret: str) -> list[str]:
    forms = [secret, secret.lower(), base64.b64encode(secret.encode()).decode()]
    if len(secret) % 2 == 0 and all(c in "0123456789ABCDEFabcdef" for c in secret):
        raw = bytes.fromhex(secret)
        forms += [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    return forms


async def test_a_server_echo_of_the_request_prints_no_secret(tmp_path: Path) -> None:
    """A proxy answers every write with an error that quotes the request body in several
    encodings, and a megabyte of padding: the report prints none of it."""
    secrets = [API_KEY, *KEYS.values()]

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        if await empty_listing(request, writer):
            return
        if request.method == "GET":
            await respond(writer, 404, not_found())
            return
        text = request.body.decode()
        echo = " ".join(_forms(API_KEY)) + " " + request.headers["authorization"]
        for value in KEYS.values():
            echo += " " + " ".join(_forms(value))
        echo += " | ".join([text, text.lower(), base64.b64encode(request.body).decode()])
        await respond(writer, 400, {"code": 3, "message": echo + "x" * 1_000_000})

    async with HostileServer(handler) as server:
        report = await asyncio.wait_for(plan_and_apply(options(tmp_path, server.url)), BOUND)
    messages = [r.error for r in report.results if r.error]
    assert messages and report.failed
    for message in messages:
        assert len(message) < 400, message[:500]
        for secret in secrets:
            for form in _forms(secret):
                assert form not in message, f"{form!r} leaked"
    application = next(r for r in report.failed if r.key.kind == "application")
    assert "(sensitive)" in application.error and "characters in all)" in application.error


# -- finding 7 and issue 12 item 4: connection failures name the host and the cause ------------


async def test_a_refused_connection_names_the_host_and_the_cause() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    tts = client(f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=2, base_delay=0.01))
    with pytest.raises(TTSTransportError) as caught:
        await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
    await tts.aclose()
    assert str(caught.value) == (
        f"Identity Server: GET /applications/a: no response: 127.0.0.1:{port}: "
        "connection refused (after 2 tries)"
    )


async def test_an_unknown_host_is_named_and_not_retried() -> None:
    tts = client("http://no-such-host.invalid", retry=RetryPolicy(attempts=5, base_delay=0.5))
    started = time.monotonic()
    with pytest.raises(TTSTransportError) as caught:
        await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
    await tts.aclose()
    assert "no-such-host.invalid: unknown host (DNS lookup failed)" in str(caught.value)
    assert "tries" not in str(caught.value)
    assert time.monotonic() - started < 5


async def test_an_untrusted_certificate_is_a_tls_error_and_not_retried(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 200, {"ids": {"application_id": "a"}})

    async with HostileServer(handler, tls=context) as server:
        tts = client(server.url, retry=RetryPolicy(attempts=8, base_delay=0.01))
        with pytest.raises(TTSTransportError) as caught:
            await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
        await tts.aclose()
        assert server.connections == 1, "a TLS failure was retried"
        assert "TLS handshake failed" in str(caught.value)
        assert "certificate verify failed" in str(caught.value)
        # The same server through the Stack's ca_bundle: trusted.
        trusted = client(server.url, verify=str(cert))
        data = await asyncio.wait_for(trusted.get_json("is", "/applications/a"), BOUND)
        await trusted.aclose()
    assert data == {"ids": {"application_id": "a"}}


def test_a_ca_bundle_that_is_not_pem_is_a_clear_error(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("this is not a certificate\n")
    with pytest.raises(ReconcilerError) as caught:
        client("https://tts.example.com", verify=str(bundle))
    assert str(caught.value) == f"ca_bundle {bundle}: not a PEM certificate bundle (SSLError)"


async def test_proxies_from_the_environment_and_the_user_agent_are_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def handler(request: Request, writer: asyncio.StreamWriter) -> None:
        await respond(writer, 200, {"ids": {"application_id": "a"}})

    async with HostileServer(handler) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        tts = client("http://tts.example.test", user_agent="site-a-ci/1.0")
        await asyncio.wait_for(tts.get_json("is", "/applications/a"), BOUND)
        await tts.aclose()
    (request,) = proxy.requests
    assert request.target == "http://tts.example.test/api/v3/applications/a"
    assert request.headers["user-agent"] == "site-a-ci/1.0"


def test_a_url_without_a_scheme_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(site(tmp_path)), "--url", "localhost:80"],
        env={**KEYS, "TTS_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result
    assert "'localhost:80' is not an http:// or https:// URL" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
