"""Secret values given by reference: `{env: NAME}`, `{file: path}` (or `env:NAME` / `file:path`
as text, e.g. in a CSV cell), or inline (accepted, with a warning).

A resolved `Secret` never shows its value in repr/str, error messages or logs; `reveal()` is for
building request bodies only, and `fingerprint()` lets a later step diff without revealing.
References are resolved while validating, from the `environ` and manifest directory passed as
pydantic validation context (see `SecretContext`), so an unset variable or a missing file is a
located error like any other. Files are read under the manifest tree's rules
(`reconciler.manifest.files`: inside the tree, regular files, at most 64 KiB).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import PlainValidator, ValidationInfo, WithJsonSchema

from reconciler.manifest.files import (
    CA_BUNDLE,
    SECRET_FILE,
    FileMissing,
    FileRefError,
    ManifestTree,
)
from reconciler.resources import Secret


@dataclass
class SecretContext:
    """Where references resolve: an environment, the directory of the manifest, and the tree
    files may be read from."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    base_dir: Path = field(default_factory=Path.cwd)
    # Source label for inline values (a CSV file holding keys counts as a file source).
    inline_source: str = "inline"
    tree: ManifestTree = field(default_factory=lambda: ManifestTree.of([Path.cwd()]))


class SecretError(ValueError):
    """A reference that does not resolve; the message names the reference, never a value."""


def _reference(value: object) -> tuple[str, str] | None:
    """(`env`|`file`, name) for a reference, None for an inline value."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("env", "file"):
            raise SecretError(
                "a secret reference is `{env: NAME}` or `{file: path}` (exactly one key)"
            )
        ((kind, name),) = value.items()
        if not isinstance(name, str) or not name:
            raise SecretError(f"`{kind}` must name a variable or file")
        return kind, name
    if isinstance(value, str):
        for kind in ("env", "file"):
            prefix = f"{kind}:"
            if value.startswith(prefix) and len(value) > len(prefix):
                return kind, value[len(prefix) :].strip()
    return None


def resolve_text(value: object, context: SecretContext) -> tuple[str, str]:
    """(plain text, source label) for a secret given inline or by reference."""
    reference = _reference(value)
    if reference is None:
        if not isinstance(value, str):
            raise SecretError("a secret must be a string or `{env: NAME}` / `{file: path}`")
        return value, context.inline_source
    kind, name = reference
    if kind == "env":
        text = context.environ.get(name)
        if text is None:
            raise SecretError(f"environment variable `{name}` is not set")
        return text, f"env:{name}"
    try:
        text = context.tree.read_text(name, context.base_dir, SECRET_FILE)
    except FileRefError as error:
        raise SecretError(str(error)) from None
    return text.rstrip("\r\n"), f"file:{name}"


def resolve(value: object, context: SecretContext, normalise: Callable[[str], str] = str) -> Secret:
    text, source = resolve_text(value, context)
    if source != context.inline_source:
        text = text.strip()  # env vars and files often end in a newline
    return Secret(normalise(text), source)


def context_of(info: ValidationInfo) -> SecretContext:
    context = info.context
    if isinstance(context, dict):
        found = context.get("secrets")
        if isinstance(found, SecretContext):
            return found
    return SecretContext()


def credential_file_inside_tree(file: str | None, info: ValidationInfo) -> None:
    """A target's credential `{file: ...}` is read only by plan/apply (it may not exist yet when
    validating), but it may never name a file outside the manifest tree."""
    if file is None:
        return
    context = context_of(info)
    try:
        context.tree.resolve(file, context.base_dir, SECRET_FILE)
    except FileMissing:
        pass
    except FileRefError as error:
        raise ValueError(str(error)) from None


def ca_bundle_inside_tree(value: str | None, info: ValidationInfo) -> str | None:
    """A target's CA bundle: an existing regular file inside the tree, under its cap."""
    if value is None:
        return value
    context = context_of(info)
    try:
        return context.tree.check(value, context.base_dir, CA_BUNDLE)
    except FileRefError as error:
        raise ValueError(str(error)) from None


def secret_validator(normalise: Callable[[str], str]) -> Callable[[object, ValidationInfo], Secret]:
    def validate(value: object, info: ValidationInfo) -> Secret:
        if isinstance(value, Secret):
            return Secret(normalise(value.reveal()), value.source)
        return resolve(value, context_of(info), normalise)

    return validate


def reference_schema(value_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"env": {"type": "string", "minLength": 1}},
                "required": ["env"],
                "additionalProperties": False,
                "description": "Read the value from this environment variable.",
            },
            {
                "type": "object",
                "properties": {"file": {"type": "string", "minLength": 1}},
                "required": ["file"],
                "additionalProperties": False,
                "description": "Read the value from this file (relative to the manifest).",
            },
            {
                **value_schema,
                "description": "Inline value (warned about: keep secrets out of git).",
            },
        ]
    }


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("secret is empty")
    return text.strip()


# A token (API key): any non-empty text.
Token = Annotated[
    Secret,
    PlainValidator(secret_validator(_non_empty)),
    WithJsonSchema(reference_schema({"type": "string", "minLength": 1})),
]
