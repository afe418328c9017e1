"""IoT Hub error responses: status, `iothub-errorcode` header and the `Message` envelope.

The body is the form registry operations answer with:
`{"Message": "ErrorCode:<Name>;<text>", "ExceptionMessage": "Tracking ID:<hex>-G:0-TimeStamp:..."}`.
The 6-digit codes (first three digits: the HTTP status) come from the generated table.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from reconciler.emulator.iothub.tables import ERROR_CODES


class IotHubError(Exception):
    """An error answer; raised anywhere in a request and rendered once by the app."""

    def __init__(self, name: str, text: str, status: int | None = None) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text
        code = ERROR_CODES.get(name)
        if status is None:
            if code is None:
                raise ValueError(f"no status known for IoT Hub error {name}")
            status = code // 1000
        self.status = status
        self.code = code

    def body(self) -> bytes:
        stamp = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
        envelope = {
            "Message": f"ErrorCode:{self.name};{self.text}",
            "ExceptionMessage": f"Tracking ID:{uuid.uuid4().hex}-G:0-TimeStamp:{stamp}",
        }
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()

    def headers(self) -> dict[str, str]:
        return {"iothub-errorcode": self.name}


def argument_invalid(text: str) -> IotHubError:
    return IotHubError("ArgumentInvalid", text)


def argument_null(text: str) -> IotHubError:
    return IotHubError("ArgumentNull", text)


def format_error(text: str) -> IotHubError:
    return IotHubError("IotHubFormatError", text)


def unauthorized() -> IotHubError:
    return IotHubError("IotHubUnauthorizedAccess", "Unauthorized")


def device_not_found(device_id: str) -> IotHubError:
    return IotHubError("DeviceNotFound", device_id)


def module_not_found(device_id: str, module_id: str) -> IotHubError:
    return IotHubError("ModuleNotFound", f"{device_id}/{module_id}")


def device_already_exists(device_id: str) -> IotHubError:
    return IotHubError(
        "DeviceAlreadyExists", f"A device with ID '{device_id}' is already registered."
    )


def module_already_exists(device_id: str, module_id: str) -> IotHubError:
    return IotHubError(
        "ModuleAlreadyExistsOnDevice",
        f"A module with ID '{module_id}' is already registered on device '{device_id}'.",
    )


def precondition_failed(kind: str, existing: int, new: int) -> IotHubError:
    return IotHubError(
        "PreconditionFailed",
        f"Precondition failed: {kind} version did not match, "
        f"existingVersion:{existing} newVersion:{new}",
    )


def throttled(operation: str) -> IotHubError:
    return IotHubError(
        "ThrottlingBacklogTimeout",
        "The request has been throttled. Wait 10 seconds and try again. "
        f"Operation type: {operation}",
    )


def service_unavailable() -> IotHubError:
    return IotHubError("ServiceUnavailable", "The service is temporarily unavailable.")
