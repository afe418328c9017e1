"""The HTTP examples of the TTS documentation in ../shared/seeds, run as documented against the
served emulator (FACTS §a routes; §b for the one invalid body).

* curl commands run with the real `curl` binary, with placeholders filled in: the base URL points
  at the emulator (`tenant1.` hosts at `tenant1.localhost`, which curl resolves to loopback),
  `NNSXS.XXXXXXXXX` becomes the emulator's admin key, `XXXX…` EUIs/DevAddr/keys become real
  values. Observation-only flags are appended (`--silent --show-error --write-out <status>`, and
  `--max-time` for the endless event stream).
* The Python examples (000) run as scripts with `requests`; the stray parenthesis in
  `print('Device description:'), dev.get('description'))` is fixed (a SyntaxError as published).
* The downlink example whose JSON has a trailing comma gets the real server's 400.
* 003 is an Azure IoT Hub sample, not a TTS API example: nothing to run.
"""

from __future__ import annotations

import json
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServedEmulator, serve_in_subprocess
from tests.emulator.support import (
    expect_ok,
    make_api_key,
    new_dev_addr,
    new_eui,
    new_key,
)
from tests.shared_data import SEEDS_DIR, shared_path

DOC_BASE = "https://thethings.example.com/api/v3"
DOC_TENANT_BASE = "https://tenant1.thethings.example.com/api/v3"
DOC_TOKEN = "NNSXS.XXXXXXXXX"
OLD_DOCS = "001_513522cc1aab17d2.txt"
NEW_DOCS = "002_cf5133771b57eb69.txt"
PYTHON_DOCS = "000_e16b6b80eafdc5ac.txt"
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="the `curl` binary is not installed")


# ---------------------------------------------------------------------------------------------
# Reading the documents


@dataclass(frozen=True)
class CurlCommand:
    argv: list[str]

    @property
    def url(self) -> str:
        return next(a for a in self.argv if a.startswith("https://"))

    @property
    def method(self) -> str:
        if "--request" in self.argv:
            return self.argv[self.argv.index("--request") + 1]
        return "GET"

    @property
    def data(self) -> str | None:
        for flag in ("--data-raw", "--data"):
            if flag in self.argv:
                return self.argv[self.argv.index(flag) + 1]
        return None

    def header(self, name: str) -> str | None:
        for index, arg in enumerate(self.argv):
            if arg == "--header" and self.argv[index + 1].lower().startswith(f"{name.lower()}:"):
                return self.argv[index + 1].split(":", 1)[1].strip()
        return None


def curl_commands(seed: str) -> list[CurlCommand]:
    """Every `curl ...` command of a seed, in document order (markdown or plain text)."""
    commands: list[CurlCommand] = []
    pending: list[str] | None = None
    for raw_line in (shared_path(SEEDS_DIR) / seed).read_text("utf-8").splitlines():
        line = raw_line.removeprefix("$ ")
        if pending is None:
            if not line.startswith("curl "):
                continue
            pending = []
        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue
        text = "\n".join(pending).replace("\\\n", " ")
        try:
            argv = shlex.split(text)
        except ValueError:  # inside a quoted multi-line body
            continue
        commands.append(CurlCommand(argv))
        pending = None
    assert pending is None, f"unterminated curl command in {seed}"
    return commands


def python_examples() -> dict[str, str]:
    """`# name.py` -> source of each ```python block of the Python examples document."""
    text = (shared_path(SEEDS_DIR) / PYTHON_DOCS).read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    examples: dict[str, str] = {}
    for block in blocks:
        name = re.search(r"^# (\S+\.py)$", block, re.M)
        assert name is not None, block[:200]
        examples[name.group(1)] = block
    return examples


def find(
    commands: list[CurlCommand], method: str, url_suffix: str, contains: str = "", lacks: str = ""
) -> CurlCommand:
    """The single command with this method and URL whose body has `contains` and not `lacks`."""
    matches = [
        c
        for c in commands
        if c.method == method
        and c.url.endswith(url_suffix)
        and contains in (c.data or "")
        and not (lacks and lacks in (c.data or ""))
    ]
    assert len(matches) == 1, (method, url_suffix, contains, len(matches))
    return matches[0]


# ---------------------------------------------------------------------------------------------
# Filling in placeholders and running


@dataclass
class Placeholders:
    dev_eui: str
    join_eui: str
    dev_addr: str
    gateway_eui: str
    keys: dict[str, str]  # envelope name (app_key, app_s_key, ...) -> key


