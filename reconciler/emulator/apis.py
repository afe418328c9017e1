"""The emulated APIs that `reconciler emulator serve --api NAME` serves: `APIS = {name: factory}`.

How an API plugs in (the TTS API in `reconciler/emulator/tts/` is the worked example):

1. Its emulator object offers what `reconciler.emulator.app.EmulatedAPI` lists: `faults`
   (`reconciler.emulator.faults.Faults`), `stats` (`reconciler.emulator.admin.RequestStats`),
   the admin check, its own 400/404/405 responses, its own admin routes, `start()` (background
   work, at server startup) and `close()`. Its tables are a `reconciler.emulator.state.Store`
   subclass; its configuration extends `reconciler.emulator.config.EmulatorConfig`; its own
   run-time settings join `/_emulator/config` through `Faults.add_setting`.
2. `reconciler.emulator.app.build_app(api, routes)` makes the ASGI app (admin endpoints included).
3. A factory `(APIOptions) -> ServedAPI` builds that app from the command line's options, and one
   entry in `APIS` names it. The factory imports its package when called, so serving one API never
   loads another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.emulator.config import EmulatorConfig

if TYPE_CHECKING:  # the registry loads without the `emulator` extra (the CLI checks names)
    from starlette.applications import Starlette


@dataclass(frozen=True)
class APIOptions:
    """What `reconciler emulator serve` hands to an API's factory."""

    common: EmulatorConfig  # injected faults, state file, seed
    # The admin credential in the API's own format (`--api-key`); None: the API makes one, and
    # keeps it in the state file so that it stays valid across restarts.
    admin_key: str | None = None
    # The API's own options by name (e.g. TTS `user_id`); a factory refuses names it does not know.
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServedAPI:
    app: Starlette
    title: str  # first words of the ready line, e.g. "TTS emulator"
    base_path: str  # appended to the server's URL in the ready line, e.g. "/api/v3"
    details: tuple[str, ...] = ()  # the ready line's parenthesis, e.g. ("admin user x",)
    tls_names: tuple[str, ...] = ()  # host names a self-signed certificate should also name


APIFactory = Callable[[APIOptions], ServedAPI]


def _tts(options: APIOptions) -> ServedAPI:
    from reconciler.emulator.tts import served

    return served(options)


def _azure_iothub(options: APIOptions) -> ServedAPI:
    from reconciler.emulator.iothub import served

    return served(options)


APIS: dict[str, APIFactory] = {"tts": _tts, "azure-iothub": _azure_iothub}
DEFAULT_API = "tts"
