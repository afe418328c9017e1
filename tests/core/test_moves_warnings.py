"""X-Warning headers drawn by the writes of apply (issue 12, item 10): collected once each,
with the request that first drew them and how many did, and shown in the apply report."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler import engine
from reconciler.plan.render import render_report
from reconciler.providers.tts.kinds import link_key
from tests.core.support import STACK, Engine, write_manifests

pytestmark = pytest.mark.asyncio

APPS = """
kind: Application
id: {app}
default_formatters:
  up_formatter: FORMATTER_CAYENNELPP
"""


async def test_warnings_drawn_by_writes_are_reported_once_with_their_request(
    emulator_transport: httpx.ASGITransport, admin_api_key: str, tmp_path: Path
) -> None:
    eng = Engine(emulator_transport, admin_api_key)
    paths = [
        write_manifests(
            tmp_path, stack=STACK, one=APPS.format(app="app-one"), two=APPS.format(app="app-two")
        )
    ]
    options = eng.options(paths)
    loaded = engine.load(options)
    session = engine.connect(loaded, options)
    try:
        run = await engine.make_plan(loaded, session, options)
        assert run.plan.warnings == []  # the reads drew none
        # The manifest language has no deprecated field, so the planned link writes name one
        # in their field mask, as an older manifest extension would: the real Application
        # Server still allows `network_server_address` in a link's mask, drops it and answers
        # with an X-Warning, and so does the emulator.
        for app in ("app-one", "app-two"):
            change = next(c for c in run.plan.changes if c.key == link_key(app))
            change.steps[0].paths.append("network_server_address")
        report = await engine.apply_plan(run, session, options)
    finally:
        await session.aclose()
    assert not report.failed, report.failed
    # Both link writes drew it; it is reported once, with the first of them.
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("Application Server: PUT /as/applications/app-")
    assert report.warnings[0].endswith(
        "/link: server warning: field network_server_address is deprecated (2 requests)"
    )
    lines = [line.plain for line in render_report(report)]
    assert f"Warning: {report.warnings[0]}" in lines
    assert lines[-1].startswith("Apply: 4 done")
