"""Tokens, API keys and rights (FACTS §f).

API keys are stored with a hash of the secret only. Rights of a caller on an entity are the
key's rights intersected with the key owner's rights on it (direct collaboration, or through an
organization membership), plus the universal rights an admin user's key carries.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import parse_timestamp
from reconciler.providers.tts.rights import all_rights, expand

if TYPE_CHECKING:
    from reconciler.emulator.tts.state import TTSStore

KNOWN_TOKEN_TYPES = frozenset({"MFRWG", "OJSWM", "MF2XI", "ONZW4"})
__all__ = ["all_rights", "expand"]


def entity_rights(kind: str) -> frozenset[str]:
    """Every right that applies to an entity kind (for intersections)."""
    prefix = {
        "application": "RIGHT_APPLICATION_",
        "gateway": "RIGHT_GATEWAY_",
        "organization": "RIGHT_ORGANIZATION_",
        "user": "RIGHT_USER_",
    }[kind]
    return frozenset(r for r in all_rights() if r.startswith(prefix))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class Caller:
    """An authenticated API key."""

    key_id: str
    entity_kind: str  # user, application, gateway, organization
    entity_id: str
    rights: frozenset[str]
    universal: frozenset[str] = field(default_factory=frozenset)
    is_admin: bool = False
    record: dict[str, Any] = field(default_factory=dict)


def token_id(authorization: str | None) -> str:
    """The key ID part of a bearer token (the rate limiter's key; not validated here)."""
    if not authorization:
        return ""
    _, _, token = authorization.partition(" ")
    parts = token.split(".")
    return parts[1] if len(parts) == 3 else ""


class Authenticator:
    def __init__(self, store: TTSStore) -> None:
        self.store = store
        self._verified: dict[str, str] = {}  # token -> key ID, after a successful secret check

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise errors.unauthenticated()
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise errors.unsupported_authorization()
        token = token.strip()
        key_id = self._verified.get(token)
        record = self.store.api_keys.get(key_id) if key_id else None
        if record is None:
            parts = token.split(".")
            if len(parts) != 3 or not all(parts):
                raise errors.invalid_token()
            token_type, key_id, secret = parts
            if token_type != "NNSXS":
                raise errors.token_not_found()
            record = self.store.api_keys.get(key_id)
            if record is None:
                raise errors.api_key_not_found()
            if not hmac.compare_digest(record["hash"], hash_secret(secret)):
                raise errors.invalid_authorization()
            self._verified[token] = key_id
        api_key = record["api_key"]
        expires_at = api_key.get("expires_at")
        if expires_at:
            from datetime import UTC, datetime

            if parse_timestamp(expires_at)[0] <= datetime.now(UTC):
                raise errors.api_key_expired()
        rights = expand(api_key.get("rights", []))
        universal: frozenset[str] = frozenset()
        is_admin = False
        if record["entity"] == "user":
            user = self.store.users.get(record["entity_id"])
            if user is None or user["user"].get("deleted_at"):
                raise errors.api_key_not_found()
            is_admin = bool(user["user"].get("admin"))
            if is_admin:
                universal = rights
        return Caller(
            key_id=record["api_key"]["id"],
            entity_kind=record["entity"],
            entity_id=record["entity_id"],
            rights=rights,
            universal=universal,
            is_admin=is_admin,
            record=record,
        )

    def forget(self, key_id: str) -> None:
        for token, known in list(self._verified.items()):
            if known == key_id:
                del self._verified[token]

    # --- rights on entities ---------------------------------------------------------------

    def _member_rights(self, org_id: str, user_id: str) -> frozenset[str]:
        org = self.store.organizations.get(org_id)
        if org is None or org["organization"].get("deleted_at"):
            return frozenset()
        return expand(org.get("members", {}).get(user_id, []))

    def collaborator_rights(
        self, caller: Caller, kind: str, entity: dict[str, Any] | None
    ) -> frozenset[str]:
        """The caller's own rights on an application or gateway record (no universal rights)."""
        if entity is None or entity[kind].get("deleted_at"):
            return frozenset()
        collaborators: dict[str, list[str]] = entity.get("collaborators", {})
        entity_id = entity[kind]["ids"][f"{kind}_id"]
        if caller.entity_kind == kind:
            return caller.rights if caller.entity_id == entity_id else frozenset()
        owned: set[str] = set()
        if caller.entity_kind == "user":
            owned |= expand(collaborators.get(f"user:{caller.entity_id}", []))
            for collaborator, rights in collaborators.items():
                if collaborator.startswith("organization:"):
                    org_id = collaborator.partition(":")[2]
                    owned |= expand(rights) & self._member_rights(org_id, caller.entity_id)
        elif caller.entity_kind == "organization":
            owned |= expand(collaborators.get(f"organization:{caller.entity_id}", []))
        return frozenset(owned) & caller.rights

    def user_rights(self, caller: Caller, user_id: str) -> frozenset[str]:
        user = self.store.users.get(user_id)
        own: frozenset[str] = frozenset()
        if user is not None and caller.entity_kind == "user" and caller.entity_id == user_id:
            own = caller.rights
        return own | (caller.universal if user is not None else frozenset())

    def organization_rights(self, caller: Caller, org_id: str) -> frozenset[str]:
        org = self.store.organizations.get(org_id)
        if org is None or org["organization"].get("deleted_at"):
            return caller.universal if org is not None else frozenset()
        own: frozenset[str] = frozenset()
        if caller.entity_kind == "user":
            own = self._member_rights(org_id, caller.entity_id) & caller.rights
        elif caller.entity_kind == "organization" and caller.entity_id == org_id:
            own = caller.rights
        return own | caller.universal
