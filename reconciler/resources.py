"""Desired resources: what the manifests ask for, as TTS field paths in normal form.

This is the hand-off between the manifest models (hop 2) and the provider/plan (hops 3-5). A
desired resource lists only the fields the manifests set (after defaults and profiles), so fields
they do not mention are never compared or written; a value of None means "clear this field".
Secret values (keys, webhook header values) are held as `Secret` objects that never print.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.diagnostics import Location

ResourceKind = Literal["application", "link", "webhook", "device", "gateway"]
# Creation order of kinds; deletes run in reverse (FACTS §j: devices before their application).
KIND_ORDER: tuple[ResourceKind, ...] = ("application", "link", "webhook", "device", "gateway")


@dataclass(frozen=True, order=True, slots=True)
class ResourceKey:
    kind: ResourceKind
    application_id: str  # "" for gateways
    id: str  # application_id / "link" / webhook_id / device_id / gateway_id

    def __str__(self) -> str:
        match self.kind:
            case "application":
                return f"application {self.id}"
            case "link":
                return f"link {self.application_id}"
            case "gateway":
                return f"gateway {self.id}"
            case _:
                return f"{self.kind} {self.application_id}/{self.id}"


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


@dataclass(frozen=True, slots=True)
class Owner:
    kind: Literal["user", "organization"]
    id: str


@dataclass
class DesiredResource:
    key: ResourceKey
    # TTS field path -> normal-form value (see reconciler.providers.tts.schema), Secret for
    # secret values, None to clear. Map fields (`attributes`, webhook `headers`) hold only the
    # managed keys.
    fields: dict[str, Any]
    location: Location | None = None
    owner: Owner | None = None  # applications and gateways: who creates them
    extra: dict[str, Any] = field(default_factory=dict)  # provider hints (e.g. OTAA vs ABP)

    def secret_paths(self) -> frozenset[str]:
        return frozenset(path for path, value in self.fields.items() if is_sensitive(value))


@dataclass
class DesiredState:
    """Everything the manifests declare for one stack."""

    stack: str
    ownership_key: str
    resources: dict[ResourceKey, DesiredResource] = field(default_factory=dict)

    def add(self, resource: DesiredResource) -> None:
        self.resources[resource.key] = resource

    def of_kind(self, kind: ResourceKind) -> list[DesiredResource]:
        return [r for k, r in sorted(self.resources.items()) if k.kind == kind]

    def application_ids(self) -> list[str]:
        return sorted(k.id for k in self.resources if k.kind == "application")
