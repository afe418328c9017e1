"""Derive the TTS reference tables the product needs from ../shared/reference/tts.

Run with `make tables`. The output under reconciler/providers/tts/data/ is committed, so the
product and the emulator work without ../shared at run time; tests/test_reference_tables.py
regenerates into a temporary directory and fails when the committed files are stale.

Outputs:
  field_masks.json    allowed field-mask paths per RPC (server truth) + complete schema paths
  device_fields.json  end-device path -> {"get": [...], "set": [...]} (IS/NS/AS/JS ownership)
  enums.json          enum name -> canonical value numbers + input aliases (FACTS §b)
  messages.json       compact proto schema (fields, types, validation rules) from api.json
  id_blocklist.txt    the Identity Server's reserved IDs
  frequency_plans.json  frequency plan ID -> band ID
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "tts"
DEFAULT_OUT = ROOT / "reconciler" / "providers" / "tts" / "data"

# Input aliases the TTS JSON decoder accepts besides canonical names and numbers (FACTS §b; the
# alias maps live in lorawan-stack pkg/ttnpb, not in api.json). Canonical output is the enum name.
ENUM_ALIASES: dict[str, dict[str, str]] = {
    "MACVersion": {
        "V1_0": "MAC_V1_0",
        "V1_0_1": "MAC_V1_0_1",
        "V1_0_2": "MAC_V1_0_2",
        "V1_0_3": "MAC_V1_0_3",
        "V1_0_4": "MAC_V1_0_4",
        "V1_1": "MAC_V1_1",
        "1.0": "MAC_V1_0",
        "1.0.0": "MAC_V1_0",
        "1.0.1": "MAC_V1_0_1",
        "1.0.2": "MAC_V1_0_2",
        "1.0.3": "MAC_V1_0_3",
        "1.0.4": "MAC_V1_0_4",
        "1.1": "MAC_V1_1",
        "1.1.0": "MAC_V1_1",
        "unknown": "MAC_UNKNOWN",
    },
    "PHYVersion": {
        "TS001_V1_0": "PHY_V1_0",
        "TS001_V1_0_1": "PHY_V1_0_1",
        "RP001_V1_0_2": "PHY_V1_0_2_REV_A",
        "RP001_V1_0_2_REV_B": "PHY_V1_0_2_REV_B",
        "RP001_V1_1_REV_A": "PHY_V1_1_REV_A",
        "RP001_V1_1_REV_B": "PHY_V1_1_REV_B",
        "RP001_V1_0_3_REV_A": "PHY_V1_0_3_REV_A",
        "V1_0": "PHY_V1_0",
        "V1_0_1": "PHY_V1_0_1",
        "V1_0_2": "PHY_V1_0_2_REV_A",
        "V1_0_2_REV_A": "PHY_V1_0_2_REV_A",
        "V1_0_2_REV_B": "PHY_V1_0_2_REV_B",
        "V1_1_REV_A": "PHY_V1_1_REV_A",
        "V1_1_REV_B": "PHY_V1_1_REV_B",
        "V1_0_3_REV_A": "PHY_V1_0_3_REV_A",
        "1.0": "PHY_V1_0",
        "1.0.0": "PHY_V1_0",
        "1.0.1": "PHY_V1_0_1",
        "1.0.2": "PHY_V1_0_2_REV_A",
        "1.0.2-a": "PHY_V1_0_2_REV_A",
        "1.0.2-b": "PHY_V1_0_2_REV_B",
        "1.1-a": "PHY_V1_1_REV_A",
        "1.1.0-a": "PHY_V1_1_REV_A",
        "1.1-b": "PHY_V1_1_REV_B",
        "1.1.0-b": "PHY_V1_1_REV_B",
        "1.0.3-a": "PHY_V1_0_3_REV_A",
        "unknown": "PHY_UNKNOWN",
    },
    "Class": {"A": "CLASS_A", "B": "CLASS_B", "C": "CLASS_C"},
}
# Enums whose aliases are "the name without a prefix" (FACTS §a/§b).
PREFIX_ALIASES = {"Right": "RIGHT_", "PayloadFormatter": "FORMATTER_"}
# Written as numbers on the wire instead of names (FACTS §b).
NUMERIC_ENUMS = ["DataRateIndex", "DataRateOffset", "RxDelay"]

# Frequency plan ID -> band ID, as listed in TheThingsNetwork/lorawan-frequency-plans
# (frequency-plans.yml, the index TTS loads its plans from). Not part of ../shared; kept here as
# data so the table is reviewable in one place.
FREQUENCY_PLANS: dict[str, str] = {
    "EU_863_870": "EU_863_870",
    "EU_863_870_TTN": "EU_863_870",
    "EU_863_870_ROAMING_DRAFT": "EU_863_870",
    "EU_433": "EU_433",
    **{f"US_902_928_FSB_{n}": "US_902_928" for n in range(1, 9)},
    **{f"AU_915_928_FSB_{n}": "AU_915_928" for n in range(1, 9)},
    "CN_470_510_FSB_1": "CN_470_510",
    "CN_470_510_FSB_11": "CN_470_510",
    "AS_920_923": "AS_923",
    "AS_920_923_LBT": "AS_923",
    "AS_920_923_TTN_JP_1": "AS_923",
    "AS_920_923_TTN_JP_1_LAND_MOBILE": "AS_923",
    "AS_920_923_TTN_JP_2": "AS_923",
    "AS_920_923_TTN_JP_3": "AS_923",
    "AS_920_923_TTN_JP_3_LAND_MOBILE": "AS_923",
    "AS_923": "AS_923",
    "AS_923_2": "AS_923_2",
    "AS_923_3": "AS_923_3",
    "AS_923_4": "AS_923_4",
    "AS_923_NDT": "AS_923",
    "AS_923_DT": "AS_923",
    "AS_923_2_NDT": "AS_923_2",
    "AS_923_2_DT": "AS_923_2",
    "AS_923_3_NDT": "AS_923_3",
    "AS_923_3_DT": "AS_923_3",
    "AS_923_4_NDT": "AS_923_4",
    "AS_923_4_DT": "AS_923_4",
    "AS_923_925": "AS_923",
    "AS_923_925_LBT": "AS_923",
    "AS_920_923_TTN_AU": "AS_923",
    "AS_923_925_TTN_AU": "AS_923",
    "KR_920_923_TTN": "KR_920_923",
    "MA_869_870_DRAFT": "MA_869_870_DRAFT",
    "IN_865_867": "IN_865_867",
    "RU_864_870_TTN": "RU_864_870",
    "ISM_2400_3CH_DRAFT2": "ISM_2400",
    "IL_917_920_TTN": "AS_923_4",
}

# RPCs whose allow-lists the product and emulator use (the rest of the 79 are out of scope).
RPC_PREFIXES = (
    "/ttn.lorawan.v3.ApplicationAccess/",
    "/ttn.lorawan.v3.ApplicationPackageRegistry/",
    "/ttn.lorawan.v3.ApplicationPubSubRegistry/",
    "/ttn.lorawan.v3.ApplicationRegistry/",
    "/ttn.lorawan.v3.ApplicationWebhookRegistry/",
    "/ttn.lorawan.v3.As/",
    "/ttn.lorawan.v3.AsEndDeviceRegistry/",
    "/ttn.lorawan.v3.EndDeviceBatchRegistry/",
    "/ttn.lorawan.v3.EndDeviceRegistry/",
    "/ttn.lorawan.v3.GatewayAccess/",
    "/ttn.lorawan.v3.GatewayRegistry/",
    "/ttn.lorawan.v3.JsEndDeviceRegistry/",
    "/ttn.lorawan.v3.NsEndDeviceRegistry/",
    "/ttn.lorawan.v3.OrganizationAccess/",
    "/ttn.lorawan.v3.OrganizationRegistry/",
    "/ttn.lorawan.v3.UserAccess/",
    "/ttn.lorawan.v3.UserRegistry/",
)


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def field_masks(ref: Path) -> dict[str, Any]:
    raw = json.loads((ref / "rpc-field-mask-paths.server.json").read_text())
    rpcs = {
        name.removeprefix("/ttn.lorawan.v3."): {
            "allowed": sorted(spec["allowed"]),
            "set_rpc": bool(spec.get("set_rpc", False)),
            "all_paths_of": spec.get("all_paths_of"),
        }
        for name, spec in raw["rpcs"].items()
        if name.startswith(RPC_PREFIXES)
    }
    needed = {spec["all_paths_of"] for spec in rpcs.values() if spec["all_paths_of"]}
    all_paths = {k: sorted(v) for k, v in raw["all_paths"].items() if k in needed}
    return {"rpcs": rpcs, "all_paths": all_paths}


def device_fields(ref: Path) -> dict[str, dict[str, list[str]]]:
    tree = json.loads((ref / "device-entity-map.json").read_text())
    out: dict[str, dict[str, list[str]]] = {}

    def as_list(side: str | list[str]) -> list[str]:
        if side == "read_only":
            return []
        return [side] if isinstance(side, str) else list(side)

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if key == "_root":
                continue
            path = f"{prefix}{key}"
            pair = value["_root"] if isinstance(value, dict) else value
            out[path] = {"get": as_list(pair[0]), "set": as_list(pair[1])}
            if isinstance(value, dict):
                walk(value, path + ".")

    walk(tree, "")
    return dict(sorted(out.items()))


def api_schema(ref: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    api = json.loads((ref / "api.json").read_text())
    enums: dict[str, Any] = {}
    for f in api["files"]:
        for e in f["enums"]:
            name = e["longName"]
            values = {v["name"]: int(v["number"]) for v in e["values"]}
            # The first name declared for a number is the one the server writes.
            canonical: dict[str, str] = {}
            for v in e["values"]:
                canonical.setdefault(v["number"], v["name"])
            aliases = dict(ENUM_ALIASES.get(name, {}))
            prefix = PREFIX_ALIASES.get(name)
            if prefix:
                aliases.update({v.removeprefix(prefix): v for v in values if v.startswith(prefix)})
            enums[name] = {
                "values": values,
                "canonical": canonical,
                "aliases": aliases,
                "numeric": name in NUMERIC_ENUMS,
            }
    messages: dict[str, Any] = {}
    for f in api["files"]:
        for m in f["messages"]:
            fields = []
            for fl in m["fields"]:
                rules = {
                    r["name"]: r["value"] for r in fl.get("options", {}).get("validate.rules", [])
                }
                fields.append(
                    {
                        "name": fl["name"],
                        "type": fl["fullType"],
                        "repeated": fl["label"] == "repeated" and not fl["ismap"],
                        "map": bool(fl["ismap"]),
                        "oneof": fl["oneofdecl"] if fl["isoneof"] else "",
                        "rules": rules,
                        # Fixed-length bytes (EUIs, DevAddr, NetID, AES keys) are hex on the wire.
                        "hex": fl["fullType"] == "bytes" and "bytes.len" in rules,
                    }
                )
            messages[m["fullName"]] = {"fields": fields}
    return enums, messages


def generate(ref: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    enums, messages = api_schema(ref)
    written = {
        "field_masks.json": field_masks(ref),
        "device_fields.json": device_fields(ref),
        "enums.json": enums,
        "messages.json": messages,
        "frequency_plans.json": dict(sorted(FREQUENCY_PLANS.items())),
    }
    paths = []
    for name, data in written.items():
        _dump(out / name, data)
        paths.append(out / name)
    blocklist = sorted(
        line.strip() for line in (ref / "id-blocklist.txt").read_text().splitlines() if line.strip()
    )
    (out / "id_blocklist.txt").write_text("\n".join(blocklist) + "\n", encoding="utf-8")
    paths.append(out / "id_blocklist.txt")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.reference.is_dir():
        print(f"reference data not found: {args.reference}", file=sys.stderr)
        return 1
    for path in generate(args.reference, args.out):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
