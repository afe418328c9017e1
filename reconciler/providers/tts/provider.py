"""The TTS provider: reads live state for the declared scope and executes plan steps.

Reads use the smallest field masks that cover the managed fields: one Identity Server list page
(limit 1000) per thousand devices, then per-device GETs only on the registries that hold the
device. Writes send each registry only its own fields and paths
(reconciler.providers.tts.devices), so no request can trip
`field_mask_paths` or `non_zero_path` on the real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from reconciler.plan.model import ApplyReport, Plan, ResourceChange, ResourceResult, Step
from reconciler.providers.tts import devices, schema
from reconciler.providers.tts.client import SERVER_NAMES, Server, TTSAPIError, TTSClient
from reconciler.providers.tts.planner import (
    MERGED_MAPS,
    MESSAGE_OF_KIND,
    LiveRecord,
    LiveResource,
    LiveState,
    merged_map,
)
from reconciler.resources import (
    KIND_ORDER,
    DesiredResource,
    DesiredState,
    ResourceKey,
    ResourceKind,
    reveal,
)

LIST_PAGE_SIZE = 1000
READ_KEYS_RIGHTS = frozenset(
    {"RIGHT_APPLICATION_DEVICES_READ_KEYS", "RIGHT_APPLICATION_ALL", "RIGHT_ALL"}
)
ENTITY_WRAPPER: dict[ResourceKind, str] = {
    "application": "application",
    "link": "link",
    "webhook": "webhook",
    "device": "end_device",
    "gateway": "gateway",
}

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)


class TTSProvider:
    def __init__(
        self,
        client: TTSClient,
        *,
        parallelism: int = 16,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.client = client
        self.parallelism = max(1, parallelism)
        self.progress = progress

    # -- reading ----------------------------------------------------------------------------

    async def read(self, desired: DesiredState, *, prune: bool) -> LiveState:
        live = LiveState()
        semaphore = asyncio.Semaphore(self.parallelism)
        owned_apps: set[str] = set()
        if prune:
            owned_apps = await self._read_owned(desired, live, "application")
            await self._read_owned(desired, live, "gateway")
        app_ids = sorted(set(desired.application_ids()) | owned_apps)

        async def bounded(coro: Awaitable[None]) -> None:
            async with semaphore:
                await coro

        await asyncio.gather(
            *(bounded(self._read_application(desired, live, app_id)) for app_id in app_ids),
            *(bounded(self._read_gateway(r, live)) for r in desired.of_kind("gateway")),
        )
        existing_apps = [
            a
            for a in app_ids
            if "is" in live.resources.get(_app_key(a), LiveResource(_app_key(a))).records
        ]
        await asyncio.gather(
            *(bounded(self._read_link_and_webhooks(desired, live, a, prune)) for a in existing_apps)
        )
        # Each list page's device reads start as soon as the page arrives.
        reads: list[asyncio.Task[None]] = []
        done = 0

        async def counted(coro: Awaitable[None]) -> None:
            nonlocal done
            async with semaphore:
                await coro
            done += 1
            if self.progress:
                self.progress("read", done, len(reads))

        def start(coro: Awaitable[None]) -> None:
            reads.append(asyncio.ensure_future(counted(coro)))

        try:
            for app_id in existing_apps:
                await self._list_devices(desired, live, app_id, prune, start)
            await asyncio.gather(*reads)
        finally:
            for task in reads:  # on an error, leave nothing running
                task.cancel()
        return live

    async def _read_owned(
        self, desired: DesiredState, live: LiveState, kind: Literal["application", "gateway"]
    ) -> set[str]:
        plural = "applications" if kind == "application" else "gateways"
        id_field = "application_id" if kind == "application" else "gateway_id"
        owned: set[str] = set()
        async for item in self._list_pages("is", f"/{plural}", plural, ["attributes"]):
            if _attribute(item, desired.ownership_key) == desired.stack:
                entity_id = _entity_id(item, id_field)
                if entity_id is None:
                    raise self._malformed("is", f"/{plural}", f"an item without ids.{id_field}")
                key = ResourceKey(kind, "", entity_id) if kind == "gateway" else _app_key(entity_id)
                live.owned.add(key)
                resource = live.resources.setdefault(key, LiveResource(key))
                resource.records["is"] = LiveRecord(item)
                owned.add(entity_id)
        return owned

    async def _list_pages(
        self, server: Server, path: str, list_field: str, mask: Iterable[str]
    ) -> Any:
        """The listing's items, page by page: never more pages than X-Total-Count needs, nor
        than the client's page ceiling (a server that answers full pages forever)."""
        page = 1
        ceiling = self.client.limits.max_list_pages
        while True:
            response = await self.client.request(
                server,
                "GET",
                path,
                params={
                    "field_mask": ",".join(sorted(set(mask))),
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
        self, server: Server, path: str, mask: Iterable[str]
    ) -> dict[str, Any] | None:
        """GET a resource; None when it does not exist (or, for applications, is not ours)."""
        try:
            return await self.client.get_json(
                server, path, params={"field_mask": ",".join(sorted(set(mask)))}
            )
        except TTSAPIError as error:
            if error.status == 404 or error.name == "no_application_rights":
                return None
            raise

    async def _read_application(self, desired: DesiredState, live: LiveState, app_id: str) -> None:
        key = _app_key(app_id)
        resource = desired.resources.get(key)
        mask = set(resource.fields) if resource else set()
        mask.add("attributes")
        data = await self._get_optional("is", f"/applications/{app_id}", mask)
        if data is None:
            return
        entry = live.resources.setdefault(key, LiveResource(key))
        entry.records["is"] = LiveRecord(data)
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
        link_key = ResourceKey("link", app_id, "link")
        link = desired.resources.get(link_key)
        if link is not None:
            data = await self._get_optional("as", f"/as/applications/{app_id}/link", link.fields)
            if data is not None:
                live.resources[link_key] = LiveResource(link_key, {"as": LiveRecord(data)})
        declared = [r for r in desired.of_kind("webhook") if r.key.application_id == app_id]
        app_owned = _app_key(app_id) in live.owned
        if not declared and not (prune and app_owned):
            return
        mask = {"ids"} | {p for r in declared for p in r.fields}
        listing = await self.client.get_json(
            "as", f"/as/webhooks/{app_id}", params={"field_mask": ",".join(sorted(mask))}
        )
        webhooks = listing.get("webhooks") or []
        for item in webhooks if isinstance(webhooks, list) else [None]:
            webhook_id = _entity_id(item, "webhook_id")
            if webhook_id is None or not isinstance(item, dict):
                raise self._malformed("as", f"/as/webhooks/{app_id}", "a webhook without ids")
            key = ResourceKey("webhook", app_id, webhook_id)
            live.resources[key] = LiveResource(key, {"as": LiveRecord(item)})
            # Webhooks carry no attributes: in an application this stack owns, the manifests'
            # webhook list is authoritative (prune removes the others).
            if app_owned:
                live.owned.add(key)

    async def _read_gateway(self, resource: DesiredResource, live: LiveState) -> None:
        mask = set(resource.fields) | {"attributes"}
        data = await self._get_optional("is", f"/gateways/{resource.key.id}", mask)
        if data is None:
            return
        entry = live.resources.setdefault(resource.key, LiveResource(resource.key))
        entry.records["is"] = LiveRecord(data)

    async def _list_devices(
        self,
        desired: DesiredState,
        live: LiveState,
        app_id: str,
        prune: bool,
        start: Callable[[Awaitable[None]], None],
    ) -> None:
        """List the application's devices from the IS; `start` each declared device's
        per-registry reads as its page arrives."""
        declared = {
            r.key.id: r for r in desired.of_kind("device") if r.key.application_id == app_id
        }
        is_mask = {"attributes"} | {
            p for r in declared.values() for p in r.fields if "is" in devices.get_servers(p)
        }
        is_mask = {p for p in is_mask if not devices.is_implicit(p)}
        keys_readable = True
        if declared:
            keys_readable = await self._application_keys_readable(app_id)
        async for item in self._list_pages(
            "is", f"/applications/{app_id}/devices", "end_devices", is_mask
        ):
            device_id = _entity_id(item, "device_id")
            if device_id is None:
                raise self._malformed(
                    "is", f"/applications/{app_id}/devices", "a device without ids.device_id"
                )
            key = ResourceKey("device", app_id, device_id)
            owned = _attribute(item, desired.ownership_key) == desired.stack
            if key.id not in declared and not (prune and owned):
                continue
            entry = LiveResource(key, {"is": LiveRecord(item)}, keys_readable=keys_readable)
            live.resources[key] = entry
            if owned:
                live.owned.add(key)
            resource = declared.get(key.id)
            if resource is not None:
                start(self._read_device_registries(resource, entry))

    async def _read_device_registries(self, resource: DesiredResource, entry: LiveResource) -> None:
        otaa = bool(resource.extra.get("otaa", resource.fields.get("supports_join", False)))
        app_id, device_id = resource.key.application_id, resource.key.id
        for server in devices.registries(otaa=otaa):
            if server == "is":
                continue
            mask = {
                p
                for p in resource.fields
                if server in devices.get_servers(p)
                and not devices.is_implicit(p)
                and (entry.keys_readable or not devices.is_key_path(p))
            }
            data = await self._get_optional(
                server, f"/{server}/applications/{app_id}/devices/{device_id}", mask
            )
            if data is not None:
                entry.records[server] = LiveRecord(data)

    # -- writing ----------------------------------------------------------------------------

    async def apply(
        self,
        plan: Plan,
        desired: DesiredState,
        live: LiveState,
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> ApplyReport:
        """Execute the plan's changes: concurrently across resources, each resource's steps in
        order, kinds in dependency order. One failing resource never stops the others; what was
        done stays done. After `should_stop()` turns true no new resource is started (the ones
        in flight finish their steps)."""
        report = ApplyReport()
        semaphore = asyncio.Semaphore(self.parallelism)
        failed_apps: set[str] = set()
        changes = plan.changes
        total = len(changes)
        done = 0

        def finished(count: int = 1) -> None:
            nonlocal done
            done += count
            if self.progress:
                self.progress("apply", done, total)

        def skip_reason(change: ResourceChange) -> str:
            if should_stop():
                report.interrupted = True
                return "not started: interrupted"
            if change.key.application_id in failed_apps and change.action != "delete":
                return f"not started: application {change.key.application_id} was not created"
            return ""

        async def run(change: ResourceChange) -> None:
            async with semaphore:
                reason = skip_reason(change)
                if reason:
                    report.results.append(
                        ResourceResult(change.key, "skipped", change.action, reason)
                    )
                else:
                    result = await self._apply_change(change, desired, live)
                    report.results.append(result)
                    if (
                        result.outcome == "failed"
                        and change.key.kind == "application"
                        and change.action in ("create", "replace")
                    ):
                        failed_apps.add(change.key.id)
            finished()

        async def run_device_deletes(batch: list[ResourceChange]) -> None:
            async with semaphore:
                reason = skip_reason(batch[0])
                if reason:
                    report.results.extend(
                        ResourceResult(c.key, "skipped", c.action, reason) for c in batch
                    )
                else:
                    report.results.extend(await self._delete_devices(batch))
            finished(len(batch))

        # Phases keep dependencies: applications before their links, webhooks and devices;
        # deletes in reverse kind order after all creates and updates.
        upserts = [c for c in changes if c.action != "delete"]
        deletes = [c for c in changes if c.action == "delete"]
        for kind in KIND_ORDER:
            await asyncio.gather(*(run(c) for c in upserts if c.key.kind == kind))
        for kind in reversed(KIND_ORDER):
            of_kind = [c for c in deletes if c.key.kind == kind]
            if kind == "device":
                await asyncio.gather(*(run_device_deletes(b) for b in device_batches(of_kind)))
            else:
                await asyncio.gather(*(run(c) for c in of_kind))
        return report

    async def _delete_devices(self, batch: list[ResourceChange]) -> list[ResourceResult]:
        """Delete up to 20 devices of one application with one batch request per registry, in
        the CLI's order (AS, NS, JS, IS). A registry that fails the batch is retried device by
        device; a device that fails on a registry keeps its IS record (so a rerun finds it)."""
        app_id = batch[0].key.application_id
        failed: dict[ResourceKey, ResourceResult] = {}
        for server in devices.DELETE_ORDER:
            targets = [
                c for c in batch if c.key not in failed and any(s.server == server for s in c.steps)
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
            except TTSAPIError:
                pass  # find out which device it was
            for change in targets:
                try:
                    await self._delete(server, change.key, None)
                except TTSAPIError as error:
                    failed[change.key] = ResourceResult(
                        change.key, "failed", "delete", str(error), SERVER_NAMES[server]
                    )
        return [failed.get(c.key) or ResourceResult(c.key, "done", "delete") for c in batch]

    async def _apply_change(
        self, change: ResourceChange, desired: DesiredState, live: LiveState
    ) -> ResourceResult:
        resource = desired.resources.get(change.key)
        live_resource = live.get(change.key)
        for step in change.steps:
            try:
                await self._execute(step, change.key, resource, live_resource, desired)
            except TTSAPIError as error:
                return ResourceResult(
                    change.key, "failed", change.action, str(error), SERVER_NAMES[error.server]
                )
            except Exception as error:  # transport failures after retries, and the like
                return ResourceResult(change.key, "failed", change.action, str(error), step.server)
        return ResourceResult(change.key, "done", change.action)

    async def _execute(
        self,
        step: Step,
        key: ResourceKey,
        resource: DesiredResource | None,
        live: LiveResource | None,
        desired: DesiredState,
    ) -> None:
        server: Server = step.server  # type: ignore[assignment]
        if step.operation == "delete":
            await self._delete(server, key, live)
            return
        assert resource is not None, f"no desired resource for {key}"
        match key.kind:
            case "device":
                await self._write_device(step, server, resource, live, desired)
            case "application":
                await self._write_entity(step, resource, live, desired)
            case "gateway":
                await self._write_entity(step, resource, live, desired)
            case "link":
                body = self._body(resource, step.paths, live, server)
                await self.client.request(
                    "as",
                    "PUT",
                    f"/as/applications/{key.application_id}/link",
                    json={"link": body, "field_mask": {"paths": step.paths}},
                )
            case "webhook":
                body = self._body(resource, step.paths, live, server)
                body["ids"] = {
                    "webhook_id": key.id,
                    "application_ids": {"application_id": key.application_id},
                }
                await self.client.request(
                    "as",
                    "PUT",
                    f"/as/webhooks/{key.application_id}/{key.id}",
                    json={"webhook": body, "field_mask": {"paths": step.paths}},
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
        record = live.records.get(server) if live else None
        for path in paths:
            if path not in resource.fields:
                continue
            value = resource.fields[path]
            if path in MERGED_MAPS and isinstance(value, dict):
                current = (record.data.get(path) if record else None) or {}
                value = merged_map(value, current)
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
        plural = "applications" if kind == "application" else "gateways"
        id_field = "application_id" if kind == "application" else "gateway_id"
        body = self._body(
            resource, resource.fields if step.operation == "create" else step.paths, live, "is"
        )
        ids = {id_field: resource.key.id}
        if kind == "gateway" and "eui" in body.get("ids", {}):
            ids["eui"] = body["ids"]["eui"]
        body["ids"] = ids
        if step.operation == "create":
            owner = resource.owner
            if owner is None:
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
        app_id, device_id = resource.key.application_id, resource.key.id
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
            # IS Update never carries ids.* in its mask (FACTS §d, #5553); the body's ids only
            # identify the device.
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

    async def _delete(self, server: Server, key: ResourceKey, live: LiveResource | None) -> None:
        match key.kind:
            case "device":
                path = (
                    f"/applications/{key.application_id}/devices/{key.id}"
                    if server == "is"
                    else f"/{server}/applications/{key.application_id}/devices/{key.id}"
                )
            case "application":
                path = f"/applications/{key.id}"
            case "gateway":
                path = f"/gateways/{key.id}"
            case "webhook":
                path = f"/as/webhooks/{key.application_id}/{key.id}"
            case "link":
                path = f"/as/applications/{key.application_id}/link"
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
        by_app.setdefault(change.key.application_id, []).append(change)
    return [
        group[i : i + BATCH_SIZE]
        for group in by_app.values()
        for i in range(0, len(group), BATCH_SIZE)
    ]


def _entity_id(item: Any, id_field: str) -> str | None:
    """`item.ids.<id_field>` when the server sent one (a string), else None."""
    ids = item.get("ids") if isinstance(item, dict) else None
    value = ids.get(id_field) if isinstance(ids, dict) else None
    return value if isinstance(value, str) and value else None


def _attribute(item: dict[str, Any], key: str) -> Any:
    """`item.attributes[key]`, None when the server sent no such map."""
    attributes = item.get("attributes")
    return attributes.get(key) if isinstance(attributes, dict) else None


def _app_key(app_id: str) -> ResourceKey:
    return ResourceKey("application", "", app_id)
