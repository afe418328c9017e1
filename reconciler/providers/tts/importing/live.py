"""Read what to import from live servers, through the provider's read path.

Discovery (which applications, devices, webhooks, pub/subs and gateways exist) lists the
Identity Server and the Application Server; the records themselves are read by
`TTSProvider.read` for a probe state that declares every discovered resource with every path
import can use, so import reads with the same masks, concurrency, pacing and progress as
`plan`. Organizations (the chosen ones, and those owning an imported application or gateway,
which only its collaborators show) are read by a second probe after the first. Nothing is
written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.importer.output import ImportFailure
from reconciler.provider import ProgressCallback
from reconciler.providers.tts import packages as pkg
from reconciler.providers.tts import schema
from reconciler.providers.tts.client import TTSAPIError, TTSClient
from reconciler.providers.tts.importing import fields as f
from reconciler.providers.tts.importing import records as r
from reconciler.providers.tts.kinds import (
    LEASE_DEVICE_ID,
    Owner,
    application_key,
    device_key,
    gateway_key,
    link_key,
    organization_key,
)
from reconciler.providers.tts.provider import TTSProvider
from reconciler.resources import DesiredResource, DesiredState, LiveState, ResourceKey


@dataclass(frozen=True)
class Selection:
    application_ids: Sequence[str] = ()
    gateway_ids: Sequence[str] = ()
    everything: bool = False  # --all: every application, gateway and organization it can see
    organization_ids: Sequence[str] = ()


async def read_live(
    client: TTSClient,
    selection: Selection,
    *,
    device_packages: bool = True,
    parallelism: int = 16,
    progress: ProgressCallback | None = None,
) -> r.Snapshot:
    provider = TTSProvider(client, parallelism=parallelism, progress=progress)
    snapshot = r.Snapshot()
    snapshot.owner = await _caller(client)
    app_ids = list(dict.fromkeys(selection.application_ids))
    gateway_ids = list(dict.fromkeys(selection.gateway_ids))
    org_ids = list(dict.fromkeys(selection.organization_ids))
    if selection.everything:
        # The provider's paged IS listing (limit 1000 per page, X-Total-Count), as plan uses.
        async for item in provider._list_pages("is", "/applications", "applications", ["ids"]):
            app_ids.append(item["ids"]["application_id"])
        async for item in provider._list_pages("is", "/gateways", "gateways", ["ids"]):
            gateway_ids.append(item["ids"]["gateway_id"])
        async for item in provider._list_pages("is", "/organizations", "organizations", ["ids"]):
            org_ids.append(item["ids"]["organization_id"])
        app_ids = list(dict.fromkeys(app_ids))
        gateway_ids = list(dict.fromkeys(gateway_ids))
        org_ids = list(dict.fromkeys(org_ids))

    # Stack name and ownership key do not matter for reading: nothing is planned.
    probe = DesiredState(stack="import", ownership_key="managed-by")
    owner = Owner("user", "import")
    # Their API keys and collaborators are read too (as lists the manifests would declare).
    access = ("api_key", "collaborator")
    app_fields = dict.fromkeys(r.APPLICATION_PATHS + r.APPLICATION_EXTRAS)
    link_fields = dict.fromkeys(r.LINK_PATHS + r.LINK_EXTRAS)
    # One dict shared by every device: the provider only reads it (10,000 copies would not fit
    # the memory budget as well).
    device_fields: dict[str, Any] = dict.fromkeys(f.live_read_paths())
    webhooks: dict[str, list[dict[str, Any]]] = {}
    pubsubs: dict[str, list[dict[str, Any]]] = {}
    defaults: dict[str, list[dict[str, Any]]] = {}
    for app_id in app_ids:
        await _check_application(client, app_id)
        # Package associations need their own right; without it they are reported, not read.
        packages = await _packages_readable(client, app_id)
        if not packages:
            snapshot.report.note(
                f"application {app_id}: package associations not read: the API key lacks "
                f"{PACKAGES_RIGHT}"
            )
        elif not device_packages:
            snapshot.report.note(
                f"application {app_id}: the devices' own package associations not read "
                "(--no-device-packages); its default associations are"
            )
        probe.add(
            DesiredResource(
                application_key(app_id),
                app_fields,
                extra={"owner": owner, "declared_lists": access, "access_optional": True},
            )
        )
        probe.add(DesiredResource(link_key(app_id), link_fields))
        try:
            async for item in provider._list_pages(
                "is", f"/applications/{app_id}/devices", "end_devices", ["ids"]
            ):
                if item["ids"]["device_id"] == LEASE_DEVICE_ID:
                    continue  # a running apply's lease (reconciler.lease), not a device
                key = device_key(app_id, item["ids"]["device_id"])
                # Every registry is read: the Join Server answers 404 for ABP devices; the
                # Application Server's package associations too (one list per device).
                own = packages and device_packages
                extra = {"otaa": True, "packages": True} if own else {"otaa": True}
                probe.add(DesiredResource(key, device_fields, extra=extra))
            listing = await client.get_json(
                "as",
                f"/as/webhooks/{app_id}",
                params={"field_mask": ",".join(r.WEBHOOK_READ_PATHS)},
            )
            pubsub_listing = await client.get_json(
                "as",
                f"/as/pubsub/{app_id}",
                params={"field_mask": ",".join(r.PUBSUB_READ_PATHS)},
            )
        except TTSAPIError as error:
            if error.status == 403:
                raise ImportFailure(
                    f"application `{app_id}`: the API key lacks the rights to read it ({error})"
                ) from None
            raise
        webhooks[app_id] = list(listing.get("webhooks") or [])
        defaults[app_id] = []
        if packages:
            default_listing = await client.get_json(
                "as",
                pkg.collection_path(app_id),
                params={"field_mask": ",".join(pkg.READ_PATHS)},
            )
            defaults[app_id] = list(default_listing.get("defaults") or [])
        pubsubs[app_id] = list(pubsub_listing.get("pubsubs") or [])
    gateway_fields = dict.fromkeys(r.GATEWAY_PATHS + r.GATEWAY_EXTRAS)
    for gateway_id in gateway_ids:
        probe.add(
            DesiredResource(
                gateway_key(gateway_id),
                gateway_fields,
                extra={"owner": owner, "declared_lists": access, "access_optional": True},
            )
        )

    live = await provider.read(probe, prune=False)
    for gateway_id in gateway_ids:
        if live.get(gateway_key(gateway_id)) is None:
            raise ImportFailure(
                f"gateway `{gateway_id}`: not found on the Identity Server (or the API key has "
                "no rights to it)"
            )
    _collect(snapshot, live, app_ids, gateway_ids, webhooks, pubsubs, defaults)
    # What could not be read (API keys or collaborators without the rights to list them) and
    # the servers' warnings.
    for warning in live.warnings:
        snapshot.report.note(warning)
    owners = [a.owner_organization for a in snapshot.applications]
    owners += [g.owner_organization for g in snapshot.gateways]
    owner_ids = [o for o in dict.fromkeys(owners) if o and o not in org_ids]
    if org_ids or owner_ids:
        await _read_organizations(provider, snapshot, org_ids, owner_ids)
    return snapshot


async def _read_organizations(
    provider: TTSProvider, snapshot: r.Snapshot, chosen: list[str], owners: list[str]
) -> None:
    """The organizations with their members and API keys (as lists the manifests declare):
    the `chosen` ones must exist; an organization that owns an imported application or gateway
    but cannot be read (the API key is no member) is reported, and what it owns is written
    under the Stack's owner."""
    probe = DesiredState(stack="import", ownership_key="managed-by")
    fields = dict.fromkeys(r.ORGANIZATION_PATHS + r.ORGANIZATION_EXTRAS)
    for org_id in [*chosen, *owners]:
        probe.add(
            DesiredResource(
                organization_key(org_id),
                fields,
                extra={
                    "owner": Owner("user", "import"),
                    "declared_lists": ("api_key", "collaborator"),
                    "access_optional": True,
                },
            )
        )
    live = await provider.read(probe, prune=False)
    for org_id in [*chosen, *owners]:
        entry = live.get(organization_key(org_id))
        if (entry is None or "is" not in entry.records) and org_id in owners:
            owned = [a for a in snapshot.applications if a.owner_organization == org_id]
            owned_gateways = [g for g in snapshot.gateways if g.owner_organization == org_id]
            for app in owned:
                app.owner_organization = None
            for gateway in owned_gateways:
                gateway.owner_organization = None
            snapshot.report.add(
                f"owned by organization `{org_id}`, which the API key cannot read: written "
                "under the Stack's owner (import with a key of a member to carry it over)",
                ", ".join(
                    [a.application_id for a in owned] + [g.gateway_id for g in owned_gateways]
                ),
            )
            continue
        if entry is None or "is" not in entry.records:
            raise ImportFailure(
                f"organization `{org_id}`: not found on the Identity Server (or the API key has "
                "no rights to it)"
            )
        access = r.access_record(live, organization_key(org_id), snapshot.report)
        organization = r.organization_record(
            entry.records["is"].data, access, snapshot.report, snapshot.owner
        )
        snapshot.organizations.append(organization)
        snapshot.report.count("organization")
        if access.api_keys:
            snapshot.report.count("API key", len(access.api_keys))
    for warning in live.warnings:
        snapshot.report.note(warning)


