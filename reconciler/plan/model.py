"""The plan: a versioned data structure (JSON), from which the human text is rendered.

A plan lists, per resource, one action from a closed set and the per-server steps that carry it
out, with field-level changes. It holds no secret values: sensitive changes carry only a flag,
and the live version (`updated_at` per server) each step was planned against, so a saved plan
can be re-checked before it is applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.resources import ResourceKey, ResourceKind

FORMAT_VERSION = 1

Action = Literal["create", "update", "replace", "delete", "no-op"]
ACTIONS: tuple[Action, ...] = ("create", "update", "replace", "delete", "no-op")
Operation = Literal["create", "update", "set", "delete"]


SENSITIVE = "(sensitive)"


@dataclass
class FieldChange:
    path: str
    old: Any = None
    new: Any = None
    sensitive: bool = False
    # For sensitive fields whose live value cannot be read (no READ_KEYS right).
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


@dataclass
class Step:
    """One request to one server (e.g. `ns set` with its field mask)."""

    server: str  # "is" | "ns" | "as" | "js" (TTS); provider-defined
    operation: Operation
    paths: list[str] = field(default_factory=list)  # field mask (empty for create/delete)
    changes: list[FieldChange] = field(default_factory=list)
    live_version: str | None = None  # updated_at seen when planning; None when absent
    registers: bool = False  # creates the resource on this server (a `set` may also update)

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "operation": self.operation,
            "registers": self.registers,
            "paths": self.paths,
            "changes": [c.to_json() for c in self.changes],
            "live_version": self.live_version,
        }


@dataclass
class ResourceChange:
    key: ResourceKey
    action: Action
    reason: str = ""
    steps: list[Step] = field(default_factory=list)
    adopt: bool = False  # an existing unowned resource the manifests declare
    location: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Fingerprint of the desired resource (keyed; no secrets) to detect edited manifests.
    desired_digest: str = ""
    # Versions seen per server when planning (for stale-plan checks), also for no-op resources.
    live_versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.action != "no-op"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.key.kind,
            "application_id": self.key.application_id,
            "id": self.key.id,
            "action": self.action,
            "reason": self.reason,
            "adopt": self.adopt,
            "location": self.location,
            "warnings": self.warnings,
            "desired_digest": self.desired_digest,
            "live_versions": self.live_versions,
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass
class Plan:
    stack: str
    target: dict[str, str]
    resources: list[ResourceChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(ACTIONS, 0)
        for resource in self.resources:
            counts[resource.action] += 1
        counts["adopt"] = sum(1 for r in self.resources if r.adopt)
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "tool_version": self.tool_version,
            "created_at": self.created_at,
            "stack": self.stack,
            "target": self.target,
            "manifests": self.manifests,
            "options": self.options,
            "summary": self.summary(),
            "write_requests": self.write_requests,
            "estimated_seconds": self.estimated_seconds,
            "warnings": self.warnings,
            "blocked": self.blocked,
            "resources": [r.to_json() for r in self.resources],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"unsupported plan format_version {version!r} (this tool reads {FORMAT_VERSION})"
            )
        plan = cls(
            stack=data["stack"],
            target=dict(data["target"]),
            warnings=list(data.get("warnings", [])),
            blocked=list(data.get("blocked", [])),
            options=dict(data.get("options", {})),
            manifests=list(data.get("manifests", [])),
            created_at=data.get("created_at", ""),
            tool_version=data.get("tool_version", ""),
            write_requests=int(data.get("write_requests", 0)),
            estimated_seconds=data.get("estimated_seconds"),
        )
        for item in data["resources"]:
            kind: ResourceKind = item["kind"]
            plan.resources.append(
                ResourceChange(
                    key=ResourceKey(kind, item["application_id"], item["id"]),
                    action=item["action"],
                    reason=item.get("reason", ""),
                    adopt=bool(item.get("adopt", False)),
                    location=item.get("location"),
                    warnings=list(item.get("warnings", [])),
                    desired_digest=item.get("desired_digest", ""),
                    live_versions=dict(item.get("live_versions", {})),
                    steps=[
                        Step(
                            server=s["server"],
                            operation=s["operation"],
                            paths=list(s.get("paths", [])),
                            changes=[
                                FieldChange(
                                    path=c["path"],
                                    old=c.get("old"),
                                    new=c.get("new"),
                                    sensitive=bool(c.get("sensitive", False)),
                                    unverifiable=bool(c.get("unverifiable", False)),
                                )
                                for c in s.get("changes", [])
                            ],
                            live_version=s.get("live_version"),
                            registers=bool(s.get("registers", False)),
                        )
                        for s in item.get("steps", [])
                    ],
                )
            )
        return plan


Outcome = Literal["done", "failed", "skipped"]


@dataclass
class ResourceResult:
    key: ResourceKey
    outcome: Outcome
    action: str
    error: str = ""  # names the server and the server's error; never secret values
    server: str = ""


@dataclass
class ApplyReport:
    results: list[ResourceResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[ResourceResult]:
        return [r for r in self.results if r.outcome == "failed"]

    @property
    def skipped(self) -> list[ResourceResult]:
        return [r for r in self.results if r.outcome == "skipped"]

    def counts(self) -> dict[str, int]:
        counts = {"done": 0, "failed": 0, "skipped": 0}
        for result in self.results:
            counts[result.outcome] += 1
        return counts