def new_placeholders() -> Placeholders:
    return Placeholders(
        dev_eui=new_eui(),
        join_eui=new_eui(),
        dev_addr=new_dev_addr(),
        gateway_eui=new_eui(),
        keys={name: new_key() for name in ("app_key", "nwk_key", "f_nwk_s_int_key", "app_s_key")},
    )


def fill(command: CurlCommand, served: ServedEmulator, values: Placeholders) -> list[str]:
    host = f"{served.root_url}/api/v3"
    tenant_host = f"http://tenant1.localhost:{served.port}/api/v3"
    argv: list[str] = []
    for original in command.argv:
        arg = original.replace(DOC_TENANT_BASE, tenant_host).replace(DOC_BASE, host)
        arg = arg.replace(f"Bearer {DOC_TOKEN}", f"Bearer {served.api_key}")
        arg = re.sub(r'"dev_eui": "X{16}"', f'"dev_eui": "{values.dev_eui}"', arg)
        arg = re.sub(r'"join_eui": "X{16}"', f'"join_eui": "{values.join_eui}"', arg)
        arg = re.sub(r'"eui": "X{16}"', f'"eui": "{values.gateway_eui}"', arg)
        arg = re.sub(r'"dev_addr": "X{8}"', f'"dev_addr": "{values.dev_addr}"', arg)
        arg = re.sub(
            r'"(\w+)": \{(\s*)"key": "X{32}"',
            lambda m: f'"{m.group(1)}": {{{m.group(2)}"key": "{values.keys[m.group(1)]}"',
            arg,
        )
        assert "XXXX" not in arg, f"unfilled placeholder in {arg!r}"
        argv.append(arg)
    return argv


@dataclass
class CurlResult:
    status: int
    body: str
    exit_code: int

    def json(self) -> Any:
        return json.loads(self.body)


def run_curl(argv: list[str], *, max_time: float | None = None) -> CurlResult:
    assert CURL is not None
    extra = ["--silent", "--show-error", "--write-out", "\n%{http_code}"]
    if max_time is not None:
        extra += ["--max-time", str(max_time)]
    completed = subprocess.run(
        [CURL, *argv[1:], *extra], capture_output=True, text=True, timeout=30, check=False
    )
    body, _, status = completed.stdout.rpartition("\n")
    return CurlResult(status=int(status or 0), body=body, exit_code=completed.returncode)


def run_documented(
    command: CurlCommand, served: ServedEmulator, values: Placeholders
) -> dict[str, Any]:
    result = run_curl(fill(command, served, values))
    assert result.exit_code == 0, result
    assert result.status == 200, (command.method, command.url, result.body)
    body: dict[str, Any] = result.json()
    return body


def admin(served: ServedEmulator) -> httpx.Client:
    return served.client()


def create_app1(served: ServedEmulator) -> None:
    with admin(served) as client:
        expect_ok(
            client.post(
                f"/users/{served.user_id}/applications",
                json={"application": {"ids": {"application_id": "app1"}}},
            )
        )


def create_dev1(served: ServedEmulator, **fields: Any) -> None:
    with admin(served) as client:
        expect_ok(
            client.post(
                "/applications/app1/devices",
                json={"end_device": {"ids": {"device_id": "dev1"}, **fields}},
            )
        )


# ---------------------------------------------------------------------------------------------
# The documents parse as expected (guards the extraction above)


def test_seed_commands_are_found() -> None:
    """Every curl example of both "Using the API" editions and both Python examples are found."""
    assert len(curl_commands(OLD_DOCS)) == 7
    assert len(curl_commands(NEW_DOCS)) == 14
    assert sorted(python_examples()) == ["get_end_device.py", "subscribe_to_device_events.py"]
    for command in [*curl_commands(OLD_DOCS), *curl_commands(NEW_DOCS)]:
        assert command.url.startswith(("https://thethings.", "https://tenant1."))
        assert command.header("Authorization") in (f"Bearer {DOC_TOKEN}", None)


# ---------------------------------------------------------------------------------------------
# curl examples


