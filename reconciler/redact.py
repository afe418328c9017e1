"""Scrubbing text that may echo a secret (server error messages, response excerpts).

A server, or a proxy in front of it, may echo a request body back in an error message; the body
held keys in upper-case hex, and the server may have re-encoded them (lower-case hex, base64 as
protobuf JSON writes bytes). Every form of every secret value the run knows is replaced before
such text is printed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Iterable

REDACTED = "(sensitive)"
MIN_SECRET_LENGTH = 6  # shorter values would scrub ordinary words; no key is that short


def _forms(value: str) -> set[str]:
    """The spellings of one secret a server might echo."""
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


class Redactor:
    """Replaces every known secret value (as sent, in hex of either case, in base64)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                forms |= _forms(secret)
        # Longest first, so a base64 form is not cut short by a shorter one it contains; hex is
        # matched in either case (so is the rest: a case-folded echo of a key is still a leak).
        ordered = sorted(forms, key=len, reverse=True)
        self._longest = len(ordered[0]) if ordered else 0
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in ordered), re.IGNORECASE) if ordered else None
        )

    def scrub(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def excerpt(self, text: str, limit: int = 200) -> str:
        """Scrubbed, on one line, at most `limit` characters (plus a note of what was cut)."""
        # Scrub before cutting, so no half of a secret survives at the cut; a huge text is cut
        # first to what can reach the excerpt.
        head = text[: 4 * limit + self._longest]
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
