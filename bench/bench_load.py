"""Manifest load + validate benchmark: wall time and peak RSS, printed as JSON.

    .venv/bin/python bench/bench_load.py [--devices N] [--yaml-devices M] [--keep DIR]

Generates, in a temporary directory, two valid manifest sets in the project's language:

* `csv`: a Stack, an Application and a Fleet whose CSV (The Things Stack CSV format) holds N
  devices, with their AppKeys in a separate secrets CSV joined by device id;
* `yaml`: the same Stack and Application plus one YAML file of M `kind: Device` documents
  (AppKeys are `{env: ...}` references).

Each workload runs twice, each time in a fresh interpreter so the figures are independent:
`loader` (files -> documents and CSV tables only) and `full`
(`reconciler.manifest.load.load_manifests`: parse, validate, resolve). Peak RSS is the child's
own `ru_maxrss`, interpreter and imports included. Targets: 100,000 CSV devices in <= 10 s and
<= 1 GiB; 10,000 YAML devices in <= 10 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGETS = {"csv": {"seconds": 10.0, "peak_rss_mib": 1024.0}, "yaml": {"seconds": 10.0}}
KEY_ENV_PREFIX = "BENCH_APP_KEY_"

STACK = """\
kind: Stack
name: bench-stack
url: https://tts.example.com
api_key: {env: TTS_API_KEY}
owner: {user: bench-admin}
"""

APPLICATION = """\
kind: Application
id: bench-app
name: Benchmark application
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.3
  lorawan_phy_version: 1.0.3-a
  join_eui: "70B3D57ED0001A2B"
  attributes:
    site: bench
device_profiles:
  sensor:
    version_ids:
      brand_id: acme-agro
      model_id: soil-probe-3
      hardware_version: "1.2"
      firmware_version: "3.4.0"
      band_id: EU_863_870
    mac_settings:
      rx1_delay: 5
      supports_32_bit_f_cnt: true
"""

FLEET = """\
kind: Fleet
application: bench-app
profile: sensor
csv: fleet.csv
secrets_csv: fleet.secrets.csv
"""


def app_key(index: int) -> str:
    return hashlib.md5(f"bench-{index}".encode(), usedforsecurity=False).hexdigest().upper()


def write_csv_workload(root: Path, devices: int) -> None:
    root.mkdir(parents=True)
    (root / "stack.yaml").write_text(STACK)
    (root / "application.yaml").write_text(APPLICATION)
    (root / "fleet.yaml").write_text(FLEET)
    with (root / "fleet.csv").open("w") as fleet, (root / "fleet.secrets.csv").open("w") as keys:
        fleet.write("id;dev_eui;name;description;frequency_plan_id;lorawan_version\n")
        keys.write("id;dev_eui;app_key\n")
        for i in range(devices):
            device_id, dev_eui = f"csv-dev-{i:06d}", f"0004A30B{i:08X}"
            fleet.write(
                f"{device_id};{dev_eui};Probe {i};Row {i // 100}, slot {i % 100};"
                "EU_863_870_TTN;1.0.3\n"
            )
            keys.write(f"{device_id};{dev_eui};{app_key(i)}\n")


def write_yaml_workload(root: Path, devices: int) -> dict[str, str]:
    """Returns the environment the device documents' key references need."""
    root.mkdir(parents=True)
    (root / "stack.yaml").write_text(STACK)
    (root / "application.yaml").write_text(APPLICATION)
    environ = {"TTS_API_KEY": "NNSXS.BENCH"}
    with (root / "devices.yaml").open("w") as out:
        for i in range(devices):
            environ[f"{KEY_ENV_PREFIX}{i:06d}"] = app_key(i)
            out.write(
                f"""\
---
kind: Device
application: bench-app
profile: sensor
id: yaml-dev-{i:06d}
name: YAML device {i}
description: Row {i // 100}, slot {i % 100}
dev_eui: "0004A30C{i:08X}"
app_key: {{env: {KEY_ENV_PREFIX}{i:06d}}}
attributes:
  row: "{i // 100}"
locations:
  user:
    latitude: {52 + (i % 1000) / 10000}
    longitude: 4.8922
    altitude: 2
mac_settings:
  rx1_delay: 3
"""
            )
    return environ


# --- one measurement, in a fresh interpreter ----------------------------------------------------


