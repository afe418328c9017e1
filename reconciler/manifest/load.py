"""`load_manifests`: files -> validated `Project`, with every problem located, in one run.

Order of work: discover and parse files (the loader), let each provider's kinds look at the
parsed documents (`prepare`), validate each document against its `kind`'s model, then let each
provider's kinds resolve their documents across files and check what only the whole set can show
(see `reconciler.manifest.extensions`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.diagnostics import Diagnostic, Location, ManifestError
from reconciler.manifest import files
from reconciler.manifest import project as p
from reconciler.manifest.common import closest
from reconciler.manifest.documents import CsvTable, Document, YamlPath
from reconciler.manifest.extensions import ManifestKinds, Validated
from reconciler.manifest.secrets import SecretContext
from reconciler.manifest.validate import (
    inline_secret_paths,
    inline_secret_warning,
    validation_diagnostics,
)

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadResult:
    project: p.Project
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def summary(self) -> str:
        if self.has_errors:
            return f"{_count(len(self.errors), 'error')}, {_count(len(self.warnings), 'warning')}"
        counts = self.project.counts()
        names = [getattr(t, "stack", "") for t in self.project.targets]
        stack = ", ".join(dict.fromkeys(n for n in names if n)) or "(no stack)"
        parts = ", ".join(_count(n, kind.removesuffix("s")) for kind, n in counts.items())
        text = f"valid: stack {stack}: {parts} ({_count(len(self.files), 'file')})"
        if self.warnings:
            text += f", {_count(len(self.warnings), 'warning')}"
        return text

    def raise_for_errors(self) -> p.Project:
        """The project, or `ManifestError` carrying every diagnostic."""
        if self.has_errors:
            raise ManifestError(self.diagnostics)
        return self.project


def load_manifests(
    paths: Sequence[Path],
    *,
    environ: Mapping[str, str] | None = None,
    url_override: str | None = None,
    kinds: Sequence[ManifestKinds] = (),
) -> LoadResult:
    """Load, validate and resolve manifests. `environ` (default `os.environ`) resolves secret
    references; `url_override` (`--url`) moves a target's servers (how is the provider's
    business); `kinds` are the manifest kinds the providers bring, in the order their kinds are
    listed in messages and resolved (see `reconciler.manifest.extensions`)."""
    environ = os.environ if environ is None else environ
    run = _Run(environ, url_override or None, kinds)
    return run.load(paths)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _sort_key(diagnostic: Diagnostic) -> tuple[str, int, int]:
    where = diagnostic.location
    return (where.file, where.line or 0, where.column or 0)


_Validated = Validated


class _Run:
    def __init__(
        self,
        environ: Mapping[str, str],
        url_override: str | None,
        kinds: Sequence[ManifestKinds] = (),
    ) -> None:
        self.environ = environ
        self.url_override = url_override
        self.diagnostics: list[Diagnostic] = []
        self.project = p.Project()
        self.extensions = list(kinds)
        # Every kind a document may have, provider by provider.
        self.models: dict[str, type[BaseModel]] = {}
        for extension in self.extensions:
            self.models.update(extension.models)
        self.kinds = tuple(self.models)
        self.by_kind: dict[str, list[_Validated]] = {kind: [] for kind in self.kinds}
        # The data of documents that failed their kind's model, by kind: what depends on them is
        # not reported again.
        self.rejected: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in self.kinds}
        # file -> [count, first document, first path]: one warning per file, not per secret.
        self.inline_secrets: dict[str, list[Any]] = {}
        # One set object per distinct set of keys written (see `_share_fields_sets`).
        self.fields_sets: dict[frozenset[str], set[str]] = {}
        # What file references may read: set from the command line paths by `load`.
        self.tree = files.ManifestTree(())

    # --- helpers ------------------------------------------------------------------------------

    def error(self, location: Location, message: str, code: str) -> None:
        self.diagnostics.append(Diagnostic(location, message, "error", code))

    def warn(self, location: Location, message: str, code: str) -> None:
        self.diagnostics.append(Diagnostic(location, message, "warning", code))

    def context(self, file: str, inline_source: str = "inline") -> dict[str, Any]:
        return {"secrets": self.secret_context(file, inline_source)}

    def secret_context(self, file: str, inline_source: str = "inline") -> SecretContext:
        return SecretContext(self.environ, Path(file).parent, inline_source, self.tree)

    @property
    def validated(self) -> Mapping[str, list[_Validated]]:
        return self.by_kind

    def read_table(self, item: _Validated, path: YamlPath, name: str) -> CsvTable | None:
        from reconciler.manifest import loader

        base_dir = Path(item.document.file).parent
        try:
            self.tree.check(name, base_dir, files.CSV_FILE)
        except files.FileRefError as error:
            code = "no-file" if isinstance(error, files.FileMissing) else "file-access"
            self.error(item.document.locate(path), str(error), code)
            return None
        table, problems = loader.load_csv(base_dir / name, self.tree)
        self.diagnostics.extend(problems)
        return table

    # --- phases -------------------------------------------------------------------------------

    def load(self, paths: Sequence[Path]) -> LoadResult:
        from reconciler.manifest import loader

        found_files, found = loader.discover(list(paths))
        self.diagnostics.extend(found)
        self.tree = files.ManifestTree.of(paths)
        yaml_files = [f for f in found_files if f.suffix.lower() in YAML_SUFFIXES]
        all_documents: list[Document] = []
        for path in yaml_files:
            documents, problems = loader.load_yaml_file(path, self.tree)
            self.diagnostics.extend(problems)
            all_documents.extend(documents)
        for extension in self.extensions:
            extension.prepare(all_documents, self)
        for document in all_documents:
            self.validate_document(document)
            # The validated model replaces the plain data (halving what a big file holds).
            document.data = None
        if not yaml_files and not self.diagnostics:
            self.error(
                Location(", ".join(str(x) for x in paths) or "."),
                "no manifest files (*.yaml, *.yml) found",
                "no-manifests",
            )
        else:
            self.resolve()
        for count, document, path in self.inline_secrets.values():
            self.diagnostics.append(
                inline_secret_warning(document.locate(path), str(path[-1]), count - 1)
            )
        self.diagnostics.sort(key=_sort_key)
        return LoadResult(self.project, self.diagnostics, yaml_files)

    def allow_directories(self, document: Document, key: str) -> None:
        """Add the directories listed at `key` of `document` to what file references may read.
        Entries of the wrong type are left to the document's validation."""
        data = document.data
        entries = data.get(key) if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return
        allowed: list[Path] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, str) or not entry:
                continue
            problem = _allowed_directory(entry, Path(document.file).parent)
            if isinstance(problem, str):
                self.error(document.locate([key, index]), problem, "file-access")
            else:
                allowed.append(problem)
        self.tree.allow(allowed)

    def validate_document(self, document: Document) -> None:
        data = document.data
        if data is None:
            return  # an empty document (e.g. a trailing `---`)
        if not isinstance(data, dict):
            self.error(
                document.locate([]),
                "a manifest document must be a mapping with a `kind`",
                "not-a-mapping",
            )
            return
        kind = data.get("kind")
        if kind is None:
            self.error(
                document.locate([]),
                f"missing `kind` (one of {', '.join(self.kinds)})",
                "missing-kind",
            )
            return
        model = self.models.get(kind) if isinstance(kind, str) else None
        if model is None:
            match = closest(str(kind), self.kinds)
            hint = f"; did you mean `{match}`?" if match else f" (one of {', '.join(self.kinds)})"
            self.error(document.locate(["kind"]), f"unknown kind `{kind}`{hint}", "unknown-kind")
            return
        try:
            validated = model.model_validate(data, context=self.context(document.file))
        except ValidationError as error:
            self.diagnostics.extend(validation_diagnostics(error, model, document.locate))
            self.rejected[kind].append(data)
            return
        _share_fields_sets(validated, self.fields_sets)
        inline = inline_secret_paths(validated)
        if inline:
            found = self.inline_secrets.setdefault(document.file, [0, document, inline[0]])
            found[0] += len(inline)
        self.by_kind[kind].append(_Validated(validated, document))

    def resolve(self) -> None:
        for extension in self.extensions:
            items = {kind: self.by_kind[kind] for kind in extension.models}
            extension.resolve(items, self)


