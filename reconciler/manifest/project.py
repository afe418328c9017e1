"""The validated result of loading manifests: one `Project` per run.

Each provider's manifest kinds resolve into its target(s) (`add_target`) and its data, kept by
provider name in `extensions` (see `reconciler.manifest.extensions`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.diagnostics import Location

Source = Location | Callable[[], Location]


class Located:
    """`location` of a resource's declaration. YAML positions are computed on first use (a CSV
    row's is known), so loading thousands of valid resources does not re-parse files."""

    __slots__ = ()
    source: Source

    @property
    def location(self) -> Location:
        source = self.source
        if callable(source):
            source = source()
            object.__setattr__(self, "source", source)
        return source


@dataclass
class Project:
    """Everything the manifests declare, validated and resolved."""

    # The targets the manifests declare (each has `provider`, `stack`, `prune`,
    # `change_threshold`), each provider's resolved data by provider name, and what `validate`
    # counts for them.
    targets: list[Any] = field(default_factory=list)
    extensions: dict[str, Any] = field(default_factory=dict)
    extension_counts: dict[str, int] = field(default_factory=dict)
    # What `validate` counts when no provider counted anything (no target declared).
    fallback_counts: dict[str, int] = field(default_factory=dict)

    def add_target(self, target: Any) -> None:
        self.targets.append(target)

    def counts(self) -> dict[str, int]:
        return dict(self.extension_counts or self.fallback_counts)
