"""`watch` in-process (the emulator through `httpx.ASGITransport`, which now streams events as
they come): it heals towards the manifest tree as it is on disk (loaded again when a file
changes, a tree that does not load reported and the last good one kept), reports the servers'
warnings about its repair writes, and sweeps gateways with `POST /gateways/filter` instead of a
GET each."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import engine
from reconciler.engine import RunOptions
from reconciler.providers.tts import watch as tts_watch
from reconciler.providers.tts.kinds import gateway_key
from reconciler.watch import Watch, WatchOptions
from tests.conftest import ASGI_BASE_URL, build_emulator_app
from tests.core.support import APPLICATION, STACK, Engine, site, write_manifests

pytestmark = pytest.mark.asyncio

RENAMED = APPLICATION.replace("name: Field sensors", "name: Field sensors v2")
WARNING = "field frequency_plan_id is deprecated"


class Lines:
    """The watch's report lines, awaitable by pattern."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, what: str, line: str) -> None:
        self.lines.append(f"{what}: {line}")
        self._changed.set()

    async def wait_for(self, pattern: str, start: int = 0, timeout: float = 15.0) -> int:
        """The index of the first line from `start` matching `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for index in range(start, len(self.lines)):
                if regex.search(self.lines[index]):
                    return index
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines))
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


@pytest.fixture
async def app(admin_api_key: str) -> AsyncIterator[Any]:
    emulator = build_emulator_app(admin_api_key)
    async with emulator.router.lifespan_context(emulator):
        yield emulator


@pytest.fixture
async def admin(app: Any, admin_api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=ASGI_BASE_URL,
        headers={"Authorization": f"Bearer {admin_api_key}", "User-Agent": "console-test/1.0"},
    ) as client:
        yield client


@asynccontextmanager
async def watching(options: RunOptions, **settings: Any) -> AsyncIterator[tuple[Watch, Lines]]:
    lines = Lines()
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    watch = Watch(loaded, session, options, WatchOptions(**settings), lines)
    stop = asyncio.Event()
    running = asyncio.ensure_future(watch.run(stop))
    try:
        await lines.wait_for("full sweep")
        yield watch, lines
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await watch.session.aclose()
    assert not [line for line in lines.lines if "Traceback" in line or "internal" in line]


async def _application_name(admin: httpx.AsyncClient) -> str:
    answer = await admin.get("/applications/field-sensors", params={"field_mask": "name"})
    assert answer.status_code == 200, answer.text
    return str(answer.json().get("name", ""))


async def test_watch_heals_towards_the_manifests_as_they_change_on_disk(
    app: Any, admin: httpx.AsyncClient, admin_api_key: str, tmp_path: Path
) -> None:
    eng = Engine(httpx.ASGITransport(app=app), admin_api_key)
    tree = site(tmp_path / "manifests")
    _run, report = await eng.apply([tree])
    assert not report.failed
    async with watching(eng.options([tree]), heal=True, manifest_poll=0.1) as (watch, lines):
        # A pull brings a new name: loaded again, and the application healed towards it.
        write_manifests(tree, application=RENAMED)
        start = await lines.wait_for("the manifests changed: loaded again")
        await lines.wait_for(r"^healed: healed application field-sensors$", start)
        assert await _application_name(admin) == "Field sensors v2"
        assert watch.metrics.reloads == 1

        # A pull that breaks the tree: reported with where, the last good tree kept.
        (tree / "application.yaml").write_text("kind: Application\nid: [unclosed\n")
        start = await lines.wait_for("do not load", len(lines.lines))
        await lines.wait_for(r"application\.yaml:\d+", start)
        changed = await admin.put(
            "/applications/field-sensors",
            json={"application": {"name": "edited by hand"}, "field_mask": {"paths": ["name"]}},
        )
        assert changed.status_code == 200, changed.text
        await lines.wait_for(r"^healed: healed application field-sensors$", start)
        assert await _application_name(admin) == "Field sensors v2"
        assert watch.metrics.reloads == 1


class WarnsOnWrites(httpx.ASGITransport):
    """The emulator, with the X-Warning the real server adds to an answer when a request uses
    a deprecated field, on every gateway update (streams do not pass through here)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "PUT" and request.url.path.startswith("/api/v3/gateways/"):
            response.headers["X-Warning"] = WARNING
        return response


GATEWAYS = "\n---\n".join(
    f"kind: Gateway\nid: gw-{name}\nname: Gateway {name}\nfrequency_plan_ids: [EU_863_870_TTN]\n"
    for name in ("a", "b", "c")
)


