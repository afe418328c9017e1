"""Admin endpoints outside /api/v3: run-time knobs and request statistics.

`GET/PUT /_emulator/config` and `GET/DELETE /_emulator/stats`, authenticated with the admin key.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.config import parse_rate_limit

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Emulator

_FLOATS = ("latency_ms", "jitter_ms", "fail_rate", "drop_rate")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, media_type="application/json")


def _error(error: errors.TTSError | errors.DecodeError) -> Response:
    return Response(errors.render(error), error.status, media_type="application/json")


def _authorized(emu: Emulator, request: Request) -> errors.TTSError | None:
    header = request.headers.get("authorization")
    if not header:
        return errors.unauthenticated()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return errors.unsupported_authorization()
    if not hmac.compare_digest(token.strip().encode(), emu.api_key.encode()):
        return errors.admin_only()
    return None


def _parse_rate_limit(value: Any) -> tuple[int, int] | None:
    if value is None or value is False or value == "":
        return None
    if isinstance(value, str):
        return parse_rate_limit(value)
    if isinstance(value, dict):
        per_minute = int(value["per_minute"])
        return per_minute, int(value.get("burst") or per_minute)
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError("rate_limit: want null, PER_MINUTE[:BURST] or {per_minute, burst}")


def routes(emu: Emulator) -> list[BaseRoute]:
    async def config(request: Request) -> Response:
        denied = _authorized(emu, request)
        if denied is not None:
            return _error(denied)
        faults = emu.faults
        if request.method == "PUT":
            try:
                body = json.loads(await request.body() or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("want a JSON object")
                updates: dict[str, Any] = {}
                for name in _FLOATS:
                    if name in body:
                        value = float(body[name])
                        if value < 0 or (name.endswith("rate") and value > 1):
                            raise ValueError(f"{name} out of range")
                        updates[name] = value
                if "rate_limit" in body:
                    updates["rate_limit"] = _parse_rate_limit(body["rate_limit"])
                if "event_stream_idle_s" in body:
                    idle = body["event_stream_idle_s"]
                    updates["event_stream_idle_s"] = None if idle is None else float(idle)
                unknown = set(body) - {*_FLOATS, "rate_limit", "event_stream_idle_s"}
                if unknown:
                    raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
            except (ValueError, KeyError, TypeError) as error:
                return _error(errors.DecodeError(str(error)))
            for name, value in updates.items():
                if name == "rate_limit":
                    faults.set_rate_limit(value)
                else:
                    setattr(faults, name, value)
        return _json(faults.snapshot())

    async def stats(request: Request) -> Response:
        denied = _authorized(emu, request)
        if denied is not None:
            return _error(denied)
        if request.method == "DELETE":
            emu.stats.clear()
            return _json({})
        by_rpc: dict[str, dict[str, int]] = {}
        total = 0
        for (rpc, status), count in sorted(emu.stats.items()):
            by_rpc.setdefault(rpc, {})[str(status)] = count
            total += count
        return _json({"total": total, "rpcs": by_rpc})

    async def inventory(request: Request) -> Response:
        """Device IDs per registry (`app/device`), which the real API cannot list for NS/AS/JS:
        for checking that a run left no orphan or duplicate registry records."""
        denied = _authorized(emu, request)
        if denied is not None:
            return _error(denied)
        store = emu.store
        tables = {
            "is": store.is_devices,
            "ns": store.ns_devices,
            "as": store.as_devices,
            "js": store.js_devices,
        }
        return _json(
            {name: sorted(key for key, _ in table.items()) for name, table in tables.items()}
        )

    return [
        Route("/_emulator/config", config, methods=["GET", "PUT"]),
        Route("/_emulator/stats", stats, methods=["GET", "DELETE"]),
        Route("/_emulator/devices", inventory, methods=["GET"]),
    ]
