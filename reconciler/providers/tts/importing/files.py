"""The Things Stack's own device files as import sources.

* JSON, as the Console's JSON import takes it and `ttn-lw-cli` / lorawan-stack-migrate write
  it: a stream of EndDevice objects (newline-delimited or concatenated), or one array of them;
  each object may also be the template form `{"end_device": {...}, "field_mask": {...}}`.
* CSV in The Things Stack CSV import format, read by the manifest loader's own CSV reader and
  cell rules (`reconciler.manifest.loader`, `reconciler.providers.tts.manifest.devices`).

Bad input is an `ImportFailure` naming the file, line and column (or row and column).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from reconciler.diagnostics import Location
from reconciler.importer.output import ImportFailure
from reconciler.importer.report import ImportReport
from reconciler.manifest import loader
from reconciler.manifest.common import closest
from reconciler.manifest.secrets import SecretContext
from reconciler.providers.tts import schema
from reconciler.providers.tts.importing import fields as f
from reconciler.providers.tts.importing import records as r
from reconciler.providers.tts.manifest import devices as dev
from reconciler.resources import Secret

MAX_FILE_BYTES = 512 * 1024 * 1024


def read_file(path: Path, application_id: str) -> r.Snapshot:
    snapshot = r.Snapshot(keys_missing_reason="the file holds no keys for them")
    app = r.ApplicationRecord(application_id, {}, {})
    if path.suffix.lower() == ".csv":
        app.devices = list(_csv_devices(path, application_id, snapshot.report))
    else:
        app.devices = list(_json_devices(path, application_id, snapshot.report))
    ids = [d.device_id for d in app.devices]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if duplicates:
        raise ImportFailure(f"{path}: duplicate device IDs: {', '.join(duplicates[:5])}")
    snapshot.applications.append(app)
    snapshot.report.count("application")
    snapshot.report.count("device", len(app.devices))
    return snapshot


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImportFailure(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB")
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ImportFailure(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise ImportFailure(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ImportFailure(f"{path}: cannot be read ({error.strerror})") from None


# -- JSON ---------------------------------------------------------------------------------------


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _json_objects(path: Path, text: str) -> Iterator[tuple[Location, Any]]:
    decoder = json.JSONDecoder()
    index = 0
    length = len(text)

    def skip(at: int) -> int:
        while at < length and text[at] in " \t\r\n":
            at += 1
        return at

    def decode(at: int) -> tuple[Any, int]:
        try:
            return decoder.raw_decode(text, at)
        except json.JSONDecodeError as error:
            line, column = _position(text, at)
            raise ImportFailure(
                f"{path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}) in the "
                f"value that starts at line {line}, column {column}"
            ) from None

    def fail(at: int, message: str) -> ImportFailure:
        line, column = _position(text, at)
        return ImportFailure(f"{path}:{line}:{column}: {message}")

    index = skip(index)
    if index < length and text[index] == "[":
        # An array, element by element, so each element's position is known.
        index = skip(index + 1)
        if index < length and text[index] == "]":
            if skip(index + 1) != length:
                raise fail(skip(index + 1), "text after the JSON array")
            return
        while index < length:
            line, column = _position(text, index)
            value, index = decode(index)
            yield Location(str(path), line, column), value
            index = skip(index)
            if index < length and text[index] == ",":
                index = skip(index + 1)
            elif index < length and text[index] == "]":
                if skip(index + 1) != length:
                    raise fail(skip(index + 1), "text after the JSON array")
                return
            else:
                raise fail(index, "expected `,` or `]` in the JSON array")
        raise fail(length, "the JSON array is not closed")
    while index < length:
        line, column = _position(text, index)
        value, index = decode(index)
        yield Location(str(path), line, column), value
        index = skip(index)


def _json_devices(
    path: Path, application_id: str, report: ImportReport
) -> Iterator[r.DeviceRecord]:
    text = _read_text(path)
    for location, value in _json_objects(path, text):
        if not isinstance(value, Mapping):
            raise ImportFailure(f"{location}: expected an EndDevice object")
        device = value.get("end_device") if "end_device" in value else value
        if not isinstance(device, Mapping):
            raise ImportFailure(f"{location}: `end_device` is not an object")
        if "end_device" in value:
            device = _masked(device, value.get("field_mask"), location)
        ids = device.get("ids")
        if not isinstance(ids, Mapping):
            raise ImportFailure(f"{location}: the device has no `ids`")
        device_id = ids.get("device_id") or (
            f"eui-{str(ids['dev_eui']).lower()}" if ids.get("dev_eui") else None
        )
        if not isinstance(device_id, str):
            raise ImportFailure(f"{location}: the device has neither `ids.device_id` nor a DevEUI")
        other_app = (ids.get("application_ids") or {}).get("application_id")
        if other_app and other_app != application_id:
            report.add(
                f"device of application `{other_app}` imported into `{application_id}`", device_id
            )
        try:
            record = r.device_record(application_id, device_id, [(None, device)], report)
        except (schema.InvalidValue, ValueError, TypeError) as error:
            raise ImportFailure(f"{location}: device `{device_id}`: {error}") from None
        record.keys_read = any(p in record.fields for p in f.KEY_PATHS)
        yield record


def _masked(device: Mapping[str, Any], mask: Any, location: Location) -> dict[str, Any]:
    """The template form's values at its field mask paths (all of them without a mask)."""
    if mask is None:
        return dict(device)
    paths = mask.get("paths") if isinstance(mask, Mapping) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ImportFailure(f'{location}: `field_mask` must be {{"paths": [...]}}')
    result: dict[str, Any] = {"ids": device.get("ids")}
    for path in paths:
        value = schema.get_path(device, path)
        if value is not schema.MISSING:
            schema.set_path(result, path, value)
    return result


