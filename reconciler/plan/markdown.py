"""Markdown for plans and drift, for pull-request comments and CI step summaries (pure).

Rendered from the plan data only (like the text), so it can show no more than the JSON holds.
Size-aware: a summary line, a table of the changed resources, then each resource's steps in a
collapsed `<details>` block, all within a character budget (GitHub refuses comments over 65,536
characters); what does not fit is counted, never cut mid-block.

Manifests on a pull request are untrusted: every value that came from them (IDs, names,
reasons, paths) is HTML-escaped and shown inside `<code>` or a fenced block, so it can neither
add markup nor mention anyone. Field values are JSON-encoded, one per line, so no value can end
a fenced block.
"""

from __future__ import annotations

import html

from reconciler.plan.model import Plan, ResourceChange
from reconciler.plan.render import SYMBOL, change_lines, format_duration

# GitHub's limit for an issue or pull-request comment (characters).
COMMENT_LIMIT = 65_536
ACTION_TITLE = {
    "create": "create",
    "update": "update",
    "replace": "replace",
    "delete": "delete",
    "no-op": "no change",
}


def code(text: str) -> str:
    """Untrusted text as inline code: escaped, table-safe, on one line."""
    escaped = html.escape(text, quote=True).replace("|", "&#124;")
    escaped = escaped.replace("\r", " ").replace("\n", " ").replace("`", "&#96;")
    return f"<code>{escaped}</code>"


def summary_text(plan: Plan) -> str:
    counts = plan.summary()
    text = (
        f"**Plan: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['replace']} to replace, {counts['delete']} to delete**; "
        f"{counts['no-op']} unchanged"
    )
    if counts["adopt"]:
        text += f"; {counts['adopt']} adopted"
    if counts["restore"]:
        text += f"; {counts['restore']} restored"
    if plan.orphans:
        text += f"; {len(plan.orphans)} owned but not in the manifests (kept; deleted with --prune)"
    text += "."
    if plan.write_requests:
        text += f" {plan.write_requests} write request(s)"
        if plan.estimated_seconds is not None:
            text += f", estimated {format_duration(plan.estimated_seconds)}"
        text += "."
    return text


def resource_details(plan: Plan, change: ResourceChange) -> str:
    """One resource's steps in a collapsed block."""
    lines = []
    if change.location:
        lines.append(f"at {change.location}")
    lines.extend(f"! {warning}" for warning in change.warnings)
    for step in change.steps:
        label = plan.endpoint(change.key.provider, step.endpoint).label
        lines.append(f"{label} {step.verb or step.operation}")
        lines.extend(
            f"  {line}"
            for c in step.changes
            for line in change_lines(c, registers=step.registers, full=True)
        )
    body = "\n".join(lines).replace("```", "`\u200b``")  # a fence can never be closed early
    summary = f"{SYMBOL[change.action]} {ACTION_TITLE[change.action]} {code(str(change.key))}"
    return f"<details><summary>{summary}</summary>\n\n```\n{body}\n```\n\n</details>\n"


def table_row(change: ResourceChange) -> str:
    action = (
        ACTION_TITLE[change.action]
        + (" (adopt)" if change.adopt else "")
        + (" (restore)" if change.restore else "")
    )
    reason = code(change.reason) if change.reason else ""
    symbol = SYMBOL[change.action].strip()
    return f"| {symbol} {action} | {code(str(change.key))} | {reason} |\n"


def render_markdown(
    plan: Plan, *, title: str = "plan", max_chars: int = COMMENT_LIMIT, note: str = ""
) -> str:
    """The plan as Markdown of at most `max_chars` characters. `note`: a line under the
    summary (e.g. where the full plan is)."""
    head = f"### reconciler {title} for stack {code(plan.stack)}\n\n"
    if not plan.has_changes() and not plan.orphans:
        head += "No changes. The live state matches the manifests.\n"
    else:
        head += summary_text(plan) + "\n"
    if note:
        head += f"\n{note}\n"
    for blocked in plan.blocked:
        head += f"\n> **Blocked:** {code(blocked)}\n"
    for warning in plan.warnings:
        head += f"\n> Warning: {code(warning)}\n"
    changes = plan.changes
    # What must always fit: the head and the closing count line (a generous reserve).
    reserve = 200
    budget = max_chars - len(head) - reserve
    parts: list[str] = []
    if changes or plan.orphans:
        table = "\n| action | resource | reason |\n|---|---|---|\n"
        rows = [table_row(c) for c in changes]
        rows += [
            f"| ? not in the manifests | {code(str(o.key))} | {code(o.reason)} |\n"
            for o in plan.orphans
        ]
        shown_rows = 0
        for row in rows:
            if len(table) + len(row) > budget:
                break
            table += row
            shown_rows += 1
        if shown_rows < len(rows):
            table += f"\n*{len(rows) - shown_rows} more resource(s) not listed (size limit).*\n"
        parts.append(table)
        budget -= len(table)
    detailed = 0
    details = ""
    for change in changes:
        block = resource_details(plan, change)
        if len(details) + len(block) > budget:
            break
        details += block
        detailed += 1
    if details:
        parts.append("\n" + details)
    if detailed < len(changes):
        parts.append(
            f"\n*Details of {len(changes) - detailed} more resource(s) left out (size limit); "
            "`reconciler show` on the saved plan renders all of them.*\n"
        )
    return head + "".join(parts)
