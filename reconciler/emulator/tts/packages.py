"""Application Server application packages: the `ApplicationPackageRegistry` routes.

As the real registry (lorawan-stack v3.32, pkg/applicationserver/io/packages):
* every route needs RIGHT_APPLICATION_SETTINGS_PACKAGES on the application;
* `List` answers the packages the server runs, whatever the device (it is not looked up);
* associations are keyed by FPort (1-255, the proto's rule) under an application (default
  associations) or a device (associations); the device is not looked up either;
* reads return `ids`, `created_at`, `updated_at` and `package_name` plus the masked paths, so
  an empty mask leaves `data` out; a missing association is `pkg/redis:not_found`;
* Set upserts (a new one needs nothing but its path), an empty mask on an existing association
  changes nothing, `created_at`/`updated_at` in the mask are refused; Delete is idempotent;
* the package name is checked only against its pattern (an unknown package is stored: no
  package handles it), `data` is any JSON object, returned as sent (tokens included);
* no event is published for any of these calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import decode_message, message, now_timestamp
from reconciler.emulator.tts.common import (
    decode_request,
    mask_from_query,
    not_found,
    output,
    paginate,
    require_app,
    validate_masked,
)
from reconciler.emulator.tts.fieldmask import check_allowed, check_non_zero, merge
from reconciler.emulator.tts.validate import path_tree, validate_request

if TYPE_CHECKING:
    from reconciler.emulator.state import Table
    from reconciler.emulator.tts.app import Call, Operation

RPC = "ApplicationPackageRegistry"
RIGHT = "RIGHT_APPLICATION_SETTINGS_PACKAGES"
# The packages a v3.32 Application Server registers (name, default FPort), sorted by name.
AVAILABLE_PACKAGES = (
    ("alcsync-v1", 202),
    ("lora-cloud-device-management-v1", 199),
    ("lora-cloud-geolocation-v3", 197),
)
# Returned on every read besides the mask.
IMPLICIT_READ_PATHS = ("package_name",)
REGISTRY = "pkg/applicationserver/io/packages/redis"
_UINT32_MAX = 2**32 - 1


def _f_port(call: Call, parameter: str) -> int:
    """The FPort path segment as the gateway parses a uint32 (range is the validator's)."""
    raw = call.params["f_port"]
    if not raw.isdigit():
        raise errors.DecodeError(
            f'type mismatch, parameter: {parameter}, error: strconv.ParseUint: parsing "{raw}": '
            "invalid syntax"
        )
    if int(raw) > _UINT32_MAX:
        raise errors.DecodeError(
            f'type mismatch, parameter: {parameter}, error: strconv.ParseUint: parsing "{raw}": '
            "value out of range"
        )
    return int(raw)


class _Kind:
    """Default associations (under an application) or associations (under a device)."""

    def __init__(self, device: bool) -> None:
        self.device = device
        self.message = (
            "ApplicationPackageAssociation" if device else "ApplicationPackageDefaultAssociation"
        )
        self.wrapper = "association" if device else "default"
        self.list_field = "associations" if device else "defaults"
        prefix = "" if device else "Default"
        self.get_rpc = f"{RPC}/Get{prefix}Association"
        self.list_rpc = f"{RPC}/List{prefix}Associations"
        self.set_rpc = f"{RPC}/Set{prefix}Association"
        self.set_request = f"SetApplicationPackage{prefix}AssociationRequest"
        self.get_request = f"GetApplicationPackage{prefix}AssociationRequest"
        self.list_request = f"ListApplicationPackage{prefix}AssociationRequest"
        self.ids_message = f"ApplicationPackage{prefix}AssociationIdentifiers"

    def table(self, call: Call) -> Table:
        store = call.store
        return store.package_associations if self.device else store.package_defaults

    def owner_ids(self, call: Call) -> dict[str, Any]:
        app = {"application_id": call.params["app"]}
        if self.device:
            return {"end_device_ids": {"application_ids": app, "device_id": call.params["dev"]}}
        return {"application_ids": app}

    def ids(self, call: Call, f_port: int) -> dict[str, Any]:
        return {**self.owner_ids(call), "f_port": f_port}

    def prefix(self, call: Call) -> str:
        app = call.params["app"]
        return f"{app}/{call.params['dev']}/" if self.device else f"{app}/"

    def read_paths(self, paths: list[str]) -> list[str]:
        return [*IMPLICIT_READ_PATHS, *paths]

    # -- handlers -------------------------------------------------------------------------

    def get(self, call: Call) -> dict[str, Any]:
        f_port = _f_port(call, "ids.f_port")
        paths = mask_from_query(call)
        check_allowed(self.get_rpc, paths)
        validate_request(self.get_request, {"ids": self.ids(call, f_port)})
        require_app(call, call.params["app"], RIGHT)
        found = self.table(call).get(self.prefix(call) + str(f_port))
        if found is None:
            raise not_found("pkg/redis", "not_found", "entity not found")
        return output(self.message, found, self.read_paths(paths))

    def list(self, call: Call) -> Any:
        paths = mask_from_query(call)
        check_allowed(self.list_rpc, paths)
        # The list requests take the owner's own identifiers.
        raw: dict[str, Any] = {"ids": next(iter(self.owner_ids(call).values()))}
        for name in ("limit", "page"):
            value = call.query(name)
            if value is None:
                continue
            if not value.strip().isdigit():
                raise errors.DecodeError(f'strconv.ParseUint: parsing "{value}": invalid syntax')
            raw[name] = int(value)
        request = decode_message(message(self.list_request), raw)
        validate_request(self.list_request, request, path_tree(list(request)))
        require_app(call, call.params["app"], RIGHT)
        prefix = self.prefix(call)
        found = sorted(
            (
                item
                for key, item in self.table(call).items()
                # A device's associations share the application's prefix: only direct keys.
                if key.startswith(prefix) and key[len(prefix) :].isdigit()
            ),
            key=lambda item: item["ids"]["f_port"],
        )
        read = self.read_paths(paths)
        limit = int(request.get("limit") or 0)
        if limit:
            selected = paginate(found, limit, int(request.get("page") or 1))
            body = {self.list_field: [output(self.message, a, read) for a in selected]}
            return JSONResponse(body if selected else {}, 200, {"X-Total-Count": str(len(found))})
        return {self.list_field: [output(self.message, a, read) for a in found]} if found else {}

    def set(self, call: Call) -> dict[str, Any]:
        f_port = _f_port(call, f"{self.wrapper}.ids.f_port")
        request = decode_request(self.set_request, call.body)
        entity = request.setdefault(self.wrapper, {})
        entity["ids"] = self.ids(call, f_port)
        paths = list(request.get("field_mask", {}).get("paths", []))
        check_allowed(self.set_rpc, paths)
        check_non_zero(self.set_rpc, paths, entity)
        validate_masked(self.set_request, request, self.wrapper, paths, ["ids"])
        require_app(call, call.params["app"], RIGHT)
        if any(p in ("created_at", "updated_at") for p in paths):
            raise errors.TTSError(
                REGISTRY, "invalid_fieldmask", "invalid fieldmask", errors.INVALID_ARGUMENT, {}
            )
        key = self.prefix(call) + str(f_port)
        table = self.table(call)
        existing = table.get(key)
        read = self.read_paths(paths)
        if existing is not None and not paths:
            return output(self.message, existing, read)
        call.before_write()
        stored: dict[str, Any] = dict(existing) if existing else {"ids": entity["ids"]}
        merge(stored, entity, [p for p in paths if p.split(".")[0] != "ids"])
        now = now_timestamp()
        stored.setdefault("created_at", now)
        stored["updated_at"] = now
        table.put(key, stored)
        return output(self.message, stored, read)

    def delete(self, call: Call) -> dict[str, Any]:
        f_port = _f_port(call, "f_port")
        validate_request(self.ids_message, self.ids(call, f_port))
        require_app(call, call.params["app"], RIGHT)
        call.before_write()
        self.table(call).delete(self.prefix(call) + str(f_port))
        return {}


DEFAULTS = _Kind(device=False)
ASSOCIATIONS = _Kind(device=True)


def list_packages(call: Call) -> dict[str, Any]:
    require_app(call, call.params["app"], RIGHT)
    return {"packages": [{"name": n, "default_f_port": p} for n, p in AVAILABLE_PACKAGES]}


def purge_application_packages(call: Call, app_id: str) -> None:
    """An application's default associations and its devices' associations."""
    for table in (call.store.package_defaults, call.store.package_associations):
        for key, _ in table.items():
            if key.startswith(app_id + "/"):
                table.delete(key)


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    app = "/as/applications/{app}"
    device = app + "/devices/{dev}"
    routes: list[Operation] = [
        Operation("GET", device + "/packages", f"{RPC}/List", list_packages),
    ]
    for kind, base in ((ASSOCIATIONS, device), (DEFAULTS, app)):
        collection = base + "/packages/associations"
        one = collection + "/{f_port}"
        handlers: tuple[tuple[str, str, str, Callable[[Call], Any]], ...] = (
            ("GET", collection, kind.list_rpc, kind.list),
            ("GET", one, kind.get_rpc, kind.get),
        )
        routes += [Operation(m, p, rpc, h) for m, p, rpc, h in handlers]
        routes.append(Operation("PUT", one, kind.set_rpc, kind.set, write=True, body=True))
        delete_rpc = f"{RPC}/Delete{'' if kind.device else 'Default'}Association"
        routes.append(Operation("DELETE", one, delete_rpc, kind.delete, write=True))
    return routes
