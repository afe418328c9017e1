"""The emulator platform's route tree answers exactly as Starlette's one-by-one matching would."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route

from reconciler.emulator.routing import RouteTree, route_in_tree
from tests.conftest import build_emulator_app
from tests.emulator.support import make_api_key

PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {}}


def _first_match(routes: list[Route], scope: dict[str, Any]) -> tuple[Route | None, Match, Any]:
    """What Starlette's router picks: the first full match, else the first partial one."""
    partial: tuple[Route | None, Match, Any] = (None, Match.NONE, {})
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route, match, child["path_params"]
        if match is Match.PARTIAL and partial[0] is None:
            partial = (route, match, child["path_params"])
    return partial


def _tree(app: Starlette) -> RouteTree:
    tree = app.router.routes[0]
    assert isinstance(tree, RouteTree)
    return tree


def _apps() -> dict[str, Starlette]:
    from reconciler.emulator.iothub import IotHubConfig, create_app

    return {
        "tts": build_emulator_app(make_api_key()),
        "azure-iothub": create_app(IotHubConfig()),
    }


@pytest.mark.parametrize("api", ["tts", "azure-iothub"])
@pytest.mark.parametrize("method", ["GET", "PUT", "POST", "DELETE", "PATCH"])
def test_every_route_resolves_as_starlette_resolves_it(api: str, method: str) -> None:
    app = _apps()[api]
    tree = _tree(app)
    assert len(tree.routes) > 10
    checked = 0
    for route in tree.routes:
        # Parameter values that look like the literal segments of other routes are the cases
        # where the order of routes could matter.
        for value in ("x1", "batch", "devices", "api-keys"):
            path = PARAMETER.sub(value, route.path)
            scope = _scope(method, path)
            expected_route, expected_match, expected_params = _first_match(tree.routes, scope)
            match, child = tree.matches(scope)
            assert match is expected_match, (method, path)
            if match is Match.NONE:
                continue
            if match is Match.FULL:
                assert child["reconciler.route"] is expected_route, (method, path)
            assert child["path_params"] == expected_params, (method, path)
            checked += 1
    assert checked >= len(tree.routes)


def _endpoint(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{name} {dict(request.path_params)}")

    return endpoint


@pytest.fixture
def toy() -> httpx.AsyncClient:
    routes: list[BaseRoute] = [
        Route("/things/{id}", _endpoint("thing"), methods=["GET", "DELETE"]),
        Route("/things/batch", _endpoint("batch"), methods=["POST"]),
        Route("/things/{thing_id}/parts/{part}", _endpoint("part"), methods=["GET"]),
        Route("/files/{rest:path}", _endpoint("file"), methods=["GET"]),
    ]
    app = Starlette(routes=route_in_tree(routes))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://toy")


async def test_literal_segment_wins_and_falls_back_to_the_parameter(
    toy: httpx.AsyncClient,
) -> None:
    async with toy:
        assert (await toy.post("/things/batch")).text == "batch {}"
        # `batch` has no GET route: the parameter route takes it, as Starlette would.
        assert (await toy.get("/things/batch")).text == "thing {'id': 'batch'}"
        assert (
            await toy.get("/things/t1/parts/p2")
        ).text == "part {'thing_id': 't1', 'part': 'p2'}"


async def test_missing_path_method_and_empty_segment(toy: httpx.AsyncClient) -> None:
    async with toy:
        assert (await toy.get("/nothing")).status_code == 404
        assert (await toy.put("/things/t1")).status_code == 405
        assert (await toy.get("/things//parts/p2")).status_code == 404
        # Routes the tree cannot hold (a `path` parameter) still work, one by one.
        assert (await toy.get("/files/a/b.txt")).text == "file {'rest': 'a/b.txt'}"