@needs_curl
@pytest.mark.parametrize("seed", [OLD_DOCS, NEW_DOCS])
def test_get_device_with_field_mask_query(served_emulator: ServedEmulator, seed: str) -> None:
    """ "HTTP Queries": `GET .../devices/dev1?field_mask=name,description,locations`, on the
    single- and the multi-tenant host."""
    create_app1(served_emulator)
    location = {"latitude": 52.1, "longitude": 4.3, "altitude": 10, "source": "SOURCE_REGISTRY"}
    create_dev1(
        served_emulator,
        name="my device name",
        description="my device description",
        locations={"user": location},
    )
    gets = [c for c in curl_commands(seed) if c.method == "GET"]
    assert len(gets) == 2
    for command in gets:
        device = run_documented(command, served_emulator, new_placeholders())
        assert device["ids"]["device_id"] == "dev1"
        assert device["name"] == "my device name"
        assert device["description"] == "my device description"
        assert device["locations"] == {"user": location}


@needs_curl
@pytest.mark.parametrize("seed", [OLD_DOCS, NEW_DOCS])
def test_register_otaa_device_in_four_registries(
    served_emulator: ServedEmulator, seed: str
) -> None:
    """ "Multi-step actions": IS create (its `field_mask` is ignored: Create has none), then the
    NS/AS/JS sets, in the document's order."""
    create_app1(served_emulator)
    values = new_placeholders()
    commands = curl_commands(seed)
    steps = [
        find(commands, "POST", "/applications/app1/devices", '"join_eui"'),
        find(commands, "PUT", "/ns/applications/app1/devices/newdev1", '"supports_join": true'),
        find(commands, "PUT", "/as/applications/app1/devices/newdev1", '"join_eui"'),
        find(commands, "PUT", "/js/applications/app1/devices/newdev1"),
    ]
    steps.sort(key=commands.index)
    replies = {step.method: run_documented(step, served_emulator, values) for step in steps}
    assert replies["POST"]["ids"]["dev_eui"] == values.dev_eui

    with admin(served_emulator) as client:
        is_dev = expect_ok(
            client.get(
                "/applications/app1/devices/newdev1",
                params={"field_mask": "network_server_address,join_server_address"},
            )
        )
        assert is_dev["ids"]["join_eui"] == values.join_eui
        assert is_dev["network_server_address"] == "thethings.example.com"
        assert is_dev["join_server_address"] == "thethings.example.com"
        ns = expect_ok(
            client.get(
                "/ns/applications/app1/devices/newdev1",
                params={"field_mask": "lorawan_version,lorawan_phy_version,supports_join"},
            )
        )
        assert (ns["lorawan_version"], ns["lorawan_phy_version"]) == (
            "MAC_V1_0_2",
            "PHY_V1_0_2_REV_B",
        )
        assert ns["supports_join"] is True
        js = expect_ok(
            client.get(
                "/js/applications/app1/devices/newdev1",
                params={"field_mask": "root_keys.app_key.key,network_server_address"},
            )
        )
        assert js["root_keys"]["app_key"]["key"] == values.keys["app_key"]
        assert js["network_server_address"] == "thethings.example.com"
        expect_ok(client.get("/as/applications/app1/devices/newdev1"))


@needs_curl
def test_register_abp_device(served_emulator: ServedEmulator) -> None:
    """The ABP variant: IS create with a DevEUI only, NS set with a session and MAC settings
    (uint64 frequencies as strings), AS set with the AppSKey."""
    create_app1(served_emulator)
    values = new_placeholders()
    commands = curl_commands(NEW_DOCS)
    steps = [
        find(commands, "POST", "/applications/app1/devices", lacks='"join_eui"'),
        find(commands, "PUT", "/ns/applications/app1/devices/newdev1", '"supports_join": false'),
        find(commands, "PUT", "/as/applications/app1/devices/newdev1", '"app_s_key"'),
    ]
    for step in steps:
        run_documented(step, served_emulator, values)

    with admin(served_emulator) as client:
        ns = expect_ok(
            client.get(
                "/ns/applications/app1/devices/newdev1",
                params={"field_mask": "session,mac_settings,supports_join"},
            )
        )
        assert ns["session"]["dev_addr"] == values.dev_addr
        assert ns["session"]["keys"]["f_nwk_s_int_key"]["key"] == values.keys["f_nwk_s_int_key"]
        assert ns["mac_settings"]["resets_f_cnt"] is True
        assert ns["mac_settings"]["factory_preset_frequencies"][0] == "868100000"
        assert len(ns["mac_settings"]["factory_preset_frequencies"]) == 8
        as_dev = expect_ok(
            client.get("/as/applications/app1/devices/newdev1", params={"field_mask": "session"})
        )
        assert as_dev["session"]["keys"]["app_s_key"]["key"] == values.keys["app_s_key"]


