"""Request routing in O(1) per request, whatever the number of routes.

Starlette's router tries its routes' regular expressions one by one (about 9% of the emulator's
CPU per request with the TTS API's 150-odd routes). `RouteTree` holds every plain `Route` of an
app in a tree of path segments instead: each request walks one node per segment, a dict lookup
for a literal segment, else the node's `{parameter}`. A literal segment wins over a parameter
(the real servers' gateways prefer the more literal pattern too: `/devices/batch` is not a
device called "batch"). Method handling stays Starlette's: a path without the request's method
is a partial match, answered 405 by the route.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

ROUTE_KEY = "reconciler.route"
# (route, whether it takes the request's method)
_Found = tuple[Route, bool]


@dataclass
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    parameter: _Node | None = None  # any one segment (each route names it as it likes)
    by_method: dict[str, Route] = field(default_factory=dict)
    any_route: Route | None = None  # for the 405 of a path without the request's method


def _parameter_name(segment: str) -> str | None:
    """`{name}` or `{name:str}` (one whole segment, any text but "/"), else None."""
    if not (segment.startswith("{") and segment.endswith("}")):
        return None
    name, _, convertor = segment[1:-1].partition(":")
    return name if convertor in ("", "str") else None


def tree_routable(route: BaseRoute) -> bool:
    """Plain HTTP routes whose parameters are whole-segment strings go in the tree."""
    if type(route) is not Route or not route.methods:
        return False
    for segment in route.path.split("/"):
        if "{" in segment and _parameter_name(segment) is None:
            return False
    return True


class RouteTree(BaseRoute):
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self.root = _Node()
        # Per route: (segment index, parameter name) for each of its parameters.
        self.parameters: dict[int, tuple[tuple[int, str], ...]] = {}
        for route in routes:
            self._add(route)

    def _add(self, route: Route) -> None:
        node = self.root
        names: list[tuple[int, str]] = []
        for index, segment in enumerate(route.path.split("/")[1:], start=1):
            name = _parameter_name(segment)
            if name is None:
                node = node.literal.setdefault(segment, _Node())
                continue
            names.append((index, name))
            if node.parameter is None:
                node.parameter = _Node()
            node = node.parameter
        self.parameters[id(route)] = tuple(names)
        for method in route.methods or ():
            # The first route registered for a path and method wins, as in Starlette.
            node.by_method.setdefault(method, route)
        node.any_route = node.any_route or route

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        segments = path.split("/")
        if segments[0] != "":
            return Match.NONE, {}
        found = self._walk(self.root, segments, 1, scope["method"])
        if found is None:
            return Match.NONE, {}
        route, allowed = found
        path_params = dict(scope.get("path_params", {}))
        for index, name in self.parameters[id(route)]:
            path_params[name] = segments[index]
        child = {"endpoint": route.endpoint, "path_params": path_params, ROUTE_KEY: route}
        return (Match.FULL if allowed else Match.PARTIAL), child

    def _walk(self, node: _Node, segments: list[str], index: int, method: str) -> _Found | None:
        """The route for the path from `segments[index]` on, and whether it takes the method. A
        literal branch that leads nowhere (or only to a route without the method) falls back to
        the parameter branch."""
        if index == len(segments):
            route = node.by_method.get(method)
            if route is not None:
                return route, True
            return (node.any_route, False) if node.any_route is not None else None
        segment = segments[index]
        partial: _Found | None = None
        child = node.literal.get(segment)
        if child is not None:
            found = self._walk(child, segments, index + 1, method)
            if found is not None and found[1]:
                return found
            partial = found
        if node.parameter is not None and segment:
            found = self._walk(node.parameter, segments, index + 1, method)
            if found is not None and (found[1] or partial is None):
                return found
        return partial

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: Route = scope.pop(ROUTE_KEY)
        scope["route"] = route
        await route.handle(scope, receive, send)


def route_in_tree(routes: list[BaseRoute]) -> list[BaseRoute]:
    """One `RouteTree` for the plain routes, then the others (matched one by one, as before)."""
    plain = [r for r in routes if isinstance(r, Route) and tree_routable(r)]
    others = [r for r in routes if not (isinstance(r, Route) and tree_routable(r))]
    return [RouteTree(plain), *others]
