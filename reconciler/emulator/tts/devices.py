"""Identity Server end-device registry (metadata), FACTS §a/§d."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import decode_timestamp, message, now_timestamp, timestamp_key
from reconciler.emulator.tts.common import (
    check_blocklist,
    decode_request,
    list_params,
    mask_from_body,
    mask_from_query,
    not_found,
    output,
    paginate,
    require_app,
    sort_entities,
    validate_masked,
)
from reconciler.emulator.tts.events import device_identifiers, paths_data, publish_batch_delete
from reconciler.emulator.tts.fieldmask import check_allowed, merge
from reconciler.emulator.tts.validate import validate_request

if TYPE_CHECKING:
    from reconciler.emulator.state import Table
    from reconciler.emulator.tts.app import Call, Operation

IS = "pkg/identityserver"
READ = "RIGHT_APPLICATION_DEVICES_READ"
WRITE = "RIGHT_APPLICATION_DEVICES_WRITE"


def device_key(app_id: str, dev_id: str) -> str:
    return f"{app_id}/{dev_id}"


def _device_not_found(app_id: str, dev_id: str) -> errors.TTSError:
    return not_found(
        "pkg/identityserver/store",
        "end_device_not_found",
        "end device `{device_uid}` not found",
        device_uid=f"{app_id}.{dev_id}",
    )


def _application_not_found(app_id: str) -> errors.TTSError:
    return not_found(
        "pkg/identityserver/store",
        "application_not_found",
        "application `{application_id}` not found",
        application_id=app_id,
    )


def _live_app(call: Call, app_id: str) -> dict[str, Any]:
    record = call.store.applications.get(app_id)
    if record is None or record["application"].get("deleted_at"):
        raise _application_not_found(app_id)
    return dict(record["application"])


def _host(address: str) -> str:
    return urlsplit("//" + address).hostname or address


def _check_addresses(app: dict[str, Any], device: dict[str, Any]) -> None:
    for server in ("network_server", "application_server", "join_server"):
        app_address = app.get(f"{server}_address")
        dev_address = device.get(f"{server}_address")
        if app_address and dev_address and _host(app_address) != _host(dev_address):
            raise errors.TTSError(
                IS,
                f"{server}_address_mismatch",
                f"{server.replace('_', ' ')} address `{{device_address}}` does not match "
                f"application {server.replace('_', ' ')} address `{{application_address}}`",
                errors.INVALID_ARGUMENT,
                {"device_address": dev_address, "application_address": app_address},
            )


def eui_index(call: Call, table: Table) -> dict[tuple[str, str], str]:
    """(JoinEUI, DevEUI) -> device key of one device table, built on first use and kept up to
    date by the table's writers: a uniqueness check per write in O(1), not a scan of every
    device (which made creating 10,000 devices quadratic)."""
    index = call.emu.eui_indexes.get(table.name)
    if index is None:
        index = {}
        for key, device in table.items():
            pair = eui_pair(device)
            if pair is not None:
                index[pair] = key
        call.emu.eui_indexes[table.name] = index
    return index


def eui_pair(device: dict[str, Any]) -> tuple[str, str] | None:
    ids = device.get("ids", {})
    dev_eui = ids.get("dev_eui")
    if not dev_eui:
        return None
    return ids.get("join_eui", ""), dev_eui


def _euis_taken(call: Call, device: dict[str, Any]) -> None:
    pair = eui_pair(device)
    holder = None if pair is None else eui_index(call, call.store.is_devices).get(pair)
    if pair is None or holder is None:
        return
    join_eui, dev_eui = pair
    other_ids = call.store.is_devices.get(holder)["ids"]
    raise errors.TTSError(
        IS,
        "end_device_euis_taken",
        "an end device with JoinEUI `{join_eui}` and DevEUI `{dev_eui}` is already "
        "registered as `{device_id}` in application `{application_id}`",
        errors.ALREADY_EXISTS,
        {
            "join_eui": join_eui or "0000000000000000",
            "dev_eui": dev_eui,
            "device_id": other_ids["device_id"],
            "application_id": other_ids["application_ids"]["application_id"],
        },
    )


def _remove(call: Call, key: str) -> dict[str, Any] | None:
    """Delete an Identity Server device record and free its EUI pair."""
    return remove_device(call, call.store.is_devices, key)


def remove_device(call: Call, table: Table, key: str) -> dict[str, Any] | None:
    """Delete a device record from any registry's `table` and free its EUI pair in the
    table's index."""
    device: dict[str, Any] | None = table.delete(key)
    if device is not None:
        pair = eui_pair(device)
        index = eui_index(call, table)
        if pair is not None and index.get(pair) == key:
            del index[pair]
    return device


