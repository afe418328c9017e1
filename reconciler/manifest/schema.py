"""JSON Schemas of the manifest language, for editors (yaml-language-server).

One schema per document kind (`<kind>.schema.json`) and `manifest.schema.json` for files that
mix kinds (discriminated by `kind`). Put this modeline at the top of a manifest:

    # yaml-language-server: $schema=../schemas/manifest.schema.json
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter

DIALECT = "https://json-schema.org/draft/2020-12/schema"
COMBINED = "manifest.schema.json"


def schema_file_name(kind: str) -> str:
    return f"{kind.lower()}.schema.json"


def _finish(schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    return {"$schema": DIALECT, "title": title, "description": description, **schema}


Models = Mapping[str, type[BaseModel]]


def kind_schema(kind: str, models: Models) -> dict[str, Any]:
    model = models[kind]
    schema = model.model_json_schema()
    doc = (model.__doc__ or "").strip().splitlines()
    return _finish(schema, f"reconciler {kind} manifest", doc[0] if doc else kind)


def combined_schema(models: Models) -> dict[str, Any]:
    union: Any = Union[tuple(models.values())]  # noqa: UP007
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[union, Field(discriminator="kind")])
    return _finish(
        adapter.json_schema(),
        "reconciler manifest",
        "A reconciler manifest document; `kind` selects one of " + ", ".join(models) + ".",
    )


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def schemas(models: Models) -> dict[str, str]:
    """File name -> JSON text, for every schema `write_schemas` writes (`models`: every kind the
    providers bring, `reconciler.providers.registry.schema_models`)."""
    files = {schema_file_name(kind): render(kind_schema(kind, models)) for kind in models}
    files[COMBINED] = render(combined_schema(models))
    return files


def write_schemas(out: Path, models: Models) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schemas(models).items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
