"""Admin endpoints beside the API (the same paths as the TTS emulator's), for the iothubowner:

`GET/PUT /_emulator/config`  latency, jitter, fail and drop rates, SKU throttles, the
                             create-then-404 window
`GET/DELETE /_emulator/stats` request counts per operation and status
`GET /_emulator/policies`     the shared access policies' keys (a real hub lists them through
                             Azure Resource Manager, which the emulator does not have)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from reconciler.emulator.iothub import errors
from reconciler.emulator.iothub.sas import Right
from reconciler.emulator.iothub.throttle import SKUS

if TYPE_CHECKING:
    from reconciler.emulator.iothub.app import Hub

_RATES = ("fail_rate", "drop_rate")
_DURATIONS = ("latency_ms", "jitter_ms", "visibility_delay_ms", "throttle_backlog_s")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, media_type="application/json")


def _error(error: errors.IotHubError) -> Response:
    return Response(error.body(), error.status, error.headers(), media_type="application/json")


def snapshot(hub: Hub) -> dict[str, Any]:
    faults = hub.faults
    throttles = hub.throttles
    return {
        "latency_ms": faults.latency_ms,
        "jitter_ms": faults.jitter_ms,
        "fail_rate": faults.fail_rate,
        "drop_rate": faults.drop_rate,
        "sku": throttles.sku,
        "units": throttles.units,
        "throttle_backlog_s": throttles.backlog_s,
        "visibility_delay_ms": hub.registry.visibility_delay_s * 1000,
    }


def _apply(hub: Hub, body: Any) -> None:
    """Validate every setting first, then apply them all (nothing half-applied)."""
    if not isinstance(body, dict):
        raise ValueError("want a JSON object")
    unknown = set(body) - {*_RATES, *_DURATIONS, "sku", "units"}
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name in (*_RATES, *_DURATIONS):
        if name in body:
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if value < 0 or (name in _RATES and value > 1):
                raise ValueError(f"{name} is out of range")
            values[name] = float(value)
    sku = body.get("sku", hub.throttles.sku)
    if sku is not None and sku not in SKUS:
        raise ValueError(f"sku must be null or one of {', '.join(SKUS)}")
    units = body.get("units", hub.throttles.units)
    if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= 200:
        raise ValueError("units must be an integer from 1 to 200")
    faults = hub.faults
    for name in ("latency_ms", "jitter_ms", *_RATES):
        if name in values:
            setattr(faults, name, values[name])
    if "visibility_delay_ms" in values:
        hub.registry.visibility_delay_s = values["visibility_delay_ms"] / 1000
    backlog = values.get("throttle_backlog_s", hub.throttles.backlog_s)
    if {"sku", "units", "throttle_backlog_s"} & set(body):
        hub.set_throttling(sku, units, backlog)


def routes(hub: Hub) -> list[BaseRoute]:
    def authorized(request: Request) -> errors.IotHubError | None:
        try:
            # Registry write and service connect together: only the owner policy has both.
            hub.authorize(request, Right.REGISTRY_WRITE)
            hub.authorize(request, Right.SERVICE_CONNECT)
        except errors.IotHubError as error:
            return error
        return None

    async def config(request: Request) -> Response:
        denied = authorized(request)
        if denied is not None:
            return _error(denied)
        if request.method == "PUT":
            try:
                _apply(hub, json.loads(await request.body() or b"{}"))
            except ValueError as error:
                return _error(errors.argument_invalid(str(error)))
        return _json(snapshot(hub))

    async def stats(request: Request) -> Response:
        denied = authorized(request)
        if denied is not None:
            return _error(denied)
        if request.method == "DELETE":
            hub.stats.clear()
            return _json({})
        by_operation: dict[str, dict[str, int]] = {}
        total = 0
        for (name, status), count in sorted(hub.stats.items()):
            by_operation.setdefault(name, {})[str(status)] = count
            total += count
        return _json({"total": total, "operations": by_operation})

    async def policies(request: Request) -> Response:
        denied = authorized(request)
        if denied is not None:
            return _error(denied)
        return _json(
            {
                name: {"primaryKey": primary, "secondaryKey": secondary}
                for name, (primary, secondary) in hub.policy_keys.items()
            }
        )

    return [
        Route("/_emulator/config", config, methods=["GET", "PUT"]),
        Route("/_emulator/stats", stats, methods=["GET", "DELETE"]),
        Route("/_emulator/policies", policies, methods=["GET"]),
    ]
