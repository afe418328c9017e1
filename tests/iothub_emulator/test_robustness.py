"""Nothing a client sends makes the emulator answer 500: malformed bodies, headers, query
parameters and paths on every route get a 4xx with the error envelope."""

from __future__ import annotations

import random

import httpx

from tests.iothub_emulator.support import device_body

BODIES = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"text"',
    b"1",
    b"true",
    b"{",
    b"\xff\xfe\x00",
    b"[" * 100_000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b"NaN",
    b'{"deviceId": Infinity}',
    b'{"deviceId": 1, "moduleId": [], "status": {}, "authentication": "x"}',
    b'{"deviceId": "r", "authentication": {"symmetricKey": [], "x509Thumbprint": 1}}',
    b'{"deviceId": "r", "capabilities": [], "parentScopes": "x", "deviceScope": 5}',
    b'{"deviceId": "r", "statusReason": 5}',
    b'{"tags": [], "properties": {"desired": []}}',
    b'{"properties": {"reported": "x", "desired": {"$metadata": 1}}}',
    b'{"query": "SELECT * FROM devices WHERE ' + b"(" * 3000 + b'"}',
    b'{"query": "SELECT * FROM devices WHERE NOT ' + b"NOT " * 1500 + b'deviceId = 1"}',
    b'{"query": "' + b"x" * 9000 + b'"}',
    b'[{"id": "r", "importMode": "create", "authentication": 5}]',
    b'[{"id": "r", "importMode": "create", "tags": 5, "properties": 7}]',
    b'[{"id": "r", "importMode": "update", "capabilities": "x"}]',
    b'[{"id": 5, "importMode": "create"}]',
    b'[{"id": "r", "moduleId": 5, "importMode": "create"}]',
    b'[{"id": "r", "moduleId": "m", "importMode": "updateTwin", "twinETag": []}]',
]
HEADERS = [
    {},
    {"If-Match": ""},
    {"If-Match": '"'},
    {"If-Match": '""'},
    {"If-Match": 'W/"x"'},
    {"If-Match": "\u00e9".encode("latin-1")},
    {"x-ms-max-item-count": "-5"},
    {"x-ms-max-item-count": "99999999999999999999999"},
    {"x-ms-max-item-count": "1e3"},
    {"x-ms-continuation": "\u00e9\u00e9".encode("latin-1")},
    {"x-ms-continuation": "eyJrIjogNX0="},
    {"Content-Type": "text/plain"},
]
PATHS = [
    ("PUT", "/devices/r"),
    ("GET", "/devices/r"),
    ("DELETE", "/devices/r"),
    ("GET", "/devices"),
    ("POST", "/devices"),
    ("POST", "/devices/query"),
    ("GET", "/twins/r"),
    ("PATCH", "/twins/r"),
    ("PUT", "/twins/r"),
    ("GET", "/devices/r/modules"),
    ("PUT", "/devices/r/modules/m"),
    ("GET", "/devices/r/modules/m"),
    ("DELETE", "/devices/r/modules/m"),
    ("GET", "/twins/r/modules/m"),
    ("PATCH", "/twins/r/modules/m"),
    ("PUT", "/twins/r/modules/m"),
    ("GET", "/statistics/devices"),
    ("GET", "/statistics/service"),
    ("POST", "/devices/r/messages/events"),
    ("PUT", "/devices/%00"),
    ("PUT", "/devices/" + "x" * 5000),
    ("GET", "/twins/%C3%A9"),
]
PARAMS = [
    {"api-version": "2021-04-12"},
    {"api-version": "2021-04-12", "top": "x"},
    {"api-version": "2021-04-12", "top": "-1"},
    {"api-version": ["2021-04-12", "2020-09-30"]},
    {"api-version": "\u00e9"},
    {},
]


async def test_no_malformed_request_gets_a_500(hub_client: httpx.AsyncClient) -> None:
    await hub_client.put("/devices/r", json=device_body("r"))
    await hub_client.put("/devices/r/modules/m", json={"moduleId": "m"})
    rng = random.Random(10)
    auth = hub_client.headers["Authorization"]
    requests = [(method, path, body, {}, PARAMS[0]) for method, path in PATHS for body in BODIES]
    requests += [
        (method, path, rng.choice(BODIES), headers, rng.choice(PARAMS))
        for method, path in PATHS
        for headers in HEADERS
    ]
    failures = []
    for method, path, body, headers, params in requests:
        response = await hub_client.request(
            method, path, content=body, headers={"Authorization": auth, **headers}, params=params
        )
        if response.status_code >= 500:
            failures.append((method, path, body[:40], headers, response.status_code))
        elif response.status_code >= 400:
            answer = response.json()
            # The envelope, or a bulk result with per-device errors.
            assert (
                answer["Message"].startswith("ErrorCode:")
                if "Message" in answer
                else (answer["isSuccessful"] is False)
            )
    assert failures == []
    # The emulator still works.
    assert (await hub_client.put("/devices/after", json=device_body("after"))).status_code == 200
    assert (await hub_client.get("/devices/after")).status_code == 200