def measure(kind: str, mode: str, root: Path) -> dict[str, Any]:
    """Runs in the child: load `root`, return figures."""
    environ = {"TTS_API_KEY": "NNSXS.BENCH"}
    if kind == "yaml":
        environ.update(json.loads((root / "environ.json").read_text()))
    started_imports = time.perf_counter()
    from reconciler.manifest import loader

    if mode == "full":
        from reconciler.manifest.load import load_manifests
        from reconciler.providers.registry import MANIFEST_KINDS
        from reconciler.providers.tts.manifest.project import tts_project
    imports = time.perf_counter() - started_imports
    rss_before = _peak_rss_mib()
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    if mode == "loader":
        files, diagnostics = loader.discover([root])
        documents = 0
        for path in files:
            docs, problems = loader.load_yaml_file(path)
            documents += len(docs)
            diagnostics += problems
        rows = 0
        for path in sorted(root.glob("*.csv")):
            table, problems = loader.load_csv(path)
            rows += len(table.rows) if table else 0
            diagnostics += problems
        figures.update(documents=documents, csv_rows=rows)
    else:
        result = load_manifests([root], environ=environ, kinds=MANIFEST_KINDS)
        diagnostics = result.diagnostics
        figures["devices"] = len(tts_project(result.project).devices)
    seconds = time.perf_counter() - started
    errors = [str(d) for d in diagnostics if d.severity == "error"]
    figures.update(
        seconds=round(seconds, 3),
        import_seconds=round(imports, 3),
        peak_rss_mib=round(_peak_rss_mib(), 1),
        rss_after_imports_mib=round(rss_before, 1),
        errors=len(errors),
        warnings=len(diagnostics) - len(errors),
    )
    if errors:
        figures["first_errors"] = errors[:5]
    return figures


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_child(kind: str, mode: str, root: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", kind, mode, str(root)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"failed": True, "returncode": done.returncode, "stderr": done.stderr[-2000:]}
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def full_pipeline_available() -> bool:
    try:
        from reconciler.manifest.load import load_manifests  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=100_000, help="devices in the CSV fleet")
    parser.add_argument("--yaml-devices", type=int, default=10_000, help="YAML device documents")
    parser.add_argument("--keep", type=Path, help="generate into this (new) directory and keep it")
    parser.add_argument(
        "--measure", nargs=3, metavar=("KIND", "MODE", "DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.measure:
        kind, mode, root = args.measure
        print(json.dumps(measure(kind, mode, Path(root))))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        base = args.keep or Path(scratch)
        csv_root, yaml_root = base / "csv", base / "yaml"
        started = time.perf_counter()
        write_csv_workload(csv_root, args.devices)
        environ = write_yaml_workload(yaml_root, args.yaml_devices)
        (yaml_root / "environ.json").write_text(json.dumps(environ))
        generate_seconds = time.perf_counter() - started
        modes = ["loader", "full"] if full_pipeline_available() else ["loader"]
        workloads: dict[str, Any] = {}
        for kind, root, count in (
            ("csv", csv_root, args.devices),
            ("yaml", yaml_root, args.yaml_devices),
        ):
            entry: dict[str, Any] = {"devices": count, "bytes": _size(root)}
            for mode in modes:
                entry[mode] = run_child(kind, mode, root)
            workloads[kind] = entry
    report = {
        "python": platform.python_version(),
        "libyaml_parser": _native_parser(),
        "cpus": os.cpu_count(),
        "generate_seconds": round(generate_seconds, 3),
        "workloads": workloads,
        "targets": TARGETS,
        "targets_met": _targets_met(workloads, args.devices, args.yaml_devices, modes),
    }
    print(json.dumps(report, indent=2))
    return 0


def _size(root: Path) -> int:
    return sum(path.stat().st_size for path in root.iterdir() if path.suffix != ".json")


def _native_parser() -> bool:
    from reconciler.manifest.yaml_build import NATIVE_PARSER

    return NATIVE_PARSER


def _targets_met(
    workloads: dict[str, Any], devices: int, yaml_devices: int, modes: list[str]
) -> bool | None:
    """Judged on the full pipeline at the target sizes; None when that cannot be judged."""
    if "full" not in modes or devices < 100_000 or yaml_devices < 10_000:
        return None
    csv_run, yaml_run = workloads["csv"]["full"], workloads["yaml"]["full"]
    if csv_run.get("failed") or yaml_run.get("failed"):
        return False
    valid = (
        csv_run["errors"] == 0
        and yaml_run["errors"] == 0
        and csv_run["devices"] == devices
        and yaml_run["devices"] == yaml_devices
    )
    return bool(
        valid
        and csv_run["seconds"] <= TARGETS["csv"]["seconds"]
        and csv_run["peak_rss_mib"] <= TARGETS["csv"]["peak_rss_mib"]
        and yaml_run["seconds"] <= TARGETS["yaml"]["seconds"]
    )


if __name__ == "__main__":
    sys.exit(main())
