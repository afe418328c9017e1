"""Limits that changed between releases follow the Stack document's `server_version`: the
payload formatter script limit is 40960 characters up to v3.34 (the reference tables' rule)
and 65536 since v3.35. The HTTP API has no version route, so the target says which it runs."""

from __future__ import annotations

from pathlib import Path

from reconciler.manifest.load import load_manifests
from reconciler.providers.registry import MANIFEST_KINDS
from tests.core.support import STACK, write_manifests

APPLICATION = """
kind: Application
id: big-decoder
default_formatters:
  up_formatter: FORMATTER_JAVASCRIPT
  up_formatter_parameter_file: decoder.js
"""


def problems(tmp_path: Path, script_chars: int, version: str | None) -> list[tuple[int, str]]:
    stack = STACK + (f"server_version: {version}\n" if version else "")
    write_manifests(tmp_path, stack=stack, application=APPLICATION)
    (tmp_path / "decoder.js").write_text("/" * script_chars)
    result = load_manifests([tmp_path], environ={}, kinds=MANIFEST_KINDS)
    return [(d.location.line, d.message) for d in result.diagnostics if d.severity == "error"]


def test_a_script_over_the_v3_32_limit_is_located_and_names_the_setting(tmp_path: Path) -> None:
    [(line, message)] = problems(tmp_path, 50_000, None)
    assert line == 5  # up_formatter_parameter_file
    assert "longer than 40960 characters (50000)" in message
    assert "server_version" in message


def test_a_v3_35_server_takes_64_kib_scripts(tmp_path: Path) -> None:
    assert problems(tmp_path, 50_000, '"3.35"') == []
    assert problems(tmp_path, 65_536, "v3.36.1") == []
    [(_, message)] = problems(tmp_path, 65_537, '"3.35"')
    assert "longer than 65536 characters" in message
    [(_, message)] = problems(tmp_path, 50_000, '"3.34"')
    assert "longer than 40960 characters" in message and "v3.34" in message


def test_a_bad_server_version_is_located(tmp_path: Path) -> None:
    [(line, message)] = problems(tmp_path, 10, "three")
    assert "3.35" in message
    assert line == len(STACK.strip().splitlines()) + 1
