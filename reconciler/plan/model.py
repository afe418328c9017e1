"""The plan: a versioned data structure (JSON), from which the human text is rendered.

A plan lists, per resource, one action from a closed set and the steps that carry it out (one
request each, to a provider-defined endpoint), with field-level changes. It holds no secret
values: sensitive changes carry only a flag, and the opaque live version each step was planned
against (per endpoint), so a saved plan can be re-checked before it is applied.

Compatibility (format_version 3): additive changes keep the version (readers ignore keys they
do not know); a change of meaning or a removed key raises it. A plan of another version is
refused with a message saying to plan again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from reconciler.resources import ResourceKey

FORMAT_VERSION = 3

Action = Literal["create", "update", "replace", "delete", "no-op"]
ACTIONS: tuple[Action, ...] = ("create", "update", "replace", "delete", "no-op")


SENSITIVE = "(sensitive)"


class PlanFormatError(ValueError):
    """A saved plan this version cannot read (another format_version, missing keys)."""


@dataclass
class FieldChange:
    path: str
    old: Any = None
    new: Any = None
    sensitive: bool = False
    # A sensitive field whose live value the credentials cannot read: rewritten, not compared.
    unverifiable: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path}
        if self.sensitive:
            data["sensitive"] = True
            if self.unverifiable:
                data["unverifiable"] = True
        else:
            data["old"] = self.old
            data["new"] = self.new
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldChange:
        return cls(
            path=data["path"],
            old=data.get("old"),
            new=data.get("new"),
            sensitive=bool(data.get("sensitive", False)),
            unverifiable=bool(data.get("unverifiable", False)),
        )


@dataclass
class Step:
    """One request to one endpoint of the resource's provider (e.g. a registry `set` with its
    field mask). `operation` is the provider's name for it; `verb` is how the text shows it."""

    endpoint: str
    operation: str
    paths: list[str] = field(default_factory=list)  # field mask (empty for create/delete)
    changes: list[FieldChange] = field(default_factory=list)
    live_version: str | None = None  # the endpoint's version when planning; None when absent
    registers: bool = False  # creates the resource on this endpoint
    verb: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "operation": self.operation,
            "verb": self.verb or self.operation,
            "registers": self.registers,
            "paths": self.paths,
            "changes": [c.to_json() for c in self.changes],
            "live_version": self.live_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        return cls(
            endpoint=data["endpoint"],
            operation=data["operation"],
            paths=list(data.get("paths", [])),
            changes=[FieldChange.from_json(c) for c in data.get("changes", [])],
            live_version=data.get("live_version"),
            registers=bool(data.get("registers", False)),
            verb=data.get("verb", ""),
        )


class FingerprintSource(Protocol):
    """Computes a change's fingerprints when first read (one object per change, as a plan holds
    one change per declared resource: thousands of devices)."""

    def desired_digest(self) -> str: ...

    def live_versions(self) -> dict[str, str | None]: ...


