"""The provider-neutral data of hops 2-4: desired resources, live records and their keys.

A desired resource lists only the fields the manifests set (after defaults and profiles), in the
provider's own field paths and normal form, so fields they do not mention are never compared or
written; a value of None means "clear this field". Secret values are held as `Secret` objects
that never print. Live state is what a provider read, per endpoint (the server or API that holds
the record), with an opaque version per record for stale-plan checks.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.diagnostics import Location


@dataclass(frozen=True, order=True, slots=True)
class ResourceKey:
    """`provider`'s resource of `kind` named by `ids` (outermost first, e.g. parent then child).

    `label` is how people see the key (`device app-1/dev-1`); the provider gives it when the
    default (`kind` and the ids joined by `/`) does not fit. It takes no part in equality.
    """

    provider: str
    kind: str
    ids: tuple[str, ...]
    label: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        """The innermost id (the resource's own name within its parent)."""
        return self.ids[-1]

    @property
    def address(self) -> str:
        """How the command line names it (`--target`, `--rotate`): `kind/id/...`, ids
        outermost first."""
        return "/".join((self.kind, *self.ids))

    def __str__(self) -> str:
        return self.label or f"{self.kind} {'/'.join(self.ids)}"


def _key_order(key: ResourceKey) -> tuple[str, str, tuple[str, ...]]:
    """ResourceKey's own order (its compared fields as a tuple), for sorting many keys: tuples
    compare in C, where the dataclass's `__lt__` is a Python call per comparison."""
    return (key.provider, key.kind, key.ids)


class Secret:
    """A secret value: never printed, compared by fingerprint. `source` says where it came from
    (`env:NAME`, `file:path`, `inline`, `csv:file`), for messages that must not show it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "inline") -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The plain value, only for building a request body."""
        return self._value

    def fingerprint(self, key: bytes = b"") -> str:
        """Keyed digest for comparing without revealing (the plan stores these, not values)."""
        return hmac.new(key, self._value.encode(), hashlib.sha256).hexdigest()

    @property
    def is_inline(self) -> bool:
        return self.source == "inline"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.source}, ***)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        # Pickling would write the value somewhere; nothing needs it.
        raise TypeError("secrets cannot be pickled")


def reveal(value: Any) -> Any:
    """Plain values for a request body: Secrets (also inside maps) revealed."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    return value


def is_sensitive(value: Any) -> bool:
    """A secret, or a map holding one (e.g. webhook headers)."""
    if isinstance(value, Secret):
        return True
    return isinstance(value, dict) and any(isinstance(v, Secret) for v in value.values())


@dataclass
class DesiredResource:
    key: ResourceKey
    # Provider field path -> normal-form value, Secret for secret values, None to clear.
    fields: dict[str, Any]
    location: Location | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # provider hints (e.g. OTAA vs ABP)


@dataclass
class DesiredState:
    """Everything the manifests declare for one target."""

    stack: str  # the ownership marker's value: the name of this set of manifests
    ownership_key: str  # where the provider keeps the marker (an attribute, a tag)
    resources: dict[ResourceKey, DesiredResource] = field(default_factory=dict)
    # How messages name the marker, e.g. "attribute managed-by".
    marker_label: str = ""

    def add(self, resource: DesiredResource) -> None:
        self.resources[resource.key] = resource

    def of_kind(self, kind: str) -> list[DesiredResource]:
        """The resources of `kind`, in key order."""
        keys = sorted((k for k in self.resources if k.kind == kind), key=_key_order)
        return [self.resources[k] for k in keys]

    def by_kind(self) -> dict[str, list[DesiredResource]]:
        """Every resource grouped by kind, each group in key order (one sort for all kinds)."""
        groups: dict[str, list[DesiredResource]] = {}
        for key in sorted(self.resources, key=_key_order):
            groups.setdefault(key.kind, []).append(self.resources[key])
        return groups

    def secret_values(self) -> list[str]:
        """Every secret value the manifests hold (keys, header values): what a server's echo
        of a request must never print."""
        values: list[str] = []
        for resource in self.resources.values():
            for value in resource.fields.values():
                for item in value.values() if isinstance(value, dict) else (value,):
                    if isinstance(item, Secret):
                        values.append(item.reveal())
        return values


class LiveRecord:
    """One resource as one endpoint returned it (raw JSON, masked to the managed paths), with
    the endpoint's opaque version of it (a timestamp, an etag) when it has one.

    A version that must be computed from the data (`version_of`, e.g. a keyed digest of the
    managed fields) is computed on first read: only saved plans, plan JSON, stale-plan checks
    and the steps of changes read versions, so a plan shown as text never pays for them."""

    __slots__ = ("_version", "_version_of", "data")

    def __init__(
        self,
        data: dict[str, Any],
        version: str | None = None,
        *,
        version_of: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.data = data
        self._version = version
        self._version_of = version_of

    @property
    def version(self) -> str | None:
        if self._version_of is not None:
            self._version = self._version_of(self.data)
            self._version_of = None
        return self._version

    @version.setter
    def version(self, value: str | None) -> None:
        self._version = value
        self._version_of = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LiveRecord):
            return NotImplemented
        return self.data == other.data and self.version == other.version

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        return f"LiveRecord(data={self.data!r}, version={self.version!r})"


@dataclass
class LiveResource:
    key: ResourceKey
    records: dict[str, LiveRecord] = field(default_factory=dict)  # endpoint -> record
    # The credentials could read its secret values (else they are not compared).
    secrets_readable: bool = True
    # Why the provider counts it as owned when it carries no marker of its own (e.g. records
    # left on some endpoints, under a parent the stack owns): the plan's reason for it.
    owned_because: str = ""
    # A soft-deleted resource (no live records): endpoint -> its record as deleted. Its ID stays
    # reserved, so it can be restored but not created again; `unrestorable` says why it cannot
    # be restored either (and what would free the ID), when that is known at read time.
    deleted: dict[str, LiveRecord] = field(default_factory=dict)
    unrestorable: str = ""
    # Why the tool must never delete it (e.g. it is the tool's own access), or "".
    protected: str = ""

    def versions(self) -> dict[str, str | None]:
        return {endpoint: record.version for endpoint, record in self.records.items()}


@dataclass(frozen=True)
class KeyHolder:
    """The live resource that holds a unique key (a value only one resource of the target may
    hold at a time, such as a device's EUI pair)."""

    key: ResourceKey
    # Deleting the holder frees the value (False: a soft delete keeps it reserved).
    freed_by_delete: bool = True
    # Why the value stays reserved and what frees it, when deleting the holder does not.
    note: str = ""


@dataclass
class LiveState:
    resources: dict[ResourceKey, LiveResource] = field(default_factory=dict)
    # Live resources carrying this stack's ownership marker (prune candidates are those of them
    # the manifests no longer declare).
    owned: set[ResourceKey] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    # Unique keys seen while reading (managed or not) -> who holds them; a creation that needs
    # one must wait for (or is blocked by) its holder.
    unique_keys: dict[str, KeyHolder] = field(default_factory=dict)

    def get(self, key: ResourceKey) -> LiveResource | None:
        return self.resources.get(key)
