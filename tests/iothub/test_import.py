"""`reconciler import --iothub` against the in-process IoT Hub emulator: a varied registry made
through the REST API alone is imported; the tree validates, `plan` on it against the same hub
shows only adoption, and applying it to an empty hub recreates equivalent identities, twins
and modules (compared field by field). Keys are written only when asked for, and then only
to the git-ignored secrets files."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.manifest.load import load_manifests
from reconciler.providers.iothub.client import IotHubAPIError
from reconciler.providers.iothub.importing.manifests import MAX_FLEET_COLUMNS
from reconciler.providers.iothub.importing.run import HubImportOptions, run_import
from reconciler.providers.registry import MANIFEST_KINDS
from tests.iothub.support import HubEngine, connection_string, new_key, owner_client
from tests.iothub_emulator.conftest import build_app
from tests.iothub_emulator.support import HUB

THUMB_1 = "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12"
THUMB_2 = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
MARKER = "managed-by"


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 204), (response.status_code, response.text)
    return response.json() if response.content else {}


async def _device(client: httpx.AsyncClient, device_id: str, **body: Any) -> dict[str, Any]:
    return await _ok(
        await client.put(f"/devices/{device_id}", json={"deviceId": device_id, **body})
    )


async def _twin(client: httpx.AsyncClient, path: str, **body: Any) -> None:
    await _ok(await client.patch(f"/twins/{path}", json=body))


async def _module(
    client: httpx.AsyncClient, device_id: str, module_id: str, **body: Any
) -> dict[str, Any]:
    return await _ok(
        await client.put(
            f"/devices/{device_id}/modules/{module_id}",
            json={"deviceId": device_id, "moduleId": module_id, **body},
        )
    )


async def build_varied_hub(client: httpx.AsyncClient) -> dict[str, str]:
    """Identities of every kind, twins, modules, a parent link, and what the manifests cannot
    hold (nested IoT Edge, the apply lease). Returns the keys
    set on `sensor-2` and on module `gw-1/filter`."""
    keys = {"sensor-2": _key(), "sensor-2.secondary": _key(), "filter": _key(), "filter.2": _key()}
    gateway = await _device(client, "gw-1", capabilities={"iotEdge": True})
    await _twin(
        client,
        "gw-1",
        tags={"site": "north", "room": {"floor": 1}},
        properties={"desired": {"logLevel": "info"}},
    )
    await _module(
        client,
        "gw-1",
        "filter",
        managedBy="plant-ops",
        authentication={
            "type": "sas",
            "symmetricKey": {"primaryKey": keys["filter"], "secondaryKey": keys["filter.2"]},
        },
    )
    await _twin(
        client,
        "gw-1/modules/filter",
        tags={"role": "filter"},
        properties={"desired": {"threshold": 5, "registers": [40001, 40002]}},
    )
    await _module(client, "gw-1", "bridge", authentication={"type": "none"})
    await _device(client, "sensor-1", deviceScope=gateway["deviceScope"])
    await _twin(
        client,
        "sensor-1",
        tags={"site": "north", "kind": {"model": "probe", "rev": 2}},
        properties={"desired": {"interval": 60, "telemetry": {"enabled": True, "ratio": 0.25}}},
    )
    await _device(
        client,
        "sensor-2",
        status="disabled",
        statusReason="waiting for installation",
        authentication={
            "type": "sas",
            "symmetricKey": {
                "primaryKey": keys["sensor-2"],
                "secondaryKey": keys["sensor-2.secondary"],
            },
        },
    )
    await _twin(client, "sensor-2", tags={"site": "south", "code": "60", "note": " padded "})
    await _device(
        client,
        "camera-1",
        authentication={
            "type": "selfSigned",
            "x509Thumbprint": {"primaryThumbprint": THUMB_1, "secondaryThumbprint": THUMB_2},
        },
    )
    await _device(client, "door-1", authentication={"type": "certificateAuthority"})
    await _twin(client, "door-1", properties={"desired": {"locked": True, "codes": [1, 2]}})
    for number in range(1, 6):
        device_id = f"probe-{number:02}"
        await _device(client, device_id)
        await _twin(
            client,
            device_id,
            tags={"building": "greenhouse", "room": {"zone": f"G{number:02}"}},
            properties={"desired": {"telemetryInterval": 60 * number, "label": 'a;b, "c"'}},
        )
    # Owned by another tree: adopted, with the plan's warning.
    await _device(client, "legacy-1")
    await _twin(client, "legacy-1", tags={MARKER: "someone-else", "site": "west"})
    # Mirrored from The Things Stack by its integration (its tags.lorawan).
    await _device(client, "lora-1")
    await _twin(client, "lora-1", tags={"lorawan": {"devEui": "70B3D57ED0000001"}})
    # Nested IoT Edge: the manifest language has no parent for an edge device.
    await _device(
        client,
        "gw-2",
        capabilities={"iotEdge": True},
        parentScopes=[gateway["deviceScope"]],
    )
    # The apply lease's identity (exists only while an apply runs): never imported.
    await _device(client, "reconciler-lease.plant-a", status="disabled", statusReason="x")
    return keys


@pytest.fixture
async def fresh_hub(hub_key: str) -> AsyncIterator[httpx.ASGITransport]:
    """A second, empty hub with the same owner key (so one connection string reaches both)."""
    app = build_app(hub_key)
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


def _options(
    out: Path, transport: httpx.AsyncBaseTransport, hub_key: str, **kwargs: Any
) -> HubImportOptions:
    return HubImportOptions(
        out=out,
        environ={
            "IOTHUB_CONNECTION_STRING": connection_string(hub_key),
            "RECONCILER_IOTHUB_URL": "https://hub.test",
        },
        transport=transport,
        **kwargs,
    )


async def hub_state(client: httpx.AsyncClient) -> dict[str, Any]:
    """What the manifests manage, per device and module, with parents by id and without the
    ownership tag: what must be equal on the original hub and the recreated one."""
    twins = await _ok(await client.post("/devices/query", json={"query": "SELECT * FROM devices"}))
    edges = {
        t["deviceScope"]: t["deviceId"] for t in twins if t.get("capabilities", {}).get("iotEdge")
    }
    state: dict[str, Any] = {}
    for twin in twins:
        device_id = twin["deviceId"]
        if device_id.startswith("reconciler-lease."):
            continue
        scope = twin.get("deviceScope")
        edge = twin["capabilities"]["iotEdge"]
        state[device_id] = {
            "status": twin["status"],
            "statusReason": twin.get("statusReason") or None,
            "authenticationType": twin["authenticationType"],
            "x509Thumbprint": twin["x509Thumbprint"],
            "iotEdge": edge,
            "parent": None if edge or not scope else edges.get(scope),
            "tags": {k: v for k, v in (twin.get("tags") or {}).items() if k != MARKER},
            "desired": _desired(twin),
        }
    modules = await _ok(
        await client.post("/devices/query", json={"query": "SELECT * FROM devices.modules"})
    )
    for twin in modules:
        identity = await _ok(
            await client.get(f"/devices/{twin['deviceId']}/modules/{twin['moduleId']}")
        )
        state[f"{twin['deviceId']}/{twin['moduleId']}"] = {
            "managedBy": identity.get("managedBy"),
            "authenticationType": twin["authenticationType"],
            "tags": {k: v for k, v in (twin.get("tags") or {}).items() if k != MARKER},
            "desired": _desired(twin),
        }
    return state


def _desired(twin: dict[str, Any]) -> dict[str, Any]:
    desired = twin["properties"]["desired"]
    return {k: v for k, v in desired.items() if not k.startswith("$")}


async def test_import_round_trip(
    tmp_path: Path,
    hub_transport: httpx.ASGITransport,
    fresh_hub: httpx.ASGITransport,
    hub_key: str,
    owner: httpx.AsyncClient,
) -> None:
    keys = await build_varied_hub(owner)
    out = tmp_path / "hub"
    report = await run_import(_options(out, hub_transport, hub_key))

    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [".gitignore", "devices.csv", "devices.yaml", "hub.yaml", "import-report.txt"]
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not any(key in text for key in keys.values()), path
            assert hub_key not in text, path
    # The probes and the devices whose values a CSV cell holds as they are go to the fleet.
    csv_ids = [line.split(";")[0] for line in (out / "devices.csv").read_text().splitlines()[1:]]
    assert csv_ids == [
        "camera-1",
        "gw-2",
        "legacy-1",
        "lora-1",
        "probe-01",
        "probe-02",
        "probe-03",
        "probe-04",
        "probe-05",
        "sensor-1",
    ]
    yaml_text = (out / "devices.yaml").read_text()
    for device_id in ("gw-1", "door-1", "sensor-2"):  # modules, lists, "60", " padded "
        assert f"id: '{device_id}'" in yaml_text
    assert "reconciler-lease" not in yaml_text
    assert "name: 'plant'" not in (out / "hub.yaml").read_text()

    lines = "\n".join(report.lines())
    assert "nested IoT Edge" in lines and "gw-2" in lines
    assert "owned by another stack" in lines and "legacy-1" in lines
    assert "apply lease" in lines
    assert "tags.lorawan" in lines and "lora-1" in lines
    assert report.counts == {"device": 13, "module": 2}

    loaded = load_manifests([out], kinds=MANIFEST_KINDS, environ={})
    assert not loaded.has_errors, [str(d) for d in loaded.diagnostics]
    assert not [d for d in loaded.diagnostics if d.severity != "info"], [
        str(d) for d in loaded.diagnostics
    ]

    # Against the same hub: only adoption (the ownership tag), with the other owner named.
    engine = HubEngine(hub_transport, hub_key, device_keys={})
    run = await engine.plan([out])
    assert run.plan.changes, "every device is adopted"
    for change in run.plan.changes:
        assert change.adopt, change.key
        paths = [c.path for s in change.steps for c in s.changes]
        assert paths == [f"tags.{MARKER}"], (change.key, paths)
    legacy = next(c for c in run.plan.changes if c.key.id == "legacy-1")
    assert "owned by stack 'someone-else'" in legacy.warnings[0]
    _, applied = await engine.apply([out])
    assert not applied.failed
    assert not (await engine.plan([out])).plan.changes

    # Applied to an empty hub: the same identities, twins and modules.
    fresh = HubEngine(fresh_hub, hub_key, device_keys={})
    _, created = await fresh.apply([out])
    assert not created.failed, [r.error for r in created.failed]
    assert not (await fresh.plan([out])).plan.changes
    original = await hub_state(owner)
    async for client in owner_client(fresh_hub, hub_key):
        recreated = await hub_state(client)
    # Not carried over, as the report says: gw-2's parent edge device.
    assert original.pop("gw-2")["iotEdge"] and recreated.pop("gw-2")["iotEdge"]
    assert recreated == original


async def test_keys_only_when_asked_and_only_in_secrets_files(
    tmp_path: Path,
    hub_transport: httpx.ASGITransport,
    fresh_hub: httpx.ASGITransport,
    hub_key: str,
    owner: httpx.AsyncClient,
) -> None:
    keys = await build_varied_hub(owner)
    out = tmp_path / "hub"
    report = await run_import(_options(out, hub_transport, hub_key, with_secrets=True))
    assert "secrets/" in (out / ".gitignore").read_text().splitlines()
    secret_files = {p.name for p in (out / "secrets").iterdir()}
    assert "sensor-2.primaryKey" in secret_files
    assert "gw-1%2Ffilter.secondaryKey" in secret_files
    assert (out / "secrets" / "sensor-2.primaryKey").read_text().strip() == keys["sensor-2"]
    for path in (out / "secrets").iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    for path in out.rglob("*"):
        if path.is_file() and "secrets" not in path.parts:
            assert not any(key in path.read_text() for key in keys.values()), path
    assert not any(key in line for line in report.lines() for key in keys.values())
    loaded = load_manifests([out], kinds=MANIFEST_KINDS, environ={})
    assert not [d for d in loaded.diagnostics if d.severity != "info"], [
        str(d) for d in loaded.diagnostics
    ]

    engine = HubEngine(hub_transport, hub_key, device_keys={})
    run = await engine.plan([out])
    for change in run.plan.changes:  # the keys compare equal: only adoption
        assert [c.path for s in change.steps for c in s.changes] == [f"tags.{MARKER}"]

    fresh = HubEngine(fresh_hub, hub_key, device_keys={})
    _, created = await fresh.apply([out])
    assert not created.failed, [r.error for r in created.failed]
    async for client in owner_client(fresh_hub, hub_key):
        sensor = await _ok(await client.get("/devices/sensor-2"))
        module = await _ok(await client.get("/devices/gw-1/modules/filter"))
    assert sensor["authentication"]["symmetricKey"]["primaryKey"] == keys["sensor-2"]
    assert module["authentication"]["symmetricKey"]["secondaryKey"] == keys["filter.2"]


async def test_without_secrets_keys_stay_on_the_hub_and_are_reported(
    tmp_path: Path, hub_transport: httpx.ASGITransport, hub_key: str, owner: httpx.AsyncClient
) -> None:
    await build_varied_hub(owner)
    out = tmp_path / "hub"
    await run_import(_options(out, hub_transport, hub_key))
    assert not (out / "secrets").exists()
    assert "symmetricKey" not in (out / "devices.yaml").read_text()
    assert "symmetric keys" in (out / "import-report.txt").read_text()


async def test_an_empty_hub_and_the_name_the_devices_already_carry(
    tmp_path: Path, hub_transport: httpx.ASGITransport, hub_key: str, owner: httpx.AsyncClient
) -> None:
    report = await run_import(_options(tmp_path / "empty", hub_transport, hub_key))
    assert report.summary() == "imported nothing"
    assert f"name: '{HUB}'" in (tmp_path / "empty" / "hub.yaml").read_text()  # the host's name

    await _device(owner, "a-1")
    await _twin(owner, "a-1", tags={MARKER: "plant-a"})
    await run_import(_options(tmp_path / "owned", hub_transport, hub_key))
    assert "name: 'plant-a'" in (tmp_path / "owned" / "hub.yaml").read_text()
    engine = HubEngine(hub_transport, hub_key, device_keys={})
    assert not (await engine.plan([tmp_path / "owned"])).plan.changes


async def test_bad_connection_string_fails_before_anything_is_written(
    tmp_path: Path, hub_transport: httpx.ASGITransport
) -> None:
    from reconciler.importer.output import ImportFailure

    out = tmp_path / "hub"
    for environ, message in (
        ({}, "set IOTHUB_CONNECTION_STRING"),
        ({"IOTHUB_CONNECTION_STRING": "HostName=hub.test;DeviceId=x"}, "not a service"),
    ):
        options = HubImportOptions(out=out, environ=environ, transport=hub_transport)
        with pytest.raises(ImportFailure, match=message):
            await run_import(options)
        assert not out.exists()
    wrong = HubImportOptions(
        out=out,
        environ={
            "IOTHUB_CONNECTION_STRING": connection_string(new_key()),
            "RECONCILER_IOTHUB_URL": "https://hub.test",
        },
        transport=hub_transport,
    )
    with pytest.raises(IotHubAPIError) as error:
        await run_import(wrong)
    assert error.value.status == 401
    assert "SharedAccessKey" not in str(error.value)
    assert not out.exists()


async def test_name_ownership_tag_and_sku_are_the_manifests(
    tmp_path: Path, hub_transport: httpx.ASGITransport, hub_key: str, owner: httpx.AsyncClient
) -> None:
    await _device(owner, "a-1")
    await _twin(owner, "a-1", tags={"owner": "x", "site": "north"})
    out = tmp_path / "hub"
    options = _options(
        out, hub_transport, hub_key, name="plant-b", ownership_tag="owner", sku="s1", units=100
    )
    report = await run_import(options)
    hub = (out / "hub.yaml").read_text()
    for line in ("name: 'plant-b'", "ownership_tag: 'owner'", "sku: 'S1'", "units: 100"):
        assert line in hub
    assert "owner" not in (out / "devices.csv").read_text()
    assert "owned by another stack (twin tag owner)" in "\n".join(report.lines())
    engine = HubEngine(hub_transport, hub_key, device_keys={})
    (change,) = (await engine.plan([out])).plan.changes
    assert change.adopt and [c.path for s in change.steps for c in s.changes] == ["tags.owner"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "-bad"}, "--stack"),
        ({"ownership_tag": "a b"}, "--ownership-tag"),
        ({"sku": "S9"}, "--sku"),
        ({"units": 2}, "--units needs --sku"),
    ],
)
async def test_bad_options_fail_before_reading(
    tmp_path: Path, hub_key: str, options: dict[str, Any], message: str
) -> None:
    from reconciler.importer.output import ImportFailure

    with pytest.raises(ImportFailure, match=message):
        await run_import(
            _options(tmp_path / "o", httpx.MockTransport(_unreachable), hub_key, **options)
        )
    assert not (tmp_path / "o").exists()


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request expected: {request.url}")


async def test_devices_with_keys_of_their_own_do_not_widen_the_fleet_csv_without_bound(
    tmp_path: Path, hub_transport: httpx.ASGITransport, hub_key: str, owner: httpx.AsyncClient
) -> None:
    # Each device carries a tag key nobody else has (its serial): one column each would make
    # the CSV quadratic. The most used columns are kept; the rest of the devices go to YAML.
    for number in range(120):
        device_id = f"d-{number:03}"
        await _device(owner, device_id)
        await _twin(owner, device_id, tags={"site": "north", f"serial{number:03}": number})
    out = tmp_path / "hub"
    await run_import(_options(out, hub_transport, hub_key))
    header = (out / "devices.csv").read_text().splitlines()[0].split(";")
    assert len(header) <= MAX_FLEET_COLUMNS
    assert "tags.site" in header
    rows = len((out / "devices.csv").read_text().splitlines()) - 1
    documents = (out / "devices.yaml").read_text().count("kind: 'IotHubDevice'")
    assert rows + documents == 120 and documents > 0
    engine = HubEngine(hub_transport, hub_key, device_keys={})
    run = await engine.plan([out])
    assert len(run.plan.changes) == 120
    for change in run.plan.changes:
        assert [c.path for s in change.steps for c in s.changes] == [f"tags.{MARKER}"]
