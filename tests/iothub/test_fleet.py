"""IoT Hub fleets from CSV: columns to identity fields and nested twin documents, defaults and
profiles under the row, keys by reference, and located errors."""

from __future__ import annotations

from pathlib import Path

import httpx

from reconciler.manifest.load import load_manifests
from reconciler.providers.registry import MANIFEST_KINDS
from tests.iothub.support import HUB, HubEngine, changes, new_key, write_manifests

FLEET = "kind: IotHubFleet\nprofile: probe\ncsv: sensors.csv\n"
EDGE = "kind: IotHubDevice\nid: gw\ncapabilities: {iotEdge: true}\n"


def fleet_tree(directory: Path, rows: list[str]) -> Path:
    write_manifests(directory, hub=HUB, fleet=FLEET, edge=EDGE)
    (directory / "sensors.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return directory


async def test_a_csv_fleet_is_created_with_nested_tags_and_desired_properties(
    tmp_path: Path, hub_engine: HubEngine, owner: httpx.AsyncClient
) -> None:
    keys = {"K1": new_key(), "K2": new_key()}
    hub_engine.environ_extra.update(keys)
    tree = fleet_tree(
        tmp_path,
        [
            "id;status;parent;tags.site;tags.room.floor;properties.desired.interval;"
            "primaryKey;secondaryKey",
            "s-001;enabled;gw;north;1;30;env:K1;env:K2",
            "s-002;disabled;;south;2;;;",
        ],
    )
    run, report = await hub_engine.apply([tree])
    assert changes(run) == {
        "edge device gw": "create",
        "device s-001": "create",
        "device s-002": "create",
    }
    assert not report.failed
    twin = (await owner.get("/twins/s-001")).json()
    assert twin["tags"] == {
        "fleet": "plant-a",
        "site": "north",
        "room": {"floor": 1},
        "managed-by": "plant-a",
    }
    # The row's interval wins over the profile's; the profile's other keys stay.
    assert twin["properties"]["desired"]["interval"] == 30
    assert twin["properties"]["desired"]["telemetry"] == {"enabled": True}
    device = (await owner.get("/devices/s-001")).json()
    assert device["authentication"]["symmetricKey"]["primaryKey"] == keys["K1"]
    assert device["deviceScope"] == (await owner.get("/devices/gw")).json()["deviceScope"]
    other = (await owner.get("/twins/s-002")).json()
    assert other["status"] == "disabled"
    assert other["properties"]["desired"]["interval"] == 60
    assert changes(await hub_engine.plan([tree])) == {}


def test_csv_problems_are_located_by_row_and_column(tmp_path: Path) -> None:
    tree = fleet_tree(
        tmp_path,
        [
            "id,status,primaryKey,tags.bad key,parent,colour",
            "ok-1,enabled,,,,",
            "bad/id,paused,env:MISSING,x,nowhere,",
            "ok-1,enabled,,,,",
        ],
    )
    result = load_manifests([tree], environ={}, kinds=MANIFEST_KINDS)
    csv = [d for d in result.diagnostics if d.location.file.endswith("sensors.csv")]
    where = {(d.location.line, d.location.column) for d in csv if d.severity == "error"}
    assert (3, 1) in where  # bad/id
    assert (3, 2) in where  # status paused
    assert (3, 3) in where  # env:MISSING
    assert any("duplicate device `ok-1`" in d.message and d.location.line == 4 for d in csv)
    assert any("unknown column `colour`" in d.message and d.severity == "warning" for d in csv)
    assert any("has a character twins do not allow" in d.message for d in csv)


def test_only_an_inline_key_cell_is_warned_about(tmp_path: Path) -> None:
    # Key columns of references (what `import --iothub --with-secrets` writes) draw no warning;
    # the first inline key is named at its cell.
    keys = {"K1": new_key(), "K2": new_key()}
    header = "id;primaryKey;secondaryKey"
    referenced = fleet_tree(tmp_path / "referenced", [header, "s-001;env:K1;env:K2"])
    result = load_manifests([referenced], kinds=MANIFEST_KINDS, environ=keys)
    assert not [d for d in result.diagnostics if d.code == "inline-secret"]
    inline = fleet_tree(
        tmp_path / "inline", [header, "s-001;env:K1;env:K2", f"s-002;{new_key()};env:K2"]
    )
    result = load_manifests([inline], kinds=MANIFEST_KINDS, environ=keys)
    (warning,) = [d for d in result.diagnostics if d.code == "inline-secret"]
    assert (warning.location.line, warning.location.path) == (3, "primaryKey")