def create(call: Call) -> dict[str, Any]:
    app_id = call.params["app"]
    request = decode_request("CreateEndDeviceRequest", call.body)
    device = request.setdefault("end_device", {})
    device.setdefault("ids", {})["application_ids"] = {"application_id": app_id}
    validate_request("CreateEndDeviceRequest", request)
    dev_id = device["ids"]["device_id"]
    check_blocklist(dev_id)
    require_app(call, app_id, WRITE)
    app = _live_app(call, app_id)
    _check_addresses(app, device)
    call.before_write()
    key = device_key(app_id, dev_id)
    if key in call.store.is_devices:
        raise errors.id_taken()
    _euis_taken(call, device)
    stored = {k: v for k, v in device.items() if k not in ("created_at", "updated_at")}
    # Only the IS's own fields are stored (the IS ignores what other servers own).
    allowed = message("EndDevice").fields
    from reconciler.providers.tts import reference

    own = reference.rpc_field_masks()["EndDeviceRegistry/Get"].allowed
    stored = {k: v for k, v in stored.items() if k in own and k in allowed}
    stored["ids"].pop("dev_addr", None)
    now = now_timestamp()
    stored["created_at"] = now
    stored["updated_at"] = now
    pair = eui_pair(stored)
    if pair is not None:
        eui_index(call, call.store.is_devices)[pair] = key
    call.store.is_devices.put(key, stored)
    call.emu.events.publish("end_device.create", device_identifiers(stored["ids"]))
    return output("EndDevice", stored, None)


def get(call: Call) -> dict[str, Any]:
    app_id, dev_id = call.params["app"], call.params["dev"]
    paths = mask_from_query(call)
    check_allowed("EndDeviceRegistry/Get", paths)
    require_app(call, app_id, READ)
    device = call.store.is_devices.get(device_key(app_id, dev_id))
    if device is None:
        raise _device_not_found(app_id, dev_id)
    return output("EndDevice", device, paths)


def _list(
    call: Call, paths: list[str], updated_since: str | None, overrides: dict[str, str] | None = None
) -> Any:
    from reconciler.emulator.tts.app import JSONResponse

    app_id = call.params["app"]
    check_allowed("EndDeviceRegistry/List", paths)
    order, limit, page = list_params(call, "ListEndDevicesRequest", overrides)
    require_app(call, app_id, READ)
    prefix = app_id + "/"
    devices = [d for k, d in call.store.is_devices.items() if k.startswith(prefix)]
    if updated_since:
        since = timestamp_key(updated_since)
        devices = [d for d in devices if timestamp_key(d["updated_at"]) > since]
    keys: dict[str, Any] = {
        "device_id": lambda d: d["ids"]["device_id"],
        "join_eui": lambda d: (d["ids"].get("join_eui", ""), d["ids"]["device_id"]),
        "dev_eui": lambda d: (d["ids"].get("dev_eui", ""), d["ids"]["device_id"]),
        "name": lambda d: (d.get("name", ""), d["ids"]["device_id"]),
        "description": lambda d: (d.get("description", ""), d["ids"]["device_id"]),
        "created_at": lambda d: timestamp_key(d["created_at"]),
        "last_seen_at": lambda d: (d.get("last_seen_at", ""), d["ids"]["device_id"]),
    }
    devices = sort_entities(devices, order, "device_id", keys)
    selected = paginate(devices, limit, page)
    body = {"end_devices": [output("EndDevice", d, paths) for d in selected]} if selected else {}
    return JSONResponse(body, 200, {"X-Total-Count": str(len(devices))})


def list_(call: Call) -> Any:
    return _list(call, mask_from_query(call), None)


def list_filtered(call: Call) -> Any:
    body = call.body
    paths = mask_from_body(body)
    since = None
    filters = body.get("filters") or []
    if not isinstance(filters, list):
        raise errors.DecodeError("invalid value for repeated field filters")
    for filter_ in filters:
        if isinstance(filter_, dict) and filter_.get("updated_since"):
            since = decode_timestamp(filter_["updated_since"], "updated_since")
            # The filter's rule: a moment in the past.
            validate_request(
                "ListEndDevicesRequest",
                {
                    "application_ids": {"application_id": call.params["app"]},
                    "filters": [{"updated_since": since}],
                },
            )
    overrides = {k: str(body[k]) for k in ("order", "limit", "page") if body.get(k) is not None}
    return _list(call, paths, since, overrides)


