"""`reconciler watch --heal` against the served emulator: out-of-band changes through the API on
the Identity, Network, Application and Join Servers are reported (what changed, who) and healed
within seconds from the event stream; a webhook (which publishes no events) within one sweep
interval; a stream the server drops is followed by a reconnect that misses nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServedEmulator
from tests.core.support import KEYS, site
from tests.operator.support import Cli
from tests.operator.watch_support import WatchProcess

pytestmark = pytest.mark.slow

APP = "field-sensors"
CONSOLE = {"User-Agent": "console-test/1.0"}
HEAL_SECONDS = 5.0  # the stated time from an out-of-band change to its repair


def _ids(device: str, dev_eui: str) -> dict[str, Any]:
    return {
        "device_id": device,
        "application_ids": {"application_id": APP},
        "dev_eui": dev_eui,
        "join_eui": "70B3D57ED0000000",
    }


def _put(
    client: httpx.Client, path: str, wrapper: str, entity: dict[str, Any], *paths: str
) -> None:
    answer = client.put(
        path, json={wrapper: entity, "field_mask": {"paths": list(paths)}}, headers=CONSOLE
    )
    assert answer.status_code == 200, answer.text


def _get(client: httpx.Client, path: str, mask: str) -> dict[str, Any]:
    answer = client.get(path, params={"field_mask": mask})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def _metrics(watch: WatchProcess) -> dict[str, float]:
    line = next(row for row in watch.lines if "metrics at http" in row)
    url = line.split("metrics at ", 1)[1].strip()
    text = httpx.get(url, timeout=5).text
    values = {}
    for row in text.splitlines():
        if row.startswith("reconciler_watch_") and "_total" in row:
            name, value = row.split()
            values[name.removeprefix("reconciler_watch_").removesuffix("_total")] = float(value)
    return values


def _settled_requests(watch: WatchProcess) -> float:
    """The request count once the watcher is idle (at start it re-reads what the replay of
    the last seconds of events names: the apply's own writes)."""
    count = -1.0
    while True:
        time.sleep(0.5)
        now = _metrics(watch)["requests"]
        if now == count:
            return now
        count = now


@pytest.fixture
def watching() -> Iterator[list[WatchProcess]]:
    """The watch processes a test starts, killed and closed whatever happens."""
    started: list[WatchProcess] = []
    yield started
    for process in started:
        process.__exit__()


@pytest.fixture
def applied(served_emulator: ServedEmulator, tmp_path: Path) -> Path:
    site(tmp_path / "manifests")
    Cli(served_emulator, tmp_path)("apply", "manifests", "--auto-approve")
    return tmp_path


def _heal(
    watch: WatchProcess, change: Any, key: str, within: float = HEAL_SECONDS
) -> tuple[str, float]:
    started = time.monotonic()
    change()
    drift, _ = watch.wait_for(rf"drift {key}:", within + 5)
    _, healed_at = watch.wait_for(rf"healed {key}$", within + 5)
    elapsed = healed_at - started
    assert elapsed <= within, (key, elapsed)
    return drift, elapsed


def test_watch_heals_changes_on_every_registry_from_the_event_stream(
    served_emulator: ServedEmulator, applied: Path, watching: list[WatchProcess]
) -> None:
    # The cheap sweep is far away: what heals here is the event stream.
    watch = WatchProcess(
        served_emulator, applied, "manifests", "--heal", "--interval", "10m", "--metrics-port", "0"
    )
    watching.append(watch)
    watch.wait_for("full sweep", 30)
    with served_emulator.client() as client:
        before = _settled_requests(watch)
        drift, _ = _heal(
            watch,
            lambda: _put(
                client,
                f"/applications/{APP}/devices/otaa-103",
                "end_device",
                {"name": "renamed in the Console"},
                "name",
            ),
            "device field-sensors/otaa-103",
        )
        # Who changed what, as the event says.
        assert "IS name" in drift and "end_device.update [name]" in drift, drift
        assert "by console-test/1.0 from 127.0.0.1" in drift, drift
        # The watcher's own write comes back as an event: re-read, no drift.
        used = _settled_requests(watch) - before
        assert used <= 10, used
        assert _get(client, f"/applications/{APP}/devices/otaa-103", "name")["name"] == "OTAA 1.0.3"

        drift, _ = _heal(
            watch,
            lambda: _put(
                client,
                f"/ns/applications/{APP}/devices/class-c",
                "end_device",
                {
                    "ids": _ids("class-c", "70B3D57ED0000004"),
                    "mac_settings": {"rx2_data_rate_index": 1},
                },
                "mac_settings.rx2_data_rate_index",
            ),
            "device field-sensors/class-c",
        )
        assert "NS mac_settings.rx2_data_rate_index" in drift and "ns.end_device.update" in drift
        ns = _get(client, f"/ns/applications/{APP}/devices/class-c", "mac_settings")
        assert ns["mac_settings"]["rx2_data_rate_index"] == 3

        drift, _ = _heal(
            watch,
            lambda: _put(
                client,
                f"/js/applications/{APP}/devices/otaa-103",
                "end_device",
                {
                    "ids": _ids("otaa-103", "70B3D57ED0000001"),
                    "root_keys": {"app_key": {"key": "0" * 32}},
                },
                "root_keys.app_key.key",
            ),
            "device field-sensors/otaa-103",
        )
        assert "JS root_keys.app_key.key" in drift and "js.end_device.update" in drift
        js = _get(client, f"/js/applications/{APP}/devices/otaa-103", "root_keys.app_key.key")
        assert js["root_keys"]["app_key"]["key"] == KEYS["OTAA_103_APP_KEY"]

        _heal(
            watch,
            lambda: _put(
                client,
                f"/as/applications/{APP}/devices/otaa-103",
                "end_device",
                {
                    "ids": _ids("otaa-103", "70B3D57ED0000001"),
                    "formatters": {"up_formatter": "FORMATTER_NONE"},
                },
                "formatters.up_formatter",
            ),
            "device field-sensors/otaa-103",
        )
        _heal(
            watch,
            lambda: _put(
                client,
                f"/applications/{APP}",
                "application",
                {"name": "renamed"},
                "name",
            ),
            "application field-sensors",
        )
        assert _get(client, f"/applications/{APP}", "name")["name"] == "Field sensors"
    metrics = _metrics(watch)
    assert metrics["drift_found"] == 5 and metrics["healed"] == 5 and metrics["heal_failed"] == 0
    text = watch.stop()
    assert "watch stopped: 5 drift found, 5 healed, 0 failed" in text
    for secret in KEYS.values():
        assert secret not in text and secret.lower() not in text
    assert served_emulator.api_key not in text


def test_watch_without_heal_only_reports(
    served_emulator: ServedEmulator, applied: Path, watching: list[WatchProcess]
) -> None:
    watch = WatchProcess(served_emulator, applied, "manifests", "--interval", "10m")
    watching.append(watch)
    watch.wait_for("full sweep", 30)
    with served_emulator.client() as client:
        _put(client, f"/applications/{APP}/devices/otaa-103", "end_device", {"name": "x"}, "name")
        watch.wait_for(r"drift device field-sensors/otaa-103: update: IS name", 10)
        time.sleep(1)
        assert _get(client, f"/applications/{APP}/devices/otaa-103", "name")["name"] == "x"
    text = watch.stop()
    assert "healed" not in text.replace("0 healed", "")


def test_a_webhook_change_is_healed_within_one_sweep_interval(
    served_emulator: ServedEmulator, applied: Path, watching: list[WatchProcess]
) -> None:
    interval = 3.0
    watch = WatchProcess(served_emulator, applied, "manifests", "--heal", "--interval", "3s")
    watching.append(watch)
    watch.wait_for("full sweep", 30)
    with served_emulator.client() as client:
        drift, _ = _heal(
            watch,
            lambda: _put(
                client,
                f"/as/webhooks/{APP}/ingest",
                "webhook",
                {
                    "ids": {"webhook_id": "ingest", "application_ids": {"application_id": APP}},
                    "base_url": "https://evil.example.com/",
                },
                "base_url",
            ),
            "webhook field-sensors/ingest",
            # the next sweep, plus the time a sweep and a repair take
            within=interval + 2.0,
        )
        assert "found by the sweep" in drift
        hook = _get(client, f"/as/webhooks/{APP}/ingest", "base_url")
        assert hook["base_url"] == "https://ingest.example.com/ttn"
    text = watch.stop()
    assert KEYS["WEBHOOK_TOKEN"] not in text


def test_a_dropped_stream_is_recovered_without_missing_a_change(
    served_emulator: ServedEmulator, applied: Path, watching: list[WatchProcess]
) -> None:
    watch = WatchProcess(
        served_emulator, applied, "manifests", "--heal", "--interval", "10m", "--metrics-port", "0"
    )
    watching.append(watch)
    watch.wait_for("full sweep", 30)
    _settled_requests(watch)
    with served_emulator.client() as client:

        def drop_then_change() -> None:
            dropped = client.put("/../../_emulator/events", json={"drop_streams": True})
            assert dropped.status_code == 200, dropped.text
            # Made while the watcher is disconnected: replayed from the server's history.
            _put(
                client,
                f"/ns/applications/{APP}/devices/class-c",
                "end_device",
                {
                    "ids": _ids("class-c", "70B3D57ED0000004"),
                    "mac_settings": {"rx2_data_rate_index": 1},
                },
                "mac_settings.rx2_data_rate_index",
            )

        drift, _ = _heal(watch, drop_then_change, "device field-sensors/class-c", within=8.0)
        assert "ns.end_device.update" in drift
        assert any("change stream lost" in line for line in watch.lines)

        # The server keeps no history now: what the gap hides, the sweep after the reconnect
        # finds.
        def forget_drop_then_change() -> None:
            settings = {"drop_streams": True, "history_per_entity": 0}
            assert client.put("/../../_emulator/events", json=settings).status_code == 200
            _put(
                client, f"/applications/{APP}/devices/otaa-103", "end_device", {"name": "x"}, "name"
            )

        drift, _ = _heal(
            watch, forget_drop_then_change, "device field-sensors/otaa-103", within=12.0
        )
        assert "found by the sweep" in drift
    assert _metrics(watch)["stream_reconnects"] >= 2
    watch.stop()


def test_a_batch_delete_on_a_registry_is_healed(
    served_emulator: ServedEmulator, applied: Path, watching: list[WatchProcess]
) -> None:
    """A batch delete publishes one event on the application naming the devices in its data."""
    watch = WatchProcess(served_emulator, applied, "manifests", "--heal", "--interval", "10m")
    watching.append(watch)
    watch.wait_for("full sweep", 30)
    with served_emulator.client() as client:

        def delete() -> None:
            answer = client.delete(
                f"/ns/applications/{APP}/devices/batch", params={"device_ids": "abp-102"}
            )
            assert answer.status_code == 200, answer.text

        drift, _ = _heal(watch, delete, "device field-sensors/abp-102")
        assert "ns.end_device.batch.delete" in drift, drift
        assert client.get(f"/ns/applications/{APP}/devices/abp-102").status_code == 200
    watch.stop()
