"""The manifest language through `load_manifests`: inheritance, spellings, CSV fleets, secrets,
the target, and the JSON Schemas."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.diagnostics import Diagnostic, ManifestError
from reconciler.manifest.load import LoadResult, load_manifests
from reconciler.manifest.schema import schemas
from reconciler.manifest.secrets import SecretContext
from reconciler.providers.registry import MANIFEST_KINDS, schema_models
from reconciler.providers.tts import lorawan_versions, reference
from reconciler.providers.tts.manifest import types
from reconciler.providers.tts.manifest.models import Device as DeviceDocument
from reconciler.providers.tts.manifest.project import tts_project
from reconciler.resources import Secret
from tests.manifest.support import REPO, run_cli

KEY = "00112233445566778899aabbccddeeff"
STACK = """\
kind: Stack
name: test-site
url: https://eu1.cloud.thethings.network
owner: {user: admin-user}
"""
APP = """\
kind: Application
id: farm-app
device_defaults:
  frequency_plan_id: EU_863_870_TTN
  lorawan_version: 1.0.3
  lorawan_phy_version: 1.0.3-a
  join_eui: "70B3D57ED0000001"
  attributes: {site: north, floor: "1"}
  mac_settings: {rx1_delay: 1, supports_32_bit_f_cnt: true}
device_profiles:
  class-c:
    supports_class_c: true
    attributes: {floor: "2"}
    mac_settings: {rx1_delay: 5, rx2_data_rate_index: 3}
