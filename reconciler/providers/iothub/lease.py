"""The apply lease on an Azure IoT Hub (the lease half of reconciler.provider.Provider).

A hub has no object for "the stack", but its identity registry is atomic: `PUT /devices/{id}`
without If-Match only creates (409 DeviceAlreadyExists otherwise), and with If-Match on the
device etag only updates the version it names (412 PreconditionFailed otherwise); `DELETE` takes
If-Match too. So the lease is a dedicated, disabled device identity `reconciler-lease.<stack>`
whose `statusReason` (at most 128 characters) holds the record: acquiring, taking over an
expired lease, renewing and releasing are each one conditional request, with no race window.
The identity exists only while a run holds the lease; it carries no ownership tag, so plans,
drift and prune never see it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.lease import Acquired, Lease, LeaseHeld, LeaseHolder, LeaseLost, utc_now
from reconciler.providers.iothub.client import IotHubAPIError, if_match, quote_id
from reconciler.providers.iothub.rules import OperationClass, lease_device_id

if TYPE_CHECKING:
    from reconciler.providers.iothub.provider import IotHubProvider

RECORD_LIMIT = 128  # statusReason's length cap


class HubLease:
    """The lease identity of one hub (the provider's lease methods delegate here)."""

    def __init__(self, provider: IotHubProvider) -> None:
        self.provider = provider
        self.device_id = lease_device_id(provider.target.stack)
        self.etag: str | None = None  # of the identity this run wrote last

    @property
    def target(self) -> str:
        return f"IoT Hub {self.provider.target.stack!r}"

    @property
    def where(self) -> str:
        return f"device identity {self.device_id}"

    @property
    def _path(self) -> str:
        return f"/devices/{quote_id(self.device_id)}"

    def _body(self, holder: LeaseHolder, until: datetime) -> dict[str, Any]:
        return {
            "deviceId": self.device_id,
            "status": "disabled",
            "statusReason": holder.record(until, RECORD_LIMIT),
        }

    async def _put(self, body: dict[str, Any], etag: str | None) -> str | None:
        """PUT the identity: create-only without `etag`, else conditional on it. The new etag;
        raises IotHubAPIError (409 exists, 412 changed since `etag`, 404 gone)."""
        headers = if_match(etag) if etag else {}
        response = await self.provider.client.request(
            "PUT", self._path, OperationClass.IDENTITY, json=body, headers=headers
        )
        data = _object(response.content)
        value = data.get("etag") if data else None
        return value if isinstance(value, str) else None

    async def read(self) -> tuple[Lease, str | None] | None:
        try:
            response = await self.provider.client.request(
                "GET", self._path, OperationClass.IDENTITY
            )
        except IotHubAPIError as error:
            if error.status == 404:
                return None
            raise
        data = _object(response.content) or {}
        reason = data.get("statusReason")
        etag = data.get("etag")
        lease = Lease.parse(reason if isinstance(reason, str) else "", self.where)
        return lease, etag if isinstance(etag, str) else None

    async def acquire(self, holder: LeaseHolder, until: datetime) -> Acquired:
        body = self._body(holder, until)
        for attempt in range(5):
            try:
                self.etag = await self._put(body, None)
                return Acquired([self.where])
            except IotHubAPIError as error:
                if error.status != 409:
                    raise
            found = await self.read()
            if found is None:
                # Released meanwhile, or created a moment ago: a hub may answer 404 to a GET for
                # a few seconds after a create.
                await asyncio.sleep(0.2 * attempt)
                continue
            lease, etag = found
            why = None if lease.held_by(holder) else lease.abandoned(utc_now())
            if not lease.held_by(holder) and why is None:
                raise LeaseHeld(self.target, lease)
            try:
                self.etag = await self._put(body, etag)
            except IotHubAPIError as error:
                if error.status in (404, 412):
                    continue  # another run was quicker: look again
                raise
            return Acquired([self.where], [] if why is None else [(lease, why)])
        found = await self.read()
        raise LeaseHeld(self.target, found[0] if found else Lease.parse("", self.where))

    async def renew(self, holder: LeaseHolder, until: datetime) -> None:
        try:
            self.etag = await self._put(self._body(holder, until), self.etag)
            return
        except IotHubAPIError as error:
            if error.status not in (404, 412):
                raise
        # Changed since this run wrote it: still ours (someone touched the identity) or not.
        found = await self.read()
        if found is None or not found[0].held_by(holder):
            self.etag = None
            now = "it was removed" if found is None else f"now {found[0].describe()}"
            raise LeaseLost(f"{self.target}: the lease on {self.where} is gone ({now})")
        self.etag = await self._put(self._body(holder, until), found[1])

    async def release(self, holder: LeaseHolder) -> None:
        etag, self.etag = self.etag, None
        for _attempt in range(3):
            try:
                await self.provider.client.request(
                    "DELETE",
                    self._path,
                    OperationClass.IDENTITY,
                    headers=if_match(etag),
                    success=(204,),
                )
                return
            except IotHubAPIError as error:
                if error.status == 404:
                    return
                if error.status != 412:
                    raise
            found = await self.read()
            if found is None or not found[0].held_by(holder):
                return  # another run's now: not ours to remove
            etag = found[1]

    async def find(self) -> list[Lease]:
        found = await self.read()
        return [] if found is None else [found[0]]

    async def break_lease(self, lease_id: str) -> list[Lease]:
        for _attempt in range(3):
            found = await self.read()
            if found is None or found[0].lease_id != lease_id:
                return []
            try:
                await self.provider.client.request(
                    "DELETE",
                    self._path,
                    OperationClass.IDENTITY,
                    headers=if_match(found[1]),
                    success=(204,),
                )
            except IotHubAPIError as error:
                if error.status == 412:
                    continue  # renewed or replaced meanwhile: look again
                if error.status != 404:
                    raise
            return [found[0]]
        return []


def _object(content: bytes) -> dict[str, Any] | None:
    from reconciler.providers.iothub.provider import _json_object

    return _json_object(content)
