"""`reconciler validate` on a directory of broken manifests: one located, readable error per
defect, all in one run, exit code 1, no traceback, no secret values."""

from __future__ import annotations

import re

import pytest

from tests.manifest.support import run_cli

BROKEN = "tests/manifest/fixtures/broken"
GOOD_KEY = "00112233445566778899AABBCCDDEEFF"

# (file, line, column or None, message fragment): one entry per defect in fixtures/broken.
EXPECTED_ERRORS = [
    # identifiers and simple fields
    ("applications.yaml", 13, 1, "ID `Bad_App` is not valid"),
    ("applications.yaml", 16, 1, "ID `test` is reserved by The Things Stack (ID blocklist)"),
    ("devices.yaml", 145, 1, "ID `device` is reserved"),
    ("applications.yaml", 20, 1, "name is longer than 50 characters"),
    ("applications.yaml", 24, 1, "at most 10 attributes are allowed (11)"),
    ("applications.yaml", 29, 3, "attribute key `Bad Key` is not valid"),
    ("applications.yaml", 33, 1, "unknown field `descripton`; did you mean `description`?"),
    # webhooks and formatters
    ("applications.yaml", 40, 5, "Input should be 'json' or 'protobuf'"),
    ("applications.yaml", 42, 5, "URL must be an absolute URI"),
    ("applications.yaml", 45, 5, "at most 64 characters"),
    ("applications.yaml", 49, 7, "environment variable `BROKEN_UNSET_TOKEN` is not set"),
    ("applications.yaml", 56, 5, "duplicate webhook `hook-twice` in application `dup-hooks-app`"),
    ("applications.yaml", 63, 3, "formatter script is longer than 40960 characters"),
    ("applications.yaml", 69, 3, "script file `missing.js` does not exist"),
    ("applications.yaml", 85, 7, "at most 64 characters"),  # header name
    ("applications.yaml", 90, 3, "attribute value is longer than 200 characters"),
    ("applications.yaml", 94, 1, "owner needs exactly one of `user` or `organization`"),
    ("applications.yaml", 102, 7, "a secret reference is `{env: NAME}` or `{file: path}`"),
    # documents
    ("stack.yaml", 7, 1, "a second Stack document"),
    ("applications.yaml", 72, 1, "duplicate application `good-app` (first defined at"),
    ("applications.yaml", 74, 1, "unknown kind `Aplication`; did you mean `Application`?"),
    ("applications.yaml", 77, 1, "missing `kind`"),
    # device values
    ("devices.yaml", 4, 1, "EUI must be 16 hex digits"),
    ("devices.yaml", 10, 1, "DevAddr must be 8 hex digits"),
    ("devices.yaml", 18, 1, "key must be 32 hex digits"),
    (
        "devices.yaml",
        25,
        1,
        "unknown frequency plan `EU_863_870_TTNN`; did you mean `EU_863_870_TTN`?",
    ),
    ("devices.yaml", 32, 1, "unknown LoRaWAN version"),
    ("devices.yaml", 114, 1, "EUI must be a string: quote it in YAML"),
    ("devices.yaml", 123, 3, "rx1_delay must be 0-15"),
    ("devices.yaml", 97, 3, "unknown field `rx1delay`; did you mean `rx1_delay`?"),
    # device rules (after defaults and profiles)
    ("devices.yaml", 39, 1, "PHY_V1_0_2_REV_B does not go with MAC_V1_0_3"),
    ("devices.yaml", 43, 1, "an OTAA device needs `app_key`"),
    ("devices.yaml", 48, 1, "an OTAA 1.1 device needs `nwk_key`"),
    ("devices.yaml", 56, 1, "an ABP device needs `f_nwk_s_int_key`"),
    ("devices.yaml", 62, 1, "an ABP 1.1 device needs `s_nwk_s_int_key`"),
    ("devices.yaml", 73, 1, "a class B device needs `mac_settings.ping_slot_periodicity`"),
    ("devices.yaml", 160, 1, "band_id `US_902_928` does not match frequency plan EU_863_870_TTN"),
    ("devices.yaml", 164, 1, "an ABP device needs `dev_eui`"),
    ("devices.yaml", 177, 10, "less than or equal to 90"),
    # references and secrets
    ("devices.yaml", 79, 1, "application `missing-app` is not declared"),
    (
        "devices.yaml",
        86,
        1,
        "profile `good-profil` is not declared in application `good-app`; "
        "did you mean `good-profile`?",
    ),
    ("devices.yaml", 103, 1, "environment variable `BROKEN_UNSET_KEY` is not set"),
    ("devices.yaml", 109, 1, "secret file `keys/missing.key` does not exist"),
    # cross-file duplicates
    ("devices.yaml", 133, 1, "duplicate device `dup-device` in application `good-app`"),
    ("devices.yaml", 140, 1, "JoinEUI 70B3D57ED0000001 / DevEUI 0004A30B001C0010 is already used"),
    ("gateways.yaml", 12, 1, "gateway EUI B827EBFFFE000001 is already used"),
    ("gateways.yaml", 15, 1, "duplicate gateway `gw-good`"),
    # gateways
    ("gateways.yaml", 8, 1, "EUI must be 16 hex digits"),
    ("gateways.yaml", 19, 38, "unknown frequency plan `US_902_928_FSB_9`"),
    ("gateways.yaml", 23, 1, "gateway server address must be a host name"),
    # CSV fleets
    ("fleet.csv", 3, 2, "DevEUI must be 16 hex digits"),
    ("fleet.csv", 4, 3, "unknown LoRaWAN version"),
    ("fleet.csv", 5, None, "device `fleet-no-key`: an OTAA device needs `app_key`"),
    ("fleet-keys.csv", 5, 3, "key must be 32 hex digits"),
    (
        "fleet.yaml",
        8,
        1,
        "CSV file `no-such-fleet.csv` does not exist",
    ),
    # hostile input the loader rejects
    ("hostile.yaml", 3, 1, 'duplicate key "id"'),
    ("hostile.yaml", 6, 5, "unsupported YAML tag !!python/object"),
]
EXPECTED_WARNINGS = [
    ("devices.yaml", 153, 1, "secret `app_key` is written inline"),
    ("fleet.csv", 1, 5, "column 5 of the header is not a known column: ignored"),
    (
        "fleet.csv",
        2,
        None,
        "row has fewer cells than the header (line 1) names columns and 4 more row(s): "
        "the missing cells are read as empty",
    ),
]
LINE = re.compile(
    r"^(?P<file>\S+?):(?P<line>\d+)(?::(?P<column>\d+))?: (?P<severity>error|warning): "
)


