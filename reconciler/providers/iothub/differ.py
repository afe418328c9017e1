"""The IoT Hub provider's pure half: keys, desired resources and the per-resource diff.

Resources: devices (`device`, and `edge-device` for IoT Edge devices, created first so their
children can name their scope) and modules (`module`). Only declared fields are compared:
identity fields (status, statusReason, authentication, capabilities.iotEdge, the parent) and
the twin's `tags` and `properties.desired`, compared as nested documents where only the keys
the manifests name count (`null` removes a key). Reported properties are never compared.

Endpoints of a plan step: `identity` (the registry: create, update as GET-merge-PUT, delete)
and `twin` (a merge PATCH). Each step carries the etag it was planned against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepdiff import DeepDiff

from reconciler.plan.model import FieldChange, ResourceChange, Step
from reconciler.provider import PlanOptions
from reconciler.providers.iothub.manifest import PROVIDER, HubDevice, HubModule, HubProject
from reconciler.resources import (
    DesiredResource,
    DesiredState,
    LiveResource,
    ResourceKey,
    Secret,
)

KIND_ORDER = ("edge-device", "device", "module")
DEVICE_KINDS = ("edge-device", "device")
TWIN_DOCUMENTS = ("tags", "properties.desired")
KEY_PATHS = ("authentication.symmetricKey.primaryKey", "authentication.symmetricKey.secondaryKey")
THUMBPRINT_PATHS = (
    "authentication.x509Thumbprint.primaryThumbprint",
    "authentication.x509Thumbprint.secondaryThumbprint",
)
IDENTITY_PATHS = (
    "status",
    "statusReason",
    "authentication.type",
    *KEY_PATHS,
    *THUMBPRINT_PATHS,
    "capabilities.iotEdge",
    "parent",
    "managedBy",
)
ROTATE_PATH = "authentication.symmetricKey"


def device_key(device_id: str, edge: bool = False) -> ResourceKey:
    kind = "edge-device" if edge else "device"
    label = f"{'edge device' if edge else 'device'} {device_id}"
    return ResourceKey(PROVIDER, kind, (device_id,), label)


def module_key(device_id: str, module_id: str) -> ResourceKey:
    return ResourceKey(
        PROVIDER, "module", (device_id, module_id), f"module {device_id}/{module_id}"
    )


def desired_state(project: HubProject) -> DesiredState:
    """The manifests' devices and modules as resources; the ownership tag is part of every
    twin's declared tags, so it is set on create and on adoption."""
    target = project.target
    state = DesiredState(
        stack=target.stack,
        ownership_key=target.ownership_key,
        marker_label=f"twin tag {target.ownership_key}",
    )
    for device in project.devices:
        state.add(_device_resource(device, target.ownership_key, target.stack))
        for module in device.modules:
            state.add(_module_resource(module, target.ownership_key, target.stack))
    return state


def _owned_fields(fields: dict[str, Any], ownership_key: str, stack: str) -> dict[str, Any]:
    owned = dict(fields)
    owned["tags"] = {**(fields.get("tags") or {}), ownership_key: stack}
    return owned


def _device_resource(device: HubDevice, ownership_key: str, stack: str) -> DesiredResource:
    return DesiredResource(
        key=device_key(device.device_id, device.is_edge),
        fields=_owned_fields(device.fields, ownership_key, stack),
        location=device.location,
    )


def _module_resource(module: HubModule, ownership_key: str, stack: str) -> DesiredResource:
    source = module.source
    return DesiredResource(
        key=module_key(module.device_id, module.module_id),
        fields=_owned_fields(module.fields, ownership_key, stack),
        location=source() if callable(source) else source,
    )