@needs_curl
def test_register_gateway_with_singular_frequency_plan_id(served_emulator: ServedEmulator) -> None:
    """ "Register a Gateway": note the docs send the deprecated singular `frequency_plan_id`
    (§a: the server keeps `frequency_plan_ids` and derives the singular from its first item)."""
    with admin(served_emulator) as client:
        expect_ok(
            client.post(
                "/users",
                json={
                    "user": {
                        "ids": {"user_id": "user1"},
                        "primary_email_address": "user1@example.com",
                        "password": "correct-horse-battery-staple-1",
                    }
                },
            )
        )
    values = new_placeholders()
    created = run_documented(
        find(curl_commands(NEW_DOCS), "POST", "/users/user1/gateways"), served_emulator, values
    )
    assert created["ids"] == {"gateway_id": "gtw1", "eui": values.gateway_eui}
    with admin(served_emulator) as client:
        got = expect_ok(
            client.get(
                "/gateways/gtw1",
                params={
                    "field_mask": "name,gateway_server_address,frequency_plan_ids,frequency_plan_id"
                },
            )
        )
    assert got["name"] == "my gateway"
    assert got["gateway_server_address"] == "thethings.example.com"
    assert got["frequency_plan_ids"] == ["EU_863_870_TTN"]
    assert got["frequency_plan_id"] == "EU_863_870_TTN"


@needs_curl
def test_purge_application(served_emulator: ServedEmulator) -> None:
    """ "Purge Entities": `DELETE /applications/app1/purge` by the admin frees the ID."""
    create_app1(served_emulator)
    assert (
        run_documented(
            find(curl_commands(NEW_DOCS), "DELETE", "/applications/app1/purge"),
            served_emulator,
            new_placeholders(),
        )
        == {}
    )
    with admin(served_emulator) as client:
        assert client.get("/applications/app1").status_code == 404
    create_app1(served_emulator)


@needs_curl
def test_downlink_push_examples(served_emulator: ServedEmulator) -> None:
    """ "Schedule Downlink": the first example's JSON has a trailing comma, so the real server
    answers 400 `{"code": 3, "message": ..., "details": []}` (§b); without the comma it is queued.
    The `decoded_payload` example goes through the device's downlink formatter."""
    create_app1(served_emulator)
    values = new_placeholders()
    with admin(served_emulator) as client:
        expect_ok(
            client.post(
                "/applications/app1/devices",
                json={"end_device": {"ids": {"device_id": "dev1", "dev_eui": values.dev_eui}}},
            )
        )
        ids = {"device_id": "dev1", "dev_eui": values.dev_eui}
        expect_ok(
            client.put(
                "/ns/applications/app1/devices/dev1",
                json={
                    "end_device": {
                        "ids": ids,
                        "supports_join": False,
                        "lorawan_version": "1.0.2",
                        "lorawan_phy_version": "1.0.2-b",
                        "frequency_plan_id": "EU_863_870_TTN",
                        "session": {
                            "dev_addr": values.dev_addr,
                            "keys": {"f_nwk_s_int_key": {"key": values.keys["f_nwk_s_int_key"]}},
                        },
                    },
                    "field_mask": {
                        "paths": [
                            "supports_join",
                            "lorawan_version",
                            "lorawan_phy_version",
                            "frequency_plan_id",
                            "session.dev_addr",
                            "session.keys.f_nwk_s_int_key.key",
                        ]
                    },
                },
            )
        )
        expect_ok(
            client.put(
                "/as/applications/app1/devices/dev1",
                json={
                    "end_device": {
                        "ids": ids,
                        "session": {
                            "dev_addr": values.dev_addr,
                            "keys": {"app_s_key": {"key": values.keys["app_s_key"]}},
                        },
                        "formatters": {
                            "down_formatter": "FORMATTER_JAVASCRIPT",
                            "down_formatter_parameter": (
                                "function encodeDownlink(input) "
                                "{ return {bytes: input.data.bytes, fPort: 1}; }"
                            ),
                        },
                    },
                    "field_mask": {
                        "paths": ["session.dev_addr", "session.keys.app_s_key.key", "formatters"]
                    },
                },
            )
        )

    pushes = [c for c in curl_commands(NEW_DOCS) if c.url.endswith("/devices/dev1/down/push")]
    assert len(pushes) == 2
    trailing_comma, decoded = pushes
    assert re.search(r",\s*}", trailing_comma.data or "")

    rejected = run_curl(fill(trailing_comma, served_emulator, values))
    assert rejected.status == 400, rejected
    body = rejected.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == 3
    assert isinstance(body["message"], str) and body["message"]
    assert body["details"] == []

    fixed_argv = fill(trailing_comma, served_emulator, values)
    data_index = fixed_argv.index("--data") + 1
    fixed_argv[data_index] = re.sub(r",(\s*})", r"\1", fixed_argv[data_index])
    json.loads(fixed_argv[data_index])
    fixed = run_curl(fixed_argv)
    assert (fixed.status, fixed.json()) == (200, {}), fixed

    assert run_documented(decoded, served_emulator, values) == {}
    with admin(served_emulator) as client:
        queue_ = expect_ok(client.get("/as/applications/app1/devices/dev1/down"))["downlinks"]
    assert len(queue_) == 2
    assert (queue_[0]["f_port"], queue_[0]["frm_payload"]) == (42, "vu8=")


