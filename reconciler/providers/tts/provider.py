"""The Things Stack provider: reads live state for the declared scope and executes plan steps.

Reads use the smallest field masks that cover the managed fields: one Identity Server list page
(limit 1000) per thousand devices, then per-device GETs only on the registries that hold the
device. Writes send each registry only its own fields and paths
(reconciler.providers.tts.devices), so no request can trip
`field_mask_paths` or `non_zero_path` on the real server.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from reconciler.concurrency import gather_or_cancel
from reconciler.diagnostics import ReconcilerError
from reconciler.lease import Acquired, Lease, LeaseHolder
from reconciler.manifest.project import Project
from reconciler.plan.model import Endpoint, ResourceChange, ResourceResult, Step, TargetInfo
from reconciler.provider import ProgressCallback, ProviderContext
from reconciler.providers.tts import devices, reference, rights, schema
from reconciler.providers.tts import packages as pkg
from reconciler.providers.tts.client import (
    RetryPolicy,
    ServerURLs,
    TTSAPIError,
    TTSClient,
    TTSTransportError,
)
from reconciler.providers.tts.desired import desired_state
from reconciler.providers.tts.kinds import (
    LEASE_DEVICE_ID,
    Owner,
    api_key_key,
    application_key,
    application_of,
    collaborator_key,
    device_key,
    entity_key,
    entity_of,
    eui_pair,
    gateway_eui,
    link_key,
    organization_key,
    pubsub_key,
    webhook_key,
)
from reconciler.providers.tts.lease import TTSLease
from reconciler.providers.tts.manifest.project import Target
from reconciler.providers.tts.orphans import (
    HISTORY_IDLE_S,
    history_events,
    history_request,
    last_states,
    orphan_reason,
    registries_to_probe,
)
from reconciler.providers.tts.planner import (
    ANTENNAS,
    GATEWAY_SECRET_PATHS,
    MERGED_MAPS,
    MESSAGE_OF_KIND,
    TTSDiffer,
    antennas_with_location,
    managed_record,
    merged_map,
    record,
)
from reconciler.providers.tts.servers import SERVER_LABELS, SERVER_NAMES, SERVERS, Server
from reconciler.redact import Redactor
from reconciler.resources import (
    DesiredResource,
    DesiredState,
    KeyHolder,
    LiveRecord,
    LiveResource,
    LiveState,
    ResourceKey,
    reveal,
)
from reconciler.sinks import SinkError, deliver

if TYPE_CHECKING:
    from reconciler.providers.tts.watch import TTSWatcher

LIST_PAGE_SIZE = 1000
GATEWAY_SECRETS_RIGHTS = frozenset({"RIGHT_GATEWAY_READ_SECRETS", "RIGHT_GATEWAY_ALL", "RIGHT_ALL"})
# The right that lists an entity's API keys, collaborators (`RIGHT_<ENTITY>_...`).
LIST_RIGHTS = {"api_key": "SETTINGS_API_KEYS", "collaborator": "SETTINGS_COLLABORATORS"}
PLURAL = {"application": "applications", "gateway": "gateways", "organization": "organizations"}
# 403 instead of 404 for an entity that does not exist (or is not the caller's).
NO_RIGHTS_ERRORS = frozenset(
    {"no_application_rights", "no_gateway_rights", "no_organization_rights"}
)
READ_KEYS_RIGHTS = frozenset(
    {"RIGHT_APPLICATION_DEVICES_READ_KEYS", "RIGHT_APPLICATION_ALL", "RIGHT_ALL"}
)
ENTITY_WRAPPER: dict[str, str] = {
    "organization": "organization",
    "application": "application",
    "link": "link",
    "webhook": "webhook",
    "pubsub": "pubsub",
    **pkg.WRAPPER,
    "device": "end_device",
    "gateway": "gateway",
}

# How long after a soft delete an application or gateway may be restored (the Identity Server's
# default `is.delete.restore`; only admins may purge).
RESTORE_WINDOW_HOURS = 24

ROLE_OF_SERVER: dict[Server, str] = {
    "is": "identity",
    "ns": "network",
    "as": "application",
    "js": "join",
}


@dataclass(frozen=True)
class Integration:
    """An application's Application Server integrations (webhooks, pub/subs): one route each,
    listed per application, keyed by their own ID."""

    kind: str
    route: str  # /as/<route>/{application_id}[/{id}]
    list_field: str
    id_field: str
    message: str

    def key(self, application_id: str, item_id: str) -> ResourceKey:
        return (webhook_key if self.kind == "webhook" else pubsub_key)(application_id, item_id)

    def mask_path(self, path: str) -> str:
        """The field-mask path of a managed field (a pub/sub's provider is a oneof)."""
        return reference.mask_path(self.message, path)


INTEGRATIONS = (
    Integration("webhook", "webhooks", "webhooks", "webhook_id", schema.WEBHOOK),
    Integration("pubsub", "pubsub", "pubsubs", "pub_sub_id", schema.PUBSUB),
)
INTEGRATION_OF_KIND = {i.kind: i for i in INTEGRATIONS}


def _field_mask(paths: Iterable[str]) -> str:
    """A read's `field_mask` query value, never empty: the real server parses `field_mask=` as
    the path "" and refuses it. `ids` comes back on every read anyway, so a registry with no
    managed field is still read (its record's presence is how a partial registration shows)."""
    return ",".join(sorted(set(paths))) or "ids"


class TTSProvider(TTSDiffer):
    """The provider contract (reconciler.provider) for one stack of The Things Stack."""

    manifest_kinds = ("Stack", "Organization", "Application", "Device", "Fleet", "Gateway")

    def __init__(
        self,
        client: TTSClient,
        *,
        parallelism: int = 16,
        progress: ProgressCallback | None = None,
        target: Target | None = None,
        api_key: str = "",
    ) -> None:
        """`target` and `api_key` are needed for planning (`create` gives them); reading
        alone (the importer) needs only the client."""
        self.client = client
        self.parallelism = max(1, parallelism)
        self.progress = progress
        self._target = target
        self._api_key = api_key
        self._version_key = self.digest_key()
        # A fleet's devices share their managed fields: one mask per (registry, field names,
        # keys readable) instead of one per device.
        self._registry_masks: dict[tuple[Server, tuple[str, ...], bool], str] = {}
        self.lease = TTSLease(self)
        # Applications and gateways created under an organization the manifests declare.
        self._owner_organization: dict[ResourceKey, ResourceKey] = {}
        self._redactor: Redactor | None = None
        # A new API key's secret, by key ID, from its creation to its delivery only.
        self._last_secret: dict[str, str] = {}

    @property
    def target(self) -> Target:
        if self._target is None:
            raise ReconcilerError("the TTS provider was built without a target")
        return self._target

    # -- description, desired state, statistics ---------------------------------------------

    def describe(self) -> TargetInfo:
        return TargetInfo(
            provider=self.name,
            name=self.target.stack,
            endpoints={
                server: Endpoint(
                    SERVER_LABELS[server],
                    SERVER_NAMES[server],
                    self.target.server_urls[ROLE_OF_SERVER[server]],  # type: ignore[index]
                )
                for server in SERVERS
            },
        )

    def desired(self, project: Project) -> DesiredState:
        state = desired_state(project, self.target)
        # Error text from the servers is scrubbed of every secret this run sends.
        # (Built on the first error to scrub: most runs print none.)
        self._redactor = Redactor(lambda: [self._api_key, *state.secret_values()])
        self.client.redactor = self._redactor
        for resource in [*state.of_kind("application"), *state.of_kind("gateway")]:
            owner = resource.extra.get("owner")
            if isinstance(owner, Owner) and owner.kind == "organization":
                org = organization_key(owner.id)
                if org in state.resources:
                    self._owner_organization[resource.key] = org
        return state

    def digest_key(self) -> bytes:
        # Fingerprints in saved plans are keyed by the API key: without it they reveal nothing.
        return hashlib.sha256(b"reconciler-plan:" + self._api_key.encode()).digest()

    @property
    def requests(self) -> int:
        return self.client.stats.requests

    def watcher(self) -> TTSWatcher:
        from reconciler.providers.tts.watch import TTSWatcher

        return TTSWatcher(self)

    async def aclose(self) -> None:
        await self.client.aclose()

    def estimate_seconds(self, changes: Sequence[ResourceChange]) -> float | None:
        """Time the writes should take: spread over the parallel workers at the latency
        measured while reading, and no faster than a learned rate limit allows for the busiest
        shared bucket (device creations share one per application; the rest are per entity)."""
        writes = sum(len(c.steps) for c in changes)
        if writes == 0:
            return 0.0
        estimates = []
        stats = self.client.stats
        if stats.mean_latency:
            estimates.append(writes * stats.mean_latency / self.parallelism)
        profile = self.client.pacer.profile
        if profile is not None:
            creates: dict[str, int] = {}
            for change in changes:
                if change.key.kind == "device" and any(
                    s.endpoint == "is" and s.operation == "create" for s in change.steps
                ):
                    app = application_of(change.key)
                    creates[app] = creates.get(app, 0) + 1
            busiest = max(creates.values(), default=0)
            estimates.append(max(0.0, busiest - profile.capacity) / profile.per_second)
        return max(estimates) if estimates else None

    # -- the apply lease (reconciler.providers.tts.lease) -------------------------------------

    async def acquire_lease(self, holder: LeaseHolder, until: datetime) -> Acquired:
        return await self.lease.acquire(holder, until)

    async def renew_lease(self, holder: LeaseHolder, until: datetime) -> None:
        await self.lease.renew(holder, until)

    async def release_lease(self, holder: LeaseHolder) -> None:
        await self.lease.release(holder)

    async def find_leases(self) -> list[Lease]:
        return await self.lease.find()

    async def break_lease(self, lease_id: str) -> list[Lease]:
        return await self.lease.break_lease(lease_id)

    # -- reading ----------------------------------------------------------------------------

    async def read(self, desired: DesiredState, *, prune: bool) -> LiveState:
        live = LiveState()
        semaphore = asyncio.Semaphore(self.parallelism)
        owned_apps: set[str] = set()
        if prune:  # the three listings at once: none needs another's answer
            owned_apps = (
                await gather_or_cancel(
                    self._read_owned(desired, live, kind)
                    for kind in ("application", "gateway", "organization")
                )
            )[0]
        app_ids = sorted(
            set(sorted(k.id for k in desired.resources if k.kind == "application")) | owned_apps
        )

        async def bounded(coro: Awaitable[None]) -> None:
            async with semaphore:
                await coro

        await asyncio.gather(
            *(bounded(self._read_application(desired, live, app_id)) for app_id in app_ids),
            *(bounded(self._read_gateway(r, live)) for r in desired.of_kind("gateway")),
            *(
                bounded(self._read_organization(desired, r, live))
                for r in desired.of_kind("organization")
            ),
        )
        for kind in ("organization", "application", "gateway"):
            of_kind = desired.of_kind(kind)
            if any(r.key not in live.resources for r in of_kind):
                # A missing ID may be soft-deleted (reserved) rather than free.
                await self._read_deleted(of_kind, live, kind)
        await self._read_access(desired, live, bounded)
        existing_apps = [
            a
            for a in app_ids
            if "is"
            in live.resources.get(application_key(a), LiveResource(application_key(a))).records
        ]
        # The event history of the owned applications names recently deleted devices, whose
        # records may remain on the other registries (see reconciler.providers.tts.orphans).
        # Read alongside everything else: the stream is read until it goes quiet.
        histories = {
            app_id: asyncio.ensure_future(self._read_history(app_id, live))
            for app_id in existing_apps
            if prune and application_key(app_id) in live.owned
        }
        # Each list page's device reads start as soon as the page arrives, on `parallelism`
        # workers (a task per device waiting on the semaphore cost ~10 us of CPU per device
        # more: its creation, the wait's future, two wake-ups).
        queued: deque[Awaitable[None]] = deque()
        more = asyncio.Event()
        all_started = False
        started = done = 0

        async def read_worker() -> None:
            nonlocal done
            while True:
                while queued:
                    await queued.popleft()
                    done += 1
                    if self.progress:
                        self.progress("read", done, started)
                if all_started:
                    return
                more.clear()
                await more.wait()

        def start(coro: Awaitable[None]) -> None:
            nonlocal started
            queued.append(coro)
            started += 1
            more.set()

        workers = [asyncio.ensure_future(read_worker()) for _ in range(max(1, self.parallelism))]
        try:
            declared: dict[str, list[DesiredResource]] = {}
            for resource in desired.of_kind("device"):
                declared.setdefault(application_of(resource.key), []).append(resource)
            # The associations of each device whose manifest lists them (one request each).
            associations: dict[tuple[str, ...], list[DesiredResource]] = {}
            listing_devices: list[DesiredResource] = []
            for resource in desired.resources.values():
                if resource.key.kind == "package_association":
                    associations.setdefault(resource.key.ids[:2], []).append(resource)
                elif resource.key.kind == "device" and resource.extra.get("packages"):
                    listing_devices.append(resource)
            for resource in listing_devices:
                app_id = application_of(resource.key)
                if app_id in existing_apps:
                    start(
                        self._read_package_associations(
                            associations.get(resource.key.ids, []),
                            live,
                            app_id,
                            resource.key.id,
                            application_key(app_id) in live.owned,
                        )
                    )
            # The devices of every application are read while its link and webhooks are.
            listings = await gather_or_cancel(
                [
                    *(
                        bounded(self._read_link_and_webhooks(desired, live, a, prune))
                        for a in existing_apps
                    ),
                    *(
                        self._read_devices(
                            desired, live, app_id, declared.get(app_id, []), prune, start
                        )
                        for app_id in existing_apps
                    ),
                ]
            )
            on_identity_server: dict[str, set[str]] = {}
            read_entries: list[tuple[bool, LiveResource]] = []
            for app_id, (seen, entries) in zip(
                existing_apps, listings[len(existing_apps) :], strict=True
            ):
                on_identity_server[app_id] = seen
                read_entries.extend((device_id in seen, e) for device_id, e in entries.items())
            for app_id, history in histories.items():
                states = await history
                for device_id, state in sorted(states.items()):
                    key = device_key(app_id, device_id)
                    # The apply lease lives on the Identity Server only (see lease.py).
                    if (
                        device_id in on_identity_server[app_id]
                        or key in desired.resources
                        or device_id == LEASE_DEVICE_ID
                    ):
                        continue
                    servers = registries_to_probe(state)
                    if servers:
                        start(self._probe_registries(app_id, device_id, servers, live, orphan=True))
            all_started = True
            more.set()
            await asyncio.gather(*workers)
            for listed, entry in read_entries:
                # The records in the order of registration whichever read finished first (plan
                # JSON and text list them as they are).
                entry.records = {
                    s: entry.records[s] for s in devices.CREATE_ORDER if s in entry.records
                }
                if not listed and entry.records:
                    live.resources[entry.key] = entry
        finally:
            for task in [*workers, *histories.values()]:  # on an error, leave nothing running
                task.cancel()
            for coro in queued:  # never started
                if asyncio.iscoroutine(coro):
                    coro.close()
        live.warnings.extend(self.take_warnings())
        return live

    async def _read_history(self, app_id: str, live: LiveState) -> dict[str, dict[Server, str]]:
        """What the application's event history says about its devices (device id -> server
        -> present or gone); nothing, with a warning, when it cannot be read."""
        try:
            response = await self.client.request(
                "is", "POST", "/events", json=history_request(app_id), stream_idle=HISTORY_IDLE_S
            )
        except (TTSAPIError, TTSTransportError) as error:
            live.warnings.append(
                f"the event history of application {app_id} could not be read ({error}): "
                "records it holds on the Network, Application and Join Servers for devices the "
                "manifests do not declare are not looked for"
            )
            return {}
        return last_states(history_events(response.data["messages"]), app_id)

    async def _probe_registries(
        self,
        app_id: str,
        device_id: str,
        servers: Sequence[Server],
        live: LiveState,
        *,
        orphan: bool = False,
    ) -> None:
        """Look a device the Identity Server lacks up on `servers`; what is found becomes its
        live records (with `orphan`: an owned resource, pruned with --prune)."""
        key = device_key(app_id, device_id)
        probed = LiveResource(key)
        await self._probe_into(probed, servers)
        if not probed.records:
            return
        entry = live.resources.setdefault(key, LiveResource(key))
        entry.records.update(probed.records)
        if orphan:
            entry.owned_because = orphan_reason(app_id, [s for s in servers if s in probed.records])
            live.owned.add(key)

    async def _probe_into(self, entry: LiveResource, servers: Sequence[Server]) -> None:
        """The device's records on `servers` (its ids only) into `entry`, where they exist."""
        app_id, device_id = entry.key.ids
        for server in servers:
            data = await self._get_optional(
                server, f"/{server}/applications/{app_id}/devices/{device_id}", ["ids"]
            )
            if data is not None:
                entry.records[server] = managed_record(data, self._version_key)

    async def _read_deleted(
        self,
        declared: list[DesiredResource],
        live: LiveState,
        kind: Literal["organization", "application", "gateway"],
    ) -> None:
        """The soft-deleted organizations, applications or gateways the key can see: a declared
        one among them
        is restored rather than created (its ID is reserved); a deleted gateway's EUI stays
        reserved too. One list request per 1,000, only when a declared one is missing."""
        plural = f"{kind}s"
        id_field = f"{kind}_id"
        wanted = {r.key.id: r for r in declared if r.key not in live.resources}
        # Gateway secrets are never listed: the list would need RIGHT_GATEWAY_READ_SECRETS.
        mask = {"attributes", "deleted_at"} | {
            p for r in wanted.values() for p in r.fields if p not in GATEWAY_SECRET_PATHS
        }
        mask = {p for p in mask if not p.startswith("ids.")}
        async for item in self._list_pages(
            "is", f"/{plural}", plural, mask, extra={"deleted": "true"}
        ):
            entity_id = _entity_id(item, id_field)
            if entity_id is None:
                raise self._malformed("is", f"/{plural}", f"an item without ids.{id_field}")
            key = entity_key(kind, entity_id)
            if kind == "gateway":
                eui = gateway_eui((item.get("ids") or {}).get("eui"))
                if eui:
                    live.unique_keys[eui] = KeyHolder(
                        key,
                        freed_by_delete=False,
                        note=(
                            "soft-deleted, which keeps its EUI reserved: an admin can purge it "
                            f"(DELETE /api/v3/gateways/{entity_id}/purge), or declare it again "
                            "under its own ID (it is then restored)"
                        ),
                    )
            if entity_id not in wanted:
                continue
            entry = live.resources.setdefault(key, LiveResource(key))
            entry.deleted["is"] = record(item)
            entry.unrestorable = _unrestorable(kind, entity_id, item.get("deleted_at"))

    def take_warnings(self) -> list[str]:
        """The servers' X-Warning answers since the last call, one line each with the request
        that first drew it (and how many did)."""
        lines = [
            f"{first}: server warning: {text}" + (f" ({count} requests)" if count > 1 else "")
            for text, (first, count) in self.client.warnings.items()
        ]
        self.client.warnings.clear()
        return lines

    async def _read_owned(
        self,
        desired: DesiredState,
        live: LiveState,
        kind: Literal["application", "gateway", "organization"],
    ) -> set[str]:
        plural = PLURAL[kind]
        id_field = f"{kind}_id"
        owned: set[str] = set()
        async for item in self._list_pages("is", f"/{plural}", plural, ["attributes"]):
            if _attribute(item, desired.ownership_key) == desired.stack:
                entity_id = _entity_id(item, id_field)
                if entity_id is None:
                    raise self._malformed("is", f"/{plural}", f"an item without ids.{id_field}")
                key = entity_key(kind, entity_id)
                live.owned.add(key)
                resource = live.resources.setdefault(key, LiveResource(key))
                resource.records["is"] = record(item)
                owned.add(entity_id)
                if kind == "gateway":
                    _hold_gateway_eui(live, key, item)
        return owned

    async def _list_pages(
        self,
        server: Server,
        path: str,
        list_field: str,
        mask: Iterable[str] | None,
        extra: dict[str, str] | None = None,
        filters: list[dict[str, Any]] | None = None,
        selection: dict[str, Any] | None = None,
    ) -> Any:
        """The listing's items, page by page: never more pages than X-Total-Count needs, nor
        than the client's page ceiling (a server that answers full pages forever). `mask`
        None: a listing without a field mask (API keys, collaborators); `extra`: more query
        parameters (`deleted`). With `filters`, the list RPC's POST form (`path` ends in
        `/filter`) carries them, and `selection` (more request fields: `deleted`)."""
        page = 1
        ceiling = self.client.limits.max_list_pages
        while True:
            if filters is None:
                params: dict[str, Any] = {"limit": LIST_PAGE_SIZE, "page": page, **(extra or {})}
                if mask is not None:
                    params["field_mask"] = _field_mask(mask)
                response = await self.client.request(server, "GET", path, params=params)
            else:
                response = await self.client.request(
                    server,
                    "POST",
                    path,
                    json={
                        "field_mask": {"paths": sorted(set(mask or ())) or ["ids"]},
                        "filters": filters,
                        **(selection or {}),
                        "limit": LIST_PAGE_SIZE,
                        "page": page,
                    },
                )
            items = response.data.get(list_field) or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise self._malformed(server, path, f"`{list_field}` is not a list of objects")
            for item in items:
                yield item
            total_header = response.headers.get("X-Total-Count")
            total = None
            if total_header is not None:
                if not total_header.strip().isdigit():
                    raise self._malformed(server, path, "X-Total-Count is not a number")
                total = int(total_header)
            seen = (page - 1) * LIST_PAGE_SIZE + len(items)
            if not items or len(items) < LIST_PAGE_SIZE or (total is not None and seen >= total):
                return
            if page >= ceiling:
                raise self._malformed(
                    server, path, f"more than {ceiling} pages of {LIST_PAGE_SIZE} (the ceiling)"
                )
            page += 1

    def _malformed(self, server: Server, path: str, problem: str) -> TTSAPIError:
        return TTSAPIError(
            server=server, method="GET", path=path, status=200, body=None, message=problem
        )

    async def _get_optional(
        self, server: Server, path: str, mask: Iterable[str] | str
    ) -> dict[str, Any] | None:
        """GET a resource; None when it does not exist (or, for applications, is not ours).
        `mask`: the paths, or the `field_mask` value built already."""
        field_mask = mask if isinstance(mask, str) else _field_mask(mask)
        try:
            return await self.client.get_json(server, path, params={"field_mask": field_mask})
        except TTSAPIError as error:
            if error.status == 404 or error.name in NO_RIGHTS_ERRORS:
                return None
            raise

    async def _read_application(self, desired: DesiredState, live: LiveState, app_id: str) -> None:
        key = application_key(app_id)
        resource = desired.resources.get(key)
        mask = set(resource.fields) if resource else set()
        mask.add("attributes")
        data = await self._get_optional("is", f"/applications/{app_id}", mask)
        if data is None:
            return
        entry = live.resources.setdefault(key, LiveResource(key))
        entry.records["is"] = record(data)
        if _attribute(data, desired.ownership_key) == desired.stack:
            live.owned.add(key)

    async def _application_keys_readable(self, app_id: str) -> bool:
        rights = await self.client.get_json("is", f"/applications/{app_id}/rights")
        granted = rights.get("rights")
        if not isinstance(granted, list):
            granted = []
        return any(isinstance(r, str) and r in READ_KEYS_RIGHTS for r in granted)

    async def _read_link_and_webhooks(
        self, desired: DesiredState, live: LiveState, app_id: str, prune: bool
    ) -> None:
        key = link_key(app_id)
        link = desired.resources.get(key)
        if link is not None:
            data = await self._get_optional("as", f"/as/applications/{app_id}/link", link.fields)
            if data is not None:
                live.resources[key] = LiveResource(
                    key, {"as": managed_record(data, self._version_key)}
                )
        app_owned = application_key(app_id) in live.owned
        for integration in INTEGRATIONS:
            declared = [
                r for r in desired.of_kind(integration.kind) if application_of(r.key) == app_id
            ]
            if not declared and not (prune and app_owned):
                continue
            mask = {"ids"} | {integration.mask_path(p) for r in declared for p in r.fields}
            path = f"/as/{integration.route}/{app_id}"
            listing = await self.client.get_json(
                "as", path, params={"field_mask": _field_mask(mask)}
            )
            items = listing.get(integration.list_field) or []
            for item in items if isinstance(items, list) else [None]:
                item_id = _entity_id(item, integration.id_field)
                if item_id is None or not isinstance(item, dict):
                    raise self._malformed("as", path, f"a {integration.kind} without ids")
                key = integration.key(app_id, item_id)
                live.resources[key] = LiveResource(
                    key, {"as": managed_record(item, self._version_key)}
                )
                # Webhooks and pub/subs carry no attributes: in an application this stack
                # owns, the manifests' list is authoritative (prune removes the others).
                if app_owned:
                    live.owned.add(key)
        # Read only when the application's manifest lists its default associations (like a
        # device's own): the right they need is not one every API key holds.
        app_resource = desired.resources.get(application_key(app_id))
        if app_resource is not None and app_resource.extra.get("packages"):
            declared = [
                r for r in desired.of_kind("package_default") if application_of(r.key) == app_id
            ]
            await self._read_package_associations(declared, live, app_id, None, app_owned)

    async def _read_package_associations(
        self,
        declared: Sequence[DesiredResource],
        live: LiveState,
        app_id: str,
        device_id: str | None,
        app_owned: bool,
    ) -> None:
        """An application's default associations, or one device's associations (one list
        request: the registry lists them all, data included when asked)."""
        mask = {*pkg.READ_PATHS} | {p for r in declared for p in r.fields}
        path = pkg.collection_path(app_id, device_id)
        kind = "package_default" if device_id is None else "package_association"
        listing = await self.client.get_json("as", path, params={"field_mask": _field_mask(mask)})
        items = listing.get(pkg.LIST_FIELD[kind]) or []
        for item in items if isinstance(items, list) else [None]:
            key = pkg.listed_key(item, app_id, device_id)
            if key is None or not isinstance(item, dict):
                raise self._malformed("as", path, "a package association without an FPort")
            live.resources[key] = LiveResource(key, {"as": managed_record(item, self._version_key)})
            # Like webhooks: owned through the application; for a device, read only when its
            # manifest lists its associations, so that list is authoritative.
            if app_owned:
                live.owned.add(key)

    async def _read_gateway(self, resource: DesiredResource, live: LiveState) -> None:
        """The gateway's managed fields; its secrets (LNS, CUPS keys) only when the API key
        may read them (a second read: asking without the right fails the whole read)."""
        secrets = GATEWAY_SECRET_PATHS & set(resource.fields)
        mask = (set(resource.fields) - secrets) | {"attributes"}
        data = await self._get_optional("is", f"/gateways/{resource.key.id}", mask)
        if data is None:
            return
        entry = live.resources.setdefault(resource.key, LiveResource(resource.key))
        if secrets:
            entry.secrets_readable = await self._gateway_secrets_readable(resource.key.id)
            if entry.secrets_readable:
                held = await self._get_optional("is", f"/gateways/{resource.key.id}", secrets)
                for path in secrets:
                    name = path.split(".", 1)[0]
                    if held and name in held:
                        data[name] = held[name]
        entry.records["is"] = record(data)
        _hold_gateway_eui(live, resource.key, data)

    async def _gateway_secrets_readable(self, gateway_id: str) -> bool:
        rights = await self.client.get_json("is", f"/gateways/{gateway_id}/rights")
        granted = rights.get("rights")
        if not isinstance(granted, list):
            granted = []
        return any(isinstance(r, str) and r in GATEWAY_SECRETS_RIGHTS for r in granted)

    async def _read_organization(
        self, desired: DesiredState, resource: DesiredResource, live: LiveState
    ) -> None:
        mask = set(resource.fields) | {"attributes"}
        data = await self._get_optional("is", f"/organizations/{resource.key.id}", mask)
        if data is None:
            return
        entry = live.resources.setdefault(resource.key, LiveResource(resource.key))
        entry.records["is"] = record(data)
        if _attribute(data, desired.ownership_key) == desired.stack:
            live.owned.add(resource.key)

    # -- API keys and collaborators ----------------------------------------------------------

    async def _read_access(
        self,
        desired: DesiredState,
        live: LiveState,
        bounded: Callable[[Awaitable[None]], Awaitable[None]],
    ) -> None:
        """The API keys and collaborators of the declared entities that declare them (a list
        in the manifests is all of them: in an owned entity, the others are prune candidates),
        the tool's own identity (never removed) and its rights on them (it must hold every
        right it grants, or the server refuses)."""
        lists: dict[tuple[str, ResourceKey], list[DesiredResource]] = {}
        for resource in [*desired.of_kind("api_key"), *desired.of_kind("collaborator")]:
            lists.setdefault((resource.key.kind, entity_of(resource.key)), []).append(resource)
        declared = _declared_lists(desired)
        if not declared:
            return
        identity = await self._identity()
        held: dict[ResourceKey, frozenset[str]] = {}

        async def read_entity(entity: ResourceKey) -> None:
            present = "is" in (live.resources.get(entity) or LiveResource(entity)).records
            if not present:
                held[entity] = identity.key_rights  # created under the tool's owner
                return
            held[entity] = await self._rights(entity)
            owned = entity in live.owned
            for kind in ("api_key", "collaborator"):
                if (kind, entity) not in declared:
                    continue
                needed = f"RIGHT_{entity.kind.upper()}_{LIST_RIGHTS[kind]}"
                if entity.kind == "organization" and kind == "collaborator":
                    needed = "RIGHT_ORGANIZATION_SETTINGS_MEMBERS"
                if needed not in held[entity]:
                    problem = (
                        f"{entity}: the tool's API key lacks {needed}, so its "
                        f"{kind.replace('_', ' ')}s cannot be read"
                    )
                    if desired.resources[entity].extra.get("access_optional"):
                        live.warnings.append(problem)  # import: reported, not fatal
                        continue
                    raise ReconcilerError(f"{problem}: grant it, or leave the list out")
                if kind == "api_key":
                    await self._read_api_keys(entity, live, owned)
                else:
                    await self._read_collaborators(desired, entity, live, owned, identity)

        entities = sorted({entity for _, entity in declared})
        await asyncio.gather(*(bounded(read_entity(e)) for e in entities))
        for (_, entity), resources in sorted(lists.items()):
            granted = rights.expand(r for res in resources for r in res.fields["rights"])
            lacking = sorted(granted & rights.of_entity(entity.kind) - held.get(entity, set()))
            if lacking and not identity.universal:
                live.warnings.append(
                    f"{entity}: the tool's API key lacks {', '.join(lacking[:5])}"
                    + (" ..." if len(lacking) > 5 else "")
                    + ", which the manifests grant there: the server refuses to grant a right "
                    "the caller does not hold"
                )

    async def _identity(self) -> _Identity:
        info = await self.client.get_json("is", "/auth_info")
        api_key = info.get("api_key") if isinstance(info.get("api_key"), dict) else {}
        assert isinstance(api_key, dict)
        ids = api_key.get("entity_ids") if isinstance(api_key.get("entity_ids"), dict) else {}
        key = api_key.get("api_key") if isinstance(api_key.get("api_key"), dict) else {}
        assert isinstance(ids, dict) and isinstance(key, dict)
        member: tuple[str, str] | None = None
        for kind in ("user", "organization"):
            found = ids.get(f"{kind}_ids")
            if isinstance(found, dict) and isinstance(found.get(f"{kind}_id"), str):
                member = (kind, found[f"{kind}_id"])
        universal = info.get("universal_rights")
        return _Identity(
            member,
            rights.expand(str(r) for r in key.get("rights") or []),
            bool(universal),
        )

    async def _rights(self, entity: ResourceKey) -> frozenset[str]:
        data = await self.client.get_json("is", f"/{PLURAL[entity.kind]}/{entity.id}/rights")
        return rights.expand(str(r) for r in data.get("rights") or [])

    async def _read_api_keys(self, entity: ResourceKey, live: LiveState, owned: bool) -> None:
        path = f"/{PLURAL[entity.kind]}/{entity.id}/api-keys"
        by_name: dict[str, list[dict[str, Any]]] = {}
        now = datetime.now(UTC)
        async for item in self._list_pages("is", path, "api_keys", None):
            name = item.get("name")
            if not isinstance(name, str) or not isinstance(item.get("id"), str):
                raise self._malformed("is", path, "an API key without id or name")
            # Never kept: a listing has no secrets, but a hostile server might send one.
            kept = {k: v for k, v in item.items() if k != "key"}
            kept["age_days"] = _age_days(item.get("created_at"), now)
            by_name.setdefault(name, []).append(kept)
        for name, items in by_name.items():
            key = api_key_key(entity.kind, entity.id, name)
            version = ",".join(sorted(str(i.get("updated_at") or "") for i in items)) or None
            live.resources[key] = LiveResource(
                key, {"is": LiveRecord({"api_keys": items}, version)}
            )
            if owned:
                live.owned.add(key)

    async def _read_collaborators(
        self,
        desired: DesiredState,
        entity: ResourceKey,
        live: LiveState,
        owned: bool,
        identity: _Identity,
    ) -> None:
        path = f"/{PLURAL[entity.kind]}/{entity.id}/collaborators"
        owner = desired.resources[entity].extra.get("owner")
        async for item in self._list_pages("is", path, "collaborators", None):
            ids = item.get("ids") if isinstance(item.get("ids"), dict) else None
            member = _member(ids)
            if member is None:
                raise self._malformed("is", path, "a collaborator without ids")
            key = collaborator_key(entity.kind, entity.id, *member)
            resource = LiveResource(key, {"is": LiveRecord({"rights": item.get("rights") or []})})
            if member == identity.member:
                resource.protected = (
                    f"refusing to remove the tool's own access ({member[0]} {member[1]} holds "
                    "its API key); keep it in the manifests or change it by hand"
                )
            live.resources[key] = resource
            # The owner it was created under stays, declared or not.
            is_owner = isinstance(owner, Owner) and (owner.kind, owner.id) == member
            if owned and not is_owner:
                live.owned.add(key)

    async def _read_devices(
        self,
        desired: DesiredState,
        live: LiveState,
        app_id: str,
        declared: list[DesiredResource],
        prune: bool,
        start: Callable[[Awaitable[None]], None],
    ) -> tuple[set[str], dict[str, LiveResource]]:
        """The application's devices: `start` the registry reads of every declared device at
        once, then list the Identity Server's devices while they run. Returns the ids of all
        devices listed.

        The reads do not wait for the listing: a declared device is read on the Network,
        Application and Join Servers whether the Identity Server lists it (its records there)
        or not (records left without it must be found before it is registered anew), so the
        listing's pages (a round trip each, the first with up to a thousand devices to build
        and decode) cost no time of their own. Returns the ids of all devices listed and the
        declared devices' entries, whose records the reads are still writing (the entries of
        the devices not listed are live state once their reads are done, if they found any)."""
        keys_readable = True
        if declared:
            keys_readable = await self._application_keys_readable(app_id)
        entries: dict[str, LiveResource] = {}
        for resource in declared:
            entry = LiveResource(resource.key, secrets_readable=keys_readable)
            entries[resource.key.id] = entry
            # One read per registry, not one device after the other: the last devices' reads
            # then end together instead of three round trips after the others'.
            for server in self.device_registries(resource):
                start(self._read_registry(resource, entry, server))
        is_mask = self.device_is_mask(declared)
        seen: set[str] = set()
        async for item in self._list_pages(
            "is", f"/applications/{app_id}/devices", "end_devices", is_mask
        ):
            device_id = _entity_id(item, "device_id")
            if device_id is None:
                raise self._malformed(
                    "is", f"/applications/{app_id}/devices", "a device without ids.device_id"
                )
            seen.add(device_id)
            declared_entry = entries.get(device_id)
            pair = eui_pair(item.get("ids") or {})
            if pair:  # also of the devices not managed here: they hold their pair too
                key = (
                    device_key(app_id, device_id) if declared_entry is None else declared_entry.key
                )
                live.unique_keys[pair] = KeyHolder(key)
            owned = _attribute(item, desired.ownership_key) == desired.stack
            if declared_entry is None:
                if prune and owned:
                    key = device_key(app_id, device_id)
                    live.resources[key] = LiveResource(
                        key, {"is": record(item)}, secrets_readable=keys_readable
                    )
                    live.owned.add(key)
                continue
            declared_entry.records["is"] = record(item)
            live.resources[declared_entry.key] = declared_entry
            if owned:
                live.owned.add(declared_entry.key)
        for resource in declared:
            if resource.key.id in seen:
                continue
            # Not registered: what the registries hold of it (an orphan to delete before it is
            # registered anew) is its live state, if anything. ABP devices are read without the
            # Join Server, which may hold a record all the same.
            if "js" not in self.device_registries(resource):
                start(self._probe_into(entries[resource.key.id], ("js",)))
        return seen, entries

    @staticmethod
    def device_is_mask(declared: Iterable[DesiredResource]) -> set[str]:
        """The Identity Server paths read for an application's devices (one mask for all)."""
        mask = {"attributes"} | {
            p for r in declared for p in r.fields if "is" in devices.get_servers(p)
        }
        return {p for p in mask if not devices.is_implicit(p)}

    async def _read_device_registries(
        self,
        resource: DesiredResource,
        entry: LiveResource,
        servers: Iterable[Server] = ("ns", "as", "js"),
    ) -> None:
        """The device's records on the registries among `servers` that hold it (a record
        they do not have is removed from `entry`), one after the other."""
        for server in self.device_registries(resource):
            if server in servers:
                await self._read_registry(resource, entry, server)

    @staticmethod
    def device_registries(resource: DesiredResource) -> tuple[Server, ...]:
        """The registries besides the Identity Server that hold the device's records."""
        return tuple(s for s in devices.registries(otaa=_is_otaa(resource)) if s != "is")

    async def _read_registry(
        self, resource: DesiredResource, entry: LiveResource, server: Server
    ) -> None:
        """The device's record on `server` into `entry` (removed from it when there is none)."""
        app_id, device_id = resource.key.ids
        cache_key = (server, tuple(resource.fields), entry.secrets_readable)
        mask = self._registry_masks.get(cache_key)
        if mask is None:
            mask = self._registry_masks[cache_key] = _field_mask(
                p
                for p in resource.fields
                if server in devices.get_servers(p)
                and not devices.is_implicit(p)
                and (entry.secrets_readable or not devices.is_key_path(p))
            )
        data = await self._get_optional(
            server, f"/{server}/applications/{app_id}/devices/{device_id}", mask
        )
        if data is not None:
            entry.records[server] = managed_record(data, self._version_key)
        else:
            entry.records.pop(server, None)

    # -- writing ----------------------------------------------------------------------------

    def depends_on(self, key: ResourceKey) -> ResourceKey | None:
        """Links, webhooks, pub/subs and devices need their application; API keys and
        collaborators their entity; applications and gateways the organization they are
        created under."""
        if key.kind in ("link", "webhook", "pubsub", "package_default", "device"):
            return application_key(key.ids[0])
        if key.kind == "package_association":
            return device_key(key.ids[0], key.ids[1])
        if key.kind in ("api_key", "collaborator"):
            return entity_of(key)
        return self._owner_organization.get(key)

    def groups(
        self, kind: str, deletes: bool, changes: list[ResourceChange]
    ) -> list[list[ResourceChange]]:
        """Device deletes go in batches (per application, at most BATCH_SIZE); everything else
        one change at a time."""
        if deletes and kind == "device":
            return device_batches(changes)
        return [[change] for change in changes]

    async def execute(
        self, group: list[ResourceChange], desired: DesiredState, live: LiveState
    ) -> list[ResourceResult]:
        if len(group) > 1 or (group[0].key.kind == "device" and group[0].action == "delete"):
            return await self._delete_devices(group)
        return [await self._apply_change(group[0], desired, live)]

    async def _delete_devices(self, batch: list[ResourceChange]) -> list[ResourceResult]:
        """Delete up to 20 devices of one application with one batch request per registry, in
        the CLI's order (AS, NS, JS, IS). A registry that fails the batch is retried device by
        device; a device that fails on a registry keeps its IS record (so a rerun finds it)."""
        app_id = application_of(batch[0].key)
        failed: dict[ResourceKey, ResourceResult] = {}
        for server in devices.DELETE_ORDER:
            targets = [
                c
                for c in batch
                if c.key not in failed and any(s.endpoint == server for s in c.steps)
            ]
            if not targets:
                continue
            base = (
                f"/applications/{app_id}/devices/batch"
                if server == "is"
                else f"/{server}/applications/{app_id}/devices/batch"
            )
            params = [("device_ids", c.key.id) for c in targets]
            try:
                await self.client.request(server, "DELETE", base, params=params)
                continue
            except (TTSAPIError, TTSTransportError):
                pass  # find out which device it was
            for change in targets:
                try:
                    await self._delete(server, change.key, None)
                except (TTSAPIError, TTSTransportError) as error:
                    failed[change.key] = ResourceResult(
                        change.key, "failed", "delete", str(error), SERVER_NAMES[server]
                    )
        return [failed.get(c.key) or ResourceResult(c.key, "done", "delete") for c in batch]

    async def _apply_change(
        self, change: ResourceChange, desired: DesiredState, live: LiveState
    ) -> ResourceResult:
        resource = desired.resources.get(change.key)
        live_resource = live.get(change.key)
        if change.key.kind == "api_key":
            return await self._apply_api_key(change, resource, live_resource)
        for step in change.steps:
            try:
                await self._execute(step, change.key, resource, live_resource, desired)
            except (TTSAPIError, TTSTransportError) as error:
                # Their text names the server, the request line and the server's message only.
                return ResourceResult(
                    change.key, "failed", change.action, str(error), SERVER_NAMES[error.server]
                )
        return ResourceResult(change.key, "done", change.action)

    async def _execute(
        self,
        step: Step,
        key: ResourceKey,
        resource: DesiredResource | None,
        live: LiveResource | None,
        desired: DesiredState,
    ) -> None:
        server: Server = step.endpoint  # type: ignore[assignment]
        if step.operation == "delete":
            await self._delete(server, key, live)
            return
        if step.operation == "restore":  # a soft-deleted application or gateway
            await self.client.request("is", "POST", f"/{key.kind}s/{key.id}/restore")
            return
        assert resource is not None, f"no desired resource for {key}"
        match key.kind:
            case "device":
                await self._write_device(step, server, resource, live, desired)
            case "application" | "gateway" | "organization":
                await self._write_entity(step, resource, live, desired)
            case "collaborator":
                await self._set_collaborator(key, resource.fields["rights"])
            case "link":
                body = self._body(resource, step.paths, live, server)
                await self.client.request(
                    "as",
                    "PUT",
                    f"/as/applications/{key.ids[0]}/link",
                    json={"link": body, "field_mask": {"paths": step.paths}},
                )
            case "webhook" | "pubsub":
                integration = INTEGRATION_OF_KIND[key.kind]
                body = self._body(resource, step.paths, live, server)
                app_id, item_id = key.ids
                body["ids"] = {
                    integration.id_field: item_id,
                    "application_ids": {"application_id": app_id},
                }
                paths = [integration.mask_path(p) for p in step.paths]
                await self.client.request(
                    "as",
                    "PUT",
                    f"/as/{integration.route}/{app_id}/{item_id}",
                    json={ENTITY_WRAPPER[key.kind]: body, "field_mask": {"paths": paths}},
                )
            case "package_default" | "package_association":
                body = self._body(resource, step.paths, live, server)
                body["ids"] = pkg.body_ids(key)
                await self.client.request(
                    "as",
                    "PUT",
                    pkg.item_path(key),
                    json={ENTITY_WRAPPER[key.kind]: body, "field_mask": {"paths": step.paths}},
                )

    def _body(
        self,
        resource: DesiredResource,
        paths: Iterable[str],
        live: LiveResource | None,
        server: Server,
    ) -> dict[str, Any]:
        """The request body holding the desired values at `paths` (secrets revealed here only)."""
        message = MESSAGE_OF_KIND[resource.key.kind]
        body: dict[str, Any] = {}
        # A restored resource is as it was deleted: merge into that.
        record = (live.records.get(server) or live.deleted.get(server)) if live else None
        for path in paths:
            if path not in resource.fields:
                continue
            value = resource.fields[path]
            if path in MERGED_MAPS and isinstance(value, dict):
                current = (record.data.get(path) if record else None) or {}
                value = merged_map(value, current)
            elif message == schema.GATEWAY and path == ANTENNAS:
                value = antennas_with_location(value, record.data.get(path) if record else None)
            if value is None:
                continue  # in the mask, absent from the body: the field is cleared
            ftype = schema.field_type(message, path)
            schema.set_path(body, path, schema.to_wire(ftype, reveal(value)))
        return body

    async def _write_entity(
        self,
        step: Step,
        resource: DesiredResource,
        live: LiveResource | None,
        desired: DesiredState,
    ) -> None:
        kind = resource.key.kind
        wrapper = ENTITY_WRAPPER[kind]
        plural = PLURAL[kind]
        id_field = f"{kind}_id"
        body = self._body(
            resource, resource.fields if step.operation == "create" else step.paths, live, "is"
        )
        ids = {id_field: resource.key.id}
        if kind == "gateway" and "eui" in body.get("ids", {}):
            ids["eui"] = body["ids"]["eui"]
        body["ids"] = ids
        if step.operation == "create":
            owner = resource.extra.get("owner")
            if not isinstance(owner, Owner):
                raise ValueError(f"{resource.key}: no owner to create it under")
            parent = "users" if owner.kind == "user" else "organizations"
            try:
                await self.client.request(
                    "is", "POST", f"/{parent}/{owner.id}/{plural}", json={wrapper: body}
                )
            except TTSAPIError as error:
                if error.status == 409 and await self._is_ours(
                    f"/{plural}/{resource.key.id}", desired
                ):
                    return  # created by an earlier attempt whose response was lost
                raise
            return
        await self.client.request(
            "is",
            "PUT",
            f"/{plural}/{resource.key.id}",
            json={wrapper: body, "field_mask": {"paths": step.paths}},
        )

    async def _is_ours(
        self, path: str, desired: DesiredState, resource: DesiredResource | None = None
    ) -> bool:
        """After a 409 on create: is the existing record the one an earlier attempt made
        (its response lost)? Ours by the ownership marker, and for devices the same EUIs."""
        data = await self._get_optional("is", path, ["attributes"])
        if data is None:
            return False
        if _attribute(data, desired.ownership_key) != desired.stack:
            return False
        if resource is not None and resource.key.kind == "device":
            ids = data.get("ids") or {}
            for eui in ("dev_eui", "join_eui"):
                want = resource.fields.get(f"ids.{eui}") or ""
                if want and str(ids.get(eui, "")).upper() != want:
                    return False
        return True

    async def _write_device(
        self,
        step: Step,
        server: Server,
        resource: DesiredResource,
        live: LiveResource | None,
        desired: DesiredState,
    ) -> None:
        app_id, device_id = resource.key.ids
        body = self._body(resource, step.paths, live, server)
        ids: dict[str, Any] = {
            "device_id": device_id,
            "application_ids": {"application_id": app_id},
        }
        for eui in ("dev_eui", "join_eui"):
            value = resource.fields.get(f"ids.{eui}")
            if value:
                ids[eui] = value
        body["ids"] = ids
        if server == "is":
            if step.operation == "create":
                try:
                    await self.client.request(
                        "is", "POST", f"/applications/{app_id}/devices", json={"end_device": body}
                    )
                except TTSAPIError as error:
                    if error.status == 409 and await self._is_ours(
                        f"/applications/{app_id}/devices/{device_id}", desired, resource
                    ):
                        return
                    raise
                return
            # The Identity Server refuses ids.* in an Update mask (EUIs cannot change there); the
            # body's ids only identify the device.
            body["ids"] = {"device_id": device_id, "application_ids": {"application_id": app_id}}
            await self.client.request(
                "is",
                "PUT",
                f"/applications/{app_id}/devices/{device_id}",
                json={"end_device": body, "field_mask": {"paths": step.paths}},
            )
            return
        paths = list(step.paths)
        if step.registers:
            # Registering on this server: name the identifiers as the TTS docs do.
            paths = sorted({*paths, *(f"ids.{k}" for k in ids if k != "application_ids")})
        await self.client.request(
            server,
            "PUT",
            f"/{server}/applications/{app_id}/devices/{device_id}",
            json={"end_device": body, "field_mask": {"paths": paths}},
        )

    async def _set_collaborator(self, key: ResourceKey, granted: list[str]) -> None:
        entity_kind, entity_id, member_kind, member_id = key.ids
        await self.client.request(
            "is",
            "PUT",
            f"/{PLURAL[entity_kind]}/{entity_id}/collaborators",
            json={
                "collaborator": {
                    "ids": {f"{member_kind}_ids": {f"{member_kind}_id": member_id}},
                    "rights": list(granted),
                }
            },
        )

    async def _apply_api_key(
        self, change: ResourceChange, resource: DesiredResource | None, live: LiveResource | None
    ) -> ResourceResult:
        """Create (and deliver), update in place, rotate (create, deliver, delete the old one)
        or delete an API key. A new key whose secret cannot be delivered is deleted again: a
        key nobody can use is worse than none."""
        key = change.key
        operations = [s.operation for s in change.steps]
        try:
            if "create" in operations:
                assert resource is not None
                created_id = await self._create_api_key(key, resource)
                try:
                    await deliver(resource.extra["sink"], self._last_secret.pop(created_id))
                except SinkError as error:
                    await self._delete_api_key(key, created_id)
                    return ResourceResult(
                        key,
                        "failed",
                        change.action,
                        f"{error}; the new key {created_id} was deleted again",
                        SERVER_NAMES["is"],
                    )
                if "delete" in operations:  # a rotation: the old key goes now
                    for item in _live_keys(live):
                        await self._delete_api_key(key, str(item["id"]))
            elif "update" in operations:
                assert resource is not None
                step = change.steps[0]
                body: dict[str, Any] = {}
                if "rights" in step.paths:
                    body["rights"] = list(resource.fields["rights"])
                if "expires_at" in step.paths and resource.fields.get("expires_at"):
                    body["expires_at"] = resource.fields["expires_at"]
                for item in _live_keys(live):
                    await self.client.request(
                        "is",
                        "PUT",
                        f"/{PLURAL[key.ids[0]]}/{key.ids[1]}/api-keys/{item['id']}",
                        json={"api_key": body, "field_mask": {"paths": list(step.paths)}},
                    )
            elif "delete" in operations:
                for item in _live_keys(live):
                    await self._delete_api_key(key, str(item["id"]))
        except (TTSAPIError, TTSTransportError) as error:
            return ResourceResult(
                key, "failed", change.action, str(error), SERVER_NAMES[error.server]
            )
        return ResourceResult(key, "done", change.action)

    async def _create_api_key(self, key: ResourceKey, resource: DesiredResource) -> str:
        """Create the key; its secret is kept (for delivery) under its ID, and scrubbed from
        every later message."""
        entity_kind, entity_id, name = key.ids
        body: dict[str, Any] = {"name": name, "rights": list(resource.fields["rights"])}
        if resource.fields.get("expires_at"):
            body["expires_at"] = resource.fields["expires_at"]
        path = f"/{PLURAL[entity_kind]}/{entity_id}/api-keys"
        response = await self.client.request("is", "POST", path, json=body)
        data = response.data
        secret, key_id = data.get("key"), data.get("id")
        if isinstance(secret, str) and secret and self._redactor is not None:
            self._redactor.add(secret)
        if not (isinstance(secret, str) and secret and isinstance(key_id, str) and key_id):
            raise TTSAPIError(
                server="is",
                method="POST",
                path=path,
                status=200,
                body=None,
                message="the answer holds no key ID or secret",
            )
        self._last_secret[key_id] = secret
        return key_id

    async def _delete_api_key(self, key: ResourceKey, key_id: str) -> None:
        try:
            await self.client.request(
                "is", "DELETE", f"/{PLURAL[key.ids[0]]}/{key.ids[1]}/api-keys/{key_id}"
            )
        except TTSAPIError as error:
            if error.status != 404:
                raise

    async def _delete(self, server: Server, key: ResourceKey, live: LiveResource | None) -> None:
        match key.kind:
            case "device":
                app_id, device_id = key.ids
                path = (
                    f"/applications/{app_id}/devices/{device_id}"
                    if server == "is"
                    else f"/{server}/applications/{app_id}/devices/{device_id}"
                )
            case "application":
                await self.lease.before_application_delete(key.id)
                path = f"/applications/{key.id}"
            case "gateway" | "organization":
                path = f"/{PLURAL[key.kind]}/{key.id}"
            case "collaborator":
                path = _collaborator_path(key)
            case "api_key":
                for item in _live_keys(live):
                    await self._delete_api_key(key, str(item["id"]))
                return
            case "webhook" | "pubsub":
                path = f"/as/{INTEGRATION_OF_KIND[key.kind].route}/{key.ids[0]}/{key.id}"
            case "package_default" | "package_association":
                path = pkg.item_path(key)
            case _:  # link
                path = f"/as/applications/{key.ids[0]}/link"
        try:
            await self.client.request(server, "DELETE", path)
        except TTSAPIError as error:
            # Already gone (e.g. a partial registration, or a retried delete) is fine, as the
            # official CLI treats it.
            if error.status != 404:
                raise


BATCH_SIZE = 20  # BatchDeleteEndDevicesRequest.device_ids: at most 20 (api.json)


def device_batches(changes: list[ResourceChange]) -> list[list[ResourceChange]]:
    """Device deletes grouped per application, at most BATCH_SIZE each."""
    by_app: dict[str, list[ResourceChange]] = {}
    for change in changes:
        by_app.setdefault(application_of(change.key), []).append(change)
    return [
        group[i : i + BATCH_SIZE]
        for group in by_app.values()
        for i in range(0, len(group), BATCH_SIZE)
    ]


class _Identity:
    """Whom the tool's API key belongs to, and its rights."""

    def __init__(
        self, member: tuple[str, str] | None, key_rights: frozenset[str], universal: bool
    ) -> None:
        self.member = member  # ("user", id) or ("organization", id)
        self.key_rights = key_rights
        self.universal = universal  # an admin: holds every right everywhere


def _declared_lists(desired: DesiredState) -> set[tuple[str, ResourceKey]]:
    """(kind, entity) for each entity whose manifest lists its API keys or collaborators."""
    found: set[tuple[str, ResourceKey]] = set()
    for resource in desired.resources.values():
        for kind in resource.extra.get("declared_lists", ()):
            found.add((kind, resource.key))
    return found


def _member(ids: Any) -> tuple[str, str] | None:
    if not isinstance(ids, dict):
        return None
    for kind in ("user", "organization"):
        found = ids.get(f"{kind}_ids")
        if isinstance(found, dict) and isinstance(found.get(f"{kind}_id"), str):
            return (kind, found[f"{kind}_id"])
    return None


def _collaborator_path(key: ResourceKey) -> str:
    """The delete route: singular `collaborator` for applications, plural for gateways and
    organizations (as the real server binds them)."""
    entity_kind, entity_id, member_kind, member_id = key.ids
    segment = "collaborator" if entity_kind == "application" else "collaborators"
    return f"/{PLURAL[entity_kind]}/{entity_id}/{segment}/{member_kind}/{member_id}"


def _live_keys(live: LiveResource | None) -> list[dict[str, Any]]:
    found = live.records.get("is") if live else None
    items = found.data.get("api_keys") if found else None
    return [i for i in items or [] if isinstance(i, dict) and isinstance(i.get("id"), str)]


def _age_days(created_at: Any, now: datetime) -> int | None:
    if not isinstance(created_at, str) or not created_at.endswith("Z"):
        return None
    try:
        text = created_at[:-1]
        if "." in text:  # the server writes 0-9 fraction digits; seconds are enough
            text = text.split(".")[0]
        created = datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(0, (now - created).days)


def _is_otaa(resource: DesiredResource) -> bool:
    return bool(resource.extra.get("otaa", resource.fields.get("supports_join", False)))


def _entity_id(item: Any, id_field: str) -> str | None:
    """`item.ids.<id_field>` when the server sent one (a string), else None."""
    ids = item.get("ids") if isinstance(item, dict) else None
    value = ids.get(id_field) if isinstance(ids, dict) else None
    return value if isinstance(value, str) and value else None


def _hold_gateway_eui(live: LiveState, key: ResourceKey, item: dict[str, Any]) -> None:
    eui = gateway_eui((item.get("ids") or {}).get("eui"))
    if eui:
        live.unique_keys[eui] = KeyHolder(
            key,
            freed_by_delete=False,
            note=(
                "whose deletion keeps the EUI reserved (a deleted gateway keeps it until an admin "
                f"purges it: DELETE /api/v3/gateways/{key.id}/purge): change that gateway's EUI "
                "first, or keep the gateway's ID"
            ),
        )


def _unrestorable(kind: str, entity_id: str, deleted_at: Any) -> str:
    """Why a soft-deleted application or gateway cannot be restored by its owner ("" when it
    can): deleted more than the default restore window ago."""
    try:
        when = datetime.fromisoformat(str(deleted_at).replace("Z", "+00:00"))
    except ValueError:
        return ""  # unknown: the restore is tried, and the server says
    if datetime.now(UTC) - when <= timedelta(hours=RESTORE_WINDOW_HOURS):
        return ""
    plural = f"{kind}s"
    return (
        f"{kind} {entity_id} was deleted at {deleted_at}, more than {RESTORE_WINDOW_HOURS} hours "
        "ago (the servers' default restore window), and its ID stays reserved: an admin can "
        f"purge it (DELETE /api/v3/{plural}/{entity_id}/purge) to free the ID, or declare it "
        "under another ID"
    )


def _attribute(item: dict[str, Any], key: str) -> Any:
    """`item.attributes[key]`, None when the server sent no such map."""
    attributes = item.get("attributes")
    return attributes.get(key) if isinstance(attributes, dict) else None


def create(target: Target, context: ProviderContext) -> TTSProvider:
    """The registry's factory (reconciler.providers.registry.REGISTRY): the client for the
    target's four servers, with the run's options."""
    api_key = target.resolve_api_key(context.environ).reveal()
    urls = target.server_urls
    parallelism = max(1, context.parallelism)
    client = TTSClient(
        ServerURLs(urls["identity"], urls["network"], urls["application"], urls["join"]),
        api_key,
        user_agent=target.user_agent,
        verify=str(target.ca_bundle) if target.ca_bundle else True,
        transport=context.transport,
        max_connections=max(4, parallelism),
        retry=RetryPolicy(attempts=max(1, context.retries)),
        limits=context.limits,
    )
    if context.request_log is not None:
        log = context.request_log
        client.on_response = lambda server, method, path, status, seconds: log(
            SERVER_LABELS[server], method, path, status, seconds
        )
    return TTSProvider(
        client,
        parallelism=parallelism,
        progress=context.progress,
        target=target,
        api_key=api_key,
    )
