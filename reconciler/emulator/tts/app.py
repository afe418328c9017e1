"""The emulator's ASGI app: routing and the per-request pipeline.

Pipeline of every API call (as the real server orders it): injected latency, rate limit (GCRA
per token, RPC and entity), body/query decoding (400 code 3 on malformed input), field-mask and
body validation, authentication and rights, then the registry operation. Writes pass through
fault injection: `fail_rate` answers 503 before applying, `drop_rate` applies and then loses the
response (connection dropped or 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from reconciler.emulator.ratelimit import RateLimiter
from reconciler.emulator.state import Store
from reconciler.emulator.tts import errors
from reconciler.emulator.tts.auth import Authenticator, Caller, hash_secret, token_id
from reconciler.emulator.tts.codec import now_timestamp
from reconciler.emulator.tts.config import API_KEY_PATTERN, EmulatorConfig, generate_api_key
from reconciler.emulator.tts.events import EventBus

PREFIX = "/api/v3"
JSON_TYPE = "application/json"


class JSONResponse(Response):
    media_type = JSON_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


class DroppingResponse(Response):
    """Sends the status line and headers, then loses the connection before the body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
            }
        )
        raise errors.DroppedConnection("connection dropped after the write was applied")


class Faults:
    """Run-time adjustable cloud behaviour: latency, jitter, failures, drops, rate limit."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.rng = random.Random(config.seed)
        self.latency_ms = config.latency_ms
        self.jitter_ms = config.jitter_ms
        self.fail_rate = config.fail_rate
        self.drop_rate = config.drop_rate
        self.event_stream_idle_s: float | None = None
        self.limiter: RateLimiter | None = None
        self.set_rate_limit(config.rate_limit)

    def set_rate_limit(self, value: tuple[int, int] | None) -> None:
        self.limiter = RateLimiter(*value) if value else None

    def snapshot(self) -> dict[str, Any]:
        limiter = self.limiter
        return {
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "rate_limit": None
            if limiter is None
            else {"per_minute": limiter.per_minute, "burst": limiter.burst},
            "fail_rate": self.fail_rate,
            "drop_rate": self.drop_rate,
            "event_stream_idle_s": self.event_stream_idle_s,
        }

    async def delay(self) -> None:
        if self.latency_ms <= 0 and self.jitter_ms <= 0:
            return
        extra = self.rng.uniform(0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        await asyncio.sleep(max(0.0, self.latency_ms + extra) / 1000)


class Emulator:
    """Holds the state and services; `app.state.emulator`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = Store(config.state_path)
        self.auth = Authenticator(self.store)
        self.faults = Faults(config)
        self.events = EventBus()
        self.stats: Counter[tuple[str, int]] = Counter()
        # (JoinEUI, DevEUI) -> device key, per registry table; built on first use.
        self.eui_indexes: dict[str, dict[tuple[str, str], str]] = {}
        self.api_key = self._bootstrap(config)

    def _bootstrap(self, config: EmulatorConfig) -> str:
        """One admin user and its all-rights key, as on a fresh deployment."""
        store = self.store
        now = now_timestamp()
        if config.user_id not in store.users:
            store.users.put(
                config.user_id,
                {
                    "user": {
                        "ids": {"user_id": config.user_id},
                        "created_at": now,
                        "updated_at": now,
                        "admin": True,
                        "state": "STATE_APPROVED",
                    }
                },
            )
        if config.api_key is not None:
            if not API_KEY_PATTERN.match(config.api_key):
                raise ValueError("the API key must look like NNSXS.<39 base32>.<52 base32>")
            token = config.api_key
            _, key_id, secret = token.split(".")
        else:
            # A new key on every start; keys from earlier runs (state file) stay valid.
            token, key_id, secret = generate_api_key()
        record = store.api_keys.get(key_id)
        if record is None or record["hash"] != hash_secret(secret):
            store.api_keys.put(
                key_id,
                {
                    "entity": "user",
                    "entity_id": config.user_id,
                    "hash": hash_secret(secret),
                    "api_key": {
                        "id": key_id,
                        "name": "emulator admin key",
                        "rights": ["RIGHT_ALL"],
                        "created_at": now,
                        "updated_at": now,
                    },
                },
            )
        return token


# --- requests ------------------------------------------------------------------------------


class Call:
    """One API request as the registries see it."""

    __slots__ = ("_body", "_caller", "emu", "params", "request", "response_headers", "rpc", "write")

    def __init__(self, emu: Emulator, request: Request, rpc: str, write: bool) -> None:
        self.emu = emu
        self.request = request
        self.rpc = rpc
        self.write = write
        self.params: dict[str, str] = request.path_params
        self.response_headers: dict[str, str] = {}
        self._caller: Caller | None = None
        self._body: dict[str, Any] | None = None

    @property
    def store(self) -> Store:
        return self.emu.store

    def caller(self) -> Caller:
        if self._caller is None:
            self._caller = self.emu.auth.authenticate(self.request.headers.get("authorization"))
        return self._caller

    async def read_body(self) -> None:
        raw = await self.request.body()
        if not raw.strip():
            self._body = {}
            return
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise errors.DecodeError(_go_json_error(raw, error)) from None
        except UnicodeDecodeError:
            raise errors.DecodeError("invalid UTF-8 in request body") from None
        if not isinstance(data, dict):
            raise errors.DecodeError(
                "json: cannot unmarshal " + type(data).__name__ + " into Go value of type map"
            )
        self._body = data

    @property
    def body(self) -> dict[str, Any]:
        return self._body if self._body is not None else {}

    def query_list(self, name: str) -> list[str]:
        return self.request.query_params.getlist(name)

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def warn(self, text: str) -> None:
        existing = self.response_headers.get("X-Warning")
        self.response_headers["X-Warning"] = f"{existing}, {text}" if existing else text

    def before_write(self) -> None:
        """Fault injection point: the write has been validated and authorized, not applied."""
        faults = self.emu.faults
        if faults.fail_rate > 0 and faults.rng.random() < faults.fail_rate:
            raise errors.unavailable()


