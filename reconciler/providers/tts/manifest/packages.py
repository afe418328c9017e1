"""Application packages in the manifest language: associations by FPort.

An application's `packages` are its default associations (every device of the application
uses them); a device's `packages` are its own associations (they override a default on the same
FPort). Field names and limits are the server's (`ApplicationPackageDefaultAssociation`,
`ApplicationPackageAssociation` in the reference tables): `f_port` (1-255), `package_name`, and
`data`, a free JSON object the package reads.

`data` may hold credentials: the LoRa Cloud packages read their API token from `data.token`.
A top-level `data` value given as `{env: NAME}` or `{file: path}` is a secret (resolved while
validating, never printed, compared by fingerprint); `token` is always a secret (inline is
accepted with the usual warning). The server returns `data` in clear to anyone holding
RIGHT_APPLICATION_SETTINGS_PACKAGES, so the tool never shows a live `data` that holds one.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field, PlainValidator, ValidationInfo, WithJsonSchema

from reconciler.manifest.common import ManifestModel
from reconciler.manifest.secrets import SecretError, context_of, reference_schema, resolve
from reconciler.providers.tts.manifest import types as t
from reconciler.resources import Secret

DEFAULT_MESSAGE = "ApplicationPackageDefaultAssociation"
DEVICE_MESSAGE = "ApplicationPackageAssociation"
# The packages a v3.32 Application Server runs, with their default FPorts. The server stores an
# association of any well-formed name; one it does not run is never used (a warning).
KNOWN_PACKAGES: dict[str, int] = {
    "alcsync-v1": 202,
    "lora-cloud-device-management-v1": 199,
    "lora-cloud-geolocation-v3": 197,
}
# `data` keys that hold credentials whatever their spelling (the LoRa Cloud API token).
SECRET_DATA_KEYS = frozenset({"token"})

_F_PORT = t.field_rules(f"{DEFAULT_MESSAGE}Identifiers", "f_port")
_NAME = t.field_rules(DEFAULT_MESSAGE, "package_name")
F_PORT_MIN = int(_F_PORT["uint32.gte"])
F_PORT_MAX = int(_F_PORT["uint32.lte"])

FPort = Annotated[int, Field(ge=F_PORT_MIN, le=F_PORT_MAX, strict=True)]
PackageName = Annotated[
    str,
    Field(max_length=int(_NAME["string.max_len"]), pattern=_NAME["string.pattern"]),
]


def _is_reference(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("env", "file")


def _json_value(value: object, where: str) -> Any:
    """A value a protobuf Struct holds: null, bool, number, text, list, object."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"`{where}`: not a finite number")
        return value
    if isinstance(value, list):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        if _is_reference(value):
            raise ValueError(
                f"`{where}`: a secret reference is allowed only as a top-level `data` value"
            )
        return {str(k): _json_value(v, f"{where}.{k}") for k, v in value.items()}
    raise ValueError(f"`{where}`: {type(value).__name__} is not a JSON value")


def _data(value: object, info: ValidationInfo) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("`data` must be a mapping (a JSON object)")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ValueError("`data` keys must be non-empty text")
        if isinstance(item, Secret):  # validated again (model_validate of a built model)
            out[key] = item
        elif _is_reference(item) or key in SECRET_DATA_KEYS:
            if not isinstance(item, dict | str):
                raise ValueError(f"`data.{key}` is a secret: text or `{{env: NAME}}` expected")
            try:
                secret = resolve(item, context_of(info))
            except SecretError as error:
                raise ValueError(f"`data.{key}`: {error}") from None
            if not secret.reveal():
                raise ValueError(f"`data.{key}` is empty")
            out[key] = secret
        else:
            out[key] = _json_value(item, f"data.{key}")
    return out


PackageData = Annotated[
    dict[str, Any],
    PlainValidator(_data),
    WithJsonSchema(
        {
            "type": "object",
            "properties": {
                key: reference_schema({"type": "string", "minLength": 1})
                for key in sorted(SECRET_DATA_KEYS)
            },
            "additionalProperties": True,
            "description": "What the package reads (a JSON object). A top-level value given as "
            "{env: NAME} or {file: path} is a secret; `token` always is.",
        }
    ),
]


class PackageAssociation(ManifestModel):
    """One package association: the package that handles the messages on `f_port`."""

    f_port: FPort = Field(description="The FPort the package handles (1-255).")
    package_name: PackageName = Field(
        description="alcsync-v1, lora-cloud-device-management-v1, lora-cloud-geolocation-v3, ..."
    )
    data: PackageData | None = None


def association_fields(association: PackageAssociation) -> dict[str, Any]:
    """The managed fields (field-mask paths): the name, and `data` only when the manifest sets
    it (a Console-set `data` is otherwise left alone); `data: null` clears it."""
    fields: dict[str, Any] = {"package_name": association.package_name}
    if "data" in association.model_fields_set:
        fields["data"] = association.data
    return fields
