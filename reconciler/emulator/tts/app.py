"""The emulator's ASGI app: routing and the per-request pipeline.

Pipeline of every API call (as the real server orders it): injected latency, rate limit (GCRA
per token, RPC and entity), body/query decoding (400 code 3 on malformed input), field-mask and
body validation, authentication and rights, then the registry operation. Writes pass through
fault injection: `fail_rate` answers 503 before applying, `drop_rate` applies and then loses the
response (connection dropped or 503).
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from reconciler.emulator.admin import RequestStats, json_response
from reconciler.emulator.apis import APIOptions, ServedAPI
from reconciler.emulator.app import AnsweringEndpoint, build_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.faults import DroppingResponse, Faults
from reconciler.emulator.tts import errors
from reconciler.emulator.tts.auth import Authenticator, Caller, hash_secret, token_id
from reconciler.emulator.tts.codec import now_timestamp
from reconciler.emulator.tts.config import API_KEY_PATTERN, TTSConfig, generate_api_key
from reconciler.emulator.tts.events import EventBus, Origin, current_origin
from reconciler.emulator.tts.state import TTSStore
from reconciler.emulator.tts.traffic import Traffic, parse_interval

PREFIX = "/api/v3"
JSON_TYPE = "application/json"


# One encoder for every response: `json.dumps` with options builds a new encoder per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class JSONResponse(Response):
    media_type = JSON_TYPE

    def render(self, content: Any) -> bytes:
        return _encode_json(content).encode()


@functools.lru_cache(maxsize=1024)
def parsed_query(query_string: bytes) -> QueryParams:
    """A query string parsed as Starlette's `request.query_params` parses it, once per distinct
    string: a fleet's reads repeat a handful of queries (the same field mask for every device).
    A `QueryParams` is immutable, so one object serves every request that sent the string."""
    return QueryParams(query_string)


class Emulator:
    """Holds the state and services; `app.state.emulator` (a `reconciler.emulator.EmulatedAPI`)."""

    def __init__(self, config: TTSConfig) -> None:
        self.config = config
        self.store = TTSStore(config.state_path)
        self.auth = Authenticator(self.store)
        self.faults = Faults(config)
        self.events = EventBus()
        self.stats = RequestStats()
        # (JoinEUI, DevEUI) -> device key, per registry table; built on first use.
        self.eui_indexes: dict[str, dict[tuple[str, str], str]] = {}
        self.api_key = self._bootstrap(config)
        self.traffic = Traffic(
            self, config.traffic_interval, config.seed, manual_clock=config.traffic_manual_clock
        )

    def _bootstrap(self, config: TTSConfig) -> str:
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
            # Generated once per state: a restart with the same state file keeps the admin key
            # (and every script or CI secret that holds it) working.
            token = store.remembered("admin_api_key", lambda: generate_api_key()[0])
            _, key_id, secret = token.split(".")
        record = store.api_keys.get(key_id)
        if (
            record is None
            or record["hash"] != hash_secret(secret)
            or record["entity_id"] != config.user_id
        ):
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

    # --- what the platform asks of an emulated API (reconciler.emulator.app.EmulatedAPI) ---

    def admin_denied(self, request: Request) -> Response | None:
        header = request.headers.get("authorization")
        error: errors.TTSError
        if not header:
            error = errors.unauthenticated()
        else:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                error = errors.unsupported_authorization()
            elif not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
                error = errors.admin_only()
            else:
                return None
        return Response(errors.render(error), error.status, media_type=JSON_TYPE)

    def bad_request(self, message: str) -> Response:
        error = errors.DecodeError(message)
        return Response(errors.render(error), error.status, media_type=JSON_TYPE)

    def not_found(self, request: Request) -> Response:
        return JSONResponse({"code": 5, "message": "Not Found", "details": []}, 404)

    def method_not_allowed(self, request: Request) -> Response:
        return JSONResponse({"code": 12, "message": "Method Not Allowed", "details": []}, 405)

    def admin_routes(self) -> list[BaseRoute]:
        return [
            Route("/_emulator/devices", self._inventory, methods=["GET"]),
            Route("/_emulator/traffic", self._traffic, methods=["GET"]),
            Route("/_emulator/events", self._events, methods=["GET", "PUT"]),
        ]

    async def _traffic(self, request: Request) -> Response:
        """The emulated traffic so far: interval, devices scheduled, joins and uplinks sent."""
        denied = self.admin_denied(request)
        if denied is not None:
            return denied
        return json_response(self.traffic.snapshot())

    async def _events(self, request: Request) -> Response:
        """The event history limits (`history_ttl_s`, `history_per_entity`) and, with
        `{"drop_streams": true}`, the loss of every open event stream (fault injection)."""
        denied = self.admin_denied(request)
        if denied is not None:
            return denied
        if request.method == "PUT":
            try:
                settings = json.loads(await request.body() or b"{}")
                if not isinstance(settings, dict):
                    raise ValueError("want a JSON object")
                return json_response(self.events.configure(settings))
            except ValueError as error:  # json.JSONDecodeError included
                return self.bad_request(str(error))
        return json_response(self.events.snapshot())

    async def _inventory(self, request: Request) -> Response:
        """Device IDs per registry (`app/device`), which the real API cannot list for NS/AS/JS:
        for checking that a run left no orphan or duplicate registry records."""
        denied = self.admin_denied(request)
        if denied is not None:
            return denied
        store = self.store
        tables = {
            "is": store.is_devices,
            "ns": store.ns_devices,
            "as": store.as_devices,
            "js": store.js_devices,
        }
        return json_response(
            {name: sorted(key for key, _ in table.items()) for name, table in tables.items()}
        )

    def start(self) -> None:
        self.traffic.start()

    def close(self) -> None:
        self.traffic.stop()
        self.events.close()
        self.store.close()


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
    def store(self) -> TTSStore:
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

    @property
    def query_string(self) -> bytes:
        raw: bytes = self.request.scope["query_string"]
        return raw

    def query_list(self, name: str) -> list[str]:
        return parsed_query(self.query_string).getlist(name)

    def query(self, name: str) -> str | None:
        return parsed_query(self.query_string).get(name)

    def warn(self, text: str) -> None:
        existing = self.response_headers.get("X-Warning")
        self.response_headers["X-Warning"] = f"{existing}, {text}" if existing else text

    def before_write(self) -> None:
        """Fault injection point: the write has been validated and authorized, not applied."""
        if self.emu.faults.fail_now():
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


def _origin(request: Request) -> Origin:
    return Origin(
        user_agent=request.headers.get("user-agent", "")[:256],
        remote_ip=request.client.host if request.client else "",
        token_id=token_id(request.headers.get("authorization")),
    )


class Endpoint(AnsweringEndpoint):
    """One operation's route, as an ASGI app: Starlette calls it directly, without wrapping it
    in a function endpoint's request/response layer (`handle` answers every error itself)."""

    def __init__(self, emu: Emulator, operation: Operation) -> None:
        self.emu = emu
        self.op = operation
        self.is_async = inspect.iscoroutinefunction(operation.handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(Request(scope, receive, send))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        emu = self.emu
        op = self.op
        call = Call(emu, request, op.rpc, op.write)
        headers = call.response_headers
        # Read from the request only if the request publishes an event (reads publish none).
        current_origin.set(functools.partial(_origin, request))
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
            if op.write and emu.faults.drop_now():
                # Half the lost responses are a dropped connection, half a 503.
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
            emu.stats.count(op.rpc, status)


def create_app(config: TTSConfig | None = None) -> Starlette:
    from reconciler.emulator.tts import (
        application,
        configuration,
        devices,
        events,
        identity,
        join,
        network,
        packages,
        pubsub,
    )

    emu = Emulator(config or TTSConfig())
    operations: list[Operation] = []
    for module in (
        identity,
        devices,
        network,
        application,
        pubsub,
        packages,
        join,
        configuration,
        events,
    ):
        operations.extend(module.operations())
    routes: list[BaseRoute] = [
        Route(PREFIX + op.path, Endpoint(emu, op), methods=[op.method]) for op in operations
    ]
    return build_app(emu, routes)


def served(options: APIOptions) -> ServedAPI:
    """The `tts` entry of `reconciler.emulator.apis.APIS`."""
    settings = dict(options.settings)
    user_id = settings.pop("user_id", None) or TTSConfig.user_id
    try:
        traffic_interval = parse_interval(settings.pop("traffic_interval", None))
    except ValueError:
        raise ValueError("--traffic-interval must be a finite number of seconds") from None
    if settings:
        flags = ", ".join("--" + name.replace("_", "-") for name in sorted(settings))
        raise ValueError(f"the TTS emulator has no option {flags}")
    config = TTSConfig(
        **{name: getattr(options.common, name) for name in _COMMON_FIELDS},
        api_key=options.admin_key,
        user_id=user_id,
        traffic_interval=traffic_interval,
    )
    app = create_app(config)
    details = [f"admin user {user_id}"]
    if traffic_interval is not None:
        details.append(f"traffic every {traffic_interval:g} s per device")
    if options.admin_key is None:
        details.append(f"API key {app.state.emulator.api_key}")
    return ServedAPI(app, "TTS emulator", PREFIX, tuple(details))


_COMMON_FIELDS = tuple(f.name for f in dataclasses.fields(EmulatorConfig))
