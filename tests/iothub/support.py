"""Helpers for IoT Hub provider tests: manifests in a temp dir, the engine run in-process against
the IoT Hub emulator (httpx.ASGITransport), and an iothubowner client to look at (or change)
the hub the way another tool would."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reconciler.engine import PlanRun, RunOptions
from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY

# write_manifests is re-exported: the IoT Hub tests take all their helpers from here.
from tests.core.support import EngineRuns, write_manifests  # noqa: F401
from tests.iothub_emulator.support import API_VERSION, HOST, sas_token

HUB_URL = f"https://{HOST}"


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def connection_string(key: str, policy: str = "iothubowner") -> str:
    return f"HostName={HOST};SharedAccessKeyName={policy};SharedAccessKey={key}"


HUB = f"""
kind: IotHub
name: plant-a
host_name: {HOST}
device_defaults:
  status: enabled
  tags: {{fleet: plant-a}}
device_profiles:
  probe:
    properties: {{desired: {{interval: 60, telemetry: {{enabled: true}}}}}}
"""

DEVICES = """
kind: IotHubDevice
id: gateway-1
capabilities: {iotEdge: true}
tags: {site: north, room: {floor: 1}}
modules:
  - id: filter
    managedBy: plant-a
    tags: {role: filter}
    properties: {desired: {threshold: 5}}
---
kind: IotHubDevice
id: sensor-1
profile: probe
parent: gateway-1
tags: {site: north, kind: {model: probe, rev: 2}}
properties:
  desired: {telemetry: {fields: [t, h]}}
---
kind: IotHubDevice
id: sensor-2
status: disabled
statusReason: waiting for installation
authentication:
  type: sas
  symmetricKey: {primaryKey: {env: SENSOR_2_PRIMARY}, secondaryKey: {env: SENSOR_2_SECONDARY}}
tags: {site: south}
---
kind: IotHubDevice
id: camera-1
authentication:
  type: selfSigned
  x509Thumbprint: {primaryThumbprint: "AB12CD34EF56AB12CD34EF56AB12CD34EF56AB12"}
---
kind: IotHubDevice
id: door-1
authentication: {type: certificateAuthority}
properties: {desired: {locked: true}}
"""


@dataclass
class HubEngine(EngineRuns):
    """Runs plan/apply in-process against one emulated hub."""

    transport: httpx.AsyncBaseTransport
    owner_key: str
    environ_extra: dict[str, str] = field(default_factory=dict)
    device_keys: dict[str, str] = field(
        default_factory=lambda: {"SENSOR_2_PRIMARY": new_key(), "SENSOR_2_SECONDARY": new_key()}
    )

    def environ(self) -> dict[str, str]:
        return {
            "IOTHUB_CONNECTION_STRING": connection_string(self.owner_key),
            "RECONCILER_IOTHUB_URL": HUB_URL,
            **self.device_keys,
            **self.environ_extra,
        }

    def options(self, paths: list[Path], **kwargs: Any) -> RunOptions:
        environ: Mapping[str, str] = self.environ()
        return RunOptions(
            paths=paths,
            providers=REGISTRY,
            manifest_kinds=MANIFEST_KINDS,
            environ=environ,
            transport=self.transport,
            **kwargs,
        )


async def owner_client(
    transport: httpx.AsyncBaseTransport, owner_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=transport,
        base_url=HUB_URL,
        headers={"Authorization": sas_token(HOST, owner_key, "iothubowner")},
        params={"api-version": API_VERSION},
    ) as client:
        yield client


def changes(run: PlanRun) -> dict[str, str]:
    """label -> action of every change."""
    return {str(c.key): c.action for c in run.plan.changes}