# -- CSV ----------------------------------------------------------------------------------------


def _csv_devices(path: Path, application_id: str, report: ImportReport) -> Iterator[r.DeviceRecord]:
    if not path.is_file():
        raise ImportFailure(f"{path}: no such file")
    table, problems = loader.load_csv(path)
    errors = [p for p in problems if p.severity == "error"]
    if table is None or errors:
        raise ImportFailure("; ".join(str(p) for p in errors or problems) or f"{path}: unreadable")
    for index, column in enumerate(table.header, 1):
        if not column or column in dev.CSV_COLUMNS:
            continue
        where = Location(str(path), 1, index, column)
        if column in dev.CSV_STATE_COLUMNS:
            report.add(f"device state not imported: CSV column `{column}`", str(path))
            continue
        match = closest(column, dev.CSV_COLUMNS)
        hint = f"; did you mean `{match}`?" if match else ""
        raise ImportFailure(
            f"{where}: unknown column `{column}` (The Things Stack CSV format: id, dev_eui, "
            f"join_eui, app_key, ...){hint}"
        )
    if not any(c in dev.CSV_COLUMNS for c in table.header):
        raise ImportFailure(f"{path}:1:1: the header has no column of The Things Stack CSV format")
    context = SecretContext({}, path.parent, f"csv:{path}")
    for row in table.rows:
        settings, cell_errors = dev.parse_csv_row(row.values, context)
        if cell_errors:
            column, message = cell_errors[0]
            raise ImportFailure(f"{table.locate(row, column)}: {message}")
        device_id = settings.pop("id", None)
        if device_id is None:
            raise ImportFailure(f"{table.locate(row)}: the row has neither `id` nor `dev_eui`")
        fields = dev.to_fields(settings, dev.derive_supports_join(settings))
        plain = {p: (v.reveal() if isinstance(v, Secret) else v) for p, v in fields.items()}
        record = r.DeviceRecord(
            application_id,
            device_id,
            {p: v for p, v in plain.items() if v is not None and not f.is_zero(p, v)},
            otaa=bool(plain.get("supports_join")),
        )
        record.keys_read = any(p in record.fields for p in f.KEY_PATHS)
        yield record
