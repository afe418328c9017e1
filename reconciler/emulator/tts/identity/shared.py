"""What the Identity Server modules share: error namespaces, the admin check, collaborator keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.emulator.tts import errors

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call
    from reconciler.emulator.tts.auth import Caller

IS_STORE = "pkg/identityserver/store"
IS = "pkg/identityserver"


def admin_only(call: Call, name: str, text: str) -> Caller:
    caller = call.caller()
    if not caller.is_admin:
        raise errors.TTSError(IS, name, text, errors.PERMISSION_DENIED)
    return caller


def collaborator_key(collaborator: dict[str, Any]) -> str:
    """`user:<id>` or `organization:<id>`: how an entity record keys its collaborators."""
    if "organization_ids" in collaborator:
        return f"organization:{collaborator['organization_ids'].get('organization_id', '')}"
    return f"user:{collaborator.get('user_ids', {}).get('user_id', '')}"
