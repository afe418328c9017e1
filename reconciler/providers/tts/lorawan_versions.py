"""Which LoRaWAN Regional Parameters (PHY) versions go with which MAC (LoRaWAN) version.

One table for the manifest validator and the emulator. Canonical TTS enum names on both sides
(`reference.enum("MACVersion"/"PHYVersion").canonical_name` turns any accepted spelling into one).

Sources (TheThingsNetwork/lorawan-stack):
- `pkg/webui/console/lib/device-utils.js` (`LORAWAN_VERSION_PAIRS`, the Console's PHY filter):
  1.0 -> PHY 1.0; 1.0.1 -> 1.0.1; 1.0.2 -> 1.0.2 rev A/B; 1.0.3 -> 1.0.3 rev A;
  1.0.4 -> RP002 1.0.0-1.0.3; 1.1 -> 1.1 rev A/B and RP002 1.0.0-1.0.3.
  The table predates `RP002_V1_0_4`; the enum gained it later, and RP002-1.0.4 covers the same
  MAC versions as its predecessors, so it is included here.
- `pkg/networkserver/internal` (`LoRaWANVersionPairs`, the NS test matrix) agrees for 1.0-1.1.
- The LoRaWAN 1.0.4 specification (TS001-1.0.4) names RP001-1.0.3 rev A or RP002-1.0.x as its
  regional parameters, so 1.0.4 also accepts `PHY_V1_0_3_REV_A`.
"""

from __future__ import annotations

_RP002 = frozenset({"RP002_V1_0_0", "RP002_V1_0_1", "RP002_V1_0_2", "RP002_V1_0_3", "RP002_V1_0_4"})

PHY_VERSIONS_BY_MAC: dict[str, frozenset[str]] = {
    "MAC_V1_0": frozenset({"PHY_V1_0"}),
    "MAC_V1_0_1": frozenset({"PHY_V1_0_1"}),
    "MAC_V1_0_2": frozenset({"PHY_V1_0_2_REV_A", "PHY_V1_0_2_REV_B"}),
    "MAC_V1_0_3": frozenset({"PHY_V1_0_3_REV_A"}),
    "MAC_V1_0_4": _RP002 | {"PHY_V1_0_3_REV_A"},
    "MAC_V1_1": _RP002 | {"PHY_V1_1_REV_A", "PHY_V1_1_REV_B"},
}


def is_valid_pair(mac_version: str, phy_version: str) -> bool:
    """Whether a (canonical MAC, canonical PHY) pair is a combination the specs define."""
    return phy_version in PHY_VERSIONS_BY_MAC.get(mac_version, frozenset())


def phy_versions_for(mac_version: str) -> list[str]:
    """The PHY versions that go with a MAC version, in enum order (for error messages)."""
    order = [
        "PHY_V1_0",
        "PHY_V1_0_1",
        "PHY_V1_0_2_REV_A",
        "PHY_V1_0_2_REV_B",
        "PHY_V1_0_3_REV_A",
        "PHY_V1_1_REV_A",
        "PHY_V1_1_REV_B",
        *sorted(_RP002),
    ]
    allowed = PHY_VERSIONS_BY_MAC.get(mac_version, frozenset())
    return [name for name in order if name in allowed]


def is_lorawan_1_1(mac_version: str) -> bool:
    """1.1 separates the network root key and the network session keys."""
    return mac_version == "MAC_V1_1"