def _go_json_error(raw: bytes, error: json.JSONDecodeError) -> str:
    """A decoder message in the style of Go's encoding/json (what the gateway returns)."""
    position = error.pos
    text = error.doc
    char = text[position] if position < len(text) else ""
    if not char:
        return "unexpected EOF"
    if error.msg.startswith("Expecting property name"):
        return f"invalid character '{char}' looking for beginning of object key string"
    if error.msg.startswith("Expecting value"):
        return f"invalid character '{char}' looking for beginning of value"
    if error.msg.startswith("Expecting ',' delimiter"):
        return f"invalid character '{char}' after object key:value pair"
    if error.msg.startswith("Expecting ':' delimiter"):
        return f"invalid character '{char}' after object key"
    if error.msg.startswith("Extra data"):
        return f"invalid character '{char}' after top-level value"
    return f"invalid character '{char}' ({error.msg})"


Handler = Callable[[Call], Any]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # without /api/v3; Starlette syntax
    rpc: str  # Service/Method
    handler: Handler
    write: bool = False
    body: bool = False
    stream: bool = False  # server stream: errors arrive as {"error": status}


class Endpoint:
    def __init__(self, emu: Emulator, operation: Operation) -> None:
        self.emu = emu
        self.op = operation
        self.is_async = inspect.iscoroutinefunction(operation.handler)

    async def handle(self, request: Request) -> Response:
        emu = self.emu
        op = self.op
        call = Call(emu, request, op.rpc, op.write)
        headers = call.response_headers
        status = 500
        try:
            await emu.faults.delay()
            limiter = emu.faults.limiter
            if limiter is not None:
                entity = ".".join(request.path_params.values())
                key = (
                    f"grpc:method:/ttn.lorawan.v3.{op.rpc}:{entity}:"
                    f"{token_id(request.headers.get('authorization'))}"
                )
                decision = limiter.take(key)
                headers.update(decision.headers())
                if not decision.allowed:
                    raise errors.rate_limit_exceeded(rate=limiter.per_minute, key=key)
            if op.body:
                await call.read_body()
            result: Any
            if self.is_async:
                result = await op.handler(call)
            else:
                result = op.handler(call)
            if (
                op.write
                and emu.faults.drop_rate > 0
                and emu.faults.rng.random() < emu.faults.drop_rate
            ):
                if emu.faults.rng.random() < 0.5:
                    status = 0
                    return DroppingResponse()
                raise errors.unavailable()
            if isinstance(result, Response):
                status = result.status_code
                result.headers.update(headers)
                return result
            status = 200
            return JSONResponse(result if result is not None else {}, 200, headers)
        except ClientDisconnect:
            # The client went away mid-request (killed, timed out): gRPC Canceled, as the real
            # server records it; nobody is left to answer.
            status = 499
            return Response(status_code=499)
        except (errors.TTSError, errors.DecodeError) as error:
            status = error.status
            if op.stream:
                content = json.dumps({"error": error.body()}, separators=(",", ":")).encode()
                return Response(content, status, headers, media_type=JSON_TYPE)
            return Response(errors.render(error), status, headers, media_type=JSON_TYPE)
        finally:
            emu.stats[(op.rpc, status)] += 1


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"code": 5, "message": "Not Found", "details": []}, 404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"code": 12, "message": "Method Not Allowed", "details": []}, 405)


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    from reconciler.emulator.tts import admin, application, devices, events, identity, join, network

    emu = Emulator(config or EmulatorConfig())
    operations: list[Operation] = []
    for module in (identity, devices, network, application, join, events):
        operations.extend(module.operations())
    routes: list[BaseRoute] = [
        Route(PREFIX + op.path, Endpoint(emu, op).handle, methods=[op.method]) for op in operations
    ]
    routes.extend(admin.routes(emu))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        emu.events.close()
        emu.store.close()

    app = Starlette(
        routes=_merge_methods(routes),
        exception_handlers={404: _not_found, 405: _method_not_allowed},
        lifespan=lifespan,
    )
    app.state.emulator = emu
    return app


def _merge_methods(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Starlette stops at the first path match, so the same path with several methods must be
    one route that dispatches by method."""
    by_path: dict[str, list[Route]] = {}
    order: list[str] = []
    others: list[BaseRoute] = []
    for route in routes:
        if not isinstance(route, Route):
            others.append(route)
            continue
        if route.path not in by_path:
            by_path[route.path] = []
            order.append(route.path)
        by_path[route.path].append(route)
    merged: list[BaseRoute] = []
    for path in order:
        group = by_path[path]
        if len(group) == 1:
            merged.append(group[0])
            continue
        table: dict[str, Callable[[Request], Awaitable[Response]]] = {}
        for route in group:
            for method in route.methods or ():
                table[method] = route.endpoint

        async def dispatch(
            request: Request, table: dict[str, Callable[[Request], Awaitable[Response]]] = table
        ) -> Response:
            handler = table.get(request.method)
            if handler is None:
                return await _method_not_allowed(request, Exception())
            return await handler(request)

        merged.append(Route(path, dispatch, methods=sorted(table)))
    return merged + others


def new_correlation_id() -> str:
    return uuid.uuid4().hex
