"""The TTS emulator's tables: one per registry, keyed by entity ID (devices by `app/device`)."""

from __future__ import annotations

from pathlib import Path

from reconciler.emulator.state import Store


class TTSStore(Store):
    def __init__(self, path: Path | None) -> None:
        super().__init__(path)
        self.users = self.table("users")
        self.organizations = self.table("organizations")
        self.applications = self.table("applications")
        self.gateways = self.table("gateways")
        self.api_keys = self.table("api_keys")
        self.is_devices = self.table("is_devices")
        self.ns_devices = self.table("ns_devices")
        self.as_devices = self.table("as_devices")
        self.js_devices = self.table("js_devices")
        self.webhooks = self.table("webhooks")
        self.pubsubs = self.table("pubsubs")
        self.package_defaults = self.table("package_defaults")
        self.package_associations = self.table("package_associations")
        self.links = self.table("links")
        self.downlinks = self.table("downlinks")
