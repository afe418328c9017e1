"""The apply lease on The Things Stack (the lease half of reconciler.provider.Provider).

The Stack API has no etags or conditional updates, but creating an end device is create-only:
the Identity Server answers 409 when the ID exists. So the lease is a device
`reconciler-lease` in every application the stack owns (its ownership marker), created in
sorted application order (two runs meet at the first application they share; the loser removes
what it created and refuses), holding the record in its `description`. It carries no ownership
marker and is never declared, so plans, drift, prune and import never see it.

Limits (the README has them too): taking over an *expired* lease is delete-then-create, and two
runs doing it in the same instant can both succeed; the next renewal (which reads the record
back before extending it) shows the loser its loss. Renewals write without a precondition. A
stack that owns no application yet has nothing to hold a lease on: `acquire` then names no
place, and its first apply is guarded by its first creation (`reconciler.engine.apply_plan`);
renewals extend the lease to the applications a run creates.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.lease import Acquired, Lease, LeaseHeld, LeaseHolder, LeaseLost, utc_now
from reconciler.providers.tts.client import TTSAPIError
from reconciler.providers.tts.kinds import LEASE_DEVICE_ID

if TYPE_CHECKING:
    from reconciler.providers.tts.provider import TTSProvider

# The record's length cap: far below the Identity Server's 2,000 for a description.
RECORD_LIMIT = 200
LEASE_DEVICE_NAME = "reconciler apply lease"


class TTSLease:
    """The lease devices of one stack (the provider's lease methods delegate here)."""

    def __init__(self, provider: TTSProvider) -> None:
        self.provider = provider
        self.places: set[str] = set()  # application IDs where this run's lease lives

    @property
    def target(self) -> str:
        return f"stack {self.provider.target.stack!r}"

    @staticmethod
    def where(app_id: str) -> str:
        return f"device {LEASE_DEVICE_ID} in application {app_id}"

    def _path(self, app_id: str) -> str:
        return f"/applications/{app_id}/devices/{LEASE_DEVICE_ID}"

    async def owned_applications(self) -> list[str]:
        target = self.provider.target
        owned = []
        async for item in self.provider._list_pages(
            "is", "/applications", "applications", ["attributes"]
        ):
            attributes = item.get("attributes")
            ids = item.get("ids")
            if (
                isinstance(attributes, dict)
                and attributes.get(target.ownership_key) == target.stack
                and isinstance(ids, dict)
                and isinstance(ids.get("application_id"), str)
            ):
                owned.append(ids["application_id"])
        return sorted(owned)

    async def read(self, app_id: str) -> Lease | None:
        data = await self.provider._get_optional("is", self._path(app_id), ["description"])
        if data is None:
            return None
        description = data.get("description")
        return Lease.parse(description if isinstance(description, str) else "", self.where(app_id))

    async def _create(self, app_id: str, record: str) -> bool:
        """Create the lease device; False when one exists already."""
        body: dict[str, Any] = {
            "ids": {"device_id": LEASE_DEVICE_ID, "application_ids": {"application_id": app_id}},
            "name": LEASE_DEVICE_NAME,
            "description": record,
        }
        try:
            await self.provider.client.request(
                "is", "POST", f"/applications/{app_id}/devices", json={"end_device": body}
            )
        except TTSAPIError as error:
            if error.status == 409:
                return False
            raise
        return True

    async def _delete(self, app_id: str) -> None:
        try:
            await self.provider.client.request("is", "DELETE", self._path(app_id))
        except TTSAPIError as error:
            if error.status != 404:
                raise

    async def _take(
        self, app_id: str, holder: LeaseHolder, until: datetime
    ) -> tuple[Lease, str] | None:
        """This run's lease in one application; the abandoned lease it replaced (and why), if
        any. Raises LeaseHeld."""
        record = holder.record(until, RECORD_LIMIT)
        for _attempt in range(3):
            if await self._create(app_id, record):
                return None
            found = await self.read(app_id)
            if found is None:
                continue  # removed meanwhile: try to create it again
            if found.held_by(holder):
                return None  # an earlier attempt whose answer was lost
            why = found.abandoned(utc_now())
            if why is None:
                raise LeaseHeld(self.target, found)
            await self._delete(app_id)
            if await self._create(app_id, record):
                return found, why
        found = await self.read(app_id)
        if found is not None and found.held_by(holder):
            return None
        raise LeaseHeld(self.target, found or Lease.parse("", self.where(app_id)))

    async def acquire(self, holder: LeaseHolder, until: datetime) -> Acquired:
        acquired = Acquired(placed_by="application")
        try:
            for app_id in await self.owned_applications():
                replaced = await self._take(app_id, holder, until)
                self.places.add(app_id)
                acquired.places.append(self.where(app_id))
                if replaced is not None:
                    acquired.taken_over.append(replaced)
        except BaseException:
            await self.release(holder)
            raise
        return acquired

    async def renew(self, holder: LeaseHolder, until: datetime) -> None:
        """Read each record back before extending it (no preconditions on TTS writes), and
        take the lease in applications the stack came to own since (created by this run)."""
        record = holder.record(until, RECORD_LIMIT)
        for app_id in sorted(self.places):
            found = await self.read(app_id)
            if found is None or not found.held_by(holder):
                self.places.discard(app_id)
                now = "it was removed" if found is None else f"now {found.describe()}"
                raise LeaseLost(f"{self.target}: the lease on {self.where(app_id)} is gone ({now})")
            await self.provider.client.request(
                "is",
                "PUT",
                self._path(app_id),
                json={
                    "end_device": {
                        "ids": {
                            "device_id": LEASE_DEVICE_ID,
                            "application_ids": {"application_id": app_id},
                        },
                        "description": record,
                    },
                    "field_mask": {"paths": ["description"]},
                },
            )
        for app_id in await self.owned_applications():
            if app_id not in self.places:
                try:
                    await self._take(app_id, holder, until)
                except LeaseHeld as held:
                    raise LeaseLost(str(held)) from None
                self.places.add(app_id)

    async def release(self, holder: LeaseHolder) -> None:
        """Remove this run's lease devices (one another run took over stays)."""
        for app_id in sorted(self.places):
            found = await self.read(app_id)
            if found is not None and found.held_by(holder):
                await self._delete(app_id)
            self.places.discard(app_id)

    async def before_application_delete(self, app_id: str) -> None:
        """The Identity Server refuses to delete an application that holds a device: the
        lease device of this run goes first (the stack's other applications keep the lease)."""
        if app_id in self.places:
            await self._delete(app_id)
            self.places.discard(app_id)

    async def find(self) -> list[Lease]:
        leases = []
        for app_id in await self.owned_applications():
            found = await self.read(app_id)
            if found is not None:
                leases.append(found)
        return leases

    async def break_lease(self, lease_id: str) -> list[Lease]:
        removed = []
        for app_id in await self.owned_applications():
            found = await self.read(app_id)
            if found is not None and found.lease_id == lease_id:
                await self._delete(app_id)
                removed.append(found)
        return removed
