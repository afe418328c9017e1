"""Application Server: end-device registry, application link, webhooks, downlink queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import encode_message, message, now_timestamp
from reconciler.emulator.tts.common import (
    decode_request,
    field_value,
    mask_from_query,
    not_found,
    output,
    require_app,
    validate_masked,
)
from reconciler.emulator.tts.devices import device_key
from reconciler.emulator.tts.fieldmask import (
    check_allowed,
    check_non_zero,
    get_path,
    merge,
    project,
)
from reconciler.emulator.tts.registry import DeviceRegistry, apply_ids_on_create
from reconciler.emulator.tts.validate import validate_request

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation

AS = "pkg/applicationserver"
SETTINGS_BASIC = "RIGHT_APPLICATION_SETTINGS_BASIC"
TRAFFIC_READ = "RIGHT_APPLICATION_TRAFFIC_READ"
TRAFFIC_DOWN_WRITE = "RIGHT_APPLICATION_TRAFFIC_DOWN_WRITE"
DEPRECATED_LINK_PATHS = ("api_key", "network_server_address", "tls")


class ApplicationServer(DeviceRegistry):
    component = "as"
    service = "AsEndDeviceRegistry"
    table_name = "as_devices"
    namespace = AS
    read_only_namespace = "pkg/applicationserver/redis"
    read_key_paths = ("session.keys.app_s_key.key", "pending_session.keys.app_s_key.key")
    write_key_paths = ("session.keys.app_s_key.key", "session.keys.session_key_id")

    def prepare(
        self,
        call: Call,
        existing: dict[str, Any] | None,
        device: dict[str, Any],
        paths: list[str],
    ) -> dict[str, Any]:
        merged: dict[str, Any] = existing if existing is not None else {}
        if existing is None:
            apply_ids_on_create(merged, device)
            sent_addr = device["ids"].get("dev_addr")
            if sent_addr and sent_addr != get_path(device, "session.dev_addr"):
                raise field_value(AS, "ids.dev_addr")
        merge(merged, device, [p for p in paths if p != "ids" and not p.startswith("ids.")])
        for path in ("session.dev_addr", "session.keys.app_s_key.key"):
            if path in paths and not get_path(merged, path):
                raise field_value(AS, path)
        dev_addr = get_path(merged, "session.dev_addr")
        if dev_addr:
            merged["ids"]["dev_addr"] = dev_addr
        return merged


REGISTRY = ApplicationServer()


# --- link ------------------------------------------------------------------------------------


def _link_not_found() -> errors.TTSError:
    return not_found("pkg/redis", "not_found", "entity not found")


def get_link(call: Call) -> dict[str, Any]:
    app_id = call.params["app"]
    paths = mask_from_query(call)
    check_allowed("As/GetLink", paths)
    require_app(call, app_id, SETTINGS_BASIC)
    link = call.store.links.get(app_id)
    if link is None:
        raise _link_not_found()
    return encode_message(message("ApplicationLink"), project(link, paths) if paths else link)


def set_link(call: Call) -> dict[str, Any]:
    app_id = call.params["app"]
    request = decode_request("SetApplicationLinkRequest", call.body)
    request["application_ids"] = {"application_id": app_id}
    request.setdefault("link", {})
    paths = list(request.get("field_mask", {}).get("paths", []))
    check_allowed("As/SetLink", paths)
    validate_masked("SetApplicationLinkRequest", request, "link", paths, [])
    require_app(call, app_id, SETTINGS_BASIC)
    call.before_write()
    effective = []
    for path in paths:
        if path.split(".")[0] in DEPRECATED_LINK_PATHS:
            call.warn(f"field {path} is deprecated")
        else:
            effective.append(path)
    link = dict(call.store.links.get(app_id) or {})
    merge(link, request["link"], effective)
    call.store.links.put(app_id, link)
    return encode_message(message("ApplicationLink"), project(link, effective))


def delete_link(call: Call) -> dict[str, Any]:
    app_id = call.params["app"]
    require_app(call, app_id, SETTINGS_BASIC)
    call.before_write()
    call.store.links.delete(app_id)
    return {}


# --- webhooks --------------------------------------------------------------------------------

WEBHOOK_WRITE = (SETTINGS_BASIC, TRAFFIC_READ, TRAFFIC_DOWN_WRITE)


def _webhook_ids(app_id: str, webhook_id: str) -> dict[str, Any]:
    return {"application_ids": {"application_id": app_id}, "webhook_id": webhook_id}


def get_webhook(call: Call) -> dict[str, Any]:
    app_id, webhook_id = call.params["app"], call.params["webhook"]
    paths = mask_from_query(call)
    check_allowed("ApplicationWebhookRegistry/Get", paths)
    require_app(call, app_id, TRAFFIC_READ)
    webhook = call.store.webhooks.get(f"{app_id}/{webhook_id}")
    if webhook is None:
        raise not_found("pkg/redis", "not_found", "entity not found")
    return output("ApplicationWebhook", webhook, paths)


def list_webhooks(call: Call) -> Any:
    from reconciler.emulator.tts.app import JSONResponse

    app_id = call.params["app"]
    paths = mask_from_query(call)
    check_allowed("ApplicationWebhookRegistry/List", paths)
    require_app(call, app_id, TRAFFIC_READ)
    prefix = app_id + "/"
    hooks = sorted(
        (w for k, w in call.store.webhooks.items() if k.startswith(prefix)),
        key=lambda w: w["ids"]["webhook_id"],
    )
    body = {"webhooks": [output("ApplicationWebhook", w, paths) for w in hooks]} if hooks else {}
    return JSONResponse(body, 200, {"X-Total-Count": str(len(hooks))})


def set_webhook(call: Call) -> dict[str, Any]:
    app_id = call.params["app"]
    request = decode_request("SetApplicationWebhookRequest", call.body)
    webhook = request.setdefault("webhook", {})
    ids = webhook.setdefault("ids", {})
    ids["application_ids"] = {"application_id": app_id}
    if "webhook" in call.params:
        ids["webhook_id"] = call.params["webhook"]
    paths = list(request.get("field_mask", {}).get("paths", []))
    check_allowed("ApplicationWebhookRegistry/Set", paths)
    check_non_zero("ApplicationWebhookRegistry/Set", paths, webhook)
    validate_masked("SetApplicationWebhookRequest", request, "webhook", paths, ["ids"])
    require_app(call, app_id, *WEBHOOK_WRITE)
    call.before_write()
    key = f"{app_id}/{ids['webhook_id']}"
    existing = call.store.webhooks.get(key)
    stored: dict[str, Any] = (
        dict(existing) if existing else {"ids": _webhook_ids(app_id, ids["webhook_id"])}
    )
    effective = [
        p
        for p in paths
        if p.split(".")[0] not in ("ids", "created_at", "updated_at", "health_status")
    ]
    merge(stored, webhook, effective)
    now = now_timestamp()
    stored.setdefault("created_at", now)
    stored["updated_at"] = now
    call.store.webhooks.put(key, stored)
    return output("ApplicationWebhook", stored, paths)


def delete_webhook(call: Call) -> dict[str, Any]:
    app_id, webhook_id = call.params["app"], call.params["webhook"]
    require_app(call, app_id, *WEBHOOK_WRITE)
    call.before_write()
    call.store.webhooks.delete(f"{app_id}/{webhook_id}")
    return {}


def webhook_formats(call: Call) -> dict[str, Any]:
    call.caller()
    return {"formats": {"json": "JSON", "protobuf": "Protocol Buffers"}}


# --- downlink queue --------------------------------------------------------------------------


def _queue_key(app_id: str, dev_id: str) -> str:
    return device_key(app_id, dev_id)


def _queue(call: Call, replace: bool) -> dict[str, Any]:
    app_id, dev_id = call.params["app"], call.params["dev"]
    request = decode_request("DownlinkQueueRequest", call.body)
    request["end_device_ids"] = {"application_ids": {"application_id": app_id}, "device_id": dev_id}
    validate_request("DownlinkQueueRequest", request)
    require_app(call, app_id, TRAFFIC_DOWN_WRITE)
    device = call.store.as_devices.get(device_key(app_id, dev_id))
    if device is None:
        raise not_found("pkg/redis", "not_found", "entity not found")
    if not device.get("session") and not device.get("pending_session"):
        # An OTAA device that never joined: nothing to encrypt the downlink with.
        raise errors.TTSError(
            AS,
            "no_device_session",
            "no device session; check device activation",
            errors.FAILED_PRECONDITION,
        )
    call.before_write()
    key = _queue_key(app_id, dev_id)
    queue = [] if replace else list(call.store.downlinks.get(key) or [])
    last = max(
        [d.get("f_cnt", 0) for d in queue] + [get_path(device, "session.last_a_f_cnt_down") or 0]
    )
    session_key_id = get_path(device, "session.keys.session_key_id")
    for downlink in request.get("downlinks", []):
        last += 1
        item = dict(downlink)
        item.setdefault("f_cnt", last)
        if session_key_id:
            item.setdefault("session_key_id", session_key_id)
        item.setdefault("correlation_ids", [f"as:downlink:{now_timestamp()}"])
        queue.append(item)
    call.store.downlinks.put(key, queue)
    call.emu.events.publish(
        "as.down.data.receive",
        [{"device_ids": device["ids"]}],
    )
    return {}


def push(call: Call) -> dict[str, Any]:
    return _queue(call, replace=False)


def replace(call: Call) -> dict[str, Any]:
    return _queue(call, replace=True)


def list_queue(call: Call) -> dict[str, Any]:
    app_id, dev_id = call.params["app"], call.params["dev"]
    require_app(call, app_id, TRAFFIC_READ)
    if call.store.as_devices.get(device_key(app_id, dev_id)) is None:
        raise not_found("pkg/redis", "not_found", "entity not found")
    queue = call.store.downlinks.get(_queue_key(app_id, dev_id)) or []
    schema = message("ApplicationDownlink")
    return {"downlinks": [encode_message(schema, d) for d in queue]} if queue else {}


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    down = "/as/applications/{app}/devices/{dev}/down"
    return [
        *REGISTRY.operations(),
        Operation("GET", "/as/applications/{app}/link", "As/GetLink", get_link),
        Operation(
            "PUT", "/as/applications/{app}/link", "As/SetLink", set_link, write=True, body=True
        ),
        Operation(
            "DELETE", "/as/applications/{app}/link", "As/DeleteLink", delete_link, write=True
        ),
        Operation(
            "GET", "/as/webhook-formats", "ApplicationWebhookRegistry/GetFormats", webhook_formats
        ),
        Operation("GET", "/as/webhooks/{app}", "ApplicationWebhookRegistry/List", list_webhooks),
        Operation(
            "POST",
            "/as/webhooks/{app}",
            "ApplicationWebhookRegistry/Set",
            set_webhook,
            write=True,
            body=True,
        ),
        Operation(
            "GET", "/as/webhooks/{app}/{webhook}", "ApplicationWebhookRegistry/Get", get_webhook
        ),
        Operation(
            "PUT",
            "/as/webhooks/{app}/{webhook}",
            "ApplicationWebhookRegistry/Set",
            set_webhook,
            write=True,
            body=True,
        ),
        Operation(
            "DELETE",
            "/as/webhooks/{app}/{webhook}",
            "ApplicationWebhookRegistry/Delete",
            delete_webhook,
            write=True,
        ),
        Operation("POST", f"{down}/push", "AppAs/DownlinkQueuePush", push, write=True, body=True),
        Operation(
            "POST", f"{down}/replace", "AppAs/DownlinkQueueReplace", replace, write=True, body=True
        ),
        Operation("GET", down, "AppAs/DownlinkQueueList", list_queue),
    ]
