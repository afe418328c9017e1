"""What an import could not carry over: listed for the operator, never dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field

EXAMPLES = 3  # resources named per finding; the rest are counted
REPORT_FILE = "import-report.txt"  # in the output directory


@dataclass
class Finding:
    resources: list[str] = field(default_factory=list)

    def add(self, resource: str) -> None:
        self.resources.append(resource)

    def describe(self) -> str:
        shown = ", ".join(self.resources[:EXAMPLES])
        more = len(self.resources) - EXAMPLES
        return f"{shown} and {more} more" if more > 0 else shown


@dataclass
class ImportReport:
    """Findings keyed by what they are about (e.g. "device field `multicast`: not in the
    manifest language"), each with the resources it concerns; plus free-form notes."""

    findings: dict[str, Finding] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, resource: str) -> None:
        self.findings.setdefault(what, Finding()).add(resource)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def count(self, kind: str, number: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + number

    @property
    def has_findings(self) -> bool:
        return bool(self.findings)

    def lines(self) -> list[str]:
        """The findings, one line each (`what: n resource(s): examples`), then the notes."""
        lines = []
        for what, finding in sorted(self.findings.items()):
            count = len(finding.resources)
            noun = "resource" if count == 1 else "resources"
            lines.append(f"{what}: {count} {noun}: {finding.describe()}")
        lines.extend(self.notes)
        return lines

    def summary(self) -> str:
        parts = [f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in self.counts.items() if n]
        return "imported " + (", ".join(parts) if parts else "nothing")

    def text(self) -> str:
        """The report file's content."""
        header = [
            "# reconciler import report",
            f"# {self.summary()}",
            "# Not carried into the manifests (fields the manifest language lacks, server",
            "# state, unreadable keys); set them by other means if they matter:",
            "",
        ]
        body = self.lines() or ["(nothing: every imported field is in the manifests)"]
        return "\n".join(header + body) + "\n"
