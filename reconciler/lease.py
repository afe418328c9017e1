"""Leases: one apply at a time per target, recorded on the target itself.

Two applies against the same stack must not interleave: the second would plan from a state the
first is changing (and a prune of a smaller tree deletes what the other run is creating). So
`apply` takes a *lease* before it reads, plans and writes: a record on the server, on something
the stack owns, naming who holds it (user, host, process id, start time: never a secret) and
until when. Another apply that finds a lease it does not hold refuses, or waits up to
`--lock-timeout`; a lease past its expiry (its run crashed or was killed) is taken over, with a
note. The holder renews it while it works and removes it at the end, after failures and
interrupts too; `reconciler force-unlock LEASE_ID` removes a stuck one.

Where the record lives and how it is written atomically is the provider's business (the lease
methods of `reconciler.provider.Provider`); this module holds what every provider shares: the
holder, the record's one-line text, and the keeper that acquires, renews and releases across
the targets of a run. Times are UTC from the local clock: skew between two machines shortens or
lengthens the lease by the skew (see the README).
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from reconciler.diagnostics import ReconcilerError

if TYPE_CHECKING:
    from reconciler.provider import Provider

DEFAULT_TTL = 300.0  # seconds a lease lasts without renewal
RENEW_FRACTION = 1 / 3  # renewed after a third of its time: two renewals may fail in a row
LEASE_ID_LENGTH = 12
# Characters kept from user and host names (the record must fit the provider's field and
# parse back; anything else becomes `_`).
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_RECORD = re.compile(
    r"^(?P<user>[A-Za-z0-9._-]*)@(?P<host>[A-Za-z0-9._-]*) pid=(?P<pid>\d{1,10}) "
    r"since=(?P<since>\S+) until=(?P<until>\S+) id=(?P<id>[0-9a-f]{12})$"
)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _name(text: str) -> str:
    return _NAME_CHARS.sub("_", text)


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds (or wants) a lease: one run of reconciler."""

    user: str
    host: str
    pid: int
    since: datetime
    lease_id: str

    @staticmethod
    def this_host() -> str:
        return _name(socket.gethostname()) or "unknown"

    @classmethod
    def this_process(cls) -> LeaseHolder:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
            user = "unknown"
        return cls(
            user=_name(user) or "unknown",
            host=cls.this_host(),
            pid=os.getpid(),
            since=utc_now(),
            lease_id=secrets.token_hex(LEASE_ID_LENGTH // 2),
        )

    def record(self, until: datetime, limit: int) -> str:
        """The one-line text a provider stores, at most `limit` characters (user and host
        names are shortened to fit, never the times or the id)."""
        since, until_text = _stamp(self.since), _stamp(until)
        tail = f" pid={self.pid} since={since} until={until_text} id={self.lease_id}"
        room = max(2, limit - len(tail))
        user, host = self.user, self.host
        if len(user) + 1 + len(host) > room:
            user = user[: max(1, min(len(user), room // 3))]
            host = host[: max(1, room - 1 - len(user))]
        return f"{user}@{host}{tail}"[:limit]


@dataclass(frozen=True)
class Lease:
    """A lease as a provider found it on the server."""

    where: str  # e.g. "device reconciler-lease in application field-sensors"
    holder: LeaseHolder | None  # None: the record does not parse (edited by hand?)
    until: datetime | None
    lease_id: str  # the holder's id, or for an unreadable record a digest of its text

    @classmethod
    def parse(cls, text: str, where: str) -> Lease:
        match = _RECORD.match(text.strip())
        since = _time(match["since"]) if match else None
        until = _time(match["until"]) if match else None
        if match is None or since is None or until is None:
            digest = hashlib.sha256(text.encode()).hexdigest()[:LEASE_ID_LENGTH]
            return cls(where, None, None, digest)
        holder = LeaseHolder(match["user"], match["host"], int(match["pid"]), since, match["id"])
        return cls(where, holder, until, holder.lease_id)

    def expired(self, now: datetime) -> bool:
        """Past its expiry. An unreadable record never expires: only force-unlock removes it."""
        return self.until is not None and self.until <= now

    def abandoned(self, now: datetime) -> str | None:
        """Why another run may take this lease over (None: it may not): past its expiry, or
        held by a process of this host that has ended (a run killed here, e.g. SIGKILL, need
        not be waited for). A process id in use again, or another host, waits for the expiry."""
        if self.expired(now):
            return "expired"
        holder = self.holder
        if holder is None or holder.host != LeaseHolder.this_host() or holder.pid == os.getpid():
            return None
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return f"its process {holder.pid} on this host has ended"
        except OSError:  # it exists, as another user's process
            return None
        return None

    def held_by(self, holder: LeaseHolder) -> bool:
        return self.holder is not None and self.holder.lease_id == holder.lease_id

    def describe(self) -> str:
        if self.holder is None or self.until is None:
            return f"an unreadable lease record (lease id {self.lease_id}) on {self.where}"
        h = self.holder
        return (
            f"{h.user}@{h.host} (pid {h.pid}) since {_stamp(h.since)}, lease until "
            f"{_stamp(self.until)} (lease id {self.lease_id}) on {self.where}"
        )


class LeaseHeld(ReconcilerError):
    """Another run holds the lease of a target."""

    def __init__(self, target: str, lease: Lease, waited: float = 0.0) -> None:
        self.target = target
        self.lease = lease
        after = f" after waiting {waited:.0f} s" if waited > 0 else ""
        super().__init__(
            f"{target} is locked by another apply{after}: {lease.describe()}. Wait for it "
            f"(--lock-timeout SECONDS), or if that run is dead, `reconciler force-unlock "
            f"{lease.lease_id}`"
            + ("" if lease.until is None else " (or wait until the lease expires)")
        )


class LeaseLost(ReconcilerError):
    """The lease of a run was removed or taken over while it ran."""


@dataclass
class Acquired:
    """What a provider's `acquire_lease` did: where the lease now lives, and the abandoned
    leases of other runs it replaced (each with `Lease.abandoned`'s reason)."""

    places: list[str] = field(default_factory=list)
    taken_over: list[tuple[Lease, str]] = field(default_factory=list)
    # No place (a TTS stack that owns no application yet): the kind whose creation gives the
    # lease one (TTS: "application"), or None when no creation does.
    placed_by: str | None = None


Note = Callable[[str], None]


class LeaseKeeper:
    """Holds the leases of all targets of one run: acquire (waiting up to `timeout`), renew in
    the background, release. `lost` is set (and no more renewals are tried) when a renewal
    finds the lease gone or held by another run."""

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        ttl: float = DEFAULT_TTL,
        timeout: float = 0.0,
        poll: float = 5.0,
        note: Note = lambda _text: None,
        holder: LeaseHolder | None = None,
    ) -> None:
        self.providers = list(providers)
        self.ttl = ttl
        self.timeout = max(0.0, timeout)
        self.poll = poll
        self.note = note
        self.holder = holder or LeaseHolder.this_process()
        self.lost: str | None = None
        # Targets whose lease found no place (a TTS stack that owns no application yet: its
        # first apply), by provider name -> the kind whose creation gives it one: their first
        # creations decide between two first applies (see `reconciler.engine.apply_plan`).
        self.without_place: dict[str, str | None] = {}
        self._held: list[Provider] = []
        self._renewer: asyncio.Task[None] | None = None

    def until(self) -> datetime:
        return utc_now() + timedelta(seconds=self.ttl)

    async def acquire(self) -> None:
        """Take every target's lease, or none: raises LeaseHeld when one stays held by another
        run beyond the timeout (the ones taken meanwhile are released)."""
        started = time.monotonic()
        waiting_for: str | None = None
        while True:
            try:
                for provider in self.providers:
                    acquired = await provider.acquire_lease(self.holder, self.until())
                    self._held.append(provider)
                    if not acquired.places:
                        self.without_place[provider.name] = acquired.placed_by
                    for lease, why in acquired.taken_over:
                        self.note(
                            f"took over a lease of {provider.describe().name} ({why}): "
                            f"{lease.describe()} (that run may have crashed; check what it left "
                            "with `reconciler plan`)"
                        )
                break
            except LeaseHeld as held:
                await self.release()
                self.without_place.clear()
                waited = time.monotonic() - started
                if waited >= self.timeout:
                    if waited > 0 and self.timeout > 0:
                        raise LeaseHeld(held.target, held.lease, waited) from None
                    raise
                if waiting_for != held.lease.lease_id:
                    waiting_for = held.lease.lease_id
                    self.note(f"waiting up to {self.timeout:.0f} s for the lease: {held}")
                await asyncio.sleep(min(self.poll, self.timeout - waited))
            except ReconcilerError as error:
                # The record could not be written (rights, network): take none of the leases.
                await self.release()
                raise ReconcilerError(
                    f"cannot take the apply lease: {error} (`apply --no-lock` applies without "
                    "it, unguarded)"
                ) from None
            except BaseException:
                await self.release()
                raise
        if self.ttl > 0:  # (tests write leases that are born expired)
            self._renewer = asyncio.ensure_future(self._renew_loop())

    async def _renew_loop(self) -> None:
        while self.lost is None:
            await asyncio.sleep(self.ttl * RENEW_FRACTION)
            await self.renew()

    async def renew(self) -> None:
        """Extend every held lease now; on loss, set `lost` (a network failure is a note: the
        next renewal tries again before the lease runs out)."""
        for provider in list(self._held):
            try:
                await provider.renew_lease(self.holder, self.until())
            except LeaseLost as error:
                self.lost = str(error)
                self._held.remove(provider)
                self.note(f"lease lost: {error}")
                return
            except ReconcilerError as error:
                self.note(f"could not renew the lease of {provider.describe().name}: {error}")

    def check(self) -> None:
        """Raise LeaseLost if a renewal found the lease gone."""
        if self.lost is not None:
            raise LeaseLost(self.lost)

    async def release(self) -> None:
        """Stop renewing and remove this run's leases (never another run's). A failure is a
        note: the lease then expires on its own."""
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        while self._held:
            provider = self._held.pop()
            try:
                await provider.release_lease(self.holder)
            except ReconcilerError as error:
                self.note(
                    f"could not release the lease of {provider.describe().name} ({error}); "
                    f"it expires within {self.ttl:.0f} s"
                )
