"""Hop 2: the validated project -> desired resources of one stack (pure).

Adds what every managed resource carries: the ownership marker attribute (`<key>: <stack>`),
and for devices the server addresses the Console and CLI expect (from the device, else its
application, else the target's hosts, as `ttn-lw-cli end-devices create --defaults` does).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from reconciler.diagnostics import Diagnostic, Location, ManifestError
from reconciler.manifest.project import Project
from reconciler.providers.tts.kinds import (
    Owner,
    api_key_key,
    application_key,
    collaborator_key,
    device_key,
    gateway_key,
    link_key,
    organization_key,
    package_association_key,
    package_default_key,
    pubsub_key,
    webhook_key,
)
from reconciler.providers.tts.manifest.project import (
    ApiKey,
    Collaborator,
    ServerRole,
    Target,
    tts_project,
)
from reconciler.resources import DesiredResource, DesiredState

ADDRESS_ROLES: tuple[tuple[str, ServerRole], ...] = (
    ("network_server_address", "network"),
    ("application_server_address", "application"),
    ("join_server_address", "join"),
)


def server_address(url: str) -> str:
    """`https://eu1.cloud.thethings.network` -> `eu1.cloud.thethings.network` (port kept when
    not the scheme's default)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    default_port = 443 if parts.scheme == "https" else 80
    return f"{host}:{parts.port}" if parts.port and parts.port != default_port else host


MAX_ATTRIBUTES = 10  # the servers accept at most 10 attributes per entity


def _owned(
    fields: dict[str, Any], target: Target, location: Location | None, problems: list[Diagnostic]
) -> dict[str, Any]:
    attributes = dict(fields.get("attributes") or {})
    attributes[target.ownership_key] = target.stack
    if len([v for v in attributes.values() if v is not None]) > MAX_ATTRIBUTES:
        problems.append(
            Diagnostic(
                location or Location(str(target.base_dir)),
                f"more than {MAX_ATTRIBUTES - 1} attributes: the server allows "
                f"{MAX_ATTRIBUTES} and the ownership marker `{target.ownership_key}` needs one",
                code="too-many-attributes",
            )
        )
    return {**fields, "attributes": attributes}


def desired_state(project: Project, target: Target) -> DesiredState:
    """Raises ManifestError (located) for what only the combination shows, e.g. attributes
    that leave no room for the ownership marker."""
    state = DesiredState(
        stack=target.stack,
        ownership_key=target.ownership_key,
        marker_label=f"attribute {target.ownership_key}",
    )
    problems: list[Diagnostic] = []
    tts = tts_project(project)
    for org in tts.organizations:
        state.add(
            DesiredResource(
                organization_key(org.organization_id),
                _owned(dict(org.fields), target, org.location, problems),
                location=org.location,
                extra={
                    "owner": Owner(org.owner.kind, org.owner.id),
                    "declared_lists": declared_lists(org),
                },
            )
        )
    for key in tts.api_keys():
        state.add(api_key_resource(key))
    for collaborator in tts.collaborators():
        state.add(collaborator_resource(collaborator))
    for app in tts.applications:
        state.add(
            DesiredResource(
                application_key(app.application_id),
                _owned(dict(app.fields), target, app.location, problems),
                location=app.location,
                extra={
                    "owner": Owner(app.owner.kind, app.owner.id),
                    "declared_lists": declared_lists(app),
                    # The default association list is declared: read and managed whole.
                    **({"packages": True} if app.packages is not None else {}),
                },
            )
        )
        if app.link:
            state.add(
                DesiredResource(
                    link_key(app.application_id),
                    dict(app.link),
                    location=app.location,
                )
            )
        for webhook in app.webhooks:
            state.add(
                DesiredResource(
                    webhook_key(app.application_id, webhook.webhook_id),
                    dict(webhook.fields),
                    location=webhook.location,
                )
            )
        for pubsub in app.pubsubs:
            state.add(
                DesiredResource(
                    pubsub_key(app.application_id, pubsub.pub_sub_id),
                    dict(pubsub.fields),
                    location=pubsub.location,
                )
            )
        for default in app.packages or ():
            state.add(
                DesiredResource(
                    package_default_key(app.application_id, default.f_port),
                    dict(default.fields),
                    location=default.location,
                )
            )
    addresses = {role: server_address(target.server_urls[role]) for _, role in ADDRESS_ROLES}
    applications = {a.application_id: a for a in tts.applications}
    for device in tts.devices:
        fields = {k: v for k, v in device.fields.items() if k != "ids.device_id"}
        otaa = bool(fields.get("supports_join"))
        owner_app = applications.get(device.application_id)
        for path, role in ADDRESS_ROLES:
            if path == "join_server_address" and not otaa:
                continue
            if path not in fields:
                from_app = owner_app.fields.get(path) if owner_app else None
                fields[path] = from_app or addresses[role]
        extra: dict[str, Any] = {"otaa": otaa}
        if device.packages is not None:
            # The device's association list is declared: read and managed whole.
            extra["packages"] = True
            for association in device.packages:
                state.add(
                    DesiredResource(
                        package_association_key(
                            device.application_id, device.device_id, association.f_port
                        ),
                        dict(association.fields),
                        location=association.location,
                    )
                )
        state.add(
            DesiredResource(
                device_key(device.application_id, device.device_id),
                _owned(fields, target, device.location, problems),
                location=device.location,
                extra=extra,
            )
        )
    for gateway in tts.gateways:
        state.add(
            DesiredResource(
                gateway_key(gateway.gateway_id),
                _owned(dict(gateway.fields), target, gateway.location, problems),
                location=gateway.location,
                extra={
                    "owner": Owner(gateway.owner.kind, gateway.owner.id),
                    "declared_lists": declared_lists(gateway),
                },
            )
        )
    if problems:
        raise ManifestError(problems)
    return state


def api_key_resource(key: ApiKey) -> DesiredResource:
    """An API key: its rights and expiry are managed; its secret exists only on creation, and
    goes to the sink (`extra`)."""
    return DesiredResource(
        api_key_key(key.entity_kind, key.entity_id, key.name),
        {"rights": list(key.rights), "expires_at": key.expires_at},
        location=key.location,
        extra={"sink": key.sink, "rotate_after_days": key.rotate_after_days},
    )


def collaborator_resource(collaborator: Collaborator) -> DesiredResource:
    member = collaborator.member
    return DesiredResource(
        collaborator_key(collaborator.entity_kind, collaborator.entity_id, member.kind, member.id),
        {"rights": list(collaborator.rights)},
        location=collaborator.location,
    )


def declared_lists(entity: Any) -> tuple[str, ...]:
    """The access lists an entity's manifest declares (`api_key`, `collaborator`): those are
    managed whole; an undeclared list is left alone."""
    found = []
    if getattr(entity, "api_keys", None) is not None:
        found.append("api_key")
    if getattr(entity, "collaborators", None) is not None:
        found.append("collaborator")
    return tuple(found)