@dataclass
class ResourceChange:
    key: ResourceKey
    action: Action
    reason: str = ""
    steps: list[Step] = field(default_factory=list)
    adopt: bool = False  # an existing unowned resource the manifests declare
    location: str | None = None
    warnings: list[str] = field(default_factory=list)
    # A soft-deleted resource brought back (its ID is reserved, so it cannot be created anew).
    restore: bool = False
    # Unique keys (e.g. a device's EUI pair) this change takes, and those it frees: a deletion
    # (or a replacement's deletion half) that frees a key another change takes is applied
    # before that change.
    claims: list[str] = field(default_factory=list)
    releases: list[str] = field(default_factory=list)
    # Why the provider refuses this change (e.g. it would remove the tool's own access): any
    # reason blocks the whole plan.
    refused: list[str] = field(default_factory=list)
    # The fingerprints for stale-plan checks, `desired_digest` (keyed, no secrets: detects
    # edited manifests) and `live_versions` (per endpoint when planning, also for no-ops), are
    # computed on first read from this source: only a saved plan, the plan's JSON and apply's
    # staleness check read them, a plan shown as text does not.
    fingerprints: FingerprintSource | None = field(default=None, repr=False, compare=False)
    _desired_digest: str | None = field(default=None, init=False, repr=False, compare=False)
    _live_versions: dict[str, str | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def desired_digest(self) -> str:
        if self._desired_digest is None:
            source = self.fingerprints
            self._desired_digest = source.desired_digest() if source is not None else ""
        return self._desired_digest

    @desired_digest.setter
    def desired_digest(self, value: str) -> None:
        self._desired_digest = value

    @property
    def live_versions(self) -> dict[str, str | None]:
        if self._live_versions is None:
            source = self.fingerprints
            self._live_versions = source.live_versions() if source is not None else {}
        return self._live_versions

    @live_versions.setter
    def live_versions(self, value: dict[str, str | None]) -> None:
        self._live_versions = value

    @property
    def changed(self) -> bool:
        return self.action != "no-op"

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.key.provider,
            "kind": self.key.kind,
            "ids": list(self.key.ids),
            "label": str(self.key),
            "action": self.action,
            "reason": self.reason,
            "adopt": self.adopt,
            "restore": self.restore,
            "location": self.location,
            "warnings": self.warnings,
            "desired_digest": self.desired_digest,
            "live_versions": self.live_versions,
            "claims": self.claims,
            "releases": self.releases,
            "steps": [s.to_json() for s in self.steps],
        } | ({"refused": self.refused} if self.refused else {})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResourceChange:
        change = cls(
            key=ResourceKey(
                data["provider"], data["kind"], tuple(data["ids"]), data.get("label", "")
            ),
            action=data["action"],
            reason=data.get("reason", ""),
            adopt=bool(data.get("adopt", False)),
            location=data.get("location"),
            warnings=list(data.get("warnings", [])),
            restore=bool(data.get("restore", False)),
            claims=list(data.get("claims", [])),
            releases=list(data.get("releases", [])),
            steps=[Step.from_json(s) for s in data.get("steps", [])],
            refused=list(data.get("refused", [])),
        )
        change.desired_digest = data.get("desired_digest", "")
        change.live_versions = dict(data.get("live_versions", {}))
        return change


@dataclass
class Endpoint:
    """Where a provider sends requests: `label` in plan text (`IS`), `title` in errors
    (`Identity Server`), `url` its root URL."""

    label: str
    title: str
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "title": self.title, "url": self.url}


