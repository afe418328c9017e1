"""`make demo`: the main job, end to end, on the embedded TTS and Azure IoT Hub emulators.

Starts `reconciler emulator serve` twice (`--api tts` and `--api azure-iothub`) with temporary
SQLite state, then runs what an operator runs on `manifests/`, which holds a Things Stack and an
IoT Hub side by side: validate -> plan -> apply -> plan (empty) -> out-of-band changes (a
Console user on TTS; another tool on the hub's twins and identities) -> drift (exit 2) -> apply
(restores them) -> drift (exit 0). Every command is the real CLI in a subprocess; the script
checks each exit code and stops the emulators at the end, whatever happens.
"""

from __future__ import annotations

import base64
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from reconciler.emulator.tts.config import generate_api_key
from reconciler.providers.iothub.client import API_VERSION, sas_token

HUB_NAME = "orchard-north"
HUB_HOST = f"{HUB_NAME}.azure-devices.net"

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
EXAMPLE_ENV = MANIFESTS / "example.env"


def banner(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        values[key.strip()] = value.strip().strip("'\"")
    return values


def run(args: list[str], env: dict[str, str], expect: set[int]) -> int:
    print(f"$ reconciler {shlex.join(args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "reconciler", *args], env=env, cwd=ROOT)
    if code not in expect:
        raise SystemExit(f"demo failed: `reconciler {shlex.join(args)}` exited {code}")
    return code


def wait_ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/api/v3/auth_info", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("demo failed: the emulator did not start")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "emulator", "serve", *args], cwd=ROOT, env=env
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_hub_ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/healthz", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("demo failed: the IoT Hub emulator did not start")


def main() -> int:
    port, hub_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    hub_url = f"http://127.0.0.1:{hub_port}"
    api_key, _key_id, _secret = generate_api_key()
    hub_key = base64.b64encode(secrets.token_bytes(32)).decode()
    connection = f"HostName={HUB_HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={hub_key}"
    env = {
        **os.environ,
        **read_env_file(EXAMPLE_ENV),
        "TTS_API_KEY": api_key,
        "RECONCILER_TTS_URL": url,
        "IOTHUB_CONNECTION_STRING": connection,
        "RECONCILER_IOTHUB_URL": hub_url,
    }
    with tempfile.TemporaryDirectory(prefix="reconciler-demo-") as tmp:
        state = Path(tmp) / "emulator.sqlite"
        hub_state = Path(tmp) / "iothub.sqlite"
        banner(f"Starting the TTS emulator at {url}/api/v3 and the IoT Hub emulator at {hub_url}")
        emulator = start(["--port", str(port), "--api-key", api_key, "--state", str(state)], env)
        hub = start(
            [
                "--api", "azure-iothub", "--port", str(hub_port), "--hub-name", HUB_NAME,
                "--shared-access-key", hub_key, "--state", str(hub_state),
            ],
            env,
        )  # fmt: skip
        try:
            wait_ready(url, time.monotonic() + 20)
            wait_hub_ready(hub_url, time.monotonic() + 20)
            demo(env, url, api_key, hub_url, hub_key)
        finally:
            stop(emulator)
            stop(hub)
    banner("Demo finished: both targets converged, drift was found and repaired.")
    return 0


def demo(env: dict[str, str], url: str, api_key: str, hub_url: str, hub_key: str) -> None:
    banner("1. Validate the manifests (offline)")
    run(["validate", "manifests"], env, {0})
    banner("2. Plan against the empty emulator")
    run(["plan", "manifests"], env, {0})
    banner("3. Apply")
    run(["apply", "manifests", "--auto-approve"], env, {0})
    banner("4. Plan again: nothing left to do (exit 0 with --detailed-exitcode)")
    run(["plan", "manifests", "--detailed-exitcode"], env, {0})
    banner("5. Someone changes devices out of band: a Console user on TTS, a script on the hub")
    change_out_of_band(url, api_key)
    change_hub_out_of_band(hub_url, hub_key)
    banner("6. Drift finds it (exit 2)")
    run(["drift", "manifests"], env, {2})
    banner("7. Apply restores the manifests' state")
    run(["apply", "manifests", "--auto-approve"], env, {0})
    banner("8. Drift again: in sync (exit 0)")
    run(["drift", "manifests"], env, {0})
    banner("9. The unmanaged fields changed in step 5 were left alone")
    check_unmanaged_kept(url, api_key)
    check_hub_unmanaged_kept(hub_url, hub_key)
    banner("10. Device connection strings for the installers: to a 0600 file, never printed")
    with tempfile.TemporaryDirectory(prefix="reconciler-demo-creds-") as tmp:
        run(["credentials", "manifests", "--out", str(Path(tmp) / "devices.csv")], env, {0})


def hub_client(hub_url: str, hub_key: str) -> httpx.Client:
    expiry = int(time.time()) + 3600
    return httpx.Client(
        base_url=hub_url,
        headers={"Authorization": sas_token(HUB_HOST, "iothubowner", hub_key, expiry)},
        params={"api-version": API_VERSION},
        timeout=10,
    )


def change_hub_out_of_band(hub_url: str, hub_key: str) -> None:
    with hub_client(hub_url, hub_key) as client:
        print(
            "  twin cold-store-probe: properties.desired.alarm.maxCelsius -> 9, tag building "
            "removed; an undeclared desired key and The Things Stack's tags.lorawan added "
            "(they must stay)"
        )
        client.patch(
            "/twins/cold-store-probe",
            json={
                "tags": {"building": None, "lorawan": {"devEui": "0004A30B001C0530"}},
                "properties": {"desired": {"alarm": {"maxCelsius": 9}, "debug": True}},
            },
            headers={"If-Match": '"*"'},
        ).raise_for_status()
        print("  identity irrigation-controller: disabled")
        device = client.get("/devices/irrigation-controller").json()
        device["status"] = "disabled"
        client.put(
            "/devices/irrigation-controller",
            json=device,
            headers={"If-Match": f'"{device["etag"]}"'},
        ).raise_for_status()


def check_hub_unmanaged_kept(hub_url: str, hub_key: str) -> None:
    with hub_client(hub_url, hub_key) as client:
        twin = client.get("/twins/cold-store-probe").json()
        desired = twin["properties"]["desired"]
        if desired.get("debug") is not True or "lorawan" not in twin.get("tags", {}):
            raise SystemExit("demo failed: apply touched twin keys the manifests do not declare")
        if desired["alarm"]["maxCelsius"] != 4.5 or twin["tags"].get("building") != "cold-store":
            raise SystemExit("demo failed: the twin was not repaired")
        print("  twin cold-store-probe: repaired; desired.debug and tags.lorawan are still there")


def first_device(client: httpx.Client) -> tuple[str, str]:
    apps = client.get("/applications", params={"field_mask": "attributes"}).json()
    app_id = apps["applications"][0]["ids"]["application_id"]
    listing = client.get(f"/applications/{app_id}/devices", params={"limit": 1}).json()
    return app_id, listing["end_devices"][0]["ids"]["device_id"]


def check_unmanaged_kept(url: str, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=f"{url}/api/v3", headers=headers, timeout=10) as client:
        app_id, device_id = first_device(client)
        ns = client.get(
            f"/ns/applications/{app_id}/devices/{device_id}",
            params={"field_mask": "supports_class_c"},
        ).json()
        if ns.get("supports_class_c") is not True:
            raise SystemExit("demo failed: an unmanaged field was changed by apply")
        print(f"  NS: {app_id}/{device_id}: supports_class_c is still true")


def change_out_of_band(url: str, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "console-user/1.0"}
    with httpx.Client(base_url=f"{url}/api/v3", headers=headers, timeout=10) as client:
        app_id, device_id = first_device(client)
        print(
            f"  NS: {app_id}/{device_id}: lorawan_phy_version -> PHY_V1_0_2_REV_A, and class C "
            "on (a field the manifests do not manage for this device: it must stay)"
        )
        ns = client.get(
            f"/ns/applications/{app_id}/devices/{device_id}", params={"field_mask": "ids"}
        ).json()
        response = client.put(
            f"/ns/applications/{app_id}/devices/{device_id}",
            json={
                "end_device": {
                    "ids": ns["ids"],
                    "supports_class_c": True,
                    "lorawan_phy_version": "1.0.2-a",
                    "lorawan_version": "1.0.2",
                },
                "field_mask": {
                    "paths": ["supports_class_c", "lorawan_phy_version", "lorawan_version"]
                },
            },
        )
        response.raise_for_status()
        print(f"  IS: {app_id}/{device_id}: name -> 'renamed in the Console'")
        client.put(
            f"/applications/{app_id}/devices/{device_id}",
            json={
                "end_device": {"name": "renamed in the Console"},
                "field_mask": {"paths": ["name"]},
            },
        ).raise_for_status()


if __name__ == "__main__":
    sys.exit(main())
