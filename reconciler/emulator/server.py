"""`reconciler emulator serve`: one emulated API behind uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from reconciler.diagnostics import ReconcilerError
from reconciler.emulator.apis import APIS, DEFAULT_API, APIOptions
from reconciler.emulator.config import EmulatorConfig, parse_rate_limit
from reconciler.emulator.faults import DroppedConnection


@dataclass
class ServeOptions:
    api: str = DEFAULT_API
    host: str = "127.0.0.1"
    port: int = 1885
    api_key: str | None = None  # the admin credential, in the API's own format
    api_settings: Mapping[str, str] = field(default_factory=dict)  # the API's own options
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


def api_options(options: ServeOptions) -> APIOptions:
    """The factory's options; ReconcilerError naming the command-line option when invalid."""
    try:
        config = EmulatorConfig(
            latency_ms=options.latency_ms,
            jitter_ms=options.jitter_ms,
            rate_limit=parse_rate_limit(options.rate_limit) if options.rate_limit else None,
            fail_rate=options.fail_rate,
            drop_rate=options.drop_rate,
            state_path=options.state,
        )
        config.check()
    except ValueError as error:
        raise ReconcilerError(str(error)) from None
    return APIOptions(config, options.api_key, options.api_settings)


def serve(options: ServeOptions, announce: Callable[[str], None]) -> None:
    """Serve until SIGINT/SIGTERM; announce one line once the socket accepts connections."""
    factory = APIS.get(options.api)
    if factory is None:
        raise ReconcilerError(
            f"unknown emulated API {options.api!r}; choose from {', '.join(sorted(APIS))}"
        )
    try:
        served = factory(api_options(options))
    except ValueError as error:
        raise ReconcilerError(str(error)) from None
    logging.getLogger("uvicorn.error").addFilter(_HideDroppedConnections())
    server = _Server(
        uvicorn.Config(
            served.app,
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
            url = f"http://{options.host}:{options.port}{served.base_path}"
            details = list(served.details)
            if options.state is not None:
                details.append(f"state {options.state}")
            line = f"{served.title} ready at {url}"
            announce(f"{line} ({', '.join(details)})" if details else line)
        await task
        if not server.started:
            raise ReconcilerError(f"could not listen on {options.host}:{options.port}")

    asyncio.run(run())
