"""The ASGI app around one emulated API: its routes plus the platform's admin endpoints.

An API builds its emulator object (anything with the `EmulatedAPI` attributes) and its routes,
then calls `build_app(api, routes)`; the result is a Starlette app to serve with
`reconciler.emulator.server` or to drive in process through `httpx.ASGITransport`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from reconciler.emulator import admin
from reconciler.emulator.admin import RequestStats
from reconciler.emulator.faults import Faults
from reconciler.emulator.routing import route_in_tree


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

    def start(self) -> None:
        """Start background tasks, in the server's event loop (at server startup)."""

    def close(self) -> None:
        """Release the state file and background tasks (at server shutdown)."""


def build_app(api: EmulatedAPI, routes: list[BaseRoute]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        api.start()
        yield
        api.close()

    async def not_found(request: Request, exc: Exception) -> Response:
        return api.not_found(request)

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return api.method_not_allowed(request)

    app = Starlette(
        routes=route_in_tree([*routes, *admin.routes(api)]),
        exception_handlers={404: not_found, 405: method_not_allowed},
        lifespan=lifespan,
    )
    app.state.emulator = api
    return app
