"""TTS error bodies (FACTS §d): `{"code", "message", "details": [ErrorDetails]}`.

Errors are raised as `TTSError` anywhere in a request and rendered once by the app. A body that
fails to decode is a plain gRPC status (`DecodeError`) without ErrorDetails, as on the real server.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

# gRPC code -> HTTP status (FACTS §d; FailedPrecondition is 400, not 412).
HTTP_STATUS = {
    0: 200,
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}

INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
UNIMPLEMENTED = 12
UNAVAILABLE = 14
UNAUTHENTICATED = 16

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_format_value(v) for v in value) + "]"
    return str(value)


class TTSError(Exception):
    """One error definition instance: namespace, name, message format, public attributes."""

    def __init__(
        self,
        namespace: str,
        name: str,
        message_format: str,
        code: int,
        attributes: Mapping[str, Any] | None = None,
        cause: TTSError | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.message_format = message_format
        self.code = code
        self.attributes = dict(attributes or {})
        self.cause = cause
        super().__init__(f"error:{namespace}:{name}")

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def formatted(self) -> str:
        return _PLACEHOLDER.sub(
            lambda m: (
                _format_value(self.attributes[m.group(1)])
                if m.group(1) in self.attributes
                else m.group(0)
            ),
            self.message_format,
        )

    def message(self) -> str:
        return f"error:{self.namespace}:{self.name} ({self.formatted()})"

    def details(self, correlation_id: str) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "@type": "type.googleapis.com/ttn.lorawan.v3.ErrorDetails",
            "namespace": self.namespace,
            "name": self.name,
            "message_format": self.message_format,
        }
        if self.attributes:
            detail["attributes"] = self.attributes
        detail["correlation_id"] = correlation_id
        if self.cause is not None:
            cause = self.cause.details(correlation_id)
            del cause["@type"]
            detail["cause"] = cause
        detail["code"] = self.code
        return detail

    def body(self) -> dict[str, Any]:
        correlation_id = uuid.uuid4().hex
        return {
            "code": self.code,
            "message": self.message(),
            "details": [self.details(correlation_id)],
        }


class DecodeError(Exception):
    """A request body or query the gateway could not decode: plain status, no ErrorDetails."""

    def __init__(self, message: str) -> None:
        self.text = message
        super().__init__(message)

    code = INVALID_ARGUMENT
    status = 400

    def body(self) -> dict[str, Any]:
        return {"code": INVALID_ARGUMENT, "message": self.text, "details": []}


def render(error: TTSError | DecodeError) -> bytes:
    return json.dumps(error.body(), separators=(",", ":")).encode()


# Definitions used across registries (namespace, name, format, code).
class define:
    """An error definition; calling it makes an instance with attributes (and a cause)."""

    def __init__(self, namespace: str, name: str, message_format: str, code: int) -> None:
        self.namespace = namespace
        self.name = name
        self.message_format = message_format
        self.code = code

    def __call__(self, cause: TTSError | None = None, **attributes: Any) -> TTSError:
        return TTSError(
            self.namespace, self.name, self.message_format, self.code, attributes, cause
        )


field_mask_paths = define(
    "pkg/rpcmiddleware/validator",
    "field_mask_paths",
    "forbidden path(s) in field mask",
    INVALID_ARGUMENT,
)
non_zero_path = define(
    "pkg/rpcmiddleware/validator", "non_zero_path", "path `{path}` is not zero", INVALID_ARGUMENT
)
validation = define("pkg/errors", "validation", "invalid `{field}`: {reason}", INVALID_ARGUMENT)
no_application_rights = define(
    "pkg/auth/rights",
    "no_application_rights",
    "no rights for application `{uid}`",
    PERMISSION_DENIED,
)
insufficient_application_rights = define(
    "pkg/auth/rights",
    "insufficient_application_rights",
    "insufficient rights for application `{uid}`",
    PERMISSION_DENIED,
)
no_gateway_rights = define(
    "pkg/auth/rights", "no_gateway_rights", "no rights for gateway `{uid}`", PERMISSION_DENIED
)
insufficient_gateway_rights = define(
    "pkg/auth/rights",
    "insufficient_gateway_rights",
    "insufficient rights for gateway `{uid}`",
    PERMISSION_DENIED,
)
no_user_rights = define(
    "pkg/auth/rights", "no_user_rights", "no rights for user `{uid}`", PERMISSION_DENIED
)
insufficient_user_rights = define(
    "pkg/auth/rights",
    "insufficient_user_rights",
    "insufficient rights for user `{uid}`",
    PERMISSION_DENIED,
)
no_organization_rights = define(
    "pkg/auth/rights",
    "no_organization_rights",
    "no rights for organization `{uid}`",
    PERMISSION_DENIED,
)
insufficient_organization_rights = define(
    "pkg/auth/rights",
    "insufficient_organization_rights",
    "insufficient rights for organization `{uid}`",
    PERMISSION_DENIED,
)
unauthenticated = define(
    "pkg/identityserver", "unauthenticated", "unauthenticated", UNAUTHENTICATED
)
api_key_not_found = define(
    "pkg/identityserver", "api_key_not_found", "API key not found", UNAUTHENTICATED
)
token_not_found = define(
    "pkg/identityserver", "token_not_found", "access token not found", UNAUTHENTICATED
)
invalid_authorization = define(
    "pkg/identityserver", "invalid_authorization", "invalid authorization", UNAUTHENTICATED
)
api_key_expired = define(
    "pkg/identityserver", "api_key_expired", "API key expired", UNAUTHENTICATED
)
unsupported_authorization = define(
    "pkg/identityserver",
    "unsupported_authorization",
    "unsupported authorization method",
    UNAUTHENTICATED,
)
invalid_token = define("pkg/auth", "token", "invalid token", INVALID_ARGUMENT)
admin_only = define(
    "pkg/identityserver", "admins_only", "this action is restricted to admins", PERMISSION_DENIED
)
id_taken = define(
    "pkg/util/store",
    "id_taken",
    "ID already taken, choose a different one and try again",
    ALREADY_EXISTS,
)
eui_taken = define("pkg/util/store", "eui_taken", "EUI already taken", ALREADY_EXISTS)
forbidden_id = define(
    "pkg/identityserver/blocklist",
    "forbidden_id",
    "the ID `{id}` can not be registered",
    INVALID_ARGUMENT,
)
rate_limit_exceeded = define(
    "pkg/ratelimit",
    "rate_limit_exceeded",
    "rate limit of `{rate}` accesses per minute exceeded for resource `{key}`",
    RESOURCE_EXHAUSTED,
)
unavailable = define(
    "pkg/emulator", "unavailable", "service temporarily unavailable (injected fault)", UNAVAILABLE
)
