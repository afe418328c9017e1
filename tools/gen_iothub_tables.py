"""Derive the IoT Hub tables the emulator needs from ../shared/reference/azure-iothub.

Run with `make tables`. The output, reconciler/emulator/iothub/data/tables.json, is committed so
the emulator works without ../shared at run time; tests/iothub_emulator/test_reference_tables.py
regenerates it into a temporary directory and fails when the committed file is stale.

Contents:
  error_codes    symbolic error name -> 6-digit code (the table in FACTS.md, section c)
  import_modes   the importMode values of the REST bulk endpoint (swagger ExportImportDevice)
  auth_types     authentication.type values (swagger AuthenticationMechanism)
  statuses       device status values (swagger Device)
  api_version    the swagger's info.version
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "azure-iothub"
DEFAULT_OUT = ROOT / "reconciler" / "emulator" / "iothub" / "data"
SWAGGER = "iothub-service-2021-04-12.swagger.json"

_CODE_ROW = re.compile(r"^\|\s*(\d{6})\s*\|\s*([A-Za-z]+)\s*\|\s*$")


def error_codes(facts: str) -> dict[str, int]:
    """Rows `| 400004 | ArgumentInvalid |` of the FACTS error-code table."""
    codes: dict[str, int] = {}
    for line in facts.splitlines():
        match = _CODE_ROW.match(line.strip())
        if match:
            codes[match.group(2)] = int(match.group(1))
    if len(codes) < 10:
        raise SystemExit("FACTS.md: the 6-digit error code table was not found")
    return dict(sorted(codes.items(), key=lambda item: item[1]))


def _enum(swagger: dict[str, Any], definition: str, field: str) -> list[str]:
    values = swagger["definitions"][definition]["properties"][field]["enum"]
    return [str(value) for value in values]


def generate(reference: Path, out: Path) -> list[Path]:
    facts = (reference / "FACTS.md").read_text(encoding="utf-8")
    swagger = json.loads((reference / SWAGGER).read_text(encoding="utf-8"))
    tables = {
        "api_version": swagger["info"]["version"],
        "error_codes": error_codes(facts),
        "import_modes": _enum(swagger, "ExportImportDevice", "importMode"),
        "auth_types": _enum(swagger, "AuthenticationMechanism", "type"),
        "statuses": _enum(swagger, "Device", "status"),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tables.json"
    path.write_text(json.dumps(tables, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return [path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if not args.reference.is_dir():
        sys.exit(f"reference directory not found: {args.reference}")
    for path in generate(args.reference, args.out):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