@dataclass
class TargetInfo:
    """One target of the plan: a provider and the endpoints it talks to."""

    provider: str
    name: str
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "name": self.name,
            "endpoints": {k: e.to_json() for k, e in self.endpoints.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetInfo:
        return cls(
            provider=data["provider"],
            name=data.get("name", ""),
            endpoints={
                k: Endpoint(e.get("label", k), e.get("title", k), e.get("url", ""))
                for k, e in data.get("endpoints", {}).items()
            },
        )


@dataclass
class Plan:
    stack: str
    targets: list[TargetInfo] = field(default_factory=list)
    resources: list[ResourceChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Located manifest warnings (Diagnostic.to_json), kept apart from the providers' warnings:
    # the CLI prints them once, located, on stderr.
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    # Owned resources the manifests no longer declare, planned as deletes but not applied
    # (without prune): shown in plans, counted as drift.
    orphans: list[ResourceChange] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # safety checks that stop apply
    options: dict[str, Any] = field(default_factory=dict)
    manifests: list[str] = field(default_factory=list)
    created_at: str = ""
    tool_version: str = ""
    write_requests: int = 0
    estimated_seconds: float | None = None

    @property
    def changes(self) -> list[ResourceChange]:
        return [r for r in self.resources if r.changed]

    def has_changes(self) -> bool:
        return any(r.changed for r in self.resources)

    def has_drift(self) -> bool:
        """Changes, or owned resources the manifests no longer declare."""
        return self.has_changes() or bool(self.orphans)

    def endpoint(self, provider: str, name: str) -> Endpoint:
        for target in self.targets:
            if target.provider == provider and name in target.endpoints:
                return target.endpoints[name]
        return Endpoint(name, name, "")

    def urls(self) -> list[str]:
        return sorted({e.url for t in self.targets for e in t.endpoints.values() if e.url})

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(ACTIONS, 0)
        for resource in self.resources:
            counts[resource.action] += 1
        counts["adopt"] = sum(1 for r in self.resources if r.adopt)
        counts["restore"] = sum(1 for r in self.resources if r.restore)
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "tool_version": self.tool_version,
            "created_at": self.created_at,
            "stack": self.stack,
            "targets": [t.to_json() for t in self.targets],
            "manifests": self.manifests,
            "options": self.options,
            "summary": self.summary(),
            "write_requests": self.write_requests,
            "estimated_seconds": self.estimated_seconds,
            "warnings": self.warnings,
            "diagnostics": self.diagnostics,
            "blocked": self.blocked,
            "resources": [r.to_json() for r in self.resources],
            "orphans": [r.to_json() for r in self.orphans],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> Plan:
        """Raises PlanFormatError for anything this version cannot read."""
        if not isinstance(data, dict):
            raise PlanFormatError("not a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise PlanFormatError(
                f"plan format_version {version!r}; this version of reconciler reads "
                f"format_version {FORMAT_VERSION}: run `reconciler plan --out` again"
            )
        try:
            return cls(
                stack=data["stack"],
                targets=[TargetInfo.from_json(t) for t in data.get("targets", [])],
                warnings=list(data.get("warnings", [])),
                diagnostics=list(data.get("diagnostics", [])),
                blocked=list(data.get("blocked", [])),
                options=dict(data.get("options", {})),
                manifests=list(data.get("manifests", [])),
                created_at=data.get("created_at", ""),
                tool_version=data.get("tool_version", ""),
                write_requests=int(data.get("write_requests", 0)),
                estimated_seconds=data.get("estimated_seconds"),
                resources=[ResourceChange.from_json(r) for r in data["resources"]],
                orphans=[ResourceChange.from_json(r) for r in data.get("orphans", [])],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise PlanFormatError(f"malformed plan ({type(error).__name__}: {error})") from None


# stale: a saved plan's change not applied because its resource changed since the plan.
Outcome = Literal["done", "failed", "skipped", "stale"]


@dataclass
class ResourceResult:
    key: ResourceKey
    outcome: Outcome
    action: str
    error: str = ""  # names the endpoint and its error; never secret values
    endpoint: str = ""  # the endpoint's title, for failures


@dataclass
class ApplyReport:
    results: list[ResourceResult] = field(default_factory=list)
    interrupted: bool = False
    # A renewal found the apply lease removed or taken over: no more changes were started.
    lease_lost: bool = False
    # The servers' warnings drawn while applying (e.g. X-Warning on a write), each once.
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ResourceResult]:
        return [r for r in self.results if r.outcome == "failed"]

    @property
    def skipped(self) -> list[ResourceResult]:
        return [r for r in self.results if r.outcome == "skipped"]

    @property
    def stale(self) -> list[ResourceResult]:
        return [r for r in self.results if r.outcome == "stale"]

    def counts(self) -> dict[str, int]:
        counts = {"done": 0, "failed": 0, "skipped": 0, "stale": 0}
        for result in self.results:
            counts[result.outcome] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """`apply --format json`'s report: counts, every result (errors name the endpoint and
        its error, never a secret) and the servers' warnings drawn while applying."""
        return {
            "summary": self.counts(),
            "interrupted": self.interrupted,
            "lease_lost": self.lease_lost,
            "warnings": self.warnings,
            "results": [
                {
                    "provider": r.key.provider,
                    "kind": r.key.kind,
                    "ids": list(r.key.ids),
                    "label": str(r.key),
                    "action": r.action,
                    "outcome": r.outcome,
                    "error": r.error,
                    "endpoint": r.endpoint,
                }
                for r in self.results
            ],
        }
