"""`reconciler emulator serve`: one emulated API behind uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from reconciler.diagnostics import ReconcilerError
from reconciler.emulator.apis import APIS, DEFAULT_API, APIOptions
from reconciler.emulator.config import EmulatorConfig, parse_rate_limit
from reconciler.emulator.faults import DroppedConnection
from reconciler.emulator.requestlog import RequestLog


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
    request_log: str | None = None  # a file to append to, or "-" for stderr
    tls_cert: Path | None = None  # PEM certificate (chain): serve HTTPS
    tls_key: Path | None = None  # its PEM private key, unless the certificate file holds it
    # Serve HTTPS with a new self-signed certificate, written beside the state file (or into
    # a new temporary directory) and named in the ready line.
    tls_self_signed: bool = False


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


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the `emulator` extra has it): it costs less CPU
    per request than asyncio's own loop; None means asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def collect_rarely() -> None:
    """Consider a full garbage collection every 100 collections of the middle generation instead
    of every 10. The emulator keeps every record in memory (10,000 devices are millions of
    objects) and a full collection rescans them all: creating 10,000 devices and reading them
    back spent 4.2 s of the emulator's 22 s of CPU in 20 full collections, 0.8 s in 3 with this.
    Cyclic garbage waits longer for its collection; nothing is kept for good (as `gc.freeze`
    would)."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)


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


def listen(host: str, port: int) -> socket.socket:
    """A bound socket (port 0: a free one); ReconcilerError in one line when that fails."""
    if not 0 <= port <= 65535:
        raise ReconcilerError(f"--port {port} is out of range (0-65535)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ReconcilerError(f"cannot listen on {host}: {error.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        reason = "the port is in use" if error.errno == errno.EADDRINUSE else error.strerror
        raise ReconcilerError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


@contextlib.contextmanager
def _request_log(target: str | None) -> Iterator[Callable[[str], None] | None]:
    if target is None:
        yield None
    elif target == "-":
        yield lambda line: print(line, file=sys.stderr, flush=True)
    else:
        try:
            file = open(target, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        except OSError as error:
            raise ReconcilerError(
                f"cannot write the request log {target}: {error.strerror}"
            ) from None
        with file:
            yield lambda line: print(line, file=file)


def _self_signed(options: ServeOptions, names: tuple[str, ...]) -> tuple[Path, Path]:
    try:
        from reconciler.emulator.tls import write_self_signed
    except ImportError as error:
        raise ReconcilerError(
            f"--tls-self-signed needs {error.name or 'cryptography'}: "
            "pip install 'reconciler[emulator]'"
        ) from None
    if options.state is not None:
        directory = options.state.resolve().parent
    else:
        directory = Path(tempfile.mkdtemp(prefix="reconciler-emulator-"))
    try:
        return write_self_signed(directory, [options.host, *names])
    except OSError as error:
        raise ReconcilerError(
            f"cannot write the certificate into {directory}: {error.strerror}"
        ) from None


def serve(options: ServeOptions, announce: Callable[[str], None]) -> None:
    """Serve until SIGINT/SIGTERM; announce one line once the socket accepts connections."""
    factory = APIS.get(options.api)
    if factory is None:
        raise ReconcilerError(
            f"unknown emulated API {options.api!r}; choose from {', '.join(sorted(APIS))}"
        )
    if options.tls_key is not None and options.tls_cert is None:
        raise ReconcilerError("--tls-key needs --tls-cert")
    if options.tls_self_signed and options.tls_cert is not None:
        raise ReconcilerError("--tls-self-signed and --tls-cert exclude each other")
    try:
        served = factory(api_options(options))
    except ValueError as error:
        raise ReconcilerError(str(error)) from None
    tls_cert, tls_key = options.tls_cert, options.tls_key
    extra_details: list[str] = []
    if options.tls_self_signed:
        tls_cert, tls_key = _self_signed(options, served.tls_names)
        extra_details.append(f"certificate {tls_cert}")
    logging.getLogger("uvicorn.error").addFilter(_HideDroppedConnections())
    with _request_log(options.request_log) as write_log, listen(options.host, options.port) as sock:
        app = served.app if write_log is None else RequestLog(served.app, write_log)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=2,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
        )
        try:
            config.load()
        except (OSError, ssl.SSLError) as error:
            reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
            raise ReconcilerError(f"cannot use the TLS certificate {tls_cert}: {reason}") from None
        server = _Server(config)
        port = sock.getsockname()[1]
        host = f"[{options.host}]" if ":" in options.host else options.host
        url = f"{'https' if tls_cert else 'http'}://{host}:{port}{served.base_path}"

        async def run() -> None:
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            if server.started:
                details = [*served.details, *extra_details]
                if options.state is not None:
                    details.append(f"state {options.state}")
                line = f"{served.title} ready at {url}"
                announce(f"{line} ({', '.join(details)})" if details else line)
            await task
            if not server.started:
                raise ReconcilerError(f"could not serve on {options.host}:{port}")

        collect_rarely()
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(run())