@pytest.fixture(scope="module")
def output() -> tuple[int, str]:
    result = run_cli("validate", BROKEN, env={"BROKEN_KEY": GOOD_KEY})
    return result.returncode, result.stdout + result.stderr


def _diagnostics(text: str, severity: str) -> list[tuple[str, int, int | None, str]]:
    found = []
    for line in text.splitlines():
        match = LINE.match(line)
        if match and match["severity"] == severity:
            file = match["file"].removeprefix(BROKEN + "/")
            column = int(match["column"]) if match["column"] else None
            found.append((file, int(match["line"]), column, line[match.end() :]))
    return found


def test_exits_1_without_traceback(output: tuple[int, str]) -> None:
    code, text = output
    assert code == 1
    assert "Traceback" not in text
    assert f"{len(EXPECTED_ERRORS)} error(s) in manifests" in text


@pytest.mark.parametrize(("file", "line", "column", "fragment"), EXPECTED_ERRORS)
def test_each_defect_is_reported_where_it_is(
    output: tuple[int, str], file: str, line: int, column: int | None, fragment: str
) -> None:
    errors = _diagnostics(output[1], "error")
    at = [e for e in errors if e[:3] == (file, line, column)]
    assert at, f"no error at {file}:{line}:{column}; errors: {errors}"
    assert any(fragment in message for *_, message in at), at


def test_one_error_per_defect(output: tuple[int, str]) -> None:
    errors = _diagnostics(output[1], "error")
    assert sorted(e[:3] for e in errors) == sorted(e[:3] for e in EXPECTED_ERRORS)


def test_warnings(output: tuple[int, str]) -> None:
    warnings = _diagnostics(output[1], "warning")
    assert [w[:3] for w in warnings] == [w[:3] for w in EXPECTED_WARNINGS]
    for (*_, message), (*_, fragment) in zip(warnings, EXPECTED_WARNINGS, strict=True):
        assert fragment in message


def test_secret_values_never_printed(output: tuple[int, str]) -> None:
    text = output[1]
    for value in (
        GOOD_KEY,
        "ZZ112233445566778899AABBCCDDEEF!",  # an invalid inline key: the error names the rule only
        "00112233445566778899AABBCCDDEE01",  # fleet-keys.csv
        "not-a-key",
    ):
        assert value not in text
