"""Shared access signatures: the hub's policies, token checks and rights.

A token is `SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>[&skn=<policy>]`.
The hub signs `sr` exactly as it arrived (still URL-encoded), a line feed and `se` with the
base64-decoded key (HMAC-SHA256), so the check does the same; `sig` is URL-decoded first, because
SDKs differ in which characters of the base64 signature they escape. Policy tokens carry `skn`;
a token without it is signed with a device's own key and grants DeviceConnect for that device.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote, unquote_plus

from reconciler.emulator.iothub import errors


class Right(Enum):
    REGISTRY_READ = "RegistryRead"
    REGISTRY_WRITE = "RegistryWrite"
    SERVICE_CONNECT = "ServiceConnect"
    DEVICE_CONNECT = "DeviceConnect"


ALL_RIGHTS = frozenset(Right)

# The policies of a new hub and what each may do.
DEFAULT_POLICIES: dict[str, frozenset[Right]] = {
    "iothubowner": ALL_RIGHTS,
    "service": frozenset({Right.SERVICE_CONNECT}),
    "device": frozenset({Right.DEVICE_CONNECT}),
    "registryRead": frozenset({Right.REGISTRY_READ}),
    "registryReadWrite": frozenset({Right.REGISTRY_READ, Right.REGISTRY_WRITE}),
}

OWNER_POLICY = "iothubowner"


def generate_key() -> str:
    """A new key as the portal makes them: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def decode_key(key: str) -> bytes | None:
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw or None


def signature(key: bytes, resource: str, expiry: str) -> bytes:
    return hmac.digest(key, f"{resource}\n{expiry}".encode(), hashlib.sha256)


@dataclass(frozen=True)
class Token:
    resource: str  # as sent (URL-encoded)
    signature: bytes
    expiry: int
    expiry_text: str
    key_name: str | None

    @property
    def scope(self) -> str:
        """The resource URI the token covers, decoded and lower-cased."""
        return unquote_plus(self.resource).lower().rstrip("/")


def parse(header: str | None) -> Token:
    """The Authorization header's token; any malformed token is a plain 401."""
    if not header:
        raise errors.unauthorized()
    scheme, _, rest = header.strip().partition(" ")
    if scheme != "SharedAccessSignature" or not rest:
        raise errors.unauthorized()
    fields: dict[str, str] = {}
    for part in rest.strip().split("&"):
        name, sep, value = part.partition("=")
        if not sep or name in fields:
            raise errors.unauthorized()
        fields[name] = value
    if set(fields) - {"sr", "sig", "se", "skn"} or not {"sr", "sig", "se"} <= set(fields):
        raise errors.unauthorized()
    expiry_text = fields["se"]
    if not expiry_text.isascii() or not expiry_text.isdigit() or len(expiry_text) > 12:
        raise errors.unauthorized()
    try:
        sig = base64.b64decode(unquote(fields["sig"]), validate=True)
    except (binascii.Error, ValueError):
        raise errors.unauthorized() from None
    return Token(
        resource=fields["sr"],
        signature=sig,
        expiry=int(expiry_text),
        expiry_text=expiry_text,
        key_name=fields.get("skn") or None,
    )


def valid(token: Token, keys: tuple[bytes, ...], now: float | None = None) -> bool:
    """Signed with one of `keys` and not expired."""
    if token.expiry <= (time.time() if now is None else now):
        return False
    return any(
        hmac.compare_digest(signature(key, token.resource, token.expiry_text), token.signature)
        for key in keys
    )


def covers(scope: str, host: str, path: str) -> bool:
    """Whether a token scoped to `scope` may call `path` on `host` (whole-segment prefix)."""
    target = f"{host}{path}".lower().rstrip("/")
    return target == scope or target.startswith(scope + "/")
