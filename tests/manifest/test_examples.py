"""The shipped example manifests validate in a fresh clone with `manifests/example.env`."""

from __future__ import annotations

from reconciler.manifest.load import load_manifests
from reconciler.manifest.secrets import Secret
from reconciler.providers.registry import MANIFEST_KINDS
from reconciler.providers.tts.manifest.project import tts_project
from tests.manifest.support import MANIFESTS, example_environ, run_cli


def test_validate_examples_exits_0_with_a_summary() -> None:
    environ = example_environ()
    result = run_cli("validate", "manifests", env=environ)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "valid: stack orchard-north: 1 organization, 2 applications, 1 webhook, 1 pubsub, "
        "2 package associations, 54 devices, 2 gateways, 2 API keys, 1 collaborator, "
        "12 iothub devices, 1 iothub module (11 files)" in (result.stdout)
    )
    assert result.stderr == ""  # no warnings either
    for value in environ.values():
        assert value not in result.stdout


def test_validate_examples_without_the_env_file_names_the_missing_variables() -> None:
    result = run_cli("validate", "manifests", env={})
    assert result.returncode == 1
    assert "environment variable `SOIL_ROW_01_APP_KEY` is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_project_content() -> None:
    result = load_manifests([MANIFESTS], environ=example_environ(), kinds=MANIFEST_KINDS)
    assert not result.diagnostics
    project = tts_project(result.project)
    assert project.target is not None
    assert project.target.stack == "orchard-north"
    assert {a.owner.id for a in project.applications} == {"admin-user"}
    gateways = {g.gateway_id: g for g in project.gateways}
    assert gateways["orchard-gw-shed"].owner.id == "orchard-coop"  # owned by the organization
    (link,) = gateways["orchard-gw-barn"].api_keys or []
    assert link.rights == ("RIGHT_GATEWAY_LINK",)
    assert link.sink.describe() == "file ../secrets/orchard-gw-barn-link.key (mode 0600)"
    (org,) = project.organizations
    assert org.organization_id == "orchard-coop"
    sensors_collaborators = project.application("orchard-sensors").collaborators  # type: ignore[union-attr]
    assert [str(c.member) for c in sensors_collaborators or []] == ["organization orchard-coop"]

    devices = {d.device_id: d for d in project.devices}
    assert len(devices) == 54
    weather = devices["weather-mast-01"].fields
    assert weather["lorawan_version"] == "MAC_V1_1"
    assert weather["lorawan_phy_version"] == "PHY_V1_1_REV_B"
    assert isinstance(weather["root_keys.nwk_key.key"], Secret)
    relay = devices["pump-relay-01"].fields
    assert relay["supports_join"] is False
    assert relay["session.dev_addr"] == "260B1F2A"
    assert devices["valve-east-01"].fields["supports_class_c"] is True
    # Rows without an id get `eui-<lowercase DevEUI>`, as the TTS CSV importer does.
    derived = devices["eui-0004a30b00200031"]
    assert derived.fields["ids.dev_eui"] == "0004A30B00200031"
    assert derived.fields["root_keys.app_key.key"].source.startswith("file:")
    assert derived.location.file.endswith("soil-fleet.csv")
    assert derived.location.line == 50

    sensors = project.application("orchard-sensors")
    assert sensors is not None
    assert sensors.link is not None
    assert "function decodeUplink" in sensors.link["default_formatters.up_formatter_parameter"]
    (hook,) = sensors.webhooks
    assert hook.fields["uplink_message"] == {"path": "/uplink"}
    assert hook.fields["location_solved"] == {"path": "/location"}
    assert "downlink_ack" not in hook.fields
    assert hook.fields["headers"]["Authorization"].reveal().startswith("Bearer ")


def test_examples_carry_the_schema_modeline() -> None:
    for path in MANIFESTS.rglob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        schema = (path.parent / first.split("$schema=", 1)[1]).resolve()
        assert schema.is_file(), path
