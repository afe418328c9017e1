"""What every provider's manifest models share: the strict base model, secret references,
safety settings, file lists, and "did you mean" hints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

DEFAULT_CHANGE_THRESHOLD = 0.3


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The most similar valid word, for "did you mean" hints."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


class ManifestModel(BaseModel):
    # Unknown keys are errors (typos); the validator adds "did you mean" from the field names.
    # defer_build: a model's validator is built the first time a document of its kind is
    # validated, not when the module is imported (a run with no IoT Hub or gateway documents
    # does not build theirs; see bench/bench_cli.py).
    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, defer_build=True
    )


def _to_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


FileList = Annotated[list[str], BeforeValidator(_to_list), Field(min_length=1)]


class SecretReference(ManifestModel):
    """Where to read a secret at run time: exactly one of `env` or `file`."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one(self) -> SecretReference:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env` or `file`")
        return self


class Safety(ManifestModel):
    prune: bool = Field(default=False, description="Delete owned resources left out (default).")
    change_threshold: float = Field(
        default=DEFAULT_CHANGE_THRESHOLD,
        gt=0,
        le=1,
        description="Refuse to apply when more than this fraction of resources would change.",
    )