async def test_watch_reports_the_warnings_of_its_repair_writes_once(
    app: Any, admin: httpx.AsyncClient, admin_api_key: str, tmp_path: Path
) -> None:
    eng = Engine(WarnsOnWrites(app=app), admin_api_key)
    tree = write_manifests(tmp_path / "manifests", stack=STACK, gateways=GATEWAYS)
    _run, report = await eng.apply([tree])
    assert not report.failed
    async with watching(eng.options([tree]), heal=True) as (_watch, lines):
        for attempt in ("first", "second"):
            start = len(lines.lines)
            changed = await admin.put(
                "/gateways/gw-a",
                json={"gateway": {"name": attempt}, "field_mask": {"paths": ["name"]}},
            )
            assert changed.status_code == 200, changed.text
            await lines.wait_for(r"^healed: healed gateway gw-a$", start)
    warned = [line for line in lines.lines if line.startswith("warning:")]
    assert warned == [
        f"warning: tts: Identity Server: PUT /gateways/gw-a: server warning: {WARNING}"
    ], lines.lines


async def test_the_gateway_sweep_lists_changed_and_deleted_gateways_instead_of_a_get_each(
    app: Any,
    admin: httpx.AsyncClient,
    admin_api_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sweep reaches a minute back for clock skew, which here would take in the apply.
    monkeypatch.setattr(tts_watch, "SWEEP_OVERLAP_SECONDS", 0.0)
    requests: list[str] = []
    eng = Engine(httpx.ASGITransport(app=app), admin_api_key)
    tree = write_manifests(tmp_path / "manifests", stack=STACK, gateways=GATEWAYS)
    _run, report = await eng.apply([tree])
    assert not report.failed
    options = eng.options([tree])
    options.request_log = lambda _server, method, path, _status, _seconds: requests.append(
        f"{method} {path}"
    )
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        [target] = session.targets
        watcher = target.provider.watcher()
        assert watcher is not None
        live = await target.provider.read(target.desired, prune=True)
        since = time.time()
        await asyncio.sleep(0.01)
        changed = await admin.put(
            "/gateways/gw-b",
            json={"gateway": {"name": "renamed"}, "field_mask": {"paths": ["name"]}},
        )
        assert changed.status_code == 200, changed.text
        assert (await admin.delete("/gateways/gw-c")).status_code == 200
        requests.clear()
        found = await watcher.sweep(target.desired, live, since)
    finally:
        await session.aclose()
    assert {change.key for change in found} == {gateway_key("gw-b"), gateway_key("gw-c")}
    assert live.get(gateway_key("gw-c")) is None
    record = live.get(gateway_key("gw-b"))
    assert record is not None and record.records["is"].data["name"] == "renamed"
    gateway_requests = [r for r in requests if "/gateways" in r]
    assert gateway_requests == [
        "POST /gateways/filter",  # changed since the last sweep
        "POST /gateways/filter",  # deleted
        "GET /gateways/gw-b",  # re-read as the full read reads it
    ], requests


INTEGRATIONS = (
    APPLICATION
    + """pubsubs:
  - id: broker
    base_topic: field-sensors
    mqtt:
      server_url: mqtt://mqtt.example.com:1883
      client_id: field-sensors
    uplink_message: up
packages:
  - f_port: 199
    package_name: lora-cloud-device-management-v1
"""
)


async def test_the_cheap_sweep_heals_pub_subs_and_package_associations(
    app: Any, admin: httpx.AsyncClient, admin_api_key: str, tmp_path: Path
) -> None:
    # Neither publishes events: only the sweep sees a Console edit of them. It used to read
    # them and keep only webhooks and the link, so these waited for the full sweep.
    eng = Engine(httpx.ASGITransport(app=app), admin_api_key)
    tree = write_manifests(tmp_path / "manifests", stack=STACK, application=INTEGRATIONS)
    _run, report = await eng.apply([tree])
    assert not report.failed, report.to_json()
    async with watching(eng.options([tree]), heal=True, interval=0.5) as (_watch, lines):
        start = len(lines.lines)
        changed = await admin.put(
            "/as/pubsub/field-sensors/broker",
            json={
                "pubsub": {
                    "ids": {
                        "pub_sub_id": "broker",
                        "application_ids": {"application_id": "field-sensors"},
                    },
                    "base_topic": "edited-by-hand",
                },
                "field_mask": {"paths": ["base_topic"]},
            },
        )
        assert changed.status_code == 200, changed.text
        await lines.wait_for(r"^healed: healed pubsub field-sensors/broker$", start)
        answer = await admin.get(
            "/as/pubsub/field-sensors/broker", params={"field_mask": "base_topic"}
        )
        assert answer.json()["base_topic"] == "field-sensors"

        start = len(lines.lines)
        path = "/as/applications/field-sensors/packages/associations/199"
        changed = await admin.put(
            path,
            json={
                "default": {
                    "ids": {
                        "application_ids": {"application_id": "field-sensors"},
                        "f_port": 199,
                    },
                    "package_name": "lora-cloud-geolocation-v3",
                },
                "field_mask": {"paths": ["package_name"]},
            },
        )
        assert changed.status_code == 200, changed.text
        await lines.wait_for(r"^healed: healed package default field-sensors FPort 199$", start)
        answer = await admin.get(path, params={"field_mask": "package_name"})
        assert answer.json()["package_name"] == "lora-cloud-device-management-v1"
