"""`reconciler init`: a starter manifest tree and a `.gitignore` that keeps secrets out of git.

Pure file writing, no network. Nothing is overwritten: an existing manifest directory that is
not empty is refused, and `.gitignore` only gets the lines it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.diagnostics import ReconcilerError

STACK = """\
# The target: the stack name marks every resource this tree manages (attribute managed-by).
kind: Stack
name: {stack}
url: {url}                  # root URL of the four servers (the tool adds /api/v3)
api_key: {{env: TTS_API_KEY}}   # never inline: from the environment (CI secret) or {{file: ...}}
owner: {{{owner_kind}: {owner_id}}}
safety:
  prune: false                # delete owned resources that leave the manifests (or --prune)
  change_threshold: 0.3       # block apply when > 30% of a kind would change (--force)
"""

APPLICATION = """\
kind: Application
id: {application}
name: Example application
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.3
  lorawan_phy_version: 1.0.3-a
  join_eui: "70B3D57ED0000000"
---
kind: Device
application: {application}
id: example-sensor-01
name: Example sensor
dev_eui: "70B3D57ED0000001"     # quote hex values
app_key: {{env: EXAMPLE_SENSOR_01_APP_KEY}}   # secrets by reference, never inline
"""

ENV_EXAMPLE = """\
# The secrets the manifests reference, for local runs: copy to .env (git-ignored), fill in,
# then `set -a; . ./.env; set +a`. In CI, set them as the pipeline's secrets instead.
TTS_API_KEY=
EXAMPLE_SENSOR_01_APP_KEY=
"""

# What must never be committed beside manifests: secret files and the secrets CSVs of fleets.
GITIGNORE_LINES = (
    "# reconciler: secrets stay out of git",
    ".env",
    "*.env",
    "!*.env.example",
    "*.secrets.csv",
    "secrets/",
    "*.key",
    "credentials*.txt",
)


@dataclass(frozen=True)
class StarterOptions:
    directory: Path
    stack: str
    url: str
    owner_kind: str  # user | organization
    owner_id: str
    application: str = "starter-sensors"


def write_starter(options: StarterOptions) -> list[Path]:
    """Write the starter tree under `options.directory`; the paths written, in order.
    Raises ReconcilerError (nothing written) when the manifest directory is not empty."""
    root = options.directory
    manifests = root / "manifests"
    if manifests.exists() and (not manifests.is_dir() or any(manifests.iterdir())):
        raise ReconcilerError(f"{manifests} exists and is not empty: nothing was written")
    files = {
        manifests / "stack.yaml": STACK.format(
            stack=options.stack,
            url=options.url,
            owner_kind=options.owner_kind,
            owner_id=options.owner_id,
        ),
        manifests / "applications" / f"{options.application}.yaml": APPLICATION.format(
            application=options.application
        ),
        root / "secrets.env.example": ENV_EXAMPLE,
    }
    written = []
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
        gitignore = root / ".gitignore"
        existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
        missing = [line for line in GITIGNORE_LINES if line not in existing.splitlines()]
        if missing:
            prefix = "" if not existing or existing.endswith("\n") else "\n"
            with gitignore.open("a", encoding="utf-8") as out:
                out.write(prefix + "\n".join(missing) + "\n")
            written.append(gitignore)
    except OSError as error:
        raise ReconcilerError(f"cannot write the starter tree: {error.strerror}") from None
    return written
