"""Manifest kinds that a provider brings (TTS `Stack`, `Device`, ...; the IoT Hub's `IotHub`,
`IotHubDevice`, ...).

The loader owns files, YAML positions, CSV, secret references and diagnostics; a provider's
`ManifestKinds` owns its document models and how its validated documents resolve into its
target and resources (defaults, profiles, fleets, cross-file checks). The caller passes the
kinds in (`load_manifests(..., kinds=...)`; the CLI takes them from
`reconciler.providers.registry.MANIFEST_KINDS`), so this package never imports a provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from reconciler.diagnostics import Diagnostic, Location
from reconciler.manifest.documents import CsvTable, Document, YamlPath

if TYPE_CHECKING:
    from reconciler.manifest.files import ManifestTree
    from reconciler.manifest.project import Project
    from reconciler.manifest.secrets import SecretContext


@dataclass
class Validated:
    """A document that passed its kind's model, with the document to locate values in."""

    model: BaseModel
    document: Document


class ResolveContext(Protocol):
    """What the loader offers a provider's kinds while resolving (implemented by the loader)."""

    project: Project
    environ: Mapping[str, str]
    tree: ManifestTree
    url_override: str | None  # `--url`, when given
    # Every problem reported so far (a kind may stay silent where others already spoke).
    diagnostics: list[Diagnostic]

    @property
    def rejected(self) -> Mapping[str, list[Mapping[str, Any]]]:
        """The data of documents that failed their kind's model, by kind."""

    @property
    def validated(self) -> Mapping[str, list[Validated]]:
        """The documents of every kind (all providers') that passed their model."""

    def error(self, location: Location, message: str, code: str) -> None: ...

    def warn(self, location: Location, message: str, code: str) -> None: ...

    def read_table(self, item: Validated, path: YamlPath, name: str) -> CsvTable | None:
        """A CSV file named at `path` of `item` (relative to it, inside the tree), or None when
        it cannot be read (the problem is reported)."""

    def secret_context(self, file: str, inline_source: str = "inline") -> SecretContext: ...

    def allow_directories(self, document: Document, key: str) -> None:
        """Let file references also read inside the directories listed at `key` of `document`
        (relative to it), reporting entries that name no allowed directory."""


class ManifestKinds(Protocol):
    """A provider's manifest kinds."""

    @property
    def provider(self) -> str: ...

    @property
    def models(self) -> Mapping[str, type[BaseModel]]:
        """`kind` -> its pydantic model (also the JSON Schemas `reconciler schema` writes)."""

    def prepare(self, documents: Sequence[Document], run: ResolveContext) -> None:
        """Look at the parsed documents (all kinds, not yet validated) before any is validated,
        e.g. to widen what file references may read."""

    def resolve(self, items: Mapping[str, list[Validated]], run: ResolveContext) -> None:
        """Turn the validated documents of these kinds into the provider's target(s) and data
        on `run.project` (`add_target`, `extensions[provider]`), reporting every problem.
        The lists in `items` are this provider's own: it may empty them as it goes, to free
        each model once it is resolved."""
