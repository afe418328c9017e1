"""Manifest kinds that a provider brings (the IoT Hub's `IotHub`, `IotHubDevice`, ...).

The loader owns files, YAML positions, CSV, secret references and diagnostics; a provider's
`ManifestKinds` owns its document models and how its validated documents resolve into its
target and resources (defaults, profiles, fleets, cross-file checks). The caller passes the
kinds in (`load_manifests(..., kinds=...)`; the CLI takes them from
`reconciler.providers.registry.MANIFEST_KINDS`), so this package never imports a provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from reconciler.diagnostics import Location
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

    def error(self, location: Location, message: str, code: str) -> None: ...

    def warn(self, location: Location, message: str, code: str) -> None: ...

    def read_table(self, item: Validated, path: YamlPath, name: str) -> CsvTable | None:
        """A CSV file named at `path` of `item` (relative to it, inside the tree), or None when
        it cannot be read (the problem is reported)."""

    def secret_context(self, file: str, inline_source: str = "inline") -> SecretContext: ...


class ManifestKinds(Protocol):
    """A provider's manifest kinds."""

    @property
    def provider(self) -> str: ...

    @property
    def models(self) -> Mapping[str, type[BaseModel]]:
        """`kind` -> its pydantic model (also the JSON Schemas `reconciler schema` writes)."""

    def resolve(self, items: Mapping[str, list[Validated]], run: ResolveContext) -> None:
        """Turn the validated documents of these kinds into the provider's target(s) and data
        on `run.project` (`add_target`, `extensions[provider]`), reporting every problem."""
