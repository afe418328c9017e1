"""Manifest parsing cost for hostile YAML shapes: memory and time per input byte, as JSON.

    .venv/bin/python bench/bench_parse_cost.py [--mib 8] [--shapes flow-ints,flow-maps,...]

Each shape is a single YAML file of about `--mib` MiB, written to a temporary directory and
loaded by `load_manifests` (parse, validate, locate the problems; `--stage parse`: the YAML
loader only, with the position index) in a fresh interpreter.
Memory is the child's peak RSS minus its RSS after imports (`ru_maxrss`, so the interpreter
does not count); the target is at most 20 bytes of memory per input byte. Shapes:

* `flow-ints`: `[1, 1, 1, ...]` (the issue's 8 MB flow list), `flow-maps`: `[{}, {}, ...]`,
  `flow-lists`: `[[], [], ...]`, `block-list`: `- a` lines, `mapping`: `kNNN: v` lines,
  `devices`: a Stack, an application and valid `kind: Device` documents (the realistic case,
  for comparison: no diagnostics).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_BYTES_PER_BYTE = 20.0
SHAPES = ("flow-ints", "flow-maps", "flow-lists", "block-list", "mapping", "devices")

# The devices shape is a valid tree (no diagnostics): its figure is the cost of valid input.
STACK = """\
kind: Stack
name: bench
url: https://tts.example.com
api_key: {env: KEY}
owner: {user: admin-user}
"""
DEVICE = """\
kind: Device
application: bench-app
id: dev-{n}
dev_eui: "{eui}"
join_eui: "70B3D57ED0001A2B"
app_key: {{env: KEY}}
frequency_plan_id: EU_863_870_TTN
lorawan_version: 1.0.3
lorawan_phy_version: 1.0.3-a
attributes: {{row: "{n}"}}
---
"""

CHILD = """
import json, resource, sys, time
from pathlib import Path
from reconciler.manifest.load import load_manifests
from reconciler.manifest.loader import load_yaml_file
from reconciler.providers.registry import MANIFEST_KINDS
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if sys.argv[2] == "full":
    result = load_manifests([Path(sys.argv[1])], environ={"KEY": "00" * 16}, kinds=MANIFEST_KINDS)
    diagnostics = result.diagnostics
else:
    documents, diagnostics = load_yaml_file(Path(sys.argv[1]) / "m.yaml")
    for document in documents:
        document.locate(["id"])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "extra_kib": peak - base,
                  "diagnostics": len(diagnostics),
                  "first": str(diagnostics[0])[-160:] if diagnostics else ""}))
"""


def write_shape(shape: str, size: int, path: Path) -> None:
    with path.open("w") as out:
        if shape == "devices":
            out.write(STACK + "---\nkind: Application\nid: bench-app\n---\n")
            n = 0
            while out.tell() < size:
                out.write(DEVICE.format(n=n, eui=f"{n:016X}"))
                n += 1
            return
        item, opening, closing, separator = {
            "flow-ints": ("1", "[", "]", ", "),
            "flow-maps": ("{}", "[", "]", ", "),
            "flow-lists": ("[]", "[", "]", ", "),
            "block-list": ("- a", "", "", "\n"),
            "mapping": (None, "", "", "\n"),
        }[shape]
        out.write(opening)
        n = 0
        while out.tell() < size:
            text = item if item is not None else f"k{n}: v"
            out.write((separator if n else "") + text)
            n += 1
        out.write(closing + "\n")


def measure(shape: str, size: int, stage: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        write_shape(shape, size, path)
        actual = path.stat().st_size
        child = subprocess.run(
            [sys.executable, "-c", CHILD, tmp, stage],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    result = json.loads(child.stdout)
    extra = int(result["extra_kib"]) * 1024
    return {
        "shape": shape,
        "stage": stage,
        "input_bytes": actual,
        "seconds": round(float(result["seconds"]), 2),
        "extra_peak_rss_mib": round(extra / 2**20, 1),
        "bytes_per_input_byte": round(extra / actual, 1),
        "meets_target": extra <= TARGET_BYTES_PER_BYTE * actual,
        "diagnostics": result["diagnostics"],
        "first_diagnostic": result["first"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=8.0)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument(
        "--stage",
        choices=("full", "parse"),
        default="full",
        help="full: load_manifests (parse, validate, resolve); parse: the YAML loader only "
        "(documents and the position index of each document's `id`)",
    )
    args = parser.parse_args()
    size = int(args.mib * 2**20)
    results = [measure(shape, size, args.stage) for shape in args.shapes.split(",")]
    print(json.dumps({"target_bytes_per_input_byte": TARGET_BYTES_PER_BYTE, "runs": results}))


if __name__ == "__main__":
    main()
