"""End devices: layering (defaults < profile < device), the activation rules, TTS field paths,
and the lean per-row path for CSV fleets.

Device values are held as *flat settings*: a dict keyed by the manifest's device field names
(the TTS CSV column names), with the mapping groups (`mac_settings`, `version_ids`,
`formatters`, `attributes`, `locations`, `lora_alliance_profile_ids`) as nested dicts. YAML
documents produce them via the pydantic models; CSV rows via `parse_csv_row`, which calls the
same value rules (`reconciler.providers.tts.manifest.types`) directly, because 100,000 rows
must load in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.manifest.secrets import SecretContext, SecretError, resolve
from reconciler.providers.tts import lorawan_versions, reference
from reconciler.providers.tts.manifest import types as t
from reconciler.providers.tts.manifest.models import ScriptFile
from reconciler.resources import Secret

Settings = dict[str, Any]

# Mapping-valued fields: layers merge them key by key.
GROUPS = frozenset(
    {
        "mac_settings",
        "version_ids",
        "lora_alliance_profile_ids",
        "formatters",
        "attributes",
        "locations",
    }
)
# Groups whose keys are TTS sub-fields (`mac_settings.rx1_delay`); the others are maps.
_MESSAGE_GROUPS = frozenset(
    {"mac_settings", "version_ids", "lora_alliance_profile_ids", "formatters"}
)
_NOT_FIELDS = frozenset({"kind", "application", "profile"})
_PATHS = {
    "id": "ids.device_id",
    "dev_eui": "ids.dev_eui",
    "join_eui": "ids.join_eui",
    "app_key": "root_keys.app_key.key",
    "nwk_key": "root_keys.nwk_key.key",
    "dev_addr": "session.dev_addr",
    "app_s_key": "session.keys.app_s_key.key",
    "f_nwk_s_int_key": "session.keys.f_nwk_s_int_key.key",
    "s_nwk_s_int_key": "session.keys.s_nwk_s_int_key.key",
    "nwk_s_enc_key": "session.keys.nwk_s_enc_key.key",
    "claim_authentication_code": "claim_authentication_code.value",
}
ROOT_KEYS = ("app_key", "nwk_key")
SESSION_KEYS = ("app_s_key", "f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key")
SECRET_KEYS = frozenset(ROOT_KEYS + SESSION_KEYS)
_SESSION_FIELDS = ("dev_addr", *SESSION_KEYS)


def merge(*layers: Mapping[str, Any]) -> Settings:
    """Later layers win; groups merge key by key; an explicit None replaces the whole value."""
    result: Settings = {}
    for layer in layers:
        for key, value in layer.items():
            if key in GROUPS and isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = {**result[key], **value}
            else:
                result[key] = value
    return result


def derive_supports_join(settings: Settings) -> bool | None:
    """OTAA or ABP: explicit `supports_join`, else ABP when a session is given, else OTAA
    when a root key is given; None when nothing tells."""
    explicit = settings.get("supports_join")
    if explicit is not None:
        return bool(explicit)
    for key in _SESSION_FIELDS:
        if settings.get(key) is not None:
            return False
    for key in ROOT_KEYS:
        if settings.get(key) is not None:
            return True
    return None


Problem = tuple[str | None, str]  # (flat field name it is about, message)


def check(settings: Settings, supports_join: bool | None, inherited_from: str) -> list[Problem]:
    """The rules the Network and Join Servers enforce on a complete device.

    `supports_join` is `derive_supports_join(settings)`; `inherited_from` names where missing
    values could come from, for the messages.
    """
    problems: list[Problem] = []

    def missing(key: str, why: str) -> None:
        problems.append((None, f"{why} needs `{key}` (set it on {inherited_from})"))

    for key in ("frequency_plan_id", "lorawan_version", "lorawan_phy_version"):
        if settings.get(key) is None:
            missing(key, "every device")
    mac = settings.get("lorawan_version")
    phy = settings.get("lorawan_phy_version")
    if mac and phy and not lorawan_versions.is_valid_pair(mac, phy):
        allowed = ", ".join(lorawan_versions.phy_versions_for(mac))
        problems.append(
            ("lorawan_phy_version", f"{phy} does not go with {mac} (allowed: {allowed})")
        )
    plan = settings.get("frequency_plan_id")
    band = (settings.get("version_ids") or {}).get("band_id")
    if plan and band and reference.frequency_plans().get(plan) not in (None, band):
        problems.append(
            (
                "version_ids",
                f"band_id `{band}` does not match frequency plan {plan} "
                f"(band {reference.frequency_plans()[plan]})",
            )
        )
    is_1_1 = mac is not None and lorawan_versions.is_lorawan_1_1(mac)
    if supports_join is False:
        required = ["dev_addr", "app_s_key", "f_nwk_s_int_key"]
        if is_1_1:
            required += ["s_nwk_s_int_key", "nwk_s_enc_key"]
        if mac in ("MAC_V1_0_4", "MAC_V1_1") and not settings.get("multicast"):
            required.append("dev_eui")  # NS: ABP with MAC >= 1.0.4 needs a DevEUI
        for key in required:
            if settings.get(key) is None:
                missing(key, "an ABP 1.1 device" if is_1_1 else "an ABP device")
    else:
        # With neither root keys nor a session nothing tells; most devices join (OTAA).
        required = ["join_eui", "dev_eui", "app_key"] + (["nwk_key"] if is_1_1 else [])
        what = "an OTAA 1.1 device" if is_1_1 else "an OTAA device"
        for key in required:
            if settings.get(key) is None:
                missing(key, what)
                if supports_join is None:
                    last_key, message = problems[-1]
                    problems[-1] = (
                        last_key,
                        f"{message}; for ABP set `dev_addr` and the session keys instead",
                    )
    if settings.get("multicast"):
        if supports_join:
            problems.append(("multicast", "a multicast group is ABP: no `supports_join`/root keys"))
        if not (settings.get("supports_class_b") or settings.get("supports_class_c")):
            problems.append(
                ("multicast", "a multicast group needs class B or C (`supports_class_b`/`_c`)")
            )
    if settings.get("supports_class_b") and (
        (settings.get("mac_settings") or {}).get("ping_slot_periodicity") is None
    ):
        missing("mac_settings.ping_slot_periodicity", "a class B device")
    return problems


def group_field(group: str, name: str, value: Any) -> dict[str, Any]:
    """`{group.name: value}`; a script file becomes the `..._parameter` text it holds."""
    if isinstance(value, ScriptFile):
        return {f"{group}.{name.removesuffix('_file')}": value.text}
    return {f"{group}.{name}": value}


def to_fields(settings: Settings, supports_join: bool | None) -> dict[str, Any]:
    """Flat settings -> TTS EndDevice field paths (see `reconciler.manifest.project`)."""
    fields: dict[str, Any] = {}
    for key, value in settings.items():
        if key in _NOT_FIELDS:
            continue
        if key in _MESSAGE_GROUPS and value is not None:
            for sub, item in value.items():
                fields.update(group_field(key, sub, item))
        else:
            fields[_PATHS.get(key, key)] = value
    if supports_join is not None:
        fields["supports_join"] = supports_join
    return fields


# --- CSV rows ---------------------------------------------------------------------------------

Parser = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class Column:
    group: str | None
    key: str
    parse: Parser | None  # None: a key column (secret), parsed by `parse_secret_cell`


CSV_COLUMNS: dict[str, Column] = {
    "id": Column(None, "id", lambda v: t.parse_id(v, "device ID")),
    "dev_eui": Column(None, "dev_eui", lambda v: t.parse_eui(v, "DevEUI")),
    "join_eui": Column(None, "join_eui", lambda v: t.parse_eui(v, "JoinEUI")),
    "app_eui": Column(None, "join_eui", lambda v: t.parse_eui(v, "JoinEUI")),
    "name": Column(None, "name", t.parse_name),
    "description": Column(None, "description", t.parse_description),
    "frequency_plan_id": Column(None, "frequency_plan_id", t.parse_frequency_plan_id),
    "lorawan_version": Column(None, "lorawan_version", t.parse_mac_version),
    "lorawan_phy_version": Column(None, "lorawan_phy_version", t.parse_phy_version),
    "brand_id": Column("version_ids", "brand_id", lambda v: t.parse_plain_id(v, "brand ID")),
    "model_id": Column("version_ids", "model_id", lambda v: t.parse_plain_id(v, "model ID")),
    "hardware_version": Column("version_ids", "hardware_version", t.parse_version_field),
    "firmware_version": Column("version_ids", "firmware_version", t.parse_version_field),
    "band_id": Column("version_ids", "band_id", t.parse_version_field),
    "vendor_id": Column(
        "lora_alliance_profile_ids", "vendor_id", lambda v: t.parse_hex_uint32(v, "vendor_id")
    ),
    "vendor_profile_id": Column(
        "lora_alliance_profile_ids",
        "vendor_profile_id",
        lambda v: t.parse_hex_uint32(v, "vendor_profile_id"),
    ),
    "rx1_delay": Column("mac_settings", "rx1_delay", t.parse_rx_delay),
    "supports_32_bit_f_cnt": Column(
        "mac_settings", "supports_32_bit_f_cnt", lambda v: t.parse_bool(v, "supports_32_bit_f_cnt")
    ),
    "dev_addr": Column(None, "dev_addr", t.parse_dev_addr),
    "supports_class_b": Column(
        None, "supports_class_b", lambda v: t.parse_bool(v, "supports_class_b")
    ),
    "supports_class_c": Column(
        None, "supports_class_c", lambda v: t.parse_bool(v, "supports_class_c")
    ),
    "supports_join": Column(None, "supports_join", lambda v: t.parse_bool(v, "supports_join")),
    **{key: Column(None, key, None) for key in ROOT_KEYS + SESSION_KEYS},
}
# TTS CSV columns that carry device state (frame counters), not configuration: ignored.
CSV_STATE_COLUMNS = frozenset({"last_f_cnt_up", "last_n_f_cnt_down", "last_a_f_cnt_down"})
CSV_SECRETS_COLUMNS = ("id", "dev_eui", *sorted(SECRET_KEYS))


def csv_device_id(values: Mapping[str, str]) -> str | None:
    """`id`, or `eui-<lowercase DevEUI>` when there is no id (TTS CSV import rule)."""
    device_id = values.get("id")
    if device_id:
        return device_id
    dev_eui = values.get("dev_eui")
    if dev_eui:
        return f"eui-{dev_eui.lower()}"
    return None


def csv_row_device_id(
    values: Mapping[str, str],
) -> tuple[str | None, tuple[str, str] | None]:
    """(the row's device id, None), or (None, (column, problem)) when its `id` or `dev_eui`
    is not valid. The problem never quotes the cell: in a secrets CSV with the wrong separator
    the id cell holds the whole row, keys included."""
    for column in ("id", "dev_eui"):
        text = values.get(column)
        if text:
            try:
                CSV_COLUMNS[column].parse(text)  # type: ignore[misc]
            except ValueError as error:
                return None, (column, without_cell(str(error), text))
            return csv_device_id(values), None
    return None, None


def without_cell(message: str, text: str) -> str:
    """A value rule's message with the cell's text left out (diagnostics name the file, row
    and column; a cell may hold a key, or a whole row read with the wrong separator)."""
    if not text:
        return message
    return (
        message.replace(f" `{text}`", "")
        .replace(f"`{text}`", "the value")
        .replace(text, "(the value)")
    )


def parse_secret_cell(text: str, context: SecretContext) -> Secret:
    return resolve(text, context, t.parse_aes_key)


def parse_csv_row(
    values: Mapping[str, str], context: SecretContext
) -> tuple[Settings, list[tuple[str, str]]]:
    """(flat settings, [(column, message)]) for one row; empty cells count as not set."""
    settings: Settings = {}
    errors: list[tuple[str, str]] = []
    for column, text in values.items():
        if not text:
            continue
        spec = CSV_COLUMNS.get(column)
        if spec is None:
            continue
        try:
            value = parse_secret_cell(text, context) if spec.parse is None else spec.parse(text)
        except (ValueError, SecretError) as error:
            errors.append((column, without_cell(str(error), text)))
            continue
        if spec.group is None:
            settings[spec.key] = value
        else:
            settings.setdefault(spec.group, {})[spec.key] = value
    if "id" not in settings and "dev_eui" in settings:
        settings["id"] = f"eui-{settings['dev_eui'].lower()}"
    return settings, errors
