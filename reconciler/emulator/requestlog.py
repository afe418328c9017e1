"""`--request-log`: one line per request (time, method, path, status, duration), never a secret.

Credentials travel in headers, which are never logged; a query parameter whose name suggests a
credential (key, token, secret, signature, password, code, ...) is logged as `***`, and anything
shaped like a TTS API key or an Azure shared access signature is masked wherever it appears.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SECRET_NAME = re.compile(r"key|token|secret|sig|pass|auth|code|credential|sas", re.IGNORECASE)
_SECRET_SHAPES = re.compile(
    r"NNSXS\.[A-Za-z0-9]+(\.[A-Za-z0-9]*)?|SharedAccessSignature[^&\s]*|SharedAccessKey=[^;&\s]*"
)
MASK = "***"


def redact_query(query: str) -> str:
    pairs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        shown = MASK if _SECRET_NAME.search(name) else quote(value, safe=",.:-")
        pairs.append(f"{quote(name, safe='.[]')}={shown}")
    return "&".join(pairs)


def request_line(method: str, path: str, query: str, status: int | str, seconds: float) -> str:
    target = path + ("?" + redact_query(query) if query else "")
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = f"{stamp} {method} {target} {status} {seconds * 1000:.1f} ms"
    return _SECRET_SHAPES.sub(MASK, line)


class RequestLog:
    """ASGI middleware: writes one line per HTTP request through `write` once it is answered."""

    def __init__(self, app: ASGIApp, write: Callable[[str], None]) -> None:
        self.app = app
        self.write = write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | str = "-"

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except BaseException:
            status = f"{status} (connection lost)"
            raise
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            self.write(
                request_line(
                    scope["method"], scope["path"], query, status, time.perf_counter() - started
                )
            )
