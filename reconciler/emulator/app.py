"""The ASGI app around one emulated API: its routes plus the platform's admin endpoints.

An API builds its emulator object (anything with the `EmulatedAPI` attributes) and its routes,
then calls `build_app(api, routes)`; the result is a Starlette app to serve with
`reconciler.emulator.server` or to drive in process through `httpx.ASGITransport`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from reconciler.emulator import admin
from reconciler.emulator.admin import RequestStats
from reconciler.emulator.faults import Faults
from reconciler.emulator.routing import ROUTE_KEY, RouteTree, route_in_tree


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


class AnsweringEndpoint:
    """An ASGI endpoint that answers every request routed to it, the API's errors included: it
    raises nothing Starlette's exception handlers would answer (an exception that escapes it is
    a bug, answered 500)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


async def _call_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await scope["endpoint"](scope, receive, send)


class EmulatorApp(Starlette):
    """Starlette, with a shorter way to the API's own operations. A request whose route the tree
    finds, method included, and whose endpoint is an `AnsweringEndpoint` goes from Starlette's
    outermost layer (an unexpected exception answered 500) straight to the endpoint, past the
    exception handlers (it raises nothing they answer) and the router's second search: the
    layers cost about 5 us of CPU a request. Anything else takes Starlette's whole way."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        tree = self.router.routes[0]
        assert isinstance(tree, RouteTree)
        self.tree = tree
        self.direct: ServerErrorMiddleware | None = None
        # Without such endpoints (the IoT Hub emulator's are functions) no request is matched
        # twice for nothing.
        self.any_answering = any(isinstance(r.endpoint, AnsweringEndpoint) for r in tree.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.any_answering and self._direct_possible():
            match, child = self.tree.matches(scope)
            if match is Match.FULL and isinstance(child["endpoint"], AnsweringEndpoint):
                assert self.direct is not None
                scope["app"] = self
                scope.setdefault("router", self.router)
                scope.update(child)
                scope["route"] = scope.pop(ROUTE_KEY)
                await self.direct(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _direct_possible(self) -> bool:
        """Only while the stack is Starlette's own (no added middleware, no body limit)."""
        if self.direct is None:
            if self.user_middleware or getattr(self, "max_body_size", None) is not None:
                return False
            handler = self.exception_handlers.get(500) or self.exception_handlers.get(Exception)
            self.direct = ServerErrorMiddleware(_call_endpoint, handler=handler, debug=self.debug)
        return True


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

    app = EmulatorApp(
        routes=route_in_tree([*routes, *admin.routes(api)]),
        exception_handlers={404: not_found, 405: method_not_allowed},
        lifespan=lifespan,
    )
    app.state.emulator = api
    return app
