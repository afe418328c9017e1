"""`reconciler emulator serve --api azure-iothub` as a user runs it: the ready line (real port,
connection string), Microsoft's SDK against it over HTTP and HTTPS, the state file, and clear
one-line errors."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.iot.hub.protocol.models import ExportImportDevice, QuerySpecification, Twin
from msrest.exceptions import HttpOperationError

from tests.iothub_emulator.conftest import new_key, registry_manager
from tests.iothub_emulator.support import HOST, parse_connection_string

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(
    r"^IoT Hub emulator for myhub\.azure-devices\.net ready at (?P<url>https?://127\.0\.0\.1:"
    r"(?P<port>\d+)) \(connection string (?P<cs>HostName=[^,]+)(?:, certificate (?P<cert>\S+))?"
    r"(?:, state (?P<state>\S+))?\)$"
)

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def serve(*args: str) -> Iterator[re.Match[str]]:
    command = [sys.executable, "-m", "reconciler", "emulator", "serve", "--api", "azure-iothub"]
    process = subprocess.Popen(
        [*command, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().rstrip("\n")
        match = READY.match(line)
        assert match, (line, process.poll(), process.stderr.read() if process.poll() else "")
        yield match
    finally:
        process.terminate()
        process.wait(10)
        assert process.returncode == 0
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _status(call: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(HttpOperationError) as caught:
        call(*args)
    response = caught.value.response
    return response.status_code, response.headers["iothub-errorcode"]


def test_port_0_prints_the_real_port_and_the_connection_string() -> None:
    """The CLI-served hub through the SDK: identities, etags, twins, bulk, paged queries,
    modules, deletes, with the hub's status and error codes."""
    key = new_key()
    with serve("--shared-access-key", key) as ready:
        assert int(ready["port"]) > 0
        fields = parse_connection_string(ready["cs"])
        assert fields == {
            "HostName": HOST,
            "SharedAccessKeyName": "iothubowner",
            "SharedAccessKey": key,
        }
        with registry_manager(ready["url"], ready["cs"]) as sdk:
            device = sdk.create_device_with_sas("served-1", None, None, "enabled")
            assert sdk.get_device("served-1").etag == device.etag
            assert _status(sdk.create_device_with_sas, "served-1", None, None, "enabled") == (
                409,
                "DeviceAlreadyExists",
            )
            updated = sdk.update_device_with_sas("served-1", device.etag, None, None, "disabled")
            stale = (sdk.update_device_with_sas, "served-1", device.etag, None, None, "enabled")
            assert _status(*stale) == (412, "PreconditionFailed")
            twin = sdk.update_twin("served-1", Twin(tags={"site": "a"}), "*")
            assert _status(sdk.update_twin, "served-1", Twin(tags={}), "AAAAAAAAAAE=") == (
                412,
                "PreconditionFailed",
            )
            assert sdk.replace_twin("served-1", Twin(tags={"b": 1}), twin.etag).tags == {"b": 1}
            bulk = sdk.bulk_create_or_update_devices(
                [ExportImportDevice(id=f"served-{i}", import_mode="create") for i in range(2, 6)]
            )
            assert bulk.is_successful
            query = QuerySpecification(query="SELECT * FROM devices")
            first = sdk.query_iot_hub(query, None, 3)
            second = sdk.query_iot_hub(query, first.continuation_token, 3)
            assert second.continuation_token is None
            assert [item.device_id for item in first.items + second.items] == [
                f"served-{i}" for i in range(1, 6)
            ]
            module = sdk.create_module_with_sas("served-2", "m", None, None, None)
            assert sdk.get_module_twin("served-2", "m").module_id == "m"
            sdk.delete_module("served-2", "m", module.etag)
            assert _status(sdk.get_module, "served-2", "m") == (404, "ModuleNotFound")
            sdk.delete_device("served-1", updated.etag)
            assert _status(sdk.get_device, "served-1") == (404, "DeviceNotFound")
            assert sdk.get_device_registry_statistics().total_device_count == 4


def test_tls_self_signed_certificate_is_trusted_by_the_sdk() -> None:
    with serve("--tls-self-signed") as ready:
        assert ready["url"].startswith("https://")
        cert = Path(ready["cert"])
        assert cert.is_file()
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=context) as client:
            assert client.get(f"{ready['url']}/healthz").status_code == 200
        with registry_manager(ready["url"], ready["cs"]) as sdk:
            sdk.protocol.config.connection.verify = str(cert)
            assert sdk.get_device_registry_statistics().total_device_count == 0
        # Without trusting the certificate, TLS fails.
        with httpx.Client() as client, pytest.raises(httpx.ConnectError):
            client.get(f"{ready['url']}/healthz")


def test_state_file_keeps_devices_twins_and_keys(tmp_path: Path) -> None:
    state = tmp_path / "hub.sqlite"
    with serve("--state", str(state)) as ready:
        first_cs = ready["cs"]
        with registry_manager(ready["url"], ready["cs"]) as sdk:
            created = sdk.create_device_with_sas("kept", None, None, "enabled")
            sdk.update_twin("kept", Twin(tags={"site": "x"}))
    with serve("--state", str(state)) as ready:
        assert ready["cs"] == first_cs  # the generated owner key was kept
        with registry_manager(ready["url"], ready["cs"]) as sdk:
            device = sdk.get_device("kept")
            assert device.authentication.symmetric_key.primary_key == (
                created.authentication.symmetric_key.primary_key
            )
            assert sdk.get_twin("kept").tags == {"site": "x"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reconciler", "emulator", "serve", "--api", "azure-iothub"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )


def test_port_in_use_is_one_line_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: the port is in use"
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--shared-access-key", "short"), "--shared-access-key must be base64 of 16 to 64 bytes"),
        (("--sku", "S9"), "--sku 'S9' is not one of"),
        (("--user-id", "x"), "the IoT Hub emulator has no option --user-id"),
        (("--tls-self-signed", "--tls-cert", "x.pem"), "exclude each other"),
    ],
)
def test_bad_options_are_one_line_errors(args: Any, message: str) -> None:
    result = _run("--port", "0", *args)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"hub_name": "a"}, "--hub-name must be"),
        ({"hub_name": "bad_name"}, "--hub-name must be"),
        ({"units": 0}, "--units must be between 1 and 200"),
        ({"rate_limit": (10, 10)}, "--rate-limit is TTS's limiter"),
        ({"fail_rate": 2.0}, "--fail-rate must be between 0 and 1"),
    ],
)
def test_bad_settings_are_refused_in_process(settings: dict[str, Any], message: str) -> None:
    from reconciler.emulator.iothub import IotHubConfig, create_app

    with pytest.raises(ValueError, match=re.escape(message)):
        create_app(IotHubConfig(**settings))


def test_the_tts_emulators_key_variable_does_not_stop_the_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shell (or CI job) that serves both emulators exports TTS_EMULATOR_API_KEY for the TTS
    one; the hub takes no such key and must start all the same."""
    from tests.emulator.support import make_api_key

    monkeypatch.setenv("TTS_EMULATOR_API_KEY", make_api_key())
    with serve() as ready:
        assert int(ready["port"]) > 0