@needs_curl
@pytest.mark.parametrize(
    ("seed", "accept"), [(OLD_DOCS, "application/json"), (NEW_DOCS, "text/event-stream")]
)
def test_event_stream_curl(served_emulator: ServedEmulator, seed: str, accept: str) -> None:
    """ "Get Event Stream": the stream for dev1 starts with `events.stream.start`; 001 asks for
    `application/json` (newline-separated), 002 for `text/event-stream` (blank-line separated)."""
    create_app1(served_emulator)
    create_dev1(served_emulator)
    command = find(curl_commands(seed), "POST", "/events")
    assert command.header("Accept") == accept
    result = run_curl(fill(command, served_emulator, new_placeholders()), max_time=1.0)
    assert result.exit_code == 28, result  # curl's "operation timed out": the stream is endless
    output = result.body + "\n"  # --write-out could not run its status line after the timeout
    separator = "\n\n" if accept == "text/event-stream" else "\n"
    first = output.split(separator, 1)[0]
    assert json.loads(first)["result"]["name"] == "events.stream.start"


# ---------------------------------------------------------------------------------------------
# Python examples (requests)


STRAY_PARENTHESIS = "print('Device description:'), dev.get('description'))"


def write_example(tmp_path: Path, name: str, served: ServedEmulator) -> Path:
    """The documented script with the base URL and key filled in and the typo fixed."""
    source = python_examples()[name]
    assert f"base_url = '{DOC_BASE}'" in source
    source = source.replace(DOC_BASE, served.base_url)
    source = re.sub(r"api_key = 'NNSXS\.[X.Y]+'", f"api_key = '{served.api_key}'", source)
    source = source.replace(
        STRAY_PARENTHESIS, "print('Device description:', dev.get('description'))"
    )
    compile(source, name, "exec")
    path = tmp_path / name
    path.write_text(source, "utf-8")
    return path


def test_python_get_end_device(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    """000 `get_end_device.py` prints the documented output (after the typo fix)."""
    assert STRAY_PARENTHESIS in python_examples()["get_end_device.py"]
    create_app1(served_emulator)
    create_dev1(served_emulator, name="my device name", description="my device description")
    script = write_example(tmp_path, "get_end_device.py", served_emulator)
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == [
        "Device ID: dev1",
        "Device name: my device name",
        "Device description: my device description",
    ]


def test_python_subscribe_to_device_events(served_emulator: ServedEmulator, tmp_path: Path) -> None:
    """000 `subscribe_to_device_events.py` (text/event-stream, `requests` with `stream=True`)
    prints `New event: events.stream.start` first."""
    create_app1(served_emulator)
    create_dev1(served_emulator)
    script = write_example(tmp_path, "subscribe_to_device_events.py", served_emulator)
    process = subprocess.Popen(
        [sys.executable, "-u", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        first = lines.get(timeout=30)
    except queue.Empty:
        first = ""
    finally:
        process.kill()
        _, stderr = process.communicate(timeout=10)
        reader.join(5)
    assert first == "New event: events.stream.start", stderr


# ---------------------------------------------------------------------------------------------
# The CLI-served emulator (`python -m reconciler emulator serve`)


@needs_curl
def test_documented_get_against_cli_served_emulator() -> None:
    """The brief's serve contract: `python -m reconciler emulator serve --host --port --api-key
    --user-id` prints one line when ready and serves the API under /api/v3."""
    with serve_in_subprocess(make_api_key()) as (served, ready_line):
        assert ready_line.strip()
        create_app1(served)
        create_dev1(served, name="my device name", description="my device description")
        command = next(
            c for c in curl_commands(NEW_DOCS) if c.method == "GET" and c.url.startswith(DOC_BASE)
        )
        device = run_documented(command, served, new_placeholders())
        assert device["name"] == "my device name"
