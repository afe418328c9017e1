"""Scrubbing text that may echo a secret (server error messages, response excerpts).

A server, or a proxy in front of it, may echo a request body back in an error message; the body
held keys in upper-case hex, and the server may have re-encoded them (lower-case hex, base64 as
protobuf JSON writes bytes). Every form of every secret value the run knows is replaced before
such text is printed.

A run knows thousands of secrets (a key per device), and most runs print no server message:
the forms are built on the first scrub, and matched by length with set lookups (a regular
expression of 80,000 alternatives costs seconds to compile and to run).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Callable, Iterable

REDACTED = "(sensitive)"
MIN_SECRET_LENGTH = 6  # shorter values would scrub ordinary words; no key is that short


def _forms(value: str) -> set[str]:
    """The spellings of one secret a server might echo (as sent, hex, base64 with and without
    padding, standard and URL-safe alphabets)."""
    forms = {value}
    raw = value.encode()
    encodings = [raw]
    if len(value) % 2 == 0:
        with contextlib.suppress(binascii.Error, ValueError):  # not hex: as text only
            encodings.append(binascii.unhexlify(value))
    for data in encodings:
        forms.add(data.hex())
        for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            text = encoded.decode()
            forms.add(text)
            forms.add(text.rstrip("="))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _fold(text: str) -> str:
    """Lower case, one character for one (so positions in the folded text are positions in
    the text)."""
    folded = text.lower()
    if len(folded) == len(text):
        return folded
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class Redactor:
    """Replaces every known secret value (as sent, in hex of either case, in base64); matched
    without regard to case, so a case-folded echo is caught too."""

    def __init__(self, secrets: Iterable[str] | Callable[[], Iterable[str]] = ()) -> None:
        self._secrets = secrets
        self._by_length: dict[int, set[str]] | None = None

    def _forms_by_length(self) -> dict[int, set[str]]:
        if self._by_length is None:
            secrets = self._secrets() if callable(self._secrets) else self._secrets
            by_length: dict[int, set[str]] = {}
            for secret in secrets:
                if secret and len(secret) >= MIN_SECRET_LENGTH:
                    for form in _forms(secret):
                        by_length.setdefault(len(form), set()).add(form.lower())
            self._by_length = by_length
        return self._by_length

    def add(self, secret: str) -> None:
        """A secret learnt during the run (a new API key the server just returned)."""
        by_length = self._forms_by_length()
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            for form in _forms(secret):
                by_length.setdefault(len(form), set()).add(form.lower())

    def scrub(self, text: str) -> str:
        by_length = self._forms_by_length()
        if not by_length or not text:
            return text
        folded = _fold(text)
        spans: list[tuple[int, int]] = []
        for length, forms in by_length.items():
            for start in range(len(folded) - length + 1):
                if folded[start : start + length] in forms:
                    spans.append((start, start + length))
        if not spans:
            return text
        spans.sort()
        parts: list[str] = []
        position = 0
        for start, end in spans:
            if end <= position:
                continue  # inside a span already replaced
            if start >= position:
                parts.append(text[position:start])
                parts.append(REDACTED)
            position = end  # an overlapping span extends the replaced part
        parts.append(text[position:])
        return "".join(parts)

    def excerpt(self, text: str, limit: int = 200) -> str:
        """Scrubbed, on one line, at most `limit` characters (plus a note of what was cut)."""
        longest = max(self._forms_by_length(), default=0)
        # Scrub before cutting, so no half of a secret survives at the cut; a huge text is cut
        # first to what can reach the excerpt.
        head = text[: 4 * limit + longest]
        flat = " ".join(self.scrub(head).split())
        flat = "".join(c if c.isprintable() else "?" for c in flat)
        if len(flat) <= limit and len(head) == len(text):
            return flat
        return f"{flat[:limit]}… (cut; {len(text)} characters in all)"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """`text` on one line with control characters (line breaks, terminal escapes) shown as
    escapes: for quoting user data in diagnostics, where `?` would hide what is wrong."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)
