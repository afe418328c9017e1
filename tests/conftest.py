"""Shared fixtures: the TTS emulator in-process (ASGI), served on loopback, or as the CLI process.

* `emulator_app` / `client` / `tts`: a fresh emulator per test, driven through
  `httpx.ASGITransport` at `http://emulator.test/api/v3` with the admin's Bearer token.
* `served_emulator`: the same app behind a real uvicorn server in a background thread
  (for streaming, curl and `requests`), `emulator_process`: `python -m reconciler emulator serve`.

The emulator package is imported lazily so that tests of other packages still collect while the
emulator is being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator.support import ADMIN_USER, TtsApi, make_api_key
from tests.shared_data import require_shared

# A run started with SIGINT ignored (a background job of a non-interactive shell, as some CI
# runners start theirs) hands that on to every CLI process the tests start, and the Ctrl-C
# tests could not interrupt them. A handled signal is reset to its default in a new program.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

API_PREFIX = "/api/v3"
ASGI_BASE_URL = f"http://emulator.test{API_PREFIX}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `needs_shared` skips without ../shared (fails under CI=true)."""
    if item.get_closest_marker("needs_shared") is not None:
        require_shared()


def build_emulator_app(api_key: str | None, **config: Any) -> Any:
    """`create_app(TTSConfig(...))` with the admin user and a fixed seed."""
    from reconciler.emulator.tts import TTSConfig, create_app

    config.setdefault("user_id", ADMIN_USER)
    config.setdefault("seed", 1)
    return create_app(TTSConfig(api_key=api_key, **config))


IN_PROCESS_STREAM_IDLE_S = 0.02


def end_streams_when_idle(app: Any, seconds: float = IN_PROCESS_STREAM_IDLE_S) -> None:
    """The emulator ends each event stream once it has been idle `seconds` (the real server
    never does). The client's history read ends once the stream has been quiet half a second
    without it (`tests/core/test_event_streams.py`); in-process tests end it sooner."""
    app.state.emulator.faults.event_stream_idle_s = seconds


def _bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin_api_key() -> str:
    return make_api_key()


@pytest.fixture
def emulator_config() -> dict[str, Any]:
    """Extra TTSConfig fields for `emulator_app`; override in a module to change knobs."""
    return {}


@pytest.fixture
def emulator_app(admin_api_key: str, emulator_config: dict[str, Any]) -> Any:
    return build_emulator_app(admin_api_key, **emulator_config)


@pytest.fixture
async def emulator_transport(emulator_app: Any) -> AsyncIterator[httpx.ASGITransport]:
    # ASGITransport does not run the lifespan protocol; run the app's own lifespan around it.
    lifespan = getattr(getattr(emulator_app, "router", None), "lifespan_context", None)
    async with contextlib.AsyncExitStack() as stack:
        if lifespan is not None:
            await stack.enter_async_context(lifespan(emulator_app))
        end_streams_when_idle(emulator_app)
        yield httpx.ASGITransport(app=emulator_app)


