"""The TTS event stream through the in-process seam (`httpx.ASGITransport`) as a user of it
gets it: an emulator left as it starts (it never ends a stream, as the real server does not).
The client's silence timeout must end the history read (plan's orphan search) and must notice
a silent watch stream; messages must arrive while the stream is still open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.providers.tts.client import ServerURLs, TTSClient, TTSTransportError
from reconciler.transport import HttpLimits
from tests.conftest import ASGI_BASE_URL, build_emulator_app
from tests.core.support import ROOT_URL, Engine, fleet_site
from tests.emulator.support import ADMIN_USER

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def untouched_app(admin_api_key: str) -> AsyncIterator[Any]:
    """The emulator as a third party starts it: no stream-ending setting."""
    app = build_emulator_app(admin_api_key)
    async with app.router.lifespan_context(app):
        assert app.state.emulator.faults.event_stream_idle_s is None
        yield app


def _client(app: Any, api_key: str) -> TTSClient:
    return TTSClient(
        ServerURLs.single(ROOT_URL),
        api_key,
        transport=httpx.ASGITransport(app=app),
        limits=HttpLimits(request_timeout=5.0),
    )


async def test_the_event_history_read_ends_in_process_once_quiet(
    untouched_app: Any, admin_api_key: str, tmp_path: Path
) -> None:
    """An undeclared device of an owned application, deleted on the Identity Server alone: plan
    finds it from the application's event history (which waited for the request timeout and
    failed before: the transport handed the stream over only once the app ended it)."""
    eng = Engine(httpx.ASGITransport(app=untouched_app), admin_api_key)
    # One try, a short deadline: a history read that waits for the stream's end fails fast.
    fast = {"limits": HttpLimits(request_timeout=5.0), "retries": 1}
    _run, report = await eng.apply([fleet_site(tmp_path, 2)], **fast)
    assert not report.failed
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=untouched_app),
        base_url=ASGI_BASE_URL,
        headers={"Authorization": f"Bearer {admin_api_key}"},
    ) as client:
        answer = await client.delete("/applications/field-fleet/devices/node-00001")
        assert answer.status_code == 200, answer.text

    run = await eng.plan([fleet_site(tmp_path, 1)], **fast)
    assert not run.plan.warnings, run.plan.warnings
    orphans = {str(change.key): change.reason for change in run.plan.orphans}
    assert "an orphan" in orphans.get("device field-fleet/node-00001", ""), orphans


async def test_messages_arrive_while_the_stream_is_open_and_silence_is_a_lost_stream(
    untouched_app: Any, admin_api_key: str
) -> None:
    body = {"identifiers": [{"user_ids": {"user_id": ADMIN_USER}}]}
    async with _client(untouched_app, admin_api_key) as tts:
        stream = tts.stream("is", "/events", json=body, idle_timeout=0.3)
        first = await asyncio.wait_for(anext(stream), 3.0)
        assert first["result"]["name"] == "events.stream.start"
        with pytest.raises(TTSTransportError, match=r"silent for 0\.3 s"):
            await asyncio.wait_for(anext(stream), 3.0)
        await stream.aclose()
