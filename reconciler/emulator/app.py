"""The ASGI app around one emulated API: its routes plus the platform's admin endpoints.

An API builds its emulator object (anything with the `EmulatedAPI` attributes) and its routes,
then calls `build_app(api, routes)`; the result is a Starlette app to serve with
`reconciler.emulator.server` or to drive in process through `httpx.ASGITransport`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from reconciler.emulator import admin
from reconciler.emulator.admin import RequestStats
from reconciler.emulator.faults import Faults


class EmulatedAPI(Protocol):
    """What an API's emulator object offers the platform (kept as `app.state.emulator`)."""

    faults: Faults
    stats: RequestStats

    def admin_denied(self, request: Request) -> Response | None:
        """None when the request carries the admin credential, else the API's own refusal."""

    def bad_request(self, message: str) -> Response:
        """An invalid admin request (400), in the API's error format."""

    def not_found(self, request: Request) -> Response:
        """No route for the path (404), in the API's error format."""

    def method_not_allowed(self, request: Request) -> Response:
        """A route for the path but not for the method (405), in the API's error format."""

    def admin_routes(self) -> list[BaseRoute]:
        """The API's own admin endpoints (under `/_emulator/`); may be empty."""

    def close(self) -> None:
        """Release the state file and background tasks (at server shutdown)."""


def build_app(api: EmulatedAPI, routes: list[BaseRoute]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        api.close()

    async def not_found(request: Request, exc: Exception) -> Response:
        return api.not_found(request)

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return api.method_not_allowed(request)

    app = Starlette(
        routes=_merge_methods([*routes, *admin.routes(api)], api),
        exception_handlers={404: not_found, 405: method_not_allowed},
        lifespan=lifespan,
    )
    app.state.emulator = api
    return app


Endpoint = Callable[[Request], Awaitable[Response]]


def _merge_methods(routes: list[BaseRoute], api: EmulatedAPI) -> list[BaseRoute]:
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
        table: dict[str, Endpoint] = {}
        for route in group:
            for method in route.methods or ():
                table[method] = route.endpoint

        async def dispatch(request: Request, table: dict[str, Endpoint] = table) -> Response:
            handler = table.get(request.method)
            if handler is None:
                return api.method_not_allowed(request)
            return await handler(request)

        merged.append(Route(path, dispatch, methods=sorted(table)))
    return merged + others
