"""The IoT Hub emulator's tables: devices by ID, modules by `device/module`, policy keys."""

from __future__ import annotations

from pathlib import Path

from reconciler.emulator.state import Store


class IotHubStore(Store):
    def __init__(self, path: Path | None) -> None:
        super().__init__(path)
        self.devices = self.table("iothub_devices")
        self.modules = self.table("iothub_modules")
        self.policies = self.table("iothub_policies")