def _collect(
    snapshot: r.Snapshot,
    live: LiveState,
    app_ids: list[str],
    gateway_ids: list[str],
    webhooks: dict[str, list[dict[str, Any]]],
    pubsubs: dict[str, list[dict[str, Any]]],
    defaults: dict[str, list[dict[str, Any]]],
) -> None:
    report = snapshot.report
    by_app: dict[str, list[ResourceKey]] = {}
    associations: dict[tuple[str, ...], list[r.PackageRecord]] = {}
    for key, entry in live.resources.items():
        if key.kind == "device":
            by_app.setdefault(key.ids[0], []).append(key)
        elif key.kind == "package_association" and "as" in entry.records:
            associations.setdefault(key.ids[:2], []).append(
                r.package_record(entry.records["as"].data)
            )
    for app_id in app_ids:
        app_live = live.get(application_key(app_id))
        data = app_live.records["is"].data if app_live and "is" in app_live.records else {}
        access = r.access_record(live, application_key(app_id), report)
        owner_org = r.owning_organization(access, "application", snapshot.owner)
        app = r.ApplicationRecord(
            app_id,
            r.values(
                schema.APPLICATION,
                data,
                r.APPLICATION_PATHS,
                r.APPLICATION_EXTRAS,
                report,
                "application",
                app_id,
                ("organization", owner_org) if owner_org else snapshot.owner,
            ),
            {},
            access=access,
            owner_organization=owner_org,
        )
        link_live = live.get(link_key(app_id))
        if link_live and "as" in link_live.records:
            app.link = r.values(
                schema.APPLICATION_LINK,
                link_live.records["as"].data,
                r.LINK_PATHS,
                r.LINK_EXTRAS,
                report,
                "link",
                app_id,
            )
        app.webhooks = [r.webhook_record(item, app_id, report) for item in webhooks[app_id]]
        app.pubsubs = [r.pubsub_record(item, app_id, report) for item in pubsubs[app_id]]
        app.packages = sorted(
            (r.package_record(item) for item in defaults[app_id]), key=lambda p: p.f_port
        )
        if app.access.api_keys:
            report.count("API key", len(app.access.api_keys))
        keys = sorted(by_app.get(app_id, []))
        for key in keys:
            entry = live.resources[key]
            if "ns" not in entry.records:
                # Without its Network Server record a device has no LoRaWAN settings to write
                # (a registration that failed half-way, as the Console or CLI can leave them).
                report.add(
                    "device not imported: not registered on the Network Server (a partial "
                    "registration; complete or delete it, then import again)",
                    f"{app_id}/{key.id}",
                )
                continue
            app.keys_readable = entry.secrets_readable
            sources = [(s, entry.records[s].data) for s in r.SERVER_ORDER if s in entry.records]
            device = r.device_record(
                app_id, key.id, sources, report, keys_read=entry.secrets_readable
            )
            device.packages = sorted(associations.get(key.ids, []), key=lambda p: p.f_port)
            app.devices.append(device)
        snapshot.applications.append(app)
        report.count("application")
        report.count("device", len(app.devices))
        report.count("webhook", len(app.webhooks))
        report.count("pub/sub", len(app.pubsubs))
        associations_count = len(app.packages) + sum(len(d.packages) for d in app.devices)
        if associations_count:
            report.count("package association", associations_count)
    for gateway_id in gateway_ids:
        entry = live.resources[gateway_key(gateway_id)]
        access = r.access_record(live, gateway_key(gateway_id), report)
        owner_org = r.owning_organization(access, "gateway", snapshot.owner)
        owner = ("organization", owner_org) if owner_org else snapshot.owner
        gateway = r.gateway_record(entry.records["is"].data, report, owner)
        gateway.access = access
        gateway.owner_organization = owner_org
        if gateway.access.api_keys:
            report.count("API key", len(gateway.access.api_keys))
        snapshot.gateways.append(gateway)
        report.count("gateway")


