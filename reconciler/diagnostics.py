"""Located problems: every user-facing error names where it is (file:line:column, or the
resource and server). Library code raises or returns these; only the CLI prints them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Location:
    """Where a problem is: a file position, a CSV cell, or a remote resource."""

    file: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    path: str | None = None  # YAML path (`devices[2].name`) or CSV column

    def __str__(self) -> str:
        text = self.file
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text


@dataclass(frozen=True, slots=True)
class Diagnostic:
    location: Location
    message: str
    severity: Severity = "error"
    code: str = ""  # stable machine-readable kind, e.g. `duplicate-key`, `unknown-field`

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form (`--format json`, the plan's `diagnostics`)."""
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "path": self.location.path,
        }

    def __str__(self) -> str:
        where = str(self.location)
        at = f" (at {self.location.path})" if self.location.path else ""
        return f"{where}: {self.severity}: {self.message}{at}"


class ReconcilerError(Exception):
    """Base of every error the CLI reports as a clean message with exit code 1."""


class UsageError(ReconcilerError):
    """A command-line argument that the manifests show to be wrong (exit code 2, as click's
    usage errors), e.g. `--rotate` naming no declared API key."""


@dataclass
class ManifestError(ReconcilerError):
    """The manifests did not load or validate; carries every problem found in one run."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        errors = [d for d in self.diagnostics if d.severity == "error"]
        return f"{len(errors)} error(s) in manifests"
