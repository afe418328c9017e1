"""The Azure IoT Hub provider: reads the registry by query pages and writes what the plan says.

Reads: `POST /devices/query` pages of 1,000 twins (status, authentication type, thumbprints,
capabilities, scopes, tags and desired properties all come back in the twin: one request per
page, not per device); `devices.modules` pages when modules are declared or pruned; identity
GETs only where the twin cannot answer (declared symmetric keys, compared by fingerprint; a
module's `managedBy`).

Writes: creates and deletes through the bulk registry API (at most 100 devices a request,
per-device errors mapped to their device); identity updates as GET, merge, PUT with If-Match
on the planned etag (a PUT replaces the whole identity, so keys, scopes and capabilities the
manifests do not mention are kept from the GET; keys are regenerated only with
`--rotate-keys`); twin changes as a merge PATCH with If-Match on the planned twin etag. A 412
(changed since the plan) re-reads the resource and plans it again once; with a saved plan it is
reported as stale instead, so nothing is applied on the strength of a stale plan.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from reconciler.diagnostics import ReconcilerError
from reconciler.lease import Acquired, Lease, LeaseHolder
from reconciler.plan.model import Endpoint, ResourceChange, ResourceResult, Step, TargetInfo
from reconciler.provider import PlanOptions, ProgressCallback, ProviderContext
from reconciler.providers.iothub.client import (
    HubClient,
    IotHubAPIError,
    IotHubTransportError,
    Pacer,
    RetryPolicy,
    if_match,
    quote_id,
)
from reconciler.providers.iothub.credentials import connection_string
from reconciler.providers.iothub.differ import (
    DEVICE_KINDS,
    KEY_PATHS,
    ROTATE_PATH,
    THUMBPRINT_PATHS,
    IotHubDiffer,
    desired_state,
    device_key,
    module_key,
    patch_body,
    wanted,
)
from reconciler.providers.iothub.lease import HubLease
from reconciler.providers.iothub.manifest import PROVIDER, HubProject, HubTarget
from reconciler.providers.iothub.rules import OperationClass, throttle_rates
from reconciler.redact import Redactor
from reconciler.resources import (
    DesiredResource,
    DesiredState,
    LiveRecord,
    LiveResource,
    LiveState,
    ResourceKey,
    Secret,
)
from reconciler.transport import parse_json

QUERY_PAGE_SIZE = 1000
BULK_SIZE = 100  # the bulk registry API takes at most 100 devices a request
ENDPOINT_TITLES = {"identity": "IoT Hub identity registry", "twin": "IoT Hub twins"}
# Twin fields the diff reads; the rest of a query item is dropped when it arrives.
TWIN_FIELDS = (
    "status",
    "statusReason",
    "authenticationType",
    "x509Thumbprint",
    "capabilities",
    "deviceScope",
    "tags",
)
HubError = (IotHubAPIError, IotHubTransportError)


class StaleError(ReconcilerError):
    """The resource changed on the hub since it was planned."""


class IotHubProvider(IotHubDiffer):
    """The provider contract (reconciler.provider) for one Azure IoT Hub."""

    manifest_kinds = ("IotHub", "IotHubDevice", "IotHubFleet")

    def __init__(
        self,
        client: HubClient,
        target: HubTarget,
        *,
        policy_key: str,
        parallelism: int = 16,
        progress: ProgressCallback | None = None,
        saved_plan: bool = False,
    ) -> None:
        self.client = client
        self.target = target
        self.parallelism = max(1, parallelism)
        self.progress = progress
        self.saved_plan = saved_plan
        self._policy_key = policy_key
        self._scopes: dict[str, str] = {}  # edge device id -> its deviceScope
        self._edge_of_scope: dict[str, str] = {}  # deviceScope -> edge device id
        self._options = PlanOptions()
        self._desired_resources: dict[ResourceKey, DesiredResource] = {}
        self._semaphore = asyncio.Semaphore(self.parallelism)
        self.lease = HubLease(self)

    # -- description, desired state, statistics ---------------------------------------------

    def describe(self) -> TargetInfo:
        url = self.target.endpoint
        return TargetInfo(
            provider=PROVIDER,
            name=self.target.stack,
            endpoints={name: Endpoint(name, title, url) for name, title in ENDPOINT_TITLES.items()},
        )

    def desired(self, project: Any) -> DesiredState:
        hub = project.extensions.get(PROVIDER)
        if not isinstance(hub, HubProject):
            raise ReconcilerError("the manifests declare no IotHub")
        state = desired_state(hub)
        self._desired_resources = state.resources
        self.client.redactor = Redactor([self._policy_key, *state.secret_values()])
        return state

    def digest_key(self) -> bytes:
        # Saved-plan fingerprints are keyed by the policy key: without it they reveal nothing.
        return hashlib.sha256(b"reconciler-plan:" + self._policy_key.encode()).digest()

    @property
    def requests(self) -> int:
        return self.client.stats.requests

    def take_warnings(self) -> list[str]:
        # The IoT Hub REST API sends no warning header; a bulk write's per-device warnings are
        # reported as that device's result.
        return []

    def watcher(self) -> None:
        """An IoT Hub publishes no change stream its REST API can subscribe to (device
        lifecycle and twin change events go to Event Grid or a routed endpoint, which this tool
        does not own), so `reconciler watch` sweeps it in full on its full-sweep interval."""
        return None

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- the apply lease (reconciler.providers.iothub.lease) ---------------------------------

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

    def plan_resource(
        self,
        resource: DesiredResource,
        live: LiveResource | None,
        change: ResourceChange,
        options: PlanOptions,
    ) -> None:
        self._options = options  # a resource planned again after a 412 uses the same options
        super().plan_resource(resource, live, change, options)

    def estimate_seconds(self, changes: Sequence[ResourceChange]) -> float | None:
        """Writes spread over the workers at the latency seen while reading, and no faster
        than the hub's throttles allow per operation class."""
        cost = {op: 0.0 for op in OperationClass}
        requests = 0.0
        for change in changes:
            bulk = change.key.kind in DEVICE_KINDS and change.action in ("create", "delete")
            for step in change.steps:
                if bulk:
                    cost[OperationClass.IDENTITY] += 1
                    requests += 1 / BULK_SIZE
                elif step.endpoint == "twin":
                    cost[OperationClass.TWIN_UPDATE] += 1
                    requests += 1
                else:
                    cost[OperationClass.IDENTITY] += 2 if step.operation == "update" else 1
                    requests += 2 if step.operation == "update" else 1
        if requests == 0:
            return 0.0
        estimates = []
        latency = self.client.stats.mean_latency
        if latency:
            estimates.append(math.ceil(requests) * latency / self.parallelism)
        for operation, amount in cost.items():
            seconds = self.client.pacer.seconds_for(operation, amount)
            if seconds is not None:
                estimates.append(seconds)
        return max(estimates) if estimates else None

    # -- reading ----------------------------------------------------------------------------

    async def query(self, text: str) -> AsyncIterator[dict[str, Any]]:
        """The items of a query, page by page (x-ms-continuation), within the page ceiling."""
        continuation = ""
        pages = 0
        path = "/devices/query"
        while True:
            headers = {"x-ms-max-item-count": str(QUERY_PAGE_SIZE)}
            if continuation:
                headers["x-ms-continuation"] = continuation
            response = await self.client.request(
                "POST", path, OperationClass.QUERY, json={"query": text}, headers=headers
            )
            try:
                items = parse_json(response.content)
            except ValueError:
                items = None
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise self.client.malformed("POST", path, response, "not a JSON array of twins")
            for item in items:
                yield item
            continuation = response.headers.get("x-ms-continuation") or ""
            pages += 1
            if not continuation:
                return
            if pages >= self.client.limits.max_list_pages:
                raise self.client.malformed(
                    "POST", path, response, f"more than {pages} pages (the ceiling)"
                )

    async def read(self, desired: DesiredState, *, prune: bool) -> LiveState:
        live = LiveState()
        stack, tag = desired.stack, desired.ownership_key
        declared = {r.key.id: r for r in desired.resources.values() if r.key.kind in DEVICE_KINDS}
        kept: list[tuple[dict[str, Any], ResourceKey, bool]] = []
        async for item in self.query("SELECT * FROM devices"):
            device_id = item.get("deviceId")
            if not isinstance(device_id, str):
                raise IotHubAPIError(
                    method="POST",
                    path="/devices/query",
                    status=200,
                    code="",
                    message="HTTP 200: a twin without a deviceId",
                )
            capabilities = item.get("capabilities")
            edge = isinstance(capabilities, dict) and capabilities.get("iotEdge") is True
            scope = item.get("deviceScope")
            if edge and isinstance(scope, str) and scope:
                self._scopes[device_id] = scope
                self._edge_of_scope[scope] = device_id
            owned = _tag(item, tag) == stack
            resource = declared.get(device_id)
            if resource is not None or (prune and owned):
                key = resource.key if resource is not None else device_key(device_id, edge)
                kept.append((item, key, owned))
        for item, key, owned in kept:
            live.resources[key] = self._device_live(key, item)
            if owned:
                live.owned.add(key)
        declared_modules = {r.key.ids for r in desired.of_kind("module")}
        if declared_modules or prune:
            async for item in self.query("SELECT * FROM devices.modules"):
                ids = (item.get("deviceId"), item.get("moduleId"))
                if not all(isinstance(i, str) for i in ids):
                    continue
                owned = _tag(item, tag) == stack
                if ids in declared_modules or (prune and owned):
                    key = module_key(str(ids[0]), str(ids[1]))
                    live.resources[key] = self._twin_live(key, item)
                    if owned:
                        live.owned.add(key)
        await self._read_identities(desired, live)
        return live

    def _twin_live(self, key: ResourceKey, item: dict[str, Any]) -> LiveResource:
        data = {name: item[name] for name in TWIN_FIELDS if name in item}
        properties = item.get("properties")
        desired = properties.get("desired") if isinstance(properties, dict) else None
        if isinstance(desired, dict):
            data["properties.desired"] = {
                k: v for k, v in desired.items() if k not in ("$metadata", "$version")
            }
        etag = item.get("etag")
        device_etag = item.get("deviceEtag")
        return LiveResource(
            key,
            {
                "twin": LiveRecord(data, etag if isinstance(etag, str) else None),
                "identity": LiveRecord({}, device_etag if isinstance(device_etag, str) else None),
            },
        )

    def _device_live(self, key: ResourceKey, item: dict[str, Any]) -> LiveResource:
        resource = self._twin_live(key, item)
        data = resource.records["twin"].data
        capabilities = data.get("capabilities")
        edge = isinstance(capabilities, dict) and capabilities.get("iotEdge") is True
        scope = data.get("deviceScope")
        parent = None
        if not edge and isinstance(scope, str) and scope:
            parent = self._edge_of_scope.get(scope, scope)
        data["parent"] = parent
        return resource

    async def _read_identities(self, desired: DesiredState, live: LiveState) -> None:
        """Identity GETs where the twin cannot answer: declared keys, a module's managedBy."""
        wanted_reads = [
            r
            for r in desired.resources.values()
            if r.key in live.resources
            and (KEY_PATHS[0] in r.fields or (r.key.kind == "module" and "managedBy" in r.fields))
        ]
        done = 0

        async def read_one(resource: DesiredResource) -> None:
            nonlocal done
            async with self._semaphore:
                data, etag = await self.get_identity(resource.key)
            record = live.resources[resource.key].records["identity"]
            record.data = _identity_data(data)
            record.version = etag or record.version
            done += 1
            if self.progress:
                self.progress("read", done, len(wanted_reads))

        await asyncio.gather(*(read_one(r) for r in wanted_reads))

    def _identity_path(self, key: ResourceKey) -> str:
        if key.kind == "module":
            return f"/devices/{quote_id(key.ids[0])}/modules/{quote_id(key.ids[1])}"
        return f"/devices/{quote_id(key.id)}"

    def _twin_path(self, key: ResourceKey) -> str:
        if key.kind == "module":
            return f"/twins/{quote_id(key.ids[0])}/modules/{quote_id(key.ids[1])}"
        return f"/twins/{quote_id(key.id)}"

    async def get_identity(self, key: ResourceKey) -> tuple[dict[str, Any], str | None]:
        path = self._identity_path(key)
        response = await self.client.request("GET", path, OperationClass.IDENTITY)
        data = _json_object(response.content)
        if data is None:
            raise self.client.malformed("GET", path, response, "not a JSON object")
        etag = data.get("etag")
        return data, etag if isinstance(etag, str) else None

    async def _get_twin(self, key: ResourceKey) -> dict[str, Any] | None:
        path = self._twin_path(key)
        try:
            response = await self.client.request("GET", path, OperationClass.TWIN_READ)
        except IotHubAPIError as error:
            if error.status == 404:
                return None
            raise
        data = _json_object(response.content)
        if data is None:
            raise self.client.malformed("GET", path, response, "not a JSON object")
        return data

    async def _reread(
        self, key: ResourceKey, resource: DesiredResource | None
    ) -> LiveResource | None:
        """One resource read again (after a 412), as `read` would have read it."""
        twin = await self._get_twin(key)
        if twin is None:
            return None
        live = self._twin_live(key, twin) if key.kind == "module" else self._device_live(key, twin)
        if resource is not None and (
            KEY_PATHS[0] in resource.fields or "managedBy" in resource.fields
        ):
            data, etag = await self.get_identity(key)
            live.records["identity"] = LiveRecord(_identity_data(data), etag)
        return live

    async def device_connection_strings(self, desired: DesiredState) -> list[str]:
        """`<deviceId>,<connection string>` of every declared device that authenticates with
        symmetric keys (each identity read once), for `reconciler credentials`."""
        devices = [
            r
            for r in desired.resources.values()
            if r.key.kind in DEVICE_KINDS and r.fields.get("authentication.type", "sas") == "sas"
        ]
        lines: dict[str, str] = {}

        async def read_one(resource: DesiredResource) -> None:
            async with self._semaphore:
                try:
                    data, _ = await self.get_identity(resource.key)
                except IotHubAPIError as error:
                    if error.status == 404:
                        return  # not created yet
                    raise
            auth = data.get("authentication")
            keys = auth.get("symmetricKey") if isinstance(auth, dict) else None
            primary = keys.get("primaryKey") if isinstance(keys, dict) else None
            if isinstance(auth, dict) and auth.get("type") == "sas" and isinstance(primary, str):
                device_id = resource.key.id
                lines[device_id] = (
                    f"{device_id},{connection_string(self.target.host_name, device_id, primary)}"
                )

        await asyncio.gather(*(read_one(r) for r in devices))
        return [lines[k] for k in sorted(lines)]

    # -- writing ----------------------------------------------------------------------------

    def depends_on(self, key: ResourceKey) -> ResourceKey | None:
        """A module needs its device; a leaf device its parent edge device."""
        if key.kind == "module":
            return device_key(key.ids[0], self._declared_edge(key.ids[0]))
        resource = self._desired_resources.get(key)
        parent = resource.fields.get("parent") if resource else None
        return device_key(parent, True) if isinstance(parent, str) else None

    def _declared_edge(self, device_id: str) -> bool:
        return device_key(device_id, True) in self._desired_resources

    def groups(
        self, kind: str, deletes: bool, changes: list[ResourceChange]
    ) -> list[list[ResourceChange]]:
        """Device creates and deletes go through the bulk API, 100 a request; the rest one by
        one."""
        if kind not in DEVICE_KINDS:
            return [[c] for c in changes]
        bulk = [c for c in changes if c.action in ("create", "delete")]
        single = [[c] for c in changes if c.action not in ("create", "delete")]
        return [bulk[i : i + BULK_SIZE] for i in range(0, len(bulk), BULK_SIZE)] + single

    async def execute(
        self, group: list[ResourceChange], desired: DesiredState, live: LiveState
    ) -> list[ResourceResult]:
        first = group[0]
        if first.key.kind in DEVICE_KINDS and first.action == "create":
            return await self._bulk_create(group, desired, live)
        if first.key.kind in DEVICE_KINDS and first.action == "delete":
            return await self._bulk_delete(group, desired, live)
        return [await self._apply_change(first, desired, live)]

    def _failed(
        self, change: ResourceChange, error: Exception | str, endpoint: str = "identity"
    ) -> ResourceResult:
        return ResourceResult(
            change.key, "failed", change.action, str(error), ENDPOINT_TITLES[endpoint]
        )

    async def _bulk(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """One bulk registry request; the result body (200 and 400 both carry one)."""
        response = await self.client.request(
            "POST",
            "/devices",
            OperationClass.IDENTITY,
            json=entries,
            cost=len(entries),
            success=(200, 400),
        )
        result = _json_object(response.content)
        if result is None or not isinstance(result.get("errors", []), list):
            if response.status_code == 400:
                raise self.client.error("POST", "/devices", response)
            raise self.client.malformed("POST", "/devices", response, "not a bulk result")
        return result

    async def _bulk_create(
        self, group: list[ResourceChange], desired: DesiredState, live: LiveState
    ) -> list[ResourceResult]:
        results: dict[ResourceKey, ResourceResult] = {}
        entries: list[dict[str, Any]] = []
        sent: dict[str, ResourceChange] = {}
        for change in group:
            resource = desired.resources[change.key]
            try:
                entries.append(await self._import_entry(resource, live))
            except HubError as error:
                results[change.key] = self._failed(change, error)
                continue
            sent[change.key.id] = change
        if entries:
            try:
                outcome = await self._bulk(entries)
            except HubError as error:
                for change in sent.values():
                    results[change.key] = self._failed(change, error)
                outcome = None
            if outcome is not None:
                await self._bulk_outcome(outcome, sent, results, desired)
        return [results.get(c.key) or ResourceResult(c.key, "done", c.action) for c in group]

    async def _bulk_outcome(
        self,
        outcome: dict[str, Any],
        sent: dict[str, ResourceChange],
        results: dict[ResourceKey, ResourceResult],
        desired: DesiredState,
    ) -> None:
        for error in outcome.get("errors") or []:
            if not isinstance(error, dict):
                continue
            change = sent.get(str(error.get("deviceId")))
            if change is None:
                continue
            code = str(error.get("errorCode", ""))
            text = self.client.redactor.excerpt(str(error.get("errorStatus", "")), 200)
            if code == "DeviceAlreadyExists" and await self._is_ours(change.key, desired):
                continue  # made by an earlier attempt whose answer was lost
            if code == "DeviceNotFound" and change.action == "delete":
                continue  # already gone (an earlier attempt, or someone else)
            results[change.key] = self._failed(
                change, f"IoT Hub: POST /devices: {code or 'error'}: {text}"
            )
        for warning in outcome.get("warnings") or []:
            if not isinstance(warning, dict):
                continue
            change = sent.get(str(warning.get("deviceId")))
            if change is not None and change.key not in results:
                text = self.client.redactor.excerpt(str(warning.get("warningStatus", "")), 200)
                results[change.key] = self._failed(
                    change,
                    f"IoT Hub: POST /devices: registered, but the twin was refused "
                    f"({warning.get('warningCode', '')}: {text}); the next apply sets it",
                    "twin",
                )

    async def _is_ours(self, key: ResourceKey, desired: DesiredState) -> bool:
        try:
            twin = await self._get_twin(key)
        except HubError:
            return False
        return twin is not None and _tag(twin, desired.ownership_key) == desired.stack

    async def _import_entry(self, resource: DesiredResource, live: LiveState) -> dict[str, Any]:
        fields = resource.fields
        entry: dict[str, Any] = {
            "id": resource.key.id,
            "importMode": "create",
            "status": fields.get("status") or "enabled",
            "authentication": _authentication(fields, None, rotate=False),
            "capabilities": {"iotEdge": bool(fields.get("capabilities.iotEdge"))},
        }
        if fields.get("statusReason"):
            entry["statusReason"] = fields["statusReason"]
        parent = fields.get("parent")
        if isinstance(parent, str):
            entry["deviceScope"] = await self._scope_of(parent)
        tags = wanted(fields.get("tags") or {})
        if tags:
            entry["tags"] = tags
        properties = wanted(fields.get("properties.desired") or {})
        if properties:
            entry["properties"] = {"desired": properties}
        return entry

    async def _scope_of(self, edge_id: str) -> str:
        """The deviceScope of an edge device (read once if it was created during this run)."""
        scope = self._scopes.get(edge_id)
        if scope is None:
            data, _ = await self.get_identity(device_key(edge_id, True))
            found = data.get("deviceScope")
            if not isinstance(found, str) or not found:
                raise ReconcilerError(
                    f"IoT Hub: parent `{edge_id}` has no deviceScope (is it an IoT Edge device?)"
                )
            scope = self._scopes[edge_id] = found
            self._edge_of_scope[found] = edge_id
        return scope

    async def _bulk_delete(
        self, group: list[ResourceChange], desired: DesiredState, live: LiveState
    ) -> list[ResourceResult]:
        results: dict[ResourceKey, ResourceResult] = {}
        entries = []
        sent: dict[str, ResourceChange] = {}
        for change in group:
            etag = change.steps[0].live_version if change.steps else None
            entry: dict[str, Any] = {"id": change.key.id, "importMode": "delete"}
            if etag:
                entry = {**entry, "importMode": "deleteIfMatchETag", "eTag": etag}
            entries.append(entry)
            sent[change.key.id] = change
        try:
            outcome = await self._bulk(entries)
        except HubError as error:
            return [self._failed(c, error) for c in group]
        await self._bulk_outcome(outcome, sent, results, desired)
        # A device changed since the plan: re-read it and delete it again only if it is still
        # owned and still undeclared (once); with a saved plan, report it as stale.
        for change in list(sent.values()):
            result = results.get(change.key)
            if result is None or "PreconditionFailed" not in result.error:
                continue
            if self.saved_plan:
                results[change.key] = self._stale(change)
                continue
            results[change.key] = await self._delete_again(change, desired)
        return [results.get(c.key) or ResourceResult(c.key, "done", c.action) for c in group]

    async def _delete_again(self, change: ResourceChange, desired: DesiredState) -> ResourceResult:
        try:
            live = await self._reread(change.key, None)
            if live is None:
                return ResourceResult(change.key, "done", "delete")
            if self.marker(live, desired.ownership_key) != desired.stack:
                return ResourceResult(
                    change.key, "skipped", "delete", "no longer owned by this stack: not deleted"
                )
            etag = live.records["identity"].version
            await self.client.request(
                "DELETE",
                self._identity_path(change.key),
                OperationClass.IDENTITY,
                headers=if_match(etag),
                success=(204, 200),
            )
        except HubError as error:
            return self._failed(change, error)
        return ResourceResult(change.key, "done", "delete")

    def _stale(self, change: ResourceChange) -> ResourceResult:
        return ResourceResult(
            change.key,
            "skipped",
            change.action,
            "changed on the hub since the plan (412 PreconditionFailed): not applied; plan again",
        )

    async def _apply_change(
        self, change: ResourceChange, desired: DesiredState, live: LiveState
    ) -> ResourceResult:
        resource = desired.resources.get(change.key)
        try:
            await self._run_steps(change, resource)
        except IotHubAPIError as error:
            if error.status != 412:
                return self._failed(change, error, _endpoint_of(error))
            if self.saved_plan:
                return self._stale(change)
            return await self._replan(change, resource)
        except (IotHubTransportError, ReconcilerError) as error:
            return self._failed(change, error)
        return ResourceResult(change.key, "done", change.action)

    async def _replan(
        self, change: ResourceChange, resource: DesiredResource | None
    ) -> ResourceResult:
        """After a 412: read the resource again, plan it again, and apply that once."""
        try:
            live = await self._reread(change.key, resource)
            if change.action == "delete":
                if live is None:
                    return ResourceResult(change.key, "done", change.action)
                fresh = ResourceChange(
                    change.key, "delete", steps=self.delete_steps(change.key, live)
                )
            else:
                assert resource is not None
                fresh = ResourceChange(change.key, "no-op")
                self.plan_resource(resource, live, fresh, self._options)
            if fresh.action != "no-op":
                await self._run_steps(fresh, resource)
        except HubError as error:
            return self._failed(
                change, f"{error} (after reading it again: it changed while being applied)"
            )
        return ResourceResult(change.key, "done", change.action)

    async def _run_steps(self, change: ResourceChange, resource: DesiredResource | None) -> None:
        for step in change.steps:
            if step.operation == "delete":
                await self.client.request(
                    "DELETE",
                    self._identity_path(change.key),
                    OperationClass.IDENTITY,
                    headers=if_match(step.live_version),
                    success=(204, 200),
                )
                continue
            assert resource is not None, f"no desired resource for {change.key}"
            if step.endpoint == "twin":
                await self._patch_twin(change.key, step)
            elif step.operation == "create":
                await self._create_module(change.key, resource)
            else:
                await self._update_identity(change.key, resource, step)

    async def _patch_twin(self, key: ResourceKey, step: Step) -> None:
        await self.client.request(
            "PATCH",
            self._twin_path(key),
            OperationClass.TWIN_UPDATE,
            json=patch_body(step.changes),
            headers=if_match(step.live_version),
        )

    async def _create_module(self, key: ResourceKey, resource: DesiredResource) -> None:
        device_id, module_id = key.ids
        body: dict[str, Any] = {
            "moduleId": module_id,
            "deviceId": device_id,
            "authentication": _authentication(resource.fields, None, rotate=False),
        }
        if resource.fields.get("managedBy"):
            body["managedBy"] = resource.fields["managedBy"]
        try:
            await self.client.request(
                "PUT",
                self._identity_path(key),
                OperationClass.IDENTITY,
                json=body,
                success=(200, 201),
            )
        except IotHubAPIError as error:
            # An earlier attempt whose answer was lost made it: its twin says whose it is,
            # and the twin step that follows sets it either way.
            if error.code != "ModuleAlreadyExistsOnDevice":
                raise

    async def _update_identity(
        self, key: ResourceKey, resource: DesiredResource, step: Step
    ) -> None:
        """GET, merge the planned changes, PUT with If-Match on the planned etag: a PUT replaces
        the whole identity, so everything the manifests do not mention comes from the GET."""
        current, etag = await self.get_identity(key)
        planned = step.live_version
        if planned and etag != planned and self.saved_plan:
            raise IotHubAPIError(
                method="GET",
                path=self._identity_path(key),
                status=412,
                code="PreconditionFailed",
                message="changed since the plan",
            )
        paths = set(step.paths)
        fields = resource.fields
        body = {k: v for k, v in current.items() if k in _WRITABLE}
        if "status" in paths:
            body["status"] = fields["status"]
        if "statusReason" in paths:
            body["statusReason"] = fields["statusReason"] or ""
        if paths & {"authentication.type", *KEY_PATHS, *THUMBPRINT_PATHS, ROTATE_PATH}:
            body["authentication"] = _authentication(
                fields, current.get("authentication"), rotate=ROTATE_PATH in paths
            )
        if "capabilities.iotEdge" in paths:
            body["capabilities"] = {"iotEdge": bool(fields["capabilities.iotEdge"])}
        if "managedBy" in paths:
            body["managedBy"] = fields["managedBy"]
        if "parent" in paths:
            parent = fields.get("parent")
            body["deviceScope"] = await self._scope_of(parent) if isinstance(parent, str) else ""
            body["parentScopes"] = [body["deviceScope"]] if body["deviceScope"] else []
        await self.client.request(
            "PUT",
            self._identity_path(key),
            OperationClass.IDENTITY,
            json=body,
            headers=if_match(planned or etag),
            success=(200, 201),
        )


_WRITABLE = frozenset(
    {
        "deviceId",
        "moduleId",
        "managedBy",
        "status",
        "statusReason",
        "authentication",
        "capabilities",
        "deviceScope",
        "parentScopes",
    }
)


def _authentication(fields: dict[str, Any], current: Any, *, rotate: bool) -> dict[str, Any]:
    """The authentication object of a create or a PUT: declared keys and thumbprints, else the
    current ones (kept), else none, so the hub generates keys for `sas`."""
    current = current if isinstance(current, dict) else {}
    kind = fields.get("authentication.type") or current.get("type") or "sas"
    no_keys = {"primaryKey": None, "secondaryKey": None}
    no_thumbs = {"primaryThumbprint": None, "secondaryThumbprint": None}
    auth: dict[str, Any] = {"type": kind, "symmetricKey": no_keys, "x509Thumbprint": no_thumbs}
    if kind == "sas":
        primary = fields.get(KEY_PATHS[0])
        secondary = fields.get(KEY_PATHS[1])
        if isinstance(primary, Secret) and isinstance(secondary, Secret):
            auth["symmetricKey"] = {
                "primaryKey": primary.reveal(),
                "secondaryKey": secondary.reveal(),
            }
        elif current.get("type") == "sas" and not rotate:
            auth["symmetricKey"] = current.get("symmetricKey") or no_keys
    elif kind == "selfSigned":
        thumbs = (
            dict(current.get("x509Thumbprint") or no_thumbs)
            if current.get("type") == kind
            else dict(no_thumbs)
        )
        for path in THUMBPRINT_PATHS:
            if path in fields:
                thumbs[path.rsplit(".", 1)[1]] = fields[path]
        auth["x509Thumbprint"] = thumbs
    return auth


def _identity_data(data: dict[str, Any]) -> dict[str, Any]:
    """What the diff needs of an identity: keys as Secrets (never printed), managedBy."""
    result: dict[str, Any] = {}
    auth = data.get("authentication")
    keys = auth.get("symmetricKey") if isinstance(auth, dict) else None
    if isinstance(keys, dict):
        for path, name in zip(KEY_PATHS, ("primaryKey", "secondaryKey"), strict=True):
            value = keys.get(name)
            if isinstance(value, str) and value:
                result[path] = Secret(value, "hub")
    if "moduleId" in data:
        result["managedBy"] = data.get("managedBy")
    return result


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        data = parse_json(content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _tag(item: dict[str, Any], key: str) -> Any:
    tags = item.get("tags")
    return tags.get(key) if isinstance(tags, dict) else None


def _endpoint_of(error: IotHubAPIError) -> str:
    return "twin" if error.path.startswith("/twins") else "identity"


def create(target: HubTarget, context: ProviderContext) -> IotHubProvider:
    """The registry's factory (reconciler.providers.registry.REGISTRY)."""
    connection = target.resolve_connection_string(context.environ)
    parallelism = max(1, context.parallelism)
    pacer = Pacer(throttle_rates(target.sku, target.units) if target.sku else None)
    client = HubClient(
        target.endpoint,
        target.host_name,
        connection.key_name,
        connection.key,
        verify=str(target.ca_bundle) if target.ca_bundle else True,
        transport=context.transport,
        limits=context.limits,
        retry=RetryPolicy(attempts=max(1, context.retries)),
        pacer=pacer,
        max_connections=max(4, parallelism),
    )
    return IotHubProvider(
        client,
        target,
        policy_key=connection.key.reveal(),
        parallelism=parallelism,
        progress=context.progress,
        saved_plan=bool(context.extra.get("saved_plan")),
    )
