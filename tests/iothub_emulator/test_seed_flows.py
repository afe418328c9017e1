"""The REST sample the project started from (seeds/003): create a device identity without keys,
re-create it (409), get it, list identities, and send a device-to-cloud message (204), compared
with the responses recorded in the sample."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import httpx

from tests.iothub_emulator.support import HOST, error_name, sas_token
from tests.shared_data import SEEDS_DIR, needs_shared

pytestmark = needs_shared
RECORDED = re.compile(r"^\s*(\(u'.*, \d{3}\))\s*$", re.MULTILINE)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$")


def recorded() -> list[tuple[str, int]]:
    """The sample's recorded (body, status) pairs, in order: create, 409, get, list, D2C."""
    seed = next(iter(sorted(SEEDS_DIR.glob("003_*.txt"))), None)
    assert seed is not None, f"no 003_*.txt sample in {SEEDS_DIR}"
    text = seed.read_text(encoding="utf-8")
    pairs = [ast.literal_eval(match.group(1)) for match in RECORDED.finditer(text)]
    assert [status for _, status in pairs] == [200, 409, 200, 200, 204]
    return pairs


def same_shape(recorded_value: Any, ours: Any, where: str = "$") -> None:
    """Every field the sample shows is there, with a value of the same JSON kind."""
    if isinstance(recorded_value, dict):
        assert isinstance(ours, dict), where
        for key, value in recorded_value.items():
            assert key in ours, f"{where}.{key} missing"
            same_shape(value, ours[key], f"{where}.{key}")
    elif isinstance(recorded_value, list):
        assert isinstance(ours, list) and ours, where
        same_shape(recorded_value[0], ours[0], f"{where}[0]")
    elif recorded_value is None:
        assert ours is None or isinstance(ours, str), where
    else:
        assert type(ours) is type(recorded_value), f"{where}: {ours!r}"
        if isinstance(recorded_value, str) and recorded_value.startswith(("0001-", "2016-")):
            assert TIMESTAMP.match(ours), f"{where}: {ours!r}"


async def test_seed_flows(hub_client: httpx.AsyncClient) -> None:
    create, conflict, retrieve, listing, message = recorded()

    created = await hub_client.put("/devices/iotdevice1", json={"deviceId": "iotdevice1"})
    assert created.status_code == create[1]
    device = created.json()
    same_shape(json.loads(create[0]), device)
    assert device["etag"] == "MA=="
    assert device["connectionState"] == "Disconnected"
    assert device["generationId"].isdigit()
    assert device["lastActivityTime"] == "0001-01-01T00:00:00Z"

    again = await hub_client.put("/devices/iotdevice1", json={"deviceId": "iotdevice1"})
    assert again.status_code == conflict[1]
    assert error_name(again) == "DeviceAlreadyExists"
    seed_message = json.loads(conflict[0], strict=False)["Message"]
    first_line = seed_message.split("\r\n")[0]
    assert again.json()["Message"] == first_line
    assert again.json()["ExceptionMessage"].startswith("Tracking ID:")

    got = await hub_client.get("/devices/iotdevice1")
    assert got.status_code == retrieve[1]
    same_shape(json.loads(retrieve[0]), got.json())
    assert got.json() == device

    listed = await hub_client.get("/devices")
    assert listed.status_code == listing[1]
    same_shape(json.loads(listing[0]), listed.json())
    assert [d["deviceId"] for d in listed.json()] == ["iotdevice1"]

    # The device side: a token signed with the device's own key, scoped to the device.
    device_key = device["authentication"]["symmetricKey"]["primaryKey"]
    token = sas_token(f"{HOST}/devices/iotdevice1", device_key)
    sent = await hub_client.post(
        "/devices/iotdevice1/messages/events",
        content=b'{"deviceId":"iotdevice1","windSpeed":10}',
        headers={"Authorization": token, "Content-Type": "application/json"},
    )
    assert sent.status_code == message[1]
    assert sent.content.decode() == message[0] == ""

    # As in the recorded GET after the device sent: activity and the connection-state time are
    # set, the state stays Disconnected (HTTPS devices do not hold a connection).
    after = (await hub_client.get("/devices/iotdevice1")).json()
    assert after["lastActivityTime"] != "0001-01-01T00:00:00Z"
    assert after["connectionStateUpdatedTime"] == after["lastActivityTime"]
    assert after["connectionState"] == "Disconnected"
    assert after["etag"] == device["etag"]
