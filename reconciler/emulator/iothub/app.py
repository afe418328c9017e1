"""The IoT Hub emulator's ASGI app: routing and the per-request pipeline.

Every request goes through: injected latency, the api-version check (400
InvalidProtocolVersion), SAS authentication and the route's right (401
IotHubUnauthorizedAccess), the SKU's throttle (queued, or 429 when the backlog is full), injected
failures (503 before anything is applied), body decoding, the registry operation, and for writes
an injected lost response (applied, then the connection drops).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from reconciler.emulator.admin import RequestStats, json_response
from reconciler.emulator.apis import APIOptions, ServedAPI
from reconciler.emulator.app import build_app
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.faults import DroppingResponse, Faults
from reconciler.emulator.iothub import errors, sas
from reconciler.emulator.iothub.bulk import BulkOperation
from reconciler.emulator.iothub.config import IotHubConfig
from reconciler.emulator.iothub.faults import HubFaults
from reconciler.emulator.iothub.registry import (
    IfMatch,
    Registry,
    device_json,
    module_json,
    twin_json,
)
from reconciler.emulator.iothub.sas import DEFAULT_POLICIES, OWNER_POLICY, Right
from reconciler.emulator.iothub.store import IotHubStore
from reconciler.emulator.iothub.tables import API_VERSION
from reconciler.emulator.iothub.throttle import OperationClass

# api-versions clients of the 2021-04-12 service are known to send; all get its semantics.
API_VERSIONS = frozenset({API_VERSION, "2020-09-30", "2020-05-31-preview", "2020-03-13"})
JSON_TYPE = "application/json; charset=utf-8"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_TOP = 1000
MAX_BODY_BYTES = 1024 * 1024


def hub_json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status, headers, media_type=JSON_TYPE)


def error_response(error: errors.IotHubError) -> Response:
    return Response(error.body(), error.status, error.headers(), media_type=JSON_TYPE)


class Hub:
    """State and services of one emulated hub; `app.state.emulator` (an `EmulatedAPI`)."""

    def __init__(self, config: IotHubConfig) -> None:
        config.check()
        self.config = config
        self.host_name = config.host_name.lower()
        self.store = IotHubStore(config.state_path)
        self.hub_faults = HubFaults(config)
        self.faults: Faults = self.hub_faults  # what the platform's admin endpoints adjust
        self.registry = Registry(self.store, self.hub_faults)
        self.stats = RequestStats()
        self.policy_keys = self._policy_keys(config)

    def _policy_keys(self, config: IotHubConfig) -> dict[str, tuple[str, str]]:
        """(primary, secondary) per policy; kept in the state file so tokens survive restarts."""
        keys: dict[str, tuple[str, str]] = {}
        for name in DEFAULT_POLICIES:
            stored = self.store.policies.get(name)
            primary, secondary = stored if stored else (sas.generate_key(), sas.generate_key())
            if name == OWNER_POLICY and config.shared_access_key is not None:
                primary = config.shared_access_key
            if stored != [primary, secondary]:
                self.store.policies.put(name, [primary, secondary])
            keys[name] = (primary, secondary)
        return keys

    def connection_string(self, policy: str = OWNER_POLICY) -> str:
        key = self.policy_keys[policy][0]
        return (
            f"HostName={self.config.host_name};SharedAccessKeyName={policy};SharedAccessKey={key}"
        )

    # authentication

    def authorize(self, request: Request, right: Right, device_id: str | None = None) -> None:
        token = sas.parse(request.headers.get("authorization"))
        scope = token.scope
        if not sas.covers(scope, self.host_name, request.url.path):
            raise errors.unauthorized()
        if token.key_name is not None:
            keys = self.policy_keys.get(token.key_name)
            if keys is None or right not in DEFAULT_POLICIES[token.key_name]:
                raise errors.unauthorized()
            if not sas.valid(token, _raw_keys(keys)):
                raise errors.unauthorized()
            return
        # A device's own key: only its own device endpoint.
        if right is not Right.DEVICE_CONNECT or device_id is None:
            raise errors.unauthorized()
        if not scope.startswith(f"{self.host_name}/devices/"):
            raise errors.unauthorized()
        record = self.registry.devices.get(device_id)
        if record is None or record["status"] != "enabled" or record["auth"]["type"] != "sas":
            raise errors.unauthorized()
        auth = record["auth"]
        if not sas.valid(token, _raw_keys((auth["primaryKey"], auth["secondaryKey"]))):
            raise errors.unauthorized()

    # --- what the platform asks of an emulated API (reconciler.emulator.app.EmulatedAPI) ---

    def admin_denied(self, request: Request) -> Response | None:
        """The admin is whoever holds a policy with every right (iothubowner)."""
        try:
            self.authorize(request, Right.REGISTRY_WRITE)
            self.authorize(request, Right.SERVICE_CONNECT)
        except errors.IotHubError as error:
            return error_response(error)
        return None

    def bad_request(self, message: str) -> Response:
        return error_response(errors.argument_invalid(message))

    def not_found(self, request: Request) -> Response:
        return error_response(errors.IotHubError("GenericNotFound", "Not found", 404))

    def method_not_allowed(self, request: Request) -> Response:
        return error_response(
            errors.IotHubError("GenericMethodNotAllowed", "The method is not allowed", 405)
        )

    def admin_routes(self) -> list[BaseRoute]:
        return [Route("/_emulator/policies", self._policies, methods=["GET"])]

    async def _policies(self, request: Request) -> Response:
        """The shared access policies' keys (a real hub lists them through Azure Resource
        Manager, which the emulator does not have)."""
        denied = self.admin_denied(request)
        if denied is not None:
            return denied
        return json_response(
            {
                name: {"primaryKey": primary, "secondaryKey": secondary}
                for name, (primary, secondary) in self.policy_keys.items()
            }
        )

    def start(self) -> None:
        """No background work."""

    def close(self) -> None:
        self.store.close()


def _raw_keys(keys: tuple[str, str]) -> tuple[bytes, ...]:
    return tuple(raw for raw in (sas.decode_key(key) for key in keys) if raw is not None)


# --- requests -------------------------------------------------------------------------------


class Call:
    """One request as the handlers see it."""

    __slots__ = ("body", "hub", "params", "request", "response_headers")

    def __init__(self, hub: Hub, request: Request) -> None:
        self.hub = hub
        self.request = request
        self.params: dict[str, str] = request.path_params
        self.body: Any = None
        self.response_headers: dict[str, str] = {}

    @property
    def registry(self) -> Registry:
        return self.hub.registry

    def if_match(self) -> IfMatch:
        return IfMatch(self.request.headers.get("if-match"))

    async def read_json(self) -> None:
        raw = await self.request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise errors.IotHubError("MessageTooLarge", "The request body is too large", 413)
        if not raw.strip():
            self.body = None
            return
        try:
            self.body = json.loads(raw, parse_constant=_reject_constant)
        except RecursionError:
            raise errors.format_error("The request body is nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise errors.format_error(f"The request body is not valid JSON: {error}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


Handler = Callable[[Call], Awaitable[Any] | Any]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    name: str  # for request statistics
    handler: Handler
    right: Right
    throttle: OperationClass | None = None
    body: bool = False
    write: bool = False


class Endpoint:
    def __init__(self, hub: Hub, operation: Operation) -> None:
        self.hub = hub
        self.op = operation
        self.is_async = asyncio.iscoroutinefunction(operation.handler)

    async def handle(self, request: Request) -> Response:
        hub = self.hub
        op = self.op
        status = 500
        try:
            await hub.faults.delay()
            version = request.query_params.get("api-version")
            if version not in API_VERSIONS:
                raise errors.IotHubError(
                    "InvalidProtocolVersion",
                    f"Invalid api-version {version!r}"
                    if version
                    else "The api-version query parameter is required",
                )
            call = Call(hub, request)
            device_id = request.path_params.get("id")
            hub.authorize(request, op.right, device_id)
            if op.body:
                await call.read_json()
            if op.throttle is not None:
                cost = len(call.body) if isinstance(call.body, list) and call.body else 1
                wait = hub.hub_faults.throttles.reserve(op.throttle, cost)
                if wait is None:
                    raise errors.throttled(op.throttle.value)
                if wait > 0:
                    await asyncio.sleep(wait)
            if op.write and hub.faults.fail_now():
                raise errors.service_unavailable()
            result = op.handler(call)
            if self.is_async:
                result = await result
            if op.write and hub.faults.drop_now():
                status = 0
                return DroppingResponse()
            if isinstance(result, Response):
                status = result.status_code
                result.headers.update(call.response_headers)
                return result
            status = 200
            return hub_json(result, 200, call.response_headers)
        except ClientDisconnect:
            status = 499
            return Response(status_code=499)
        except errors.IotHubError as error:
            status = error.status
            return error_response(error)
        finally:
            hub.stats.count(op.name, status)


# --- handlers -------------------------------------------------------------------------------


def _top(call: Call) -> int:
    text = call.request.query_params.get("top")
    if text is None:
        return MAX_TOP
    try:
        top = int(text)
    except ValueError:
        raise errors.argument_invalid(f"top {text!r} is not an integer") from None
    return top if 1 <= top <= MAX_TOP else MAX_TOP


def get_device(call: Call) -> Any:
    return device_json(call.registry.device(call.params["id"], visible=True))


def put_device(call: Call) -> Any:
    return call.registry.put_device(call.params["id"], call.body, call.if_match())


def delete_device(call: Call) -> Any:
    call.registry.delete_device(call.params["id"], call.if_match())
    return Response(status_code=204)


def list_devices(call: Call) -> Any:
    return call.registry.list_devices(_top(call))


def bulk(call: Call) -> Any:
    status, result = BulkOperation(call.registry, call.body).run()
    return hub_json(result, status)


def query_devices(call: Call) -> Any:
    body = call.body
    if body is None:
        raise errors.argument_null("The query specification cannot be null")
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise errors.argument_invalid("The body must be an object with a string field query")
    headers = call.request.headers
    size_text = headers.get("x-ms-max-item-count")
    page_size = DEFAULT_PAGE_SIZE
    if size_text:
        try:
            page_size = int(size_text)
        except ValueError:
            raise errors.argument_invalid(
                f"x-ms-max-item-count {size_text!r} is not an integer"
            ) from None
        page_size = min(max(page_size, 1), MAX_PAGE_SIZE)
    items, token, item_type = call.registry.query_page(
        body["query"], headers.get("x-ms-continuation") or None, page_size
    )
    result_headers = {"x-ms-item-type": item_type}
    if token is not None:
        result_headers["x-ms-continuation"] = token
    return hub_json(items, 200, result_headers)


def get_twin(call: Call) -> Any:
    return twin_json(call.registry.twin_record(call.params["id"], call.params.get("mid")))


def patch_twin(call: Call) -> Any:
    return call.registry.write_twin(
        call.params["id"], call.params.get("mid"), call.body, call.if_match(), replace=False
    )


def replace_twin(call: Call) -> Any:
    return call.registry.write_twin(
        call.params["id"], call.params.get("mid"), call.body, call.if_match(), replace=True
    )


def list_modules(call: Call) -> Any:
    device_id = call.params["id"]
    call.registry.device(device_id)
    return [module_json(record) for record in call.registry.modules_of(device_id)]


def get_module(call: Call) -> Any:
    return module_json(call.registry.module(call.params["id"], call.params["mid"]))


def put_module(call: Call) -> Any:
    return call.registry.put_module(
        call.params["id"], call.params["mid"], call.body, call.if_match()
    )


def delete_module(call: Call) -> Any:
    call.registry.delete_module(call.params["id"], call.params["mid"], call.if_match())
    return Response(status_code=204)


def device_statistics(call: Call) -> Any:
    return call.registry.device_statistics()


def service_statistics(call: Call) -> Any:
    return {"connectedDeviceCount": 0}


async def device_message(call: Call) -> Any:
    await call.request.body()  # the message itself goes nowhere (no routing emulated)
    call.registry.device_activity(call.params["id"])
    return Response(status_code=204)


def operations() -> list[Operation]:
    read, write = Right.REGISTRY_READ, Right.REGISTRY_WRITE
    service = Right.SERVICE_CONNECT
    identity = OperationClass.IDENTITY
    twin_read, twin_update = OperationClass.TWIN_READ, OperationClass.TWIN_UPDATE
    return [
        Operation(
            "POST",
            "/devices/query",
            "Query",
            query_devices,
            service,
            OperationClass.QUERY,
            body=True,
        ),
        Operation("GET", "/devices", "GetDevices", list_devices, read, identity),
        Operation("POST", "/devices", "BulkRegistry", bulk, write, identity, body=True, write=True),
        Operation("GET", "/devices/{id}", "GetDevice", get_device, read, identity),
        Operation(
            "PUT", "/devices/{id}", "PutDevice", put_device, write, identity, body=True, write=True
        ),
        Operation(
            "DELETE", "/devices/{id}", "DeleteDevice", delete_device, write, identity, write=True
        ),
        Operation("GET", "/devices/{id}/modules", "GetModules", list_modules, read, identity),
        Operation("GET", "/devices/{id}/modules/{mid}", "GetModule", get_module, read, identity),
        Operation(
            "PUT",
            "/devices/{id}/modules/{mid}",
            "PutModule",
            put_module,
            write,
            identity,
            body=True,
            write=True,
        ),
        Operation(
            "DELETE",
            "/devices/{id}/modules/{mid}",
            "DeleteModule",
            delete_module,
            write,
            identity,
            write=True,
        ),
        Operation("GET", "/twins/{id}", "GetTwin", get_twin, service, twin_read),
        Operation(
            "PATCH",
            "/twins/{id}",
            "UpdateTwin",
            patch_twin,
            service,
            twin_update,
            body=True,
            write=True,
        ),
        Operation(
            "PUT",
            "/twins/{id}",
            "ReplaceTwin",
            replace_twin,
            service,
            twin_update,
            body=True,
            write=True,
        ),
        Operation(
            "GET", "/twins/{id}/modules/{mid}", "GetModuleTwin", get_twin, service, twin_read
        ),
        Operation(
            "PATCH",
            "/twins/{id}/modules/{mid}",
            "UpdateModuleTwin",
            patch_twin,
            service,
            twin_update,
            body=True,
            write=True,
        ),
        Operation(
            "PUT",
            "/twins/{id}/modules/{mid}",
            "ReplaceModuleTwin",
            replace_twin,
            service,
            twin_update,
            body=True,
            write=True,
        ),
        Operation("GET", "/statistics/devices", "DeviceStatistics", device_statistics, read),
        Operation("GET", "/statistics/service", "ServiceStatistics", service_statistics, service),
        Operation(
            "POST",
            "/devices/{id}/messages/events",
            "DeviceMessage",
            device_message,
            Right.DEVICE_CONNECT,
            write=True,
        ),
    ]


def create_app(config: IotHubConfig | None = None) -> Starlette:
    hub = Hub(config or IotHubConfig())
    routes: list[BaseRoute] = []
    for op in operations():
        handler = Endpoint(hub, op).handle
        routes.append(Route(op.path, handler, methods=[op.method]))
        if op.path == "/devices":  # the C# SDK posts bulk to /devices/
            routes.append(Route("/devices/", handler, methods=[op.method]))
    return build_app(hub, routes)


SETTINGS = ("hub_name", "shared_access_key", "sku", "units")


def served(options: APIOptions) -> ServedAPI:
    """The `azure-iothub` entry of `reconciler.emulator.apis.APIS`."""
    settings = dict(options.settings)
    unknown = sorted(set(settings) - set(SETTINGS))
    if options.admin_key is not None:
        unknown.insert(0, "api_key")  # the hub's credential is --shared-access-key
    if unknown:
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        raise ValueError(f"the IoT Hub emulator has no option {flags}")
    units_text = settings.pop("units", "1")
    try:
        units = int(units_text)
    except ValueError:
        raise ValueError(f"--units {units_text!r} is not an integer") from None
    config = IotHubConfig(
        **{name: getattr(options.common, name) for name in _COMMON_FIELDS},
        hub_name=settings.get("hub_name") or IotHubConfig.hub_name,
        shared_access_key=settings.get("shared_access_key"),
        sku=settings.get("sku"),
        units=units,
    )
    app = create_app(config)
    hub: Hub = app.state.emulator
    details = (f"connection string {hub.connection_string()}",)
    return ServedAPI(
        app, f"IoT Hub emulator for {config.host_name}", "", details, (config.host_name,)
    )


_COMMON_FIELDS = tuple(f.name for f in dataclasses.fields(EmulatorConfig))
