"""Human text for plans, drift and apply reports (pure: returns rich Text; the CLI prints it).

Rendered from the plan data only, so the text can never show more than the JSON holds: sensitive
fields appear as `(sensitive)` or `(sensitive, changed)`.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from reconciler.plan.model import ApplyReport, FieldChange, Plan, ResourceChange, Step

SYMBOL = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "no-op": " "}
STYLE = {
    "create": "green",
    "update": "yellow",
    "replace": "magenta",
    "delete": "red",
    "no-op": "dim",
}
MAX_VALUE_WIDTH = 80


def format_value(value: Any, *, full: bool = False) -> str:
    """A value as JSON; beyond MAX_VALUE_WIDTH cut, saying how long it is and how to see it
    (`--full`; the JSON plan always holds it whole)."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        text = json.dumps(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(", ", ": "))
    if len(text) > MAX_VALUE_WIDTH and not full:
        text = f"{text[: MAX_VALUE_WIDTH - 30]} ... ({len(text)} characters; --full)"
    return text


def format_change(change: FieldChange, *, registers: bool, full: bool = False) -> str:
    if change.sensitive:
        if change.unverifiable:
            return f"{change.path}: (sensitive, unverifiable: rewritten)"
        return (
            f"{change.path}: (sensitive)" if registers else f"{change.path}: (sensitive, changed)"
        )
    if registers:
        return f"{change.path}: {format_value(change.new, full=full)}"
    return (
        f"{change.path}: {format_value(change.old, full=full)} -> "
        f"{format_value(change.new, full=full)}"
    )


def nested_differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(sub-path, old, new) of each differing leaf of two JSON objects; lists, and an object
    on one side only, are leaves. A plain walk: the values are small server messages."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [(prefix, old, new)]
    found: list[tuple[str, Any, Any]] = []
    for key in sorted(old.keys() | new.keys()):
        found.extend(nested_differences(old.get(key), new.get(key), f"{prefix}{key}."))
    return found


def change_lines(change: FieldChange, *, registers: bool, full: bool = False) -> list[str]:
    """A field change as text lines: a message whose parts differ (`mac_settings.adr`) shows
    each differing part under it, indented, instead of two whole values side by side."""
    if (
        change.sensitive
        or registers
        or not isinstance(change.old, dict)
        or not isinstance(change.new, dict)
    ):
        return [format_change(change, registers=registers, full=full)]
    lines = [f"{change.path}:"]
    for sub, old, new in nested_differences(change.old, change.new):
        lines.append(
            f"  {sub.rstrip('.')}: {format_value(old, full=full)} -> {format_value(new, full=full)}"
        )
    return lines


def render_step(
    plan: Plan, resource: ResourceChange, step: Step, *, full: bool = False
) -> list[Text]:
    label = plan.endpoint(resource.key.provider, step.endpoint).label
    lines = [Text(f"      {label} {step.verb or step.operation}", style="bold")]
    for change in step.changes:
        for line in change_lines(change, registers=step.registers, full=full):
            lines.append(Text(f"        {line}"))
    return lines


def render_resource(
    plan: Plan, change: ResourceChange, *, show_fields: bool = True, full: bool = False
) -> list[Text]:
    symbol = SYMBOL[change.action]
    style = STYLE[change.action]
    head = Text()
    head.append(f"  {symbol} ", style=style)
    head.append(str(change.key), style="bold")
    if change.adopt:
        head.append("  (adopt)", style="cyan")
    if change.restore:
        head.append("  (restore)", style="cyan")
    if change.reason:
        head.append(f"  # {change.reason}", style="dim")
    if not show_fields:
        labels = ", ".join(
            plan.endpoint(change.key.provider, s.endpoint).label for s in change.steps
        )
        head.append(f"  [{labels}]", style="dim")
        if change.location:
            head.append(f"  {change.location}", style="dim")
    lines = [head]
    if show_fields and change.location:
        lines.append(Text(f"      at {change.location}", style="dim"))
    for warning in change.warnings:
        lines.append(Text(f"      ! {warning}", style="yellow"))
    if show_fields:
        for step in change.steps:
            lines.extend(render_step(plan, change, step, full=full))
    return lines


def summary_line(plan: Plan) -> Text:
    counts = plan.summary()
    text = Text("Plan: ", style="bold")
    text.append(f"{counts['create']} to create, ", style="green")
    text.append(f"{counts['update']} to update, ", style="yellow")
    text.append(f"{counts['replace']} to replace, ", style="magenta")
    text.append(f"{counts['delete']} to delete", style="red")
    text.append(f"; {counts['no-op']} unchanged")
    if counts["adopt"]:
        text.append(f"; {counts['adopt']} adopted", style="cyan")
    if counts["restore"]:
        text.append(f"; {counts['restore']} restored", style="cyan")
    if plan.orphans:
        text.append(f"; {len(plan.orphans)} not in the manifests (kept)", style="red")
    text.append(".")
    if plan.write_requests:
        text.append(f" {plan.write_requests} write request(s)")
        if plan.estimated_seconds is not None:
            text.append(f", estimated {format_duration(plan.estimated_seconds)}")
        text.append(".")
    return text


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


# Above this many creations, their fields are collapsed unless asked for (fleets of thousands
# would otherwise print hundreds of thousands of lines); updates always show every field.
CREATE_DETAIL_LIMIT = 20


