"""Outputs for CI systems (pure: strings from diagnostics and plans; the CLI writes them).

* GitHub Actions: workflow-command annotations (`::error file=F,line=L,col=C::message`), shown on
  the pull request's files, and the Markdown step summary. Detected from `GITHUB_ACTIONS=true`,
  which the runner sets for every step.
* JUnit XML for `drift --junit FILE`: one test case per resource, failed when it drifted.

Annotation values are escaped as the runner's toolkit does (`%`, CR, LF; in properties also `:`
and `,`), so a manifest value can never end the command or start another one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.diagnostics import Diagnostic
from reconciler.plan.model import Plan, ResourceChange
from reconciler.plan.render import change_lines

ANNOTATION_LEVEL = {"error": "error", "warning": "warning"}


def under_github_actions(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(
    level: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    properties = []
    if file:
        properties.append(f"file={escape_property(file)}")
    if line is not None:
        properties.append(f"line={line}")
    if col is not None:
        properties.append(f"col={col}")
    if title:
        properties.append(f"title={escape_property(title)}")
    props = (" " + ",".join(properties)) if properties else ""
    return f"::{level}{props}::{escape_data(message)}"


def diagnostic_annotations(diagnostics: Iterable[Diagnostic]) -> list[str]:
    """One annotation per located problem (the YAML path or CSV column in the message)."""
    lines = []
    for diagnostic in diagnostics:
        where = diagnostic.location
        message = diagnostic.message + (f" (at {where.path})" if where.path else "")
        lines.append(
            annotation(
                ANNOTATION_LEVEL[diagnostic.severity],
                message,
                file=where.file,
                line=where.line,
                col=where.column,
                title=f"reconciler: {diagnostic.code}" if diagnostic.code else "reconciler",
            )
        )
    return lines


def _location(change: ResourceChange) -> tuple[str | None, int | None, int | None]:
    """`file:line:col` of a change's manifest location, as the plan records it."""
    if not change.location:
        return None, None, None
    parts = change.location.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1]), int(parts[2])
    return change.location, None, None


def plan_annotations(plan: Plan) -> list[str]:
    """A notice at each changed resource's manifest (a warning for replacements and deletes,
    which lose data), a warning per plan warning and manifest diagnostic, an error per block."""
    lines = [
        annotation(
            "warning" if d.get("severity") == "warning" else "error",
            str(d.get("message", "")),
            file=d.get("file"),
            line=d.get("line"),
            col=d.get("column"),
            title="reconciler",
        )
        for d in plan.diagnostics
    ]
    for change in plan.changes:
        file, line, col = _location(change)
        level = "warning" if change.action in ("replace", "delete") else "notice"
        message = f"{change.action} {change.key}" + (f": {change.reason}" if change.reason else "")
        lines.append(
            annotation(level, message, file=file, line=line, col=col, title="reconciler plan")
        )
    for orphan in plan.orphans:
        lines.append(annotation("warning", f"{orphan.key}: {orphan.reason}", title="reconciler"))
    lines.extend(annotation("warning", w, title="reconciler") for w in plan.warnings)
    lines.extend(annotation("error", b, title="reconciler: blocked") for b in plan.blocked)
    return lines


def validation_summary(diagnostics: list[Diagnostic], summary: str) -> str:
    """The step summary of `validate`: the result, then a table of problems."""
    from reconciler.plan.markdown import code

    errors = [d for d in diagnostics if d.severity == "error"]
    head = "### reconciler validate\n\n"
    if errors:
        head += f"**{len(errors)} error(s) in the manifests.**\n"
    else:
        head += f"{code(summary)}\n"
    if not diagnostics:
        return head
    rows = "".join(
        f"| {d.severity} | {code(str(d.location))} | {code(d.message)} |\n" for d in diagnostics
    )
    return head + "\n| severity | where | problem |\n|---|---|---|\n" + rows


def diagnostics_json(diagnostics: list[Diagnostic], summary: str | None) -> dict[str, Any]:
    """`validate --format json`."""
    errors = sum(1 for d in diagnostics if d.severity == "error")
    return {
        "valid": errors == 0,
        "summary": summary,
        "errors": errors,
        "warnings": len(diagnostics) - errors,
        "diagnostics": [d.to_json() for d in diagnostics],
    }


def drift_junit(plan: Plan) -> str:
    """JUnit XML: a test suite per drift run, a test case per declared or orphaned resource;
    drifted ones fail with what differs (sensitive values as `(sensitive, changed)`)."""
    cases: list[tuple[ResourceChange, str | None]] = [
        (r, None if not r.changed else r.reason or r.action) for r in plan.resources
    ]
    cases += [(o, o.reason) for o in plan.orphans]
    failures = sum(1 for _, failure in cases if failure is not None)
    suite = ET.Element(
        "testsuite",
        name=f"reconciler drift {plan.stack}",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped="0",
        timestamp=plan.created_at.rstrip("Z"),
    )
    for change, failure in cases:
        case = ET.SubElement(
            suite, "testcase", classname=f"{change.key.provider}.{change.key.kind}"
        )
        case.set("name", str(change.key))
        if change.location:
            case.set("file", change.location.rsplit(":", 2)[0])
        if failure is not None:
            element = ET.SubElement(case, "failure", message=failure, type="drift")
            details = [
                f"{plan.endpoint(change.key.provider, s.endpoint).label} "
                + "\n".join(change_lines(c, registers=s.registers, full=True))
                for s in change.steps
                for c in s.changes
            ]
            element.text = "\n".join(details)
    root = ET.Element("testsuites", name="reconciler")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