"""


def load(
    tmp_path: Path, files: dict[str, str], environ: dict[str, str] | None = None, **kwargs: str
) -> LoadResult:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_manifests(
        [tmp_path], environ={"KEY": KEY, **(environ or {})}, kinds=MANIFEST_KINDS, **kwargs
    )


def device_yaml(extra: str = "", device_id: str = "sensor-one") -> str:
    return (
        f"kind: Device\napplication: farm-app\nid: {device_id}\n"
        'dev_eui: "0004A30B001C0530"\napp_key: {env: KEY}\n' + extra
    )


def errors(result: LoadResult) -> list[Diagnostic]:
    return [d for d in result.diagnostics if d.severity == "error"]


def only_device(result: LoadResult) -> dict[str, object]:
    assert not errors(result), errors(result)
    (device,) = tts_project(result.project).devices
    return device.fields


# --- inheritance ------------------------------------------------------------------------------


def test_device_over_profile_over_application_defaults(tmp_path: Path) -> None:
    device = device_yaml("profile: class-c\nmac_settings: {rx1_delay: 2}\nattributes: {row: a7}\n")
    fields = only_device(load(tmp_path, {"s.yaml": STACK, "a.yaml": APP, "d.yaml": device}))
    assert fields["mac_settings.rx1_delay"] == 2  # device beats profile (5) and defaults (1)
    assert fields["mac_settings.rx2_data_rate_index"] == 3  # from the profile
    assert fields["mac_settings.supports_32_bit_f_cnt"] is True  # from the defaults
    assert fields["supports_class_c"] is True
    # Maps merge key by key under the same precedence.
    assert fields["attributes"] == {"site": "north", "floor": "2", "row": "a7"}
    assert fields["ids.join_eui"] == "70B3D57ED0000001"
    assert fields["supports_join"] is True


def test_explicit_null_is_kept_and_unmentioned_fields_are_absent(tmp_path: Path) -> None:
    device = device_yaml("profile: class-c\ndescription: null\nsupports_class_c: null\n")
    fields = only_device(load(tmp_path, {"s.yaml": STACK, "a.yaml": APP, "d.yaml": device}))
    assert "description" in fields and fields["description"] is None
    assert fields["supports_class_c"] is None  # the device clears what its profile set
    assert "name" not in fields
    assert "supports_class_b" not in fields


def test_profile_model_keeps_which_fields_were_set() -> None:
    document = DeviceDocument.model_validate(
        {"kind": "Device", "application": "farm-app", "id": "sensor-one", "name": None},
        context={"secrets": SecretContext(environ={})},
    )
    assert document.model_fields_set == {"kind", "application", "id", "name"}


# --- spellings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mac", "phy", "mac_name", "phy_name"),
    [
        ("1.0.2", "1.0.2-b", "MAC_V1_0_2", "PHY_V1_0_2_REV_B"),
        ("MAC_V1_0_2", "RP001_V1_0_2_REV_B", "MAC_V1_0_2", "PHY_V1_0_2_REV_B"),
        ("V1_0_2", "V1_0_2_REV_A", "MAC_V1_0_2", "PHY_V1_0_2_REV_A"),
        ("'1.0'", "1.0", "MAC_V1_0", "PHY_V1_0"),  # a quoted string and a YAML float
        ("1.1", "1.1-a", "MAC_V1_1", "PHY_V1_1_REV_A"),  # YAML reads 1.1 as a float
        ("1.1.0", "RP002_V1_0_3", "MAC_V1_1", "RP002_V1_0_3"),
        ("1.0.4", "RP002_V1_0_4", "MAC_V1_0_4", "RP002_V1_0_4"),
        ("mac_v1_0_3", "PHY_V1_0_3_REV_A", "MAC_V1_0_3", "PHY_V1_0_3_REV_A"),
    ],
)
def test_lorawan_versions_in_every_spelling(
    tmp_path: Path, mac: str, phy: str, mac_name: str, phy_name: str
) -> None:
    extra = f"lorawan_version: {mac}\nlorawan_phy_version: {phy}\nnwk_key: {{env: KEY}}\n"
    fields = only_device(
        load(tmp_path, {"s.yaml": STACK, "a.yaml": APP, "d.yaml": device_yaml(extra)})
    )
    assert (fields["lorawan_version"], fields["lorawan_phy_version"]) == (mac_name, phy_name)


def test_hex_values_are_upper_case(tmp_path: Path) -> None:
    device = device_yaml().replace("0004A30B001C0530", "0004a30b001c0530")
    fields = only_device(load(tmp_path, {"s.yaml": STACK, "a.yaml": APP, "d.yaml": device}))
    assert fields["ids.dev_eui"] == "0004A30B001C0530"
    key = fields["root_keys.app_key.key"]
    assert isinstance(key, Secret)
    assert key.reveal() == KEY.upper()


def test_mac_phy_table_uses_real_enum_names() -> None:
    mac_names = set(reference.enum("MACVersion").canonical.values())
    phy_names = set(reference.enum("PHYVersion").canonical.values())
    assert set(lorawan_versions.PHY_VERSIONS_BY_MAC) == mac_names - {"MAC_UNKNOWN"}
    for phys in lorawan_versions.PHY_VERSIONS_BY_MAC.values():
        assert phys <= phy_names
    assert lorawan_versions.is_valid_pair("MAC_V1_0_2", "PHY_V1_0_2_REV_B")
    assert not lorawan_versions.is_valid_pair("MAC_V1_0_2", "PHY_V1_0_3_REV_A")
    assert lorawan_versions.is_valid_pair("MAC_V1_1", "RP002_V1_0_4")
    assert not lorawan_versions.is_valid_pair("MAC_V1_0_3", "RP002_V1_0_0")


# --- CSV fleets -------------------------------------------------------------------------------


FLEET = """\
kind: Fleet
application: farm-app
profile: class-c
csv: fleet.csv
secrets_csv: keys/fleet.secrets.csv
"""


def test_csv_fleet_derives_ids_joins_secrets_and_applies_the_profile(tmp_path: Path) -> None:
    files = {
        "s.yaml": STACK,
        "a.yaml": APP,
        "f.yaml": FLEET,
        # `,` separator, the `app_eui` alias, no `id` cell on the second row.
        "fleet.csv": "id,dev_eui,app_eui,name,rx1_delay\n"
        "probe-one,0004a30b00200001,70B3D57ED0000002,One,RX_DELAY_3\n"
        ",0004A30B00200002,,Two,\n",
        "keys/fleet.secrets.csv": "id;dev_eui;app_key\n"
        "probe-one;;env:FLEET_KEY\n"
        f";0004A30B00200002;{KEY}\n",
    }
    result = load(tmp_path, files, {"FLEET_KEY": KEY.replace("0", "f")})
    assert not result.diagnostics, result.diagnostics
    one, two = tts_project(result.project).devices
    assert one.device_id == "probe-one"
    assert one.fields["ids.join_eui"] == "70B3D57ED0000002"  # the row beats the defaults
    assert one.fields["mac_settings.rx1_delay"] == 3
    assert one.fields["root_keys.app_key.key"].source == "env:FLEET_KEY"
    assert two.device_id == "eui-0004a30b00200002"
    assert two.fields["ids.join_eui"] == "70B3D57ED0000001"
    assert two.fields["mac_settings.rx1_delay"] == 5  # from the profile
    assert two.fields["supports_class_c"] is True
    assert two.profile == "class-c"
    assert str(two.location) == f"{tmp_path / 'fleet.csv'}:3"


def test_keys_in_the_fleet_csv_are_warned_about_once(tmp_path: Path) -> None:
    rows = "".join(f"probe-{i:03d};0004A30B002000{i:02X};{KEY}\n" for i in range(1, 21))
    files = {
        "s.yaml": STACK,
        "a.yaml": APP,
        "f.yaml": FLEET.replace("secrets_csv: keys/fleet.secrets.csv\n", ""),
        "fleet.csv": "id;dev_eui;app_key\n" + rows,
    }
    result = load(tmp_path, files)
    assert not errors(result)
    (warning,) = result.diagnostics
    assert warning.severity == "warning" and warning.code == "inline-secret"
    assert (warning.location.line, warning.location.column) == (1, 3)
    assert len(tts_project(result.project).devices) == 20


def test_csv_and_yaml_devices_share_the_duplicate_checks(tmp_path: Path) -> None:
    files = {
        "s.yaml": STACK,
        "a.yaml": APP,
        "d.yaml": device_yaml(device_id="probe-one"),
        "f.yaml": FLEET.replace("secrets_csv: keys/fleet.secrets.csv\n", ""),
        "fleet.csv": "id;dev_eui;app_key\nprobe-one;0004A30B00200001;env:KEY\n",
    }
    (error,) = errors(load(tmp_path, files))
    assert "duplicate device `probe-one`" in error.message
    assert error.location.file.endswith("fleet.csv") and error.location.line == 2


# --- secrets ----------------------------------------------------------------------------------


def test_inline_secret_is_accepted_with_a_located_warning(tmp_path: Path) -> None:
    device = device_yaml().replace("{env: KEY}", f'"{KEY}"')
    result = load(tmp_path, {"s.yaml": STACK, "a.yaml": APP, "d.yaml": device})
    (warning,) = result.diagnostics
    assert warning.severity == "warning"
    assert (warning.location.line, warning.location.column, warning.location.path) == (
        5,
        1,
        "app_key",
    )
    assert KEY not in str(warning) and KEY.upper() not in str(warning)
    assert tts_project(result.project).devices[0].fields["root_keys.app_key.key"].is_inline


def test_plain_webhook_headers_are_not_secrets_but_credentials_are(tmp_path: Path) -> None:
    app = APP + textwrap.dedent(
        """\
        webhooks:
          - id: hook-one
            base_url: https://example.com/hook
            headers:
              Content-Type: application/json
              X-Api-Token: abc123
        """
    )
    result = load(tmp_path, {"s.yaml": STACK, "a.yaml": app})
    (warning,) = result.diagnostics
    assert warning.location.path == "webhooks[0].headers.X-Api-Token"


def test_file_secret_relative_to_the_manifest(tmp_path: Path) -> None:
    device = device_yaml().replace("{env: KEY}", "{file: keys/sensor.key}")
    (tmp_path / "devices" / "keys").mkdir(parents=True)
    (tmp_path / "devices" / "keys" / "sensor.key").write_text(KEY + "\n")
    files = {"s.yaml": STACK, "a.yaml": APP, "devices/d.yaml": device}
    key = only_device(load(tmp_path, files))["root_keys.app_key.key"]
    assert isinstance(key, Secret)
    assert key.source == "file:keys/sensor.key"


def test_secret_values_never_show() -> None:
    secret = Secret(KEY.upper(), "env:KEY")
    assert KEY.upper() not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    # Same normalised value, same fingerprint: lower-case input is upper-cased first.
    assert secret.fingerprint() == Secret(types.parse_aes_key(KEY), "inline").fingerprint()
    assert secret.fingerprint() != Secret("0" * 32).fingerprint()
    assert KEY.upper() not in secret.fingerprint()
    assert secret == Secret(KEY.upper(), "file:x") and secret != Secret("0" * 32)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    bad = "0011223344556677889XAABBCCDDEEFF"
    with pytest.raises(ValidationError) as raised:
        DeviceDocument.model_validate(
            {"kind": "Device", "application": "farm-app", "id": "sensor-one", "app_key": bad},
            context={"secrets": SecretContext(environ={})},
        )
    # The models hide inputs in error text; load_manifests reports errors without inputs.
    assert bad not in str(raised.value) + repr(raised.value)
    assert bad not in repr(raised.value.errors(include_input=False))


def test_loaded_devices_do_not_print_keys(tmp_path: Path) -> None:
    result = load(tmp_path, {"s.yaml": STACK, "a.yaml": APP, "d.yaml": device_yaml()})
    text = repr(result.project) + repr(tts_project(result.project).devices)
    assert KEY not in text.lower()


# --- the target -------------------------------------------------------------------------------


def test_url_override_and_separate_server_urls(tmp_path: Path) -> None:
    stack = STACK.replace(
        "url: https://eu1.cloud.thethings.network\n",
        "url: https://eu2.cloud.thethings.network\n"
        "identity_server_url: https://eu1.cloud.thethings.network/\n",
    )
    target = tts_project(load(tmp_path, {"s.yaml": stack}).project).target
    assert target is not None
    assert target.api_base("identity") == "https://eu1.cloud.thethings.network/api/v3"
    assert target.api_base("join") == "https://eu2.cloud.thethings.network/api/v3"
    assert target.user_agent.startswith("reconciler/")
    assert target.ownership_key == "managed-by"
    assert (target.prune, target.change_threshold) == (False, 0.3)
    local = target.with_url_override("http://127.0.0.1:1885/api/v3")
    assert {local.api_base(r) for r in ("identity", "network", "application", "join")} == {
        "http://127.0.0.1:1885/api/v3"
    }


def test_stack_without_urls_needs_the_override(tmp_path: Path) -> None:
    stack = STACK.replace("url: https://eu1.cloud.thethings.network\n", "")
    (error,) = errors(load(tmp_path, {"s.yaml": stack}))
    assert "no server URL" in error.message
    result = load(tmp_path, {"s.yaml": stack}, url_override="http://localhost:1885")
    assert not result.diagnostics


def test_api_key_is_never_inline_and_resolves_late(tmp_path: Path) -> None:
    inline = STACK + "api_key: NNSXS.ABC.DEF\n"
    (error,) = errors(load(tmp_path, {"s.yaml": inline}))
    assert "never written inline" in error.message and "NNSXS.ABC.DEF" not in str(error)
    target = tts_project(load(tmp_path, {"s.yaml": STACK}).project).target
    assert target is not None
    assert target.resolve_api_key({"TTS_API_KEY": "NNSXS.X.Y\n"}).reveal() == "NNSXS.X.Y"
    with pytest.raises(ManifestError) as raised:
        target.resolve_api_key({})
    (error,) = raised.value.diagnostics
    assert error.location.file.endswith("s.yaml") and "TTS_API_KEY" in error.message


def test_owner_comes_from_the_resource_or_the_stack(tmp_path: Path) -> None:
    stack = STACK.replace("owner: {user: admin-user}\n", "")
    gateway = "kind: Gateway\nid: gw-one\nowner: {organization: acme-org}\n"
    result = load(tmp_path, {"s.yaml": stack, "a.yaml": APP, "g.yaml": gateway})
    (error,) = errors(result)
    assert "application `farm-app` has no owner" in error.message
    assert str(tts_project(result.project).gateways[0].owner) == "organization acme-org"


def test_no_manifests_is_an_error(tmp_path: Path) -> None:
    result = load_manifests([tmp_path], environ={}, kinds=MANIFEST_KINDS)
    assert result.has_errors
    assert "no manifest files" in result.errors[0].message


# --- JSON Schemas -----------------------------------------------------------------------------


def test_committed_schemas_are_up_to_date() -> None:
    committed = {p.name: p.read_text(encoding="utf-8") for p in (REPO / "schemas").glob("*.json")}
    assert committed == schemas(schema_models()), "schemas/ is stale: run `reconciler schema`"


def test_schema_command_writes_every_kind(tmp_path: Path) -> None:
    result = run_cli("schema", "--out", str(tmp_path), env={})
    assert result.returncode == 0, result.stderr
    written = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()}
    assert written == schemas(schema_models())
    combined = schemas(schema_models())["manifest.schema.json"]
    for kind in ("Stack", "Application", "Device", "Fleet", "Gateway"):
        assert f'"{kind}": "#/$defs/{kind}"' in combined
