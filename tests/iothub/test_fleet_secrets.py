"""An IotHubFleet's `secrets_csv`: the sas keys of its devices by device id in one git-ignored
CSV beside the fleet; located errors for its rows and cells; `import --with-secrets` writes it
(instead of two files per fleet device), and the imported tree round-trips."""

from __future__ import annotations

from pathlib import Path

import httpx

from reconciler.manifest.load import load_manifests
from reconciler.providers.iothub.importing.run import HubImportOptions, run_import
from reconciler.providers.registry import MANIFEST_KINDS
from tests.iothub.support import (
    HUB,
    HubEngine,
    changes,
    connection_string,
    new_key,
    owner_client,
    write_manifests,
)
from tests.iothub_emulator.conftest import build_app

FLEET = "kind: IotHubFleet\ncsv: sensors.csv\nsecrets_csv: sensors.secrets.csv\n"


def tree(directory: Path, rows: list[str], secret_rows: list[str], fleet: str = FLEET) -> Path:
    write_manifests(directory, hub=HUB, fleet=fleet)
    (directory / "sensors.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (directory / "sensors.secrets.csv").write_text(
        "\n".join(["id;primaryKey;secondaryKey", *secret_rows]) + "\n", encoding="utf-8"
    )
    return directory


async def test_keys_come_from_the_secrets_csv_and_stay_out_of_the_plan(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    keys = [new_key(), new_key()]
    directory = tree(
        tmp_path,
        ["id;authentication.type", "s-1;sas", "s-2;sas"],
        [f"s-1;{keys[0]};{keys[1]}", "s-2;;"],  # s-2: keys left to the hub
    )
    run, report = await hub_engine.apply([directory])
    assert changes(run) == {"device s-1": "create", "device s-2": "create"}
    assert not report.failed
    device = (await owner.get("/devices/s-1")).json()
    assert device["authentication"]["symmetricKey"] == {
        "primaryKey": keys[0],
        "secondaryKey": keys[1],
    }
    generated = (await owner.get("/devices/s-2")).json()["authentication"]["symmetricKey"]
    assert generated["primaryKey"] not in keys
    plan = await hub_engine.plan([directory])
    assert not plan.plan.changes
    # Changing a key in the file is a change, shown without the key.
    (directory / "sensors.secrets.csv").write_text(
        f"id;primaryKey;secondaryKey\ns-1;{new_key()};{keys[1]}\ns-2;;\n", encoding="utf-8"
    )
    changed = await hub_engine.plan([directory])
    assert changes(changed) == {"device s-1": "update"}
    assert not any(key in repr(changed.plan) for key in keys)


def test_secrets_rows_and_cells_are_located_errors(tmp_path: Path) -> None:
    good = [new_key(), new_key()]
    short = "QUJD"  # base64 of 3 bytes: too short for a key
    directory = tree(
        tmp_path,
        ["id;authentication.type", "s-1;sas", "s-2;sas", "s-3;sas", "s-4;sas", "s-5;sas"],
        [
            f"s-1;{good[0]};{good[1]}",
            f"s-1;{good[0]};{good[1]}",  # duplicate
            f"s-2;not base64!;{good[1]}",
            f"s-3;{short};{good[1]}",
            f"s-4;{good[0]};",  # one key only
            f"ghost;{good[0]};{good[1]}",  # no such device: a warning
            # s-5: no row
        ],
    )
    result = load_manifests([directory], kinds=MANIFEST_KINDS, environ={})
    found = {
        (Path(d.location.file).name, d.location.line, d.location.column, d.code)
        for d in result.diagnostics
        if d.severity == "error"
    }
    assert found == {
        ("sensors.secrets.csv", 3, 1, "duplicate-id"),
        ("sensors.secrets.csv", 4, 2, "invalid-csv-cell"),
        ("sensors.secrets.csv", 5, 2, "invalid-csv-cell"),
        ("sensors.secrets.csv", 6, 3, "invalid-csv-cell"),
        ("sensors.csv", 6, 1, "missing-secrets"),
    }, [str(d) for d in result.diagnostics]
    # A row no device uses is left behind when a device leaves the fleet: a warning, as for
    # a TTS fleet.
    assert [
        (Path(d.location.file).name, d.location.line, d.code)
        for d in result.diagnostics
        if d.severity == "warning"
    ] == [("sensors.secrets.csv", 7, "unused-secrets")]
    messages = " ".join(str(d) for d in result.diagnostics)
    assert "is not base64" in messages and "decodes to 3 bytes" in messages
    assert not any(key in messages for key in [*good, short])


def test_a_secrets_csv_outside_the_tree_and_keys_in_both_places(tmp_path: Path) -> None:
    outside = tmp_path / "outside.secrets.csv"
    outside.write_text(f"id;primaryKey;secondaryKey\ns-1;{new_key()};{new_key()}\n")
    inner = tmp_path / "tree"
    fleet = "kind: IotHubFleet\ncsv: sensors.csv\nsecrets_csv: ../outside.secrets.csv\n"
    tree(inner, ["id", "s-1"], [], fleet)
    result = load_manifests([inner], kinds=MANIFEST_KINDS, environ={})
    (error,) = [d for d in result.diagnostics if d.severity == "error"]
    assert error.location.file.endswith("fleet.yaml") and error.code == "file-access"

    both = tmp_path / "both"
    tree(both, ["id;primaryKey", "s-1;env:K"], [f"s-1;{new_key()};{new_key()}"])
    result = load_manifests([both], kinds=MANIFEST_KINDS, environ={"K": new_key()})
    (error,) = [d for d in result.diagnostics if d.severity == "error"]
    assert (Path(error.location.file).name, error.location.line, error.code) == (
        "sensors.csv",
        2,
        "duplicate-secrets",
    )


async def test_import_writes_one_secrets_csv_and_round_trips(
    tmp_path: Path, hub_transport: httpx.ASGITransport, hub_key: str, owner: httpx.AsyncClient
) -> None:
    keys: dict[str, tuple[str, str]] = {}
    for index in range(30):
        device_id = f"s-{index:03}"
        keys[device_id] = (new_key(), new_key())
        body = {
            "deviceId": device_id,
            "authentication": {
                "type": "sas",
                "symmetricKey": dict(
                    zip(("primaryKey", "secondaryKey"), keys[device_id], strict=True)
                ),
            },
        }
        assert (await owner.put(f"/devices/{device_id}", json=body)).status_code == 200
    out = tmp_path / "hub"
    environ = {
        "IOTHUB_CONNECTION_STRING": connection_string(hub_key),
        "RECONCILER_IOTHUB_URL": "https://hub.test",
    }
    await run_import(
        HubImportOptions(out=out, environ=environ, transport=hub_transport, with_secrets=True)
    )
    assert not (out / "secrets").exists()  # no file per key
    secrets_csv = out / "devices.secrets.csv"
    assert secrets_csv.stat().st_mode & 0o077 == 0
    assert "*.secrets.csv" in (out / ".gitignore").read_text().splitlines()
    lines = secrets_csv.read_text().splitlines()
    assert lines[0] == "id;primaryKey;secondaryKey" and len(lines) == 31
    assert f"s-007;{keys['s-007'][0]};{keys['s-007'][1]}" in lines
    all_keys = [k for pair in keys.values() for k in pair]
    for path in out.rglob("*"):
        if path.is_file() and path != secrets_csv:
            assert not any(key in path.read_text() for key in all_keys), path

    engine = HubEngine(hub_transport, hub_key, device_keys={})
    run = await engine.plan([out])
    for change in run.plan.changes:  # the keys compare equal: only adoption
        assert [c.path for s in change.steps for c in s.changes] == ["tags.managed-by"]
    app = build_app(hub_key)
    async with app.router.lifespan_context(app):
        fresh = HubEngine(httpx.ASGITransport(app=app), hub_key, device_keys={})
        _, created = await fresh.apply([out])
        assert not created.failed
        async for client in owner_client(fresh.transport, hub_key):
            device = (await client.get("/devices/s-007")).json()
    assert device["authentication"]["symmetricKey"] == {
        "primaryKey": keys["s-007"][0],
        "secondaryKey": keys["s-007"][1],
    }
