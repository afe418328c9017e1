"""`reconciler emulator serve`: the emulator behind uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from reconciler.diagnostics import ReconcilerError
from reconciler.emulator.tts.app import create_app
from reconciler.emulator.tts.config import EmulatorConfig, parse_rate_limit
from reconciler.emulator.tts.errors import DroppedConnection


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 1885
    api_key: str | None = None
    user_id: str = "admin-user"
    state: Path | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: str | None = None  # PER_MINUTE[:BURST]
    fail_rate: float = 0.0
    drop_rate: float = 0.0


class _HideDroppedConnections(logging.Filter):
    """A dropped response is an injected fault, not a server error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


class _Server(uvicorn.Server):
    """Signals stop the server cleanly (exit 0) instead of being re-raised after shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _stop(self) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


def config_from(options: ServeOptions) -> EmulatorConfig:
    try:
        rate_limit = parse_rate_limit(options.rate_limit) if options.rate_limit else None
    except ValueError as error:
        raise ReconcilerError(str(error)) from None
    for name in ("fail_rate", "drop_rate"):
        value = getattr(options, name)
        if not 0 <= value <= 1:
            raise ReconcilerError(f"--{name.replace('_', '-')} must be between 0 and 1")
    if options.latency_ms < 0 or options.jitter_ms < 0:
        raise ReconcilerError("--latency-ms and --jitter-ms must not be negative")
    return EmulatorConfig(
        api_key=options.api_key,
        user_id=options.user_id,
        latency_ms=options.latency_ms,
        jitter_ms=options.jitter_ms,
        rate_limit=rate_limit,
        fail_rate=options.fail_rate,
        drop_rate=options.drop_rate,
        state_path=options.state,
    )


def serve(options: ServeOptions, announce: Callable[[str], None]) -> None:
    """Serve until SIGINT/SIGTERM; announce one line once the socket accepts connections."""
    try:
        app = create_app(config_from(options))
    except ValueError as error:
        raise ReconcilerError(str(error)) from None
    emulator = app.state.emulator
    logging.getLogger("uvicorn.error").addFilter(_HideDroppedConnections())
    server = _Server(
        uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=2,
        )
    )

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            url = f"http://{options.host}:{options.port}/api/v3"
            line = f"TTS emulator ready at {url} (admin user {options.user_id}"
            if options.api_key is None:
                line += f", API key {emulator.api_key}"
            if options.state is not None:
                line += f", state {options.state}"
            announce(line + ")")
        await task
        if not server.started:
            raise ReconcilerError(f"could not listen on {options.host}:{options.port}")

    asyncio.run(run())