def render_plan(
    plan: Plan, *, title: str = "plan", full: bool | None = None, stale: int = 0
) -> list[Text]:
    """`stale`: changes of a saved plan left out because their resources changed since."""
    lines = [Text(f"reconciler {title} for stack {plan.stack!r}", style="bold")]
    lines.append(Text(f"  target: {', '.join(plan.urls())}", style="dim"))
    if plan.options.get("targets"):
        only = ", ".join(plan.options["targets"])
        lines.append(Text(f"  only: {only} (--target; nothing else is changed or pruned)", "dim"))
    if plan.options.get("rotate"):
        keys = ", ".join(plan.options["rotate"])
        lines.append(Text(f"  rotate: {keys} (--rotate; nothing else is rotated)", "dim"))
    lines.append(Text(""))
    changes = plan.changes
    creates = sum(1 for c in changes if c.action == "create")
    show_creates = full if full is not None else creates <= CREATE_DETAIL_LIMIT
    if not changes and stale:
        lines.append(
            Text(f"Nothing left to apply: all {stale} change(s) of the saved plan are stale.")
        )
    elif not changes and plan.orphans:
        lines.append(Text("No changes to apply.", style="green"))
    elif not changes:
        lines.append(Text("No changes. The live state matches the manifests.", style="green"))
    for change in changes:
        lines.extend(
            render_resource(
                plan,
                change,
                show_fields=show_creates or change.action != "create",
                full=bool(full),
            )
        )
        lines.append(Text(""))
    lines.extend(render_orphans(plan))
    if not show_creates and creates:
        lines.append(
            Text(f"({creates} creations shown without their fields; --full shows them)", "dim")
        )
    for warning in plan.warnings:
        lines.append(Text(f"Warning: {warning}", style="yellow"))
    for blocked in plan.blocked:
        lines.append(Text(f"Blocked: {blocked}", style="bold red"))
    if changes or plan.orphans:
        lines.append(summary_line(plan))
    return lines


def render_orphans(plan: Plan) -> list[Text]:
    """Owned resources the manifests no longer declare, kept because prune is off."""
    if not plan.orphans:
        return []
    lines = [Text("Owned, not in the manifests (kept; deleted with --prune):", style="bold")]
    for orphan in plan.orphans:
        head = Text()
        head.append("  ? ", style="red")
        head.append(str(orphan.key), style="bold")
        head.append(f"  # {orphan.reason}", style="dim")
        lines.append(head)
    lines.append(Text(""))
    return lines


def render_drift(plan: Plan, *, full: bool = False) -> list[Text]:
    """`full`: long values whole (else cut, with their length)."""
    lines = [Text(f"reconciler drift for stack {plan.stack!r}", style="bold")]
    # The servers' and the reads' warnings (a server's X-Warning, a right the key lacks) say
    # what the comparison could not see: shown whether or not anything drifted.
    warnings = [Text(f"Warning: {warning}", style="yellow") for warning in plan.warnings]
    changes = plan.changes
    if not changes and not plan.orphans:
        lines.extend(warnings)
        lines.append(Text("In sync: the live state matches the manifests.", style="green"))
        return lines
    for change in changes:
        lines.extend(render_resource(plan, change, full=full))
    lines.append(Text(""))
    lines.extend(render_orphans(plan))
    lines.extend(warnings)
    text = Text(f"Drift: {len(changes)} resource(s) differ from the manifests", style="bold yellow")
    if plan.orphans:
        text.append(f"; {len(plan.orphans)} owned resource(s) are not in them")
    text.append(".")
    lines.append(text)
    return lines


def render_report(report: ApplyReport) -> list[Text]:
    """The end of an apply: every failed resource with its endpoint and error; skipped ones
    listed, or counted per reason when there are many (an interrupted fleet run)."""
    lines: list[Text] = []
    grouped: dict[tuple[str, str], list[str]] = {}
    for result in report.results:
        if result.outcome == "failed":
            where = f" [{result.endpoint}]" if result.endpoint else ""
            lines.append(Text(f"  failed  {result.key}{where}: {result.error}", style="red"))
        elif result.outcome in ("skipped", "stale"):
            grouped.setdefault((result.outcome, result.error), []).append(str(result.key))
    for (outcome, reason), keys in grouped.items():
        label = f"{outcome:<7}"
        if len(keys) <= SKIPPED_LISTED:
            lines.extend(Text(f"  {label} {key}: {reason}", style="yellow") for key in keys)
        else:
            lines.append(Text(f"  {label} {len(keys)} resources: {reason}", style="yellow"))
    lines.extend(Text(f"Warning: {warning}", style="yellow") for warning in report.warnings)
    counts = report.counts()
    style = "bold red" if counts["failed"] or counts["stale"] else "bold green"
    text = Text(
        f"Apply: {counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped, "
        f"{counts['stale']} stale.",
        style=style,
    )
    if report.interrupted:
        text.append(" Interrupted: run plan or apply again for the rest.", style="yellow")
    elif report.lease_lost:
        text.append(
            " Stopped: the apply lease was lost; another run may be applying now. Run plan "
            "once it has ended, then apply again for the rest.",
            style="yellow",
        )
    lines.append(text)
    return lines


SKIPPED_LISTED = 10
