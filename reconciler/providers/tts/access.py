"""Plan API keys and collaborators (pure): one resource's desired rights + live records ->
action and steps. The provider reads and writes them (reconciler.providers.tts.provider).

API keys are matched by name: the server picks a key's ID and shows its secret once, when it
is created, so a new secret exists only during `apply`, which hands it to the key's sink. Two
live keys with the declared name are refused (which one would the manifests mean?). Rights and
expiry are updated in place; a rotation (the key is older than `rotate_after_days`, or
`--rotate` names it) creates a new key, delivers it, then deletes the old one. A
collaborator's rights are set in one request; removing one, or reducing its rights, is refused
when it is the tool's own access.

Live records, as the provider reads them: an API key's `is` record holds `api_keys`, every live
key with the name (each with `age_days`, its age when read: the planner has no clock); a
collaborator's holds its `rights`.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.plan.model import FieldChange, ResourceChange, Step
from reconciler.providers.tts.rights import expand
from reconciler.resources import DesiredResource, LiveResource

# A new key's secret: shown as a sensitive change, never as a value.
SECRET_PATH = "key"
API_KEY_PATHS = ("rights", "expires_at")
_FRACTION = re.compile(r"\.\d+(?=Z$)")


def normal_timestamp(value: Any) -> str | None:
    """`2027-01-01T00:00:00.000Z` -> `2027-01-01T00:00:00Z` (expiry is kept to the second)."""
    if not value:
        return None
    return _FRACTION.sub("", str(value))


def normal_rights(value: Any) -> list[str]:
    return sorted({str(r) for r in value or []})


def _create_step(resource: DesiredResource) -> Step:
    fields = resource.fields
    changes = [FieldChange("rights", None, fields["rights"])]
    if fields.get("expires_at"):
        changes.append(FieldChange("expires_at", None, fields["expires_at"]))
    changes.append(FieldChange(SECRET_PATH, sensitive=True))
    return Step("is", "create", changes=changes, registers=True, verb="create")


def plan_api_key(
    resource: DesiredResource,
    live: LiveResource | None,
    change: ResourceChange,
    *,
    rotate_now: bool = False,
) -> None:
    """`rotate_now`: `--rotate` names the key (a leaked one): rotated whatever its age."""
    record = live.records.get("is") if live else None
    keys: list[dict[str, Any]] = list(record.data.get("api_keys") or []) if record else []
    sink = resource.extra["sink"]
    name = resource.key.id
    if not keys:
        change.action = "create"
        change.reason = f"not found; its secret goes to {sink.describe()}, never to output"
        change.steps.append(_create_step(resource))
        return
    if len(keys) > 1:
        ids = ", ".join(sorted(str(k.get("id", "?")) for k in keys))
        change.refused.append(
            f"{len(keys)} API keys are named {name!r} ({ids}): keys are matched by name, so "
            "the manifests cannot say which one they mean; delete the extra ones"
        )
        return
    current = keys[0]
    version = str(current.get("updated_at") or "") or None
    rotate_after = resource.extra.get("rotate_after_days")
    age = current.get("age_days")
    due = rotate_after and isinstance(age, int) and age >= rotate_after
    if rotate_now or due:
        why = (
            "rotate now (--rotate)"
            if rotate_now
            else f"rotate: the key is {age} days old (rotate_after_days: {rotate_after})"
        )
        change.action = "update"
        change.reason = (
            f"{why}: a new key is created and its secret goes to {sink.describe()}, then the "
            f"old key {current.get('id')} is deleted"
        )
        change.steps.append(_create_step(resource))
        change.steps.append(Step("is", "delete", live_version=version, verb="delete the old key"))
        return
    changes: list[FieldChange] = []
    want_rights = normal_rights(resource.fields["rights"])
    have_rights = normal_rights(current.get("rights"))
    if want_rights != have_rights:
        changes.append(FieldChange("rights", have_rights, want_rights))
    want_expiry = normal_timestamp(resource.fields.get("expires_at"))
    have_expiry = normal_timestamp(current.get("expires_at"))
    if want_expiry != have_expiry:
        changes.append(FieldChange("expires_at", have_expiry, want_expiry))
    if changes:
        change.action = "update"
        change.reason = "rights or expiry differ (updated in place; the secret stays)"
        change.steps.append(
            Step(
                "is",
                "update",
                paths=[c.path for c in changes],
                changes=changes,
                live_version=version,
            )
        )


def plan_collaborator(
    resource: DesiredResource, live: LiveResource | None, change: ResourceChange
) -> None:
    record = live.records.get("is") if live else None
    want = normal_rights(resource.fields["rights"])
    if record is None:
        change.action = "create"
        change.reason = "not a collaborator"
        change.steps.append(
            Step(
                "is",
                "set",
                paths=["rights"],
                changes=[FieldChange("rights", None, want)],
                registers=True,
                verb="add",
            )
        )
        return
    have = normal_rights(record.data.get("rights"))
    if want == have:
        return
    change.action = "update"
    change.reason = "rights differ"
    change.steps.append(
        Step("is", "set", paths=["rights"], changes=[FieldChange("rights", have, want)])
    )
    assert live is not None
    if live.protected and not expand(want) >= expand(have):
        change.refused.append(
            live.protected.replace("remove", "reduce", 1)
            if "remove" in live.protected
            else live.protected
        )


def delete_step(kind: str, version: str | None) -> Step:
    """Deleting an organization (soft, as applications and gateways), an API key or a
    collaborator."""
    if kind == "organization":
        return Step(
            "is",
            "delete",
            live_version=version,
            verb="delete (soft: the ID stays reserved until an admin purges it)",
        )
    return Step("is", "delete", live_version=version)
