"""The four servers of The Things Stack and the constants of its HTTP API (pure: no I/O).

Kept apart from the client so the planner and the device split can name servers without
loading the HTTP stack.
"""

from __future__ import annotations

from typing import Literal

from reconciler import __version__

Server = Literal["is", "ns", "as", "js"]
SERVERS: tuple[Server, ...] = ("is", "ns", "as", "js")
SERVER_NAMES: dict[Server, str] = {
    "is": "Identity Server",
    "ns": "Network Server",
    "as": "Application Server",
    "js": "Join Server",
}
SERVER_LABELS: dict[Server, str] = {"is": "IS", "ns": "NS", "as": "AS", "js": "JS"}

API_PREFIX = "/api/v3"  # every route of the HTTP API is under it
DEFAULT_USER_AGENT = f"reconciler/{__version__}"
URL_ENV = "RECONCILER_TTS_URL"  # moves all four servers (the emulator in CI), like `--url`
URL_HELP = (
    "Server root URL for all four TTS servers (e.g. https://eu1.cloud.thethings.network); "
    "overrides the target's URLs. The tool adds /api/v3."
)
