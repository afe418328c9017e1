"""Turning validation problems into located, readable diagnostics.

Pydantic reports an error `loc` in model field names; manifest field names are the YAML keys,
so a `loc` is a YAML path below the document (or below a sub-document, given a prefix) and
`Document.locate` turns it into file:line:column. Unknown keys get a "did you mean" from the
field names valid at that place. Messages never include input values (secrets use the same
rules), only the rule that failed.
"""

from __future__ import annotations

import re
import types as pytypes
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.diagnostics import Diagnostic, Location
from reconciler.manifest.common import closest
from reconciler.manifest.documents import YamlPath
from reconciler.resources import Secret

Locate = Callable[[YamlPath], Location]

# Header names that usually carry credentials: inline values there are warned about.
SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|passw|signature|cookie|credential", re.I)


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated/list/dict annotations."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, pytypes.UnionType):
        found: list[Any] = []
        for arg in typing.get_args(annotation):
            found.extend(_unwrap(arg))
        return found
    return [annotation]


def _child(annotation: Any, part: str | int) -> Any | None:
    """The annotation one loc step below `annotation` (a field, a list item, a dict value)."""
    for candidate in _unwrap(annotation):
        origin = typing.get_origin(candidate)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if isinstance(part, str) and part in candidate.model_fields:
                return candidate.model_fields[part].annotation
        elif origin is list and isinstance(part, int):
            return typing.get_args(candidate)[0]
        elif origin is dict and isinstance(part, str):
            return typing.get_args(candidate)[1]
    return None


def field_names_at(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """Valid keys of the mapping at `path` (relative to `model`), for suggestions."""
    annotation: Any = model
    for part in path:
        annotation = _child(annotation, part)
        if annotation is None:
            return []
    for candidate in _unwrap(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return list(candidate.model_fields)
    return []


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validation_diagnostics(
    error: ValidationError,
    model: type[BaseModel],
    locate: Locate,
    prefix: YamlPath = (),
) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for item in error.errors(include_input=False, include_url=False):
        loc = [part for part in item["loc"] if part != "[key]"]
        path: list[str | int] = [*prefix, *loc]
        kind = item["type"]
        if kind == "extra_forbidden" and loc:
            key = str(loc[-1])
            valid = field_names_at(model, loc[:-1])
            match = closest(key, valid)
            hint = f"; did you mean `{match}`?" if match else ""
            message, code = f"unknown field `{key}`{hint}", "unknown-field"
        elif kind == "missing" and loc:
            message, code = f"missing required field `{loc[-1]}`", "missing-field"
        else:
            message, code = _clean_message(item["msg"]), "invalid-value"
            if kind.startswith(("model_type", "dict_type")) and loc:
                message = f"`{loc[-1]}` must be a mapping"
        diagnostics.append(Diagnostic(locate(path), message, "error", code))
    return diagnostics


def iter_secrets(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[YamlPath, Secret]]:
    """Every Secret in a validated model tree, with its YAML path."""
    if isinstance(value, Secret):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in value.model_fields_set:
            yield from iter_secrets(getattr(value, name), (*path, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_secrets(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_secrets(item, (*path, index))


def inline_secret_paths(model: BaseModel) -> list[YamlPath]:
    """Paths of secrets written into the manifest itself (they end up in git)."""
    paths: list[YamlPath] = []
    for path, secret in iter_secrets(model):
        if not secret.is_inline:
            continue
        if len(path) >= 2 and path[-2] == "headers" and not SENSITIVE_HEADER.search(str(path[-1])):
            continue  # a plain header (e.g. Content-Type) is not a secret
        paths.append(path)
    return paths


def inline_secret_warning(location: Location, name: str, more: int) -> Diagnostic:
    message = (
        f"secret `{name}` is written inline: use `{{env: NAME}}` or `{{file: path}}` to keep it"
        " out of git"
    )
    if more:
        message += f" ({more} more inline secret(s) in this file)"
    return Diagnostic(location, message, "warning", "inline-secret")
