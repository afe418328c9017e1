"""Normal form: every spelling the server accepts compares equal to what it writes (FACTS §b)."""

from __future__ import annotations

import pytest

from reconciler.providers.tts import schema
from reconciler.providers.tts.schema import END_DEVICE, field_type, live_value, normalize, to_wire


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("1.0.2", "MAC_V1_0_2"),
        ("MAC_V1_0_2", "MAC_V1_0_2"),
        ("V1_0_2", "MAC_V1_0_2"),
        (3, "MAC_V1_0_2"),
        ("3", "MAC_V1_0_2"),
        ("1.1", "MAC_V1_1"),
    ],
)
def test_mac_version_spellings(spelling: object, canonical: str) -> None:
    assert normalize(field_type(END_DEVICE, "lorawan_version"), spelling) == canonical


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("1.0.2-b", "PHY_V1_0_2_REV_B"),
        ("RP001_V1_0_2_REV_B", "PHY_V1_0_2_REV_B"),
        ("V1_0_2_REV_B", "PHY_V1_0_2_REV_B"),
        ("RP002_V1_0_3", "RP002_V1_0_3"),
        (4, "PHY_V1_0_2_REV_B"),
    ],
)
def test_phy_version_spellings(spelling: object, canonical: str) -> None:
    assert normalize(field_type(END_DEVICE, "lorawan_phy_version"), spelling) == canonical


def test_hex_case_and_base64_compare_equal() -> None:
    ftype = field_type(END_DEVICE, "ids.dev_eui")
    assert normalize(ftype, "70b3d57ed0000001") == "70B3D57ED0000001"
    assert normalize(ftype, "cLPVftAAAAE=") == "70B3D57ED0000001"
    with pytest.raises(schema.InvalidValue):
        normalize(ftype, "70B3")


def test_missing_is_zero_and_wrappers_are_bare() -> None:
    assert live_value(END_DEVICE, {}, "supports_class_c") is False
    assert live_value(END_DEVICE, {}, "mac_settings.rx1_delay") is None
    assert live_value(END_DEVICE, {"mac_settings": {"rx1_delay": 5}}, "mac_settings.rx1_delay") == 5
    assert live_value(END_DEVICE, {}, "attributes") == {}


def test_uint64_as_strings_on_the_wire() -> None:
    ftype = field_type(END_DEVICE, "mac_settings.factory_preset_frequencies")
    assert normalize(ftype, ["868100000", 868300000]) == [868100000, 868300000]
    assert to_wire(ftype, [868100000]) == ["868100000"]
    rx2 = field_type(END_DEVICE, "mac_settings.rx2_frequency")
    assert to_wire(rx2, 869525000) == "869525000"


def test_unknown_path_is_rejected() -> None:
    with pytest.raises(schema.UnknownPath):
        field_type(END_DEVICE, "mac_settings.no_such_field")
