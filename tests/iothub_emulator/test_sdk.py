"""Every IoTHubRegistryManager operation of Microsoft's `azure-iot-hub` SDK against the served
emulator: the SDK's own request shapes, status-code checks and model parsing."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest
from azure.iot.hub.protocol.models import (
    AuthenticationMechanism,
    ExportImportDevice,
    QuerySpecification,
    SymmetricKey,
    Twin,
    TwinProperties,
)
from msrest.exceptions import HttpOperationError

THUMB_A = "A" * 40
THUMB_B = "b" * 64


def key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def failure(call: Any, *args: Any) -> tuple[int, str]:
    """(status, iothub-errorcode) of an SDK call that must fail."""
    with pytest.raises(HttpOperationError) as caught:
        call(*args)
    response = caught.value.response
    message = response.json()["Message"]
    assert message.startswith(f"ErrorCode:{response.headers['iothub-errorcode']};"), message
    return response.status_code, response.headers["iothub-errorcode"]


def test_create_with_sas_generates_keys_when_none_are_given(sdk: Any) -> None:
    device = sdk.create_device_with_sas("sdk-gen", None, None, "enabled")
    keys = device.authentication.symmetric_key
    assert len(base64.b64decode(keys.primary_key)) == 32
    assert keys.primary_key != keys.secondary_key
    assert device.authentication.type == "sas"
    assert device.etag == "MA=="
    assert device.connection_state == "Disconnected"
    assert device.cloud_to_device_message_count == 0
    assert len(device.generation_id) == 18


def test_create_with_sas_keeps_given_keys_and_rejects_recreate(sdk: Any) -> None:
    primary, secondary = key(), key()
    device = sdk.create_device_with_sas("sdk-keys", primary, secondary, "disabled")
    assert device.authentication.symmetric_key.primary_key == primary
    assert device.authentication.symmetric_key.secondary_key == secondary
    assert device.status == "disabled"
    assert failure(sdk.create_device_with_sas, "sdk-keys", None, None, "enabled") == (
        409,
        "DeviceAlreadyExists",
    )


def test_create_with_x509_and_certificate_authority(sdk: Any) -> None:
    device = sdk.create_device_with_x509("sdk-x509", THUMB_A, THUMB_B, "enabled")
    assert device.authentication.type == "selfSigned"
    assert device.authentication.x509_thumbprint.primary_thumbprint == THUMB_A
    assert device.authentication.symmetric_key.primary_key is None
    ca = sdk.create_device_with_certificate_authority("sdk-ca", "enabled")
    assert ca.authentication.type == "certificateAuthority"
    assert ca.authentication.x509_thumbprint.primary_thumbprint is None
    status, code = failure(sdk.create_device_with_x509, "sdk-x509-bad", "xyz", None, "enabled")
    assert (status, code) == (400, "ArgumentInvalid")


def test_update_with_etag_get_and_stale_etag(sdk: Any) -> None:
    created = sdk.create_device_with_sas("sdk-upd", key(), key(), "enabled")
    updated = sdk.update_device_with_sas(
        "sdk-upd", created.etag, None, None, "disabled", status_reason="maintenance"
    )
    assert updated.etag != created.etag
    assert updated.status == "disabled"
    assert updated.status_reason == "maintenance"
    # A PUT update replaces the identity: keys left out are generated anew.
    assert updated.authentication.symmetric_key.primary_key != (
        created.authentication.symmetric_key.primary_key
    )
    assert sdk.get_device("sdk-upd").etag == updated.etag
    stale = (sdk.update_device_with_sas, "sdk-upd", created.etag, None, None, "enabled")
    assert failure(*stale) == (412, "PreconditionFailed")
    # etag None: the SDK sends "*", an unconditional update.
    forced = sdk.update_device_with_x509("sdk-upd", None, THUMB_A, None, "enabled")
    assert forced.authentication.type == "selfSigned"
    ca = sdk.update_device_with_certificate_authority("sdk-upd", forced.etag, "enabled")
    assert ca.authentication.type == "certificateAuthority"
    assert failure(sdk.update_device_with_sas, "sdk-missing", None, None, None, "enabled") == (
        404,
        "DeviceNotFound",
    )


def test_get_missing_device_and_delete_with_etag(sdk: Any) -> None:
    assert failure(sdk.get_device, "sdk-nobody") == (404, "DeviceNotFound")
    created = sdk.create_device_with_sas("sdk-del", None, None, "enabled")
    updated = sdk.update_device_with_sas("sdk-del", None, None, None, "enabled")
    assert failure(sdk.delete_device, "sdk-del", created.etag) == (412, "PreconditionFailed")
    sdk.delete_device("sdk-del", updated.etag)
    assert failure(sdk.get_device, "sdk-del") == (404, "DeviceNotFound")
    assert failure(sdk.delete_device, "sdk-del") == (404, "DeviceNotFound")
    again = sdk.create_device_with_sas("sdk-del", None, None, "enabled")
    assert again.generation_id != created.generation_id
    sdk.delete_device("sdk-del")  # etag None: "*"


def test_get_devices_lists_identities(sdk: Any) -> None:
    for index in range(3):
        sdk.create_device_with_sas(f"sdk-list-{index}", None, None, "enabled")
    listed = {device.device_id for device in sdk.get_devices(1000)}
    assert {"sdk-list-0", "sdk-list-1", "sdk-list-2"} <= listed
    assert len(sdk.get_devices(2)) == 2


def test_edge_device_scope_and_leaf_link(sdk: Any) -> None:
    edge = sdk.create_device_with_sas("sdk-edge", None, None, "enabled", iot_edge=True)
    assert edge.capabilities.iot_edge is True
    assert edge.device_scope.startswith("ms-azure-iot-edge://sdk-edge-")
    leaf = sdk.create_device_with_sas(
        "sdk-leaf", None, None, "enabled", device_scope=edge.device_scope
    )
    assert leaf.device_scope == edge.device_scope
    assert leaf.parent_scopes == [edge.device_scope]
    # The scope of an edge device is the hub's: an update cannot change it.
    kept = sdk.update_device_with_sas(
        "sdk-edge", None, None, None, "enabled", iot_edge=True, device_scope="other"
    )
    assert kept.device_scope == edge.device_scope


def test_bulk_create_update_and_delete(sdk: Any) -> None:
    created = sdk.bulk_create_or_update_devices(
        [
            ExportImportDevice(id="sdk-bulk-1", import_mode="create", status="enabled"),
            ExportImportDevice(
                id="sdk-bulk-2",
                import_mode="create",
                status="enabled",
                authentication=AuthenticationMechanism(
                    type="sas", symmetric_key=SymmetricKey(primary_key=key(), secondary_key=key())
                ),
                tags={"site": "north"},
            ),
        ]
    )
    assert created.is_successful is True
    assert created.errors == [] and created.warnings == []
    assert sdk.get_twin("sdk-bulk-2").tags == {"site": "north"}
    etag = sdk.get_device("sdk-bulk-1").etag
    mixed = sdk.bulk_create_or_update_devices(
        [
            ExportImportDevice(id="sdk-bulk-1", import_mode="updateIfMatchETag", e_tag="bm9wZQ=="),
            ExportImportDevice(id="sdk-bulk-2", import_mode="delete"),
            ExportImportDevice(id="sdk-bulk-3", import_mode="update", status="enabled"),
        ]
    )
    assert mixed.is_successful is False
    failed = {error.device_id: error.error_code for error in mixed.errors}
    assert failed == {"sdk-bulk-1": "PreconditionFailed", "sdk-bulk-3": "DeviceNotFound"}
    assert failure(sdk.get_device, "sdk-bulk-2") == (404, "DeviceNotFound")
    matched = sdk.bulk_create_or_update_devices(
        [
            ExportImportDevice(
                id="sdk-bulk-1", import_mode="updateIfMatchETag", e_tag=etag, status="disabled"
            )
        ]
    )
    assert matched.is_successful is True
    assert sdk.get_device("sdk-bulk-1").status == "disabled"


def test_twin_get_update_replace_with_etags(sdk: Any) -> None:
    sdk.create_device_with_sas("sdk-twin", None, None, "enabled")
    twin = sdk.get_twin("sdk-twin")
    assert twin.etag == "AAAAAAAAAAE="
    assert twin.device_etag == "MA=="
    assert twin.properties.desired["$version"] == 1
    patched = sdk.update_twin(
        "sdk-twin",
        Twin(tags={"site": "a", "floor": 1}, properties=TwinProperties(desired={"rate": 5})),
        twin.etag,
    )
    assert patched.tags == {"site": "a", "floor": 1}
    assert patched.properties.desired["rate"] == 5
    assert patched.version == twin.version + 1
    removed = sdk.update_twin("sdk-twin", Twin(tags={"floor": None}))
    assert removed.tags == {"site": "a"}
    status_code = failure(sdk.update_twin, "sdk-twin", Twin(tags={"x": 1}), twin.etag)
    assert status_code == (412, "PreconditionFailed")
    replaced = sdk.replace_twin(
        "sdk-twin", Twin(tags={"only": True}, properties=TwinProperties(desired={"b": 2}))
    )
    assert replaced.tags == {"only": True}
    assert {k: v for k, v in replaced.properties.desired.items() if not k.startswith("$")} == {
        "b": 2
    }
    assert failure(sdk.get_twin, "sdk-no-twin") == (404, "DeviceNotFound")


def test_query_with_paging_and_continuation(sdk: Any) -> None:
    for index in range(7):
        sdk.create_device_with_sas(f"sdk-q-{index}", None, None, "enabled")
        sdk.update_twin(f"sdk-q-{index}", Twin(tags={"fleet": "q", "n": index}))
    query = QuerySpecification(query="SELECT * FROM devices WHERE tags.fleet = 'q'")
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        result = sdk.query_iot_hub(query, token, 3)
        assert result.type == "twin"
        assert len(result.items) <= 3
        seen.extend(item.device_id for item in result.items)
        pages += 1
        token = result.continuation_token
        if not token:
            break
    assert seen == [f"sdk-q-{index}" for index in range(7)]
    assert pages == 3
    counted = sdk.query_iot_hub(
        QuerySpecification(query="SELECT COUNT() AS n FROM devices WHERE tags.n >= 5")
    )
    # The SDK parses every item as a Twin; the aggregate lands in its additional properties.
    assert [item.additional_properties for item in counted.items] == [{"n": 2}]


def test_modules_and_module_twins(sdk: Any) -> None:
    sdk.create_device_with_sas("sdk-mod", None, None, "enabled")
    module = sdk.create_module_with_sas("sdk-mod", "m1", "IotEdge", None, None)
    assert module.module_id == "m1" and module.managed_by == "IotEdge"
    assert module.etag == "MA=="
    sdk.create_module_with_x509("sdk-mod", "m2", None, THUMB_A, THUMB_A)
    sdk.create_module_with_certificate_authority("sdk-mod", "m3", None)
    assert sorted(m.module_id for m in sdk.get_modules("sdk-mod")) == ["m1", "m2", "m3"]
    assert failure(sdk.create_module_with_sas, "sdk-mod", "m1", None, None, None) == (
        409,
        "ModuleAlreadyExistsOnDevice",
    )
    updated = sdk.update_module_with_sas("sdk-mod", "m1", "me", module.etag, key(), key())
    assert updated.etag != module.etag and updated.managed_by == "me"
    assert failure(sdk.update_module_with_sas, "sdk-mod", "m1", "me", module.etag, None, None) == (
        412,
        "PreconditionFailed",
    )
    sdk.update_module_with_x509("sdk-mod", "m2", None, None, THUMB_B, None)
    sdk.update_module_with_certificate_authority("sdk-mod", "m3", None, None)
    assert sdk.get_module("sdk-mod", "m2").authentication.x509_thumbprint.primary_thumbprint == (
        THUMB_B
    )
    twin = sdk.get_module_twin("sdk-mod", "m1")
    assert twin.module_id == "m1" and twin.device_id == "sdk-mod"
    patched = sdk.update_module_twin(
        "sdk-mod", "m1", Twin(properties=TwinProperties(desired={"a": 1})), twin.etag
    )
    assert patched.properties.desired["a"] == 1
    replaced = sdk.replace_module_twin("sdk-mod", "m1", Twin(tags={"t": 1}))
    assert replaced.tags == {"t": 1} and "a" not in replaced.properties.desired
    modules = sdk.query_iot_hub(
        QuerySpecification(query="SELECT * FROM devices.modules WHERE deviceId = 'sdk-mod'")
    )
    assert sorted(item.module_id for item in modules.items) == ["m1", "m2", "m3"]
    sdk.delete_module("sdk-mod", "m2")
    assert failure(sdk.get_module, "sdk-mod", "m2") == (404, "ModuleNotFound")
    sdk.delete_device("sdk-mod")
    assert failure(sdk.get_module_twin, "sdk-mod", "m1") == (404, "DeviceNotFound")


def test_statistics(sdk: Any) -> None:
    before = sdk.get_device_registry_statistics()
    sdk.create_device_with_sas("sdk-stats-on", None, None, "enabled")
    sdk.create_device_with_sas("sdk-stats-off", None, None, "disabled")
    after = sdk.get_device_registry_statistics()
    assert after.total_device_count == before.total_device_count + 2
    assert after.enabled_device_count == before.enabled_device_count + 1
    assert after.disabled_device_count == before.disabled_device_count + 1
    assert sdk.get_service_statistics().connected_device_count == 0