def update(call: Call) -> dict[str, Any]:
    app_id, dev_id = call.params["app"], call.params["dev"]
    request = decode_request("UpdateEndDeviceRequest", call.body)
    device = request.setdefault("end_device", {})
    ids = device.setdefault("ids", {})
    ids["application_ids"] = {"application_id": app_id}
    ids["device_id"] = dev_id
    paths = list(request.get("field_mask", {}).get("paths", []))
    check_allowed("EndDeviceRegistry/Update", paths)
    validate_masked(
        "UpdateEndDeviceRequest",
        request,
        "end_device",
        paths,
        ["ids.application_ids", "ids.device_id"],
    )
    require_app(call, app_id, WRITE)
    key = device_key(app_id, dev_id)
    stored = call.store.is_devices.get(key)
    if stored is None:
        raise _device_not_found(app_id, dev_id)
    if paths:
        app = _live_app(call, app_id)
        _check_addresses(app, {**stored, **{k: device.get(k) for k in paths if "." not in k}})
    call.before_write()
    updated = dict(stored)
    # activated_at can not be unset: a zero value is dropped from the mask.
    effective = [p for p in paths if not (p == "activated_at" and not device.get("activated_at"))]
    merge(updated, device, effective)
    updated["updated_at"] = now_timestamp()
    call.store.is_devices.put(key, updated)
    call.emu.events.publish(
        "end_device.update", device_identifiers(updated["ids"]), paths_data(paths)
    )
    return output("EndDevice", updated, paths)


def delete(call: Call) -> dict[str, Any]:
    app_id, dev_id = call.params["app"], call.params["dev"]
    require_app(call, app_id, WRITE)
    key = device_key(app_id, dev_id)
    if key not in call.store.is_devices:
        raise _device_not_found(app_id, dev_id)
    call.before_write()
    device = _remove(call, key)
    assert device is not None  # checked above, in the same step
    call.emu.events.publish("end_device.delete", device_identifiers(device["ids"]))
    return {}


def batch_ids(call: Call, request_type: str) -> list[str]:
    ids = [i for raw in call.query_list("device_ids") for i in raw.split(",") if i]
    request = {
        "application_ids": {"application_id": call.params["app"]},
        "device_ids": ids,
    }
    validate_request(request_type, request)
    return ids


def batch_get(call: Call) -> dict[str, Any]:
    app_id = call.params["app"]
    paths = mask_from_query(call)
    check_allowed("EndDeviceBatchRegistry/Get", paths)
    ids = batch_ids(call, "BatchGetEndDevicesRequest")
    require_app(call, app_id, READ)
    found = [call.store.is_devices.get(device_key(app_id, i)) for i in ids]
    devices = [output("EndDevice", d, paths) for d in found if d is not None]
    return {"end_devices": devices} if devices else {}


def batch_delete(call: Call) -> dict[str, Any]:
    app_id = call.params["app"]
    ids = batch_ids(call, "BatchDeleteEndDevicesRequest")
    require_app(call, app_id, WRITE)
    call.before_write()
    deleted = []
    for dev_id in ids:
        device = _remove(call, device_key(app_id, dev_id))
        if device is not None:
            deleted.append(device["ids"])
    publish_batch_delete(call, "", app_id, deleted)
    return {}


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    base = "/applications/{app}/devices"
    return [
        Operation("GET", f"{base}/batch", "EndDeviceBatchRegistry/Get", batch_get),
        Operation(
            "DELETE", f"{base}/batch", "EndDeviceBatchRegistry/Delete", batch_delete, write=True
        ),
        Operation("POST", f"{base}/filter", "EndDeviceRegistry/List", list_filtered, body=True),
        Operation("POST", base, "EndDeviceRegistry/Create", create, write=True, body=True),
        Operation("GET", base, "EndDeviceRegistry/List", list_),
        Operation("GET", f"{base}/{{dev}}", "EndDeviceRegistry/Get", get),
        Operation(
            "PUT", f"{base}/{{dev}}", "EndDeviceRegistry/Update", update, write=True, body=True
        ),
        Operation("DELETE", f"{base}/{{dev}}", "EndDeviceRegistry/Delete", delete, write=True),
    ]