def _share_fields_sets(model: BaseModel, shared: dict[frozenset[str], set[str]]) -> None:
    """Let models that set the same keys share one `model_fields_set` object. Pydantic gives
    every instance its own set of the keys it was given (~700 bytes for a device's ten keys,
    as much as the rest of the model); the documents of a large tree set the same few key
    sets again and again. Sharing is safe: validated models are frozen, and pydantic copies
    the set when it copies a model."""
    pending: list[BaseModel] = [model]
    while pending:
        current = pending.pop()
        own = current.__pydantic_fields_set__
        common = shared.setdefault(frozenset(own), own)
        if common is not own:
            object.__setattr__(current, "__pydantic_fields_set__", common)
        for value in current.__dict__.values():
            if isinstance(value, BaseModel):
                pending.append(value)
            elif isinstance(value, list):
                pending.extend(item for item in value if isinstance(item, BaseModel))
            elif isinstance(value, dict):
                pending.extend(item for item in value.values() if isinstance(item, BaseModel))


def _allowed_directory(entry: str, base_dir: Path) -> Path | str:
    """The real directory an `allow_files_from` entry names, or why it cannot be allowed."""
    shown = files.shown_name(entry)
    try:
        real = Path(os.path.realpath(base_dir / entry, strict=True))
    except FileNotFoundError:
        return f"allowed directory `{shown}` does not exist"
    except (OSError, ValueError, RuntimeError) as error:
        return f"allowed directory `{shown}` cannot be read: {files.os_error_reason(error)}"
    if not real.is_dir():
        return f"allowed directory `{shown}` is not a directory"
    if real == Path(real.anchor) or files.is_pseudo_filesystem(str(real)):
        return f"allowed directory `{shown}` is a system directory: it may not be allowed"
    return real
