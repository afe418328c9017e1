"""Helpers for engine tests: manifests written to a temp dir, the engine run in-process against
the emulator through httpx.ASGITransport."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reconciler import engine
from reconciler.engine import PlanRun, RunOptions
from reconciler.lease import Note
from reconciler.plan.model import ApplyReport
from reconciler.providers.registry import MANIFEST_KINDS, REGISTRY

ROOT_URL = "http://emulator.test"

KEYS = {
    "OTAA_103_APP_KEY": "2B7E151628AED2A6ABF7158809CF4F3C",
    "OTAA_11_APP_KEY": "000102030405060708090A0B0C0D0E0F",
    "OTAA_11_NWK_KEY": "F0E0D0C0B0A090807060504030201000",
    "ABP_APP_S_KEY": "11223344556677889900AABBCCDDEEFF",
    "ABP_NWK_S_KEY": "FFEEDDCCBBAA00998877665544332211",
    "CLASS_C_APP_KEY": "A1A2A3A4A5A6A7A8A9AAABACADAEAFB0",
    "WEBHOOK_TOKEN": "Bearer top-secret-webhook-token",
}

STACK = """
kind: Stack
name: site-a
url: https://eu1.cloud.thethings.network
api_key: {env: TTS_API_KEY}
owner: {user: admin-user}
"""

APPLICATION = """
kind: Application
id: field-sensors
name: Field sensors
default_formatters:
  up_formatter: FORMATTER_CAYENNELPP
webhooks:
  - id: ingest
    base_url: https://ingest.example.com/ttn
    headers:
      Authorization: {env: WEBHOOK_TOKEN}
    uplink_message: /up
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.3
  lorawan_phy_version: 1.0.3-a
  join_eui: "70B3D57ED0000000"
device_profiles:
  class-c:
    supports_class_c: true
    mac_settings:
      rx2_data_rate_index: 3
"""

DEVICES = """
kind: Device
application: field-sensors
id: otaa-103
name: OTAA 1.0.3
dev_eui: "70B3D57ED0000001"
app_key: {env: OTAA_103_APP_KEY}
attributes: {row: "1"}
formatters: {up_formatter: FORMATTER_CAYENNELPP}
---
kind: Device
application: field-sensors
id: otaa-11
dev_eui: "70B3D57ED0000002"
lorawan_version: "1.1"
lorawan_phy_version: RP001_V1_1_REV_B
app_key: {env: OTAA_11_APP_KEY}
nwk_key: {env: OTAA_11_NWK_KEY}
---
kind: Device
application: field-sensors
id: abp-102
dev_eui: "70B3D57ED0000003"
lorawan_version: 1.0.2
lorawan_phy_version: 1.0.2-b
dev_addr: "260B0001"
app_s_key: {env: ABP_APP_S_KEY}
f_nwk_s_int_key: {env: ABP_NWK_S_KEY}
mac_settings:
  resets_f_cnt: true
---
kind: Device
application: field-sensors
profile: class-c
id: class-c
dev_eui: "70B3D57ED0000004"
app_key: {env: CLASS_C_APP_KEY}
"""


def write_manifests(directory: Path, **files: str) -> Path:
    """Write `name=text` manifests (dedented) into `directory`; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return directory


def site(directory: Path, devices: str = DEVICES, **extra: str) -> Path:
    return write_manifests(
        directory, stack=STACK, application=APPLICATION, devices=devices, **extra
    )


class EngineRuns:
    """plan/apply in-process through the engine, with the options a subclass builds."""

    def options(self, paths: list[Path], **kwargs: Any) -> RunOptions:
        raise NotImplementedError

    async def plan(self, paths: list[Path], **kwargs: Any) -> PlanRun:
        options = self.options(paths, **kwargs)
        loaded = engine.load(options)
        session = engine.connect(loaded, options)
        try:
            return await engine.make_plan(loaded, session, options)
        finally:
            await session.aclose()

    async def apply(self, paths: list[Path], **kwargs: Any) -> tuple[PlanRun, ApplyReport]:
        options = self.options(paths, **kwargs)
        loaded = engine.load(options)
        session = engine.connect(loaded, options)
        try:
            run = await engine.make_plan(loaded, session, options)
            report = await engine.apply_plan(run, session, options)
            return run, report
        finally:
            await session.aclose()

    async def apply_leased(
        self, paths: list[Path], note: Note = lambda _text: None, **kwargs: Any
    ) -> tuple[PlanRun, ApplyReport]:
        """apply as the CLI runs it: under the targets' lease (taken before the read, renewed
        once after the writes, released at the end)."""
        options = self.options(paths, **kwargs)
        loaded = engine.load(options)
        session = engine.connect(loaded, options)
        try:
            async with engine.hold_lease(session, options, note) as lease:
                run = await engine.make_plan(loaded, session, options)
                report = await engine.apply_plan(run, session, options, lease=lease)
                if lease is not None:
                    await lease.renew()
                    lease.check()
                return run, report
        finally:
            await session.aclose()


@dataclass
class Engine(EngineRuns):
    """Runs plan/apply in-process against one emulator."""

    transport: httpx.AsyncBaseTransport
    api_key: str
    url: str = ROOT_URL
    environ_extra: dict[str, str] = field(default_factory=dict)

    def options(self, paths: list[Path], **kwargs: Any) -> RunOptions:
        environ: Mapping[str, str] = {**KEYS, "TTS_API_KEY": self.api_key, **self.environ_extra}
        kwargs.setdefault("url", self.url)
        return RunOptions(
            paths=paths,
            providers=REGISTRY,
            manifest_kinds=MANIFEST_KINDS,
            environ=environ,
            transport=self.transport,
            **kwargs,
        )


def step_summary(run: PlanRun) -> dict[str, list[tuple[str, str, list[str]]]]:
    """resource -> [(endpoint, operation, paths)] for every change."""
    return {
        str(change.key): [(s.endpoint, s.operation, s.paths) for s in change.steps]
        for change in run.plan.changes
    }


FLEET_APPLICATION = """
kind: Application
id: field-fleet
name: Fleet
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.3
  lorawan_phy_version: 1.0.3-a
  join_eui: "70B3D57ED0000000"
"""


def fleet_site(directory: Path, devices: int, *, skip: int = 0) -> Path:
    """A Stack, one application and a Fleet of `devices` OTAA devices (CSV + secrets CSV);
    `skip` leaves out every skip-th device (to exercise prune)."""
    write_manifests(
        directory,
        stack=STACK,
        application=FLEET_APPLICATION,
        fleet="kind: Fleet\napplication: field-fleet\ncsv: fleet.csv\nsecrets_csv: keys.csv\n",
    )
    rows = ["id;dev_eui;name"]
    keys = ["id;app_key"]
    for index in range(devices):
        if skip and index % skip == 0:
            continue
        rows.append(f"node-{index:05d};70B3D57E{index:08X};Node {index}")
        keys.append(f"node-{index:05d};{index:032X}")
    (directory / "fleet.csv").write_text("\n".join(rows) + "\n")
    (directory / "keys.csv").write_text("\n".join(keys) + "\n")
    return directory


def fleet_ids(devices: int, *, skip: int = 0) -> list[str]:
    return [f"field-fleet/node-{i:05d}" for i in range(devices) if not (skip and i % skip == 0)]
