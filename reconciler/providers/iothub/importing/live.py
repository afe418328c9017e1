"""Read an IoT Hub's registry for an import: every device twin, every module twin, and the
identities where the twin cannot answer.

Device and module twins come by query pages of 1,000 (`SELECT * FROM devices`, `SELECT * FROM
devices.modules`), as `plan` reads them: status, status reason, authentication type,
thumbprints, capabilities, scopes, tags and desired properties are all in the twin. Identity
GETs are made only for a module's `managedBy` (not in its twin) and, when secrets were asked
for, for the symmetric keys of devices and modules. Reported properties are never kept.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from reconciler.concurrency import gather_or_cancel
from reconciler.importer.report import ImportReport
from reconciler.provider import ProgressCallback
from reconciler.providers.iothub import rules
from reconciler.providers.iothub.client import IotHubAPIError
from reconciler.providers.iothub.differ import device_key, module_key
from reconciler.providers.iothub.provider import TWIN_FIELDS, IotHubProvider
from reconciler.resources import ResourceKey

COUNT_QUERY = "SELECT COUNT() AS devices FROM devices"


@dataclass
class TwinRecord:
    """One device's or module's twin as read (only the fields an import uses), and its
    identity when one was read."""

    device_id: str
    module_id: str | None
    twin: dict[str, Any]
    identity: dict[str, Any] | None = None

    @property
    def key(self) -> ResourceKey:
        if self.module_id is None:
            return device_key(self.device_id)
        return module_key(self.device_id, self.module_id)

    @property
    def label(self) -> str:
        return self.device_id if self.module_id is None else f"{self.device_id}/{self.module_id}"


@dataclass
class DeviceRecord(TwinRecord):
    modules: list[TwinRecord] = field(default_factory=list)


@dataclass
class HubSnapshot:
    host_name: str
    devices: list[DeviceRecord] = field(default_factory=list)
    report: ImportReport = field(default_factory=ImportReport)


def _kept(item: dict[str, Any]) -> dict[str, Any]:
    """The twin fields an import uses (reported properties and timestamps are dropped)."""
    kept = {name: item[name] for name in TWIN_FIELDS if name in item}
    kept["parentScopes"] = item.get("parentScopes")
    properties = item.get("properties")
    desired = properties.get("desired") if isinstance(properties, dict) else None
    if isinstance(desired, dict):
        kept["desired"] = {k: v for k, v in desired.items() if k not in ("$metadata", "$version")}
    return kept


def _id(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value if isinstance(value, str) and value else None


async def read_hub(
    provider: IotHubProvider,
    *,
    with_secrets: bool,
    parallelism: int,
    progress: ProgressCallback | None = None,
) -> HubSnapshot:
    """Every device and module of the hub (the apply lease's identity excepted)."""
    snapshot = HubSnapshot(provider.target.host_name)
    total = await _count(provider)
    devices: dict[str, DeviceRecord] = {}
    async for item in provider.query("SELECT * FROM devices"):
        device_id = _id(item, "deviceId")
        if device_id is None:
            raise _malformed("a device twin without a deviceId")
        if device_id.startswith(rules.LEASE_DEVICE_PREFIX):
            snapshot.report.add(
                "the apply lease identity (it exists only while an apply runs)",
                device_id,
            )
            continue
        devices[device_id] = DeviceRecord(device_id, None, _kept(item))
        if progress:
            progress("read", len(devices), max(total, len(devices)))
    snapshot.devices = list(devices.values())
    async for item in provider.query("SELECT * FROM devices.modules"):
        device_id, module_id = _id(item, "deviceId"), _id(item, "moduleId")
        if device_id is None or module_id is None:
            raise _malformed("a module twin without a deviceId or moduleId")
        owner = devices.get(device_id)
        if owner is not None:
            owner.modules.append(TwinRecord(device_id, module_id, _kept(item)))
    # Identities: every module (its managedBy is not in the twin); with secrets, the devices
    # whose keys the hub holds.
    wanted: list[TwinRecord] = []
    for device in snapshot.devices:
        if with_secrets and device.twin.get("authenticationType") == "sas":
            wanted.append(device)
        wanted.extend(device.modules)
    await _read_identities(provider, wanted, parallelism, progress)
    return snapshot


async def _count(provider: IotHubProvider) -> int:
    """How many devices the hub has (for the progress display only)."""
    async for item in provider.query(COUNT_QUERY):
        value = item.get("devices")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0
    return 0


async def _read_identities(
    provider: IotHubProvider,
    records: list[TwinRecord],
    parallelism: int,
    progress: ProgressCallback | None,
) -> None:
    semaphore = asyncio.Semaphore(max(1, parallelism))
    done = 0

    async def read_one(record: TwinRecord) -> None:
        nonlocal done
        async with semaphore:
            record.identity, _ = await provider.get_identity(record.key)
        done += 1
        if progress:
            progress("reading identities", done, len(records))

    await gather_or_cancel(read_one(r) for r in records)


def _malformed(what: str) -> IotHubAPIError:
    return IotHubAPIError(
        method="POST", path="/devices/query", status=200, code="", message=f"HTTP 200: {what}"
    )
