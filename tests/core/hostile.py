"""A small HTTP/1.1 server on 127.0.0.1 whose answers a test scripts byte by byte: redirects,
HTML pages, malformed JSON, slow or endless bodies, decompression bombs, TLS with an untrusted
certificate. Each test gives a handler; the server records every request."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    target: str  # as sent: a path, or an absolute URL through a proxy
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


def response_bytes(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None, reason: str = "X"
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    all_headers = {"Content-Length": str(len(body)), **(headers or {})}
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes | dict[str, Any] | list[Any] = b"",
    headers: dict[str, str] | None = None,
) -> None:
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    writer.write(response_bytes(status, body, headers))
    await writer.drain()


# Identity Server listings every plan reads (the stack's owned applications, gateways and
# organizations, also those the manifests no longer declare): an empty answer, as a server
# without them sends.
EMPTY_LISTINGS = {
    "/api/v3/applications": "applications",
    "/api/v3/gateways": "gateways",
    "/api/v3/organizations": "organizations",
}


async def empty_listing(request: Request, writer: asyncio.StreamWriter) -> bool:
    """Answer a listing of EMPTY_LISTINGS with no items; False for any other request."""
    field = EMPTY_LISTINGS.get(request.path)
    if request.method != "GET" or field is None:
        return False
    await respond(writer, 200, {field: []}, {"X-Total-Count": "0"})
    return True


def not_found() -> dict[str, Any]:
    """The body TTS sends for a missing entity."""
    return {
        "code": 5,
        "message": "error:pkg/identityserver/store:application_not_found (not found)",
        "details": [{"namespace": "pkg/identityserver/store", "name": "application_not_found"}],
    }


@dataclass
class HostileServer:
    handler: Handler
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    url: str = ""
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> HostileServer:
        # TLS is started per connection, so a failed handshake still counts as a connection.
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # Handlers still writing (endless bodies) end when their connection goes.
        await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.tls is not None:
                await writer.start_tls(self.tls)
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _version = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                request = Request(method, target, headers, body)
                self.requests.append(request)
                await self.handler(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        finally:
            writer.close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA bundle trusts (and its key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    command += ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key
