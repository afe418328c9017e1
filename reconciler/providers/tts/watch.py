"""The Things Stack's part of `reconciler watch` (the `Watcher` contract in reconciler.provider).

* **Changes**: one event stream (`POST /events`) for the declared applications and gateways,
  asking the server for the registry events only (`names`), so the uplink traffic of a busy
  application never reaches us. Each event names the entity, the registry (`end_device.*` the
  Identity Server, `ns.`/`as.`/`js.end_device.*` the others), the changed paths and who made
  the request (user agent, remote IP). After a lost stream, `after` replays what the
  server still keeps (about 10 minutes, about 100 events per entity).
* **Sweep**: what the events cannot tell. Per application one Identity Server
  `POST /applications/{id}/devices/filter` with `updated_since` (devices whose IS record changed;
  NS, AS and JS writes do not move it), one application GET, and its link, webhook and pub/sub
  lists (the real webhook and link registries publish no events); the gateways by two
  `POST /gateways/filter` (those changed since, those deleted), re-reading only those they
  name and those missing from the cache. No fallback to a GET each: the filter route is part
  of the API this tool speaks, as the devices' filter is.
* **Re-read**: the records an event names, on its registry only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reconciler.provider import LiveChange, StreamLost
from reconciler.providers.tts.client import TTSAPIError, TTSTransportError
from reconciler.providers.tts.kinds import (
    application_key,
    application_of,
    device_key,
    gateway_key,
)
from reconciler.providers.tts.planner import record
from reconciler.providers.tts.servers import SERVERS, Server
from reconciler.resources import DesiredState, LiveResource, LiveState, ResourceKey

if TYPE_CHECKING:
    from reconciler.providers.tts.provider import TTSProvider

# The registry events (names the real server defines); traffic events are never asked for.
REGISTRY_EVENTS: tuple[str, ...] = (
    *(
        f"{prefix}end_device.{verb}"
        for prefix in ("", "ns.", "as.", "js.")
        for verb in ("create", "update", "delete", "batch.delete")
    ),
    *(
        f"{entity}.{verb}"
        for entity in ("application", "gateway")
        for verb in ("create", "update", "delete", "restore", "purge")
    ),
)
STREAM_START = "events.stream.start"
# The stream sends nothing while nothing changes; a connection silent this long is presumed
# lost (the sweeps cover the time until the reconnect).
STREAM_IDLE_SECONDS = 3600.0
# `updated_since` reaches back this far before the previous sweep: clocks of client and server
# differ, and a write in flight during the sweep may commit with an earlier timestamp.
SWEEP_OVERLAP_SECONDS = 60.0


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _registry_of(name: str) -> Server:
    prefix = name.split(".", 1)[0]
    return prefix if prefix in ("ns", "as", "js") else "is"  # type: ignore[return-value]


def _actor(event: dict[str, Any]) -> str:
    parts = []
    user_agent = event.get("user_agent")
    if isinstance(user_agent, str) and user_agent:
        parts.append(user_agent[:100])
    remote_ip = event.get("remote_ip")
    if isinstance(remote_ip, str) and remote_ip:
        parts.append(f"from {remote_ip[:64]}")
    # (The event also names the API key's ID; it is left out: logs are scanned for key parts.)
    return " ".join(parts)


def change_of(event: dict[str, Any]) -> list[LiveChange]:
    """The resources a registry event names (none for an event about anything else)."""
    name = event.get("name")
    if not isinstance(name, str) or name == STREAM_START:
        return []
    time = event.get("time") if isinstance(event.get("time"), str) else ""
    data = event.get("data")
    paths: tuple[str, ...] = ()
    if isinstance(data, dict) and isinstance(data.get("paths"), list):
        paths = tuple(str(p) for p in data["paths"] if isinstance(p, str))
    found: list[LiveChange] = []
    identifiers = event.get("identifiers")
    if name.endswith("end_device.batch.delete") and isinstance(data, dict):
        # Published on the application; the deleted devices are in its data.
        deleted = data.get("end_device_ids")
        identifiers = (
            [{"device_ids": ids} for ids in deleted if isinstance(ids, dict)]
            if isinstance(deleted, list)
            else []
        )
    for ids in identifiers if isinstance(identifiers, list) else []:
        if not isinstance(ids, dict):
            continue
        key: ResourceKey | None = None
        if isinstance(ids.get("device_ids"), dict):
            device = ids["device_ids"]
            app = device.get("application_ids")
            app_id = app.get("application_id") if isinstance(app, dict) else None
            dev_id = device.get("device_id")
            if isinstance(app_id, str) and isinstance(dev_id, str):
                key = device_key(app_id, dev_id)
        elif isinstance(ids.get("application_ids"), dict):
            app_id = ids["application_ids"].get("application_id")
            if isinstance(app_id, str):
                key = application_key(app_id)
        elif isinstance(ids.get("gateway_ids"), dict):
            gateway_id = ids["gateway_ids"].get("gateway_id")
            if isinstance(gateway_id, str):
                key = gateway_key(gateway_id)
        if key is not None:
            found.append(
                LiveChange(
                    key=key,
                    source=name,
                    endpoints=frozenset({_registry_of(name)}),
                    time=str(time or ""),
                    paths=paths,
                    actor=_actor(event),
                )
            )
    return found


class TTSWatcher:
    def __init__(self, provider: TTSProvider) -> None:
        self.provider = provider
        self._is_masks: dict[str, set[str]] = {}  # application ID -> its devices' IS mask

    def _device_is_mask(self, desired: DesiredState, app_id: str) -> set[str]:
        """The mask the full read uses, so records compare equal when nothing changed."""
        mask = self._is_masks.get(app_id)
        if mask is None:
            declared = [r for r in desired.of_kind("device") if application_of(r.key) == app_id]
            mask = self._is_masks[app_id] = self.provider.device_is_mask(declared)
        return mask

    # -- the event stream -------------------------------------------------------------------

    async def changes(
        self, desired: DesiredState, after: str | None, connected: Callable[[], None]
    ) -> AsyncIterator[LiveChange]:
        identifiers: list[dict[str, Any]] = [
            {"application_ids": {"application_id": key.id}}
            for key in sorted(desired.resources)
            if key.kind == "application"
        ] + [
            {"gateway_ids": {"gateway_id": key.id}}
            for key in sorted(desired.resources)
            if key.kind == "gateway"
        ]
        if not identifiers:  # nothing to subscribe to: wait for the sweeps
            await asyncio.Event().wait()
        body: dict[str, Any] = {"identifiers": identifiers, "names": list(REGISTRY_EVENTS)}
        if after:
            body["after"] = after
        try:
            async for message in self.provider.client.stream(
                "is", "/events", json=body, idle_timeout=STREAM_IDLE_SECONDS
            ):
                event = message.get("result")
                if isinstance(event, dict):
                    if event.get("name") == STREAM_START:
                        connected()
                    for change in change_of(event):
                        yield change
        except (TTSAPIError, TTSTransportError) as error:
            raise StreamLost(str(error)) from None
        raise StreamLost("the server ended the event stream")

    # -- sweeps and re-reads ----------------------------------------------------------------

    async def sweep(self, desired: DesiredState, live: LiveState, since: float) -> list[LiveChange]:
        provider = self.provider
        fresh = LiveState(owned=set(live.owned))
        app_ids = sorted(
            {k.id for k in desired.resources if k.kind == "application"}
            | {k.id for k in live.owned if k.kind == "application"}
        )
        updated_since = _timestamp(since - SWEEP_OVERLAP_SECONDS)
        covered: set[ResourceKey] = set()
        for app_id in app_ids:
            await provider._read_application(desired, fresh, app_id)
            covered.add(application_key(app_id))
            await provider._read_link_and_webhooks(desired, fresh, app_id, prune=True)
            covered |= {k for k in [*fresh.resources, *live.resources] if _hooks_of(k, app_id)}
            declared = [r for r in desired.of_kind("device") if application_of(r.key) == app_id]
            async for item in provider._list_pages(
                "is",
                f"/applications/{app_id}/devices/filter",
                "end_devices",
                provider.device_is_mask(declared),
                filters=[{"updated_since": updated_since}],
            ):
                device_id = (item.get("ids") or {}).get("device_id")
                if not isinstance(device_id, str):
                    continue
                key = device_key(app_id, device_id)
                if key in desired.resources or key in live.owned:
                    fresh.resources.setdefault(key, LiveResource(key)).records["is"] = record(item)
                    covered.add(key)
        covered |= await self._sweep_gateways(desired, live, fresh, updated_since)
        scopes = {
            k: frozenset({"as" if k.kind in _APPLICATION_SERVER_KINDS else "is"}) for k in covered
        }
        return self._merge(desired, live, fresh, scopes, "sweep")

    async def _sweep_gateways(
        self, desired: DesiredState, live: LiveState, fresh: LiveState, updated_since: str
    ) -> set[ResourceKey]:
        """The declared gateways to refresh, read into `fresh`: those changed since
        `updated_since` (one `POST /gateways/filter`) or missing from the cache (created or
        restored since), re-read as the full read reads them; those deleted (a listing of
        the deleted ones), gone. The rest are as cached."""
        declared = {resource.key.id: resource for resource in desired.of_kind("gateway")}
        if not declared:
            return set()
        provider = self.provider
        in_cache = {key.id for key in live.resources if key.kind == "gateway"}
        changed = set(declared) - in_cache
        deleted: set[str] = set()
        for found, selection in ((changed, {}), (deleted, {"deleted": True})):
            async for item in provider._list_pages(
                "is",
                "/gateways/filter",
                "gateways",
                {"ids"},
                filters=[] if selection else [{"updated_since": updated_since}],
                selection=selection,
            ):
                gateway_id = (item.get("ids") or {}).get("gateway_id")
                if gateway_id in declared:
                    found.add(gateway_id)
        for gateway_id in sorted(changed - deleted):
            await provider._read_gateway(declared[gateway_id], fresh)
        return {gateway_key(gateway_id) for gateway_id in changed | deleted}

    async def reread(
        self, desired: DesiredState, live: LiveState, changes: list[LiveChange]
    ) -> None:
        provider = self.provider
        wanted: dict[ResourceKey, set[str]] = {}
        for change in changes:
            wanted.setdefault(change.key, set()).update(change.endpoints or SERVERS)
        fresh = LiveState(owned=set(live.owned))
        for key, servers in sorted(wanted.items()):
            resource = desired.resources.get(key)
            if key.kind == "application":
                await provider._read_application(desired, fresh, key.id)
            elif key.kind == "gateway" and resource is not None:
                await provider._read_gateway(resource, fresh)
            elif key.kind == "device" and resource is not None:
                entry = fresh.resources.setdefault(key, LiveResource(key))
                cached = live.get(key)
                if cached is not None:
                    entry.secrets_readable = cached.secrets_readable
                if "is" in servers:
                    app_id, dev_id = key.ids
                    data = await provider._get_optional(
                        "is",
                        f"/applications/{app_id}/devices/{dev_id}",
                        self._device_is_mask(desired, app_id),
                    )
                    if data is not None:
                        entry.records["is"] = record(data)
                registries: list[Server] = [s for s in SERVERS if s in servers]
                await provider._read_device_registries(resource, entry, registries)
            else:
                continue  # undeclared: the full sweep decides about it
            self._merge(desired, live, fresh, {key: frozenset(servers)}, "")

    def _merge(
        self,
        desired: DesiredState,
        live: LiveState,
        fresh: LiveState,
        scopes: dict[ResourceKey, frozenset[str]],
        source: str,
    ) -> list[LiveChange]:
        """Put the records `fresh` holds for each key, on the endpoints of its scope, into
        `live` (a record missing from `fresh` is gone); return the keys whose records
        changed."""
        changed: list[LiveChange] = []
        for key, endpoints in sorted(scopes.items()):
            new = fresh.get(key)
            old = live.get(key)
            before = dict(old.records) if old is not None else {}
            after = dict(before)
            for endpoint in endpoints:
                if new is not None and endpoint in new.records:
                    after[endpoint] = new.records[endpoint]
                else:
                    after.pop(endpoint, None)
            differs = {
                e for e in set(before) | set(after) if _data(before.get(e)) != _data(after.get(e))
            }
            if not after:
                live.resources.pop(key, None)
                live.owned.discard(key)
            else:
                entry = live.resources.setdefault(key, LiveResource(key))
                entry.records = after
                if new is not None and old is None:
                    entry.secrets_readable = new.secrets_readable
                marker = self.provider.marker(entry, desired.ownership_key)
                if marker is not None:
                    if marker == desired.stack:
                        live.owned.add(key)
                    else:
                        live.owned.discard(key)
                elif key in fresh.owned:
                    live.owned.add(key)
            if differs and source:
                changed.append(
                    LiveChange(key=key, source=source, endpoints=frozenset(differs), read=True)
                )
        return changed


# What `_read_link_and_webhooks` reads of an application, all kept by the Application Server
# and none publishing events: only a sweep sees a Console edit of them.
_APPLICATION_SERVER_KINDS = frozenset({"link", "webhook", "pubsub", "package_default"})


def _hooks_of(key: ResourceKey, app_id: str) -> bool:
    return key.kind in _APPLICATION_SERVER_KINDS and key.ids[0] == app_id


def _data(entry: Any) -> Any:
    """A record's content without the server's timestamps (traffic moves the Network Server's
    `updated_at` on every uplink without changing what we manage)."""
    if entry is None:
        return None
    return {k: v for k, v in entry.data.items() if k not in ("created_at", "updated_at")}
