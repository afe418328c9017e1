"""Scrubbing server text of the run's secrets, in every spelling a server may echo."""

from __future__ import annotations

import base64

from reconciler.redact import Redactor

KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
TOKEN = "Bearer top-secret-webhook-token"


def test_every_spelling_of_a_secret_is_replaced() -> None:
    raw = bytes.fromhex(KEY)
    spellings = [
        KEY,
        KEY.lower(),
        "2b7E151628aed2A6abf7158809cf4f3c",
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        TOKEN,
        base64.b64encode(TOKEN.encode()).decode(),
        TOKEN.encode().hex(),
    ]
    redactor = Redactor(lambda: [KEY, TOKEN])
    for spelling in spellings:
        text = f'{{"message": "invalid value \\"{spelling}\\" at app_key"}}'
        assert redactor.scrub(text) == '{"message": "invalid value \\"(sensitive)\\" at app_key"}'


def test_overlapping_and_adjacent_secrets_leave_nothing_behind() -> None:
    redactor = Redactor([KEY, KEY[4:20] + "FFFF"])
    scrubbed = redactor.scrub(f"a{KEY}{KEY[4:20]}FFFF b")
    assert scrubbed == "a(sensitive)(sensitive) b"
    assert KEY[4:12] not in scrubbed


def test_an_excerpt_is_scrubbed_before_it_is_cut() -> None:
    redactor = Redactor([KEY])
    text = "x" * 190 + KEY + "y" * 10_000
    excerpt = redactor.excerpt(text, limit=200)
    assert KEY[:10] not in excerpt
    assert excerpt == "x" * 190 + "(sensitive…" + " (cut; 10222 characters in all)"


def test_no_secrets_or_short_values_change_nothing() -> None:
    assert Redactor().scrub("HTTP 400: bad") == "HTTP 400: bad"
    assert Redactor(["abc"]).scrub("abc abc") == "abc abc"