# --- nested twin documents ---------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """JSON equality: `True` is not `1`, but `1` is `1.0`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(same(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b, strict=False))
        )
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def projection(desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """`live` restricted to the keys `desired` names (recursively): what is compared."""
    result: dict[str, Any] = {}
    for key, want in desired.items():
        if key not in live:
            continue
        have = live[key]
        if isinstance(want, dict) and isinstance(have, dict):
            result[key] = projection(want, have)
        else:
            result[key] = have
    return result


def wanted(desired: dict[str, Any]) -> dict[str, Any]:
    """The document the hub should hold for the declared keys (a None value: no such key)."""
    return {
        key: wanted(value) if isinstance(value, dict) else value
        for key, value in desired.items()
        if value is not None
    }


def _at(document: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(document, dict) or part not in document:
            return None
        document = document[part]
    return document


def document_changes(
    desired: dict[str, Any], live: dict[str, Any]
) -> list[tuple[tuple[str, ...], Any, Any]]:
    """(key path, live value, desired value) of every declared key that differs; a desired
    value of None removes the key. Lists are values (a PATCH replaces them whole).

    The common case (nothing differs) is decided by a plain comparison; deepdiff is asked only
    for documents that differ, to name each changed key (it costs ~35x the comparison)."""
    have = projection(desired, live)
    want = wanted(desired)
    if same(have, want):
        return []
    diff = DeepDiff(have, want, view="tree", ignore_numeric_type_changes=True)
    paths: dict[tuple[str, ...], None] = {}
    for levels in diff.values():
        for level in levels:
            full = level.path(output_format="list")
            parts: list[str] = []
            for part in full:
                if not isinstance(part, str):
                    break  # inside a list: the whole list is the value
                parts.append(part)
            if parts:
                paths[tuple(parts)] = None
    # A bool/number swap that deepdiff's numeric setting hides is still a change.
    if not paths:
        paths = {
            (key,): None
            for key in want.keys() | have.keys()
            if not same(have.get(key), want.get(key))
        }
    changes = []
    for path in sorted(paths):
        if any(path[:n] in paths for n in range(1, len(path))):
            continue  # a parent already carries this key
        changes.append((path, _at(have, path), _at(want, path)))
    return changes


def patch_body(changes: Sequence[FieldChange]) -> dict[str, Any]:
    """The merge PATCH body for twin changes (`tags.a.b` paths; None removes the key)."""
    body: dict[str, Any] = {}
    for change in changes:
        parts = change.path.split(".")
        if parts[0] == "properties":
            parts = ["properties", "desired", *parts[2:]]
        target = body
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = change.new
    return body


# --- the diff ----------------------------------------------------------------------------------


def _thumb(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) and value else None


class IotHubDiffer:
    """The `Differ` of the IoT Hub provider (reconciler.provider)."""

    name = PROVIDER
    kind_order: Sequence[str] = KIND_ORDER
    rotatable_kinds: Sequence[str] = ()
    replace_consequence = "nothing on an IoT Hub is replaced"

    def marker(self, live: LiveResource, ownership_key: str) -> str | None:
        twin = live.records.get("twin")
        tags = (twin.data.get("tags") if twin else None) or {}
        value = tags.get(ownership_key) if isinstance(tags, dict) else None
        return value if isinstance(value, str) else ""

    def plan_resource(
        self,
        resource: DesiredResource,
        live: LiveResource | None,
        change: ResourceChange,
        options: PlanOptions,
    ) -> None:
        if live is None or "twin" not in live.records:
            change.action = "create"
            change.reason = ""
            change.steps = self._create_steps(resource)
            return
        steps: list[Step] = []
        twin = live.records["twin"]
        twin_changes: list[FieldChange] = []
        for document in TWIN_DOCUMENTS:
            declared = resource.fields.get(document)
            if declared is None:
                continue
            current = twin.data.get(document) or {}
            for path, old, new in document_changes(declared, current):
                twin_changes.append(FieldChange(".".join((document, *path)), old, new))
        if twin_changes:
            steps.append(
                Step(
                    endpoint="twin",
                    operation="patch",
                    paths=[c.path for c in twin_changes],
                    changes=twin_changes,
                    live_version=twin.version,
                    verb="patch",
                )
            )
        identity_changes = self._identity_changes(resource, live, options)
        if identity_changes:
            identity = live.records.get("identity")
            steps.append(
                Step(
                    endpoint="identity",
                    operation="update",
                    paths=[c.path for c in identity_changes],
                    changes=identity_changes,
                    live_version=identity.version if identity else None,
                    verb="update",
                )
            )
        if steps:
            change.action = "update"
            change.reason = "fields differ"
            change.steps = steps

    def _create_steps(self, resource: DesiredResource) -> list[Step]:
        changes = []
        for path, value in sorted(resource.fields.items()):
            if path in TWIN_DOCUMENTS:
                for key, item in sorted(wanted(value).items()):
                    changes.append(FieldChange(f"{path}.{key}", None, item))
            elif isinstance(value, Secret):
                changes.append(FieldChange(path, sensitive=True))
            elif value is not None:
                changes.append(FieldChange(path, None, value))
        steps = [
            Step(
                endpoint="identity",
                operation="create",
                changes=changes,
                registers=True,
                verb="create",
            )
        ]
        if resource.key.kind == "module":
            # A module identity carries no twin: its tags and desired properties follow.
            twin = [c for c in changes if c.path.split(".")[0] in ("tags", "properties")]
            steps[0].changes = [c for c in changes if c not in twin]
            steps.append(
                Step(
                    endpoint="twin",
                    operation="patch",
                    changes=twin,
                    registers=True,
                    verb="set",
                )
            )
        return steps

    def _identity_changes(
        self, resource: DesiredResource, live: LiveResource, options: PlanOptions
    ) -> list[FieldChange]:
        fields = resource.fields
        twin = live.records["twin"].data
        identity = live.records.get("identity")
        current: dict[str, Any] = {
            "status": twin.get("status"),
            "statusReason": twin.get("statusReason"),
            "authentication.type": twin.get("authenticationType"),
            "capabilities.iotEdge": bool((twin.get("capabilities") or {}).get("iotEdge")),
            "parent": twin.get("parent"),
        }
        thumbs = twin.get("x509Thumbprint") or {}
        current[THUMBPRINT_PATHS[0]] = _thumb(thumbs.get("primaryThumbprint"))
        current[THUMBPRINT_PATHS[1]] = _thumb(thumbs.get("secondaryThumbprint"))
        if identity is not None and "managedBy" in identity.data:
            current["managedBy"] = identity.data.get("managedBy")
        changes: list[FieldChange] = []
        for path in IDENTITY_PATHS:
            if path not in fields:
                continue
            want = fields[path]
            if path in KEY_PATHS:
                have = identity.data.get(path) if identity is not None else None
                if not isinstance(have, Secret) or have != want:
                    changes.append(FieldChange(path, sensitive=True))
                continue
            if path not in current:
                continue  # not readable here (e.g. managedBy of a module not read)
            have = current[path]
            if path in THUMBPRINT_PATHS:
                want = _thumb(want)
            if path == "statusReason":
                have = have or None
                want = want or None
            if not same(have, want):
                changes.append(FieldChange(path, have, want))
        auth_type = fields.get("authentication.type", current["authentication.type"])
        if options.rotate_keys and auth_type == "sas" and KEY_PATHS[0] not in fields:
            changes.append(FieldChange(ROTATE_PATH, sensitive=True))
        return changes

    def delete_steps(self, key: ResourceKey, live: LiveResource | None) -> list[Step]:
        identity = live.records.get("identity") if live else None
        return [
            Step(
                endpoint="identity",
                operation="delete",
                live_version=identity.version if identity else None,
                verb="delete",
            )
        ]
