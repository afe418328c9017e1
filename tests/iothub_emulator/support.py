"""Clients for the IoT Hub emulator suite: SAS tokens made the way the docs describe them (not
with the emulator's code), an httpx client per policy, and Microsoft's SDK pointed at a served
emulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

API_VERSION = "2021-04-12"
HUB = "myhub"
HOST = f"{HUB}.azure-devices.net"


def sas_token(
    resource: str,
    key: str,
    policy: str | None = None,
    *,
    expiry: int | None = None,
    ttl: int = 3600,
) -> str:
    """`SharedAccessSignature sr=&sig=&se=[&skn=]` per the documented recipe."""
    encoded = quote_plus(resource)
    se = str(expiry if expiry is not None else int(time.time()) + ttl)
    digest = hmac.digest(base64.b64decode(key), f"{encoded}\n{se}".encode(), hashlib.sha256)
    sig = quote(base64.b64encode(digest).decode(), safe="")
    token = f"SharedAccessSignature sr={encoded}&sig={sig}&se={se}"
    return token + (f"&skn={policy}" if policy else "")


def parse_connection_string(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.partition("=")
        fields[name] = value
    return fields


@dataclass
class Hub:
    """What a test needs to reach one emulated hub."""

    connection_string: str
    policy_keys: dict[str, str]  # policy -> primary key

    @property
    def owner_key(self) -> str:
        return parse_connection_string(self.connection_string)["SharedAccessKey"]

    def token(self, policy: str = "iothubowner", **kwargs: Any) -> str:
        return sas_token(HOST, self.policy_keys[policy], policy, **kwargs)

    def headers(self, policy: str = "iothubowner") -> dict[str, str]:
        return {"Authorization": self.token(policy)}


def device_body(device_id: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"deviceId": device_id, "status": "enabled"}
    body.update(fields)
    return body


def error_name(response: httpx.Response) -> str:
    """The symbolic error name from the envelope, checked against the header."""
    message = response.json()["Message"]
    assert message.startswith("ErrorCode:"), message
    name = message[len("ErrorCode:") :].split(";", 1)[0]
    assert response.headers["iothub-errorcode"] == name
    return name
