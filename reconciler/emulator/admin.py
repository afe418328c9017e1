"""Admin endpoints of every emulated API, outside its own routes: run-time knobs and statistics.

`GET/PUT /_emulator/config` (the injected faults) and `GET/DELETE /_emulator/stats` (requests
per operation and status), both allowed only to the admin (the API decides who that is), plus
the API's own admin routes. `GET /healthz` answers 200 to anyone: the server accepts connections
only once the API is ready, so a CI service check can poll it without credentials.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from reconciler.emulator.app import EmulatedAPI


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, media_type="application/json")


class RequestStats:
    """Answered requests per (operation, status); status 0 is a dropped response."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()

    def count(self, operation: str, status: int) -> None:
        self._counts[(operation, status)] += 1

    def clear(self) -> None:
        self._counts.clear()

    def snapshot(self) -> dict[str, Any]:
        by_operation: dict[str, dict[str, int]] = {}
        for (operation, status), count in sorted(self._counts.items()):
            by_operation.setdefault(operation, {})[str(status)] = count
        return {"total": self._counts.total(), "rpcs": by_operation}


def routes(api: EmulatedAPI) -> list[BaseRoute]:
    async def config(request: Request) -> Response:
        denied = api.admin_denied(request)
        if denied is not None:
            return denied
        if request.method == "PUT":
            try:
                api.faults.update(json.loads(await request.body() or b"{}"))
            except ValueError as error:  # json.JSONDecodeError included
                return api.bad_request(str(error))
        return json_response(api.faults.snapshot())

    async def stats(request: Request) -> Response:
        denied = api.admin_denied(request)
        if denied is not None:
            return denied
        if request.method == "DELETE":
            api.stats.clear()
            return json_response({})
        return json_response(api.stats.snapshot())

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/_emulator/config", config, methods=["GET", "PUT"]),
        Route("/_emulator/stats", stats, methods=["GET", "DELETE"]),
        *api.admin_routes(),
    ]
