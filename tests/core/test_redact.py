"""`reconciler.redact.printable`: user data quoted in diagnostics stays on one line and cannot
drive the terminal."""

from __future__ import annotations

from reconciler.redact import printable


def test_control_characters_are_shown_as_escapes() -> None:
    assert printable("a\nb\x1b[2Jc\u2028\x7f") == "a\\nb\\x1b[2Jc\\u2028\\x7f"
    assert printable("plain: soil:x:row [red]") == "plain: soil:x:row [red]"