@pytest.fixture
async def client(
    emulator_transport: httpx.ASGITransport, admin_api_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The admin's client against the in-process emulator."""
    async with httpx.AsyncClient(
        transport=emulator_transport, base_url=ASGI_BASE_URL, headers=_bearer(admin_api_key)
    ) as admin_client:
        yield admin_client


@pytest.fixture
async def tts(
    client: httpx.AsyncClient, emulator_transport: httpx.ASGITransport, admin_api_key: str
) -> AsyncIterator[TtsApi]:
    """Setup helpers (users, orgs, apps, keys, gateways, devices) plus clients for other tokens."""
    extra_clients: list[httpx.AsyncClient] = []

    def client_factory(token: str | None) -> httpx.AsyncClient:
        other = httpx.AsyncClient(
            transport=emulator_transport, base_url=ASGI_BASE_URL, headers=_bearer(token)
        )
        extra_clients.append(other)
        return other

    yield TtsApi(
        client, admin_user=ADMIN_USER, admin_key=admin_api_key, client_factory=client_factory
    )
    for other in extra_clients:
        await other.aclose()


# ---------------------------------------------------------------------------------------------
# Served over TCP


@dataclass(frozen=True)
class ServedEmulator:
    root_url: str  # http://127.0.0.1:PORT
    api_key: str
    user_id: str
    app: Any = None

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{API_PREFIX}"

    @property
    def port(self) -> int:
        return int(self.root_url.rsplit(":", 1)[1])

    def client(self, token: str | None = None) -> httpx.Client:
        """A synchronous client with the admin's token (or `token`)."""
        return httpx.Client(
            base_url=self.base_url, headers=_bearer(token or self.api_key), timeout=10
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class HoldLaterRequests:
    """ASGI wrapper around a served emulator for the interrupt tests: the first request that
    `held` matches is answered, the later ones wait until the test sets `release`. So a signal
    sent once `first_answered` is set lands while the run still has work in flight, however
    loaded the machine (polling a counter and signalling raced with a run that had already
    finished)."""

    def __init__(self, app: Any, held: Callable[[str, str], bool]) -> None:
        self.app = app
        self.held = held  # (method, path) -> whether the request is one to hold
        self.first_answered = threading.Event()
        self.release = threading.Event()
        self._seen = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.held(scope["method"], scope["path"]):
            self._seen += 1
            if self._seen > 1:
                while not self.release.is_set():
                    await asyncio.sleep(0.01)
            await self.app(scope, receive, send)
            self.first_answered.set()
            return
        await self.app(scope, receive, send)


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port in a daemon thread; yield the root URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ws="none",
        http="h11",
        lifespan="auto",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="served-emulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the emulator's uvicorn server stopped during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator's uvicorn server did not start within 15 s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
        sock.close()


@pytest.fixture
def served_emulator() -> Iterator[ServedEmulator]:
    """A fresh emulator served by uvicorn on 127.0.0.1 (function scope: ~0.1 s to start)."""
    api_key = make_api_key()
    app = build_emulator_app(api_key)
    with serve_in_thread(app) as root_url:
        yield ServedEmulator(root_url=root_url, api_key=api_key, user_id=ADMIN_USER, app=app)


@pytest.fixture(scope="module")
def served_emulator_module() -> Iterator[ServedEmulator]:
    """Like `served_emulator`, shared by a module: tests must use unique IDs."""
    api_key = make_api_key()
    app = build_emulator_app(api_key)
    with serve_in_thread(app) as root_url:
        yield ServedEmulator(root_url=root_url, api_key=api_key, user_id=ADMIN_USER, app=app)


@contextlib.contextmanager
def serve_in_subprocess(
    api_key: str, *extra_args: str, user_id: str = ADMIN_USER, timeout: float = 30
) -> Iterator[tuple[ServedEmulator, str]]:
    """`python -m reconciler emulator serve ...`; yields the server and its ready line."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "reconciler",
        "emulator",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key",
        api_key,
        "--user-id",
        user_id,
        *extra_args,
    ]
    with contextlib.ExitStack() as stack:
        stderr_file = stack.enter_context(tempfile.TemporaryFile("w+"))
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, name="emulator-stdout", daemon=True)
        reader.start()
        try:
            try:
                ready = lines.get(timeout=timeout)
            except queue.Empty:
                ready = None
            if ready is None:
                stderr_file.seek(0)
                raise RuntimeError(
                    f"`{' '.join(command[:5])}` did not announce readiness within {timeout} s "
                    f"(exit code {process.poll()}): {stderr_file.read()[-2000:]}"
                )
            served = ServedEmulator(
                root_url=f"http://127.0.0.1:{port}", api_key=api_key, user_id=user_id
            )
            yield served, ready.rstrip("\n")
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            reader.join(5)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture(scope="module")
def emulator_process() -> Iterator[ServedEmulator]:
    """The emulator as the CLI serves it, shared by a module (tests must use unique IDs)."""
    with serve_in_subprocess(make_api_key()) as (served, _ready_line):
        yield served