async def _caller(client: TTSClient) -> tuple[str, str] | None:
    """The user or organization the API key belongs to (the default owner on a new server)."""
    info = await client.get_json("is", "/auth_info")
    ids = (info.get("api_key") or {}).get("entity_ids") or {}
    for kind in ("user", "organization"):
        entity = ids.get(f"{kind}_ids")
        if entity and entity.get(f"{kind}_id"):
            return kind, str(entity[f"{kind}_id"])
    return None


PACKAGES_RIGHT = "RIGHT_APPLICATION_SETTINGS_PACKAGES"


async def _packages_readable(client: TTSClient, app_id: str) -> bool:
    try:
        answer = await client.get_json("is", f"/applications/{app_id}/rights")
    except TTSAPIError as error:
        if error.status == 403:
            return False  # no rights at all: the reads that follow say so
        raise
    rights = answer.get("rights")
    held = set(rights) if isinstance(rights, list) else set()
    return bool(held & {PACKAGES_RIGHT, "RIGHT_APPLICATION_ALL", "RIGHT_ALL"})


async def _check_application(client: TTSClient, app_id: str) -> None:
    try:
        await client.get_json("is", f"/applications/{app_id}", params={"field_mask": "ids"})
    except TTSAPIError as error:
        if error.status in (403, 404):
            raise ImportFailure(
                f"application `{app_id}`: not found on the Identity Server, or the API key has "
                f"no rights to it ({error})"
            ) from None
        raise
