"""Application package associations on the Application Server (pure: routes, bodies, keys).

Two kinds, one registry (`ApplicationPackageRegistry`): an application's default associations
(`package_default`, keyed by application and FPort) and a device's own associations
(`package_association`, keyed by application, device and FPort). Both carry `package_name` and
`data`; neither carries attributes, so they are owned through their application (as webhooks
are). Their routes take the FPort in the path and the message under `default` / `association`.
"""

from __future__ import annotations

from typing import Any

from reconciler.providers.tts import schema
from reconciler.providers.tts.kinds import package_association_key, package_default_key
from reconciler.providers.tts.manifest.packages import SECRET_DATA_KEYS
from reconciler.resources import ResourceKey

KINDS = ("package_default", "package_association")
WRAPPER = {"package_default": "default", "package_association": "association"}
LIST_FIELD = {"package_default": "defaults", "package_association": "associations"}
# What a read asks for besides the managed fields (the server adds `ids` and the timestamps):
# `data` always, so a listing is complete for import and the record's digest.
READ_PATHS = ("package_name", "data")


MESSAGES = frozenset({schema.PACKAGE_DEFAULT, schema.PACKAGE_ASSOCIATION})


def live_data_holds_secret(message: str, path: str, live: Any) -> bool:
    """A live `data` that holds a token (typed in the Console, say): a change of it must not
    show the live value, even where the manifest's own `data` holds no secret."""
    return (
        path == "data"
        and message in MESSAGES
        and isinstance(live, dict)
        and any(key in SECRET_DATA_KEYS for key in live)
    )


def collection_path(application_id: str, device_id: str | None = None) -> str:
    """The list route of an application's default associations or of a device's associations."""
    base = f"/as/applications/{application_id}"
    if device_id is not None:
        base += f"/devices/{device_id}"
    return base + "/packages/associations"


def item_path(key: ResourceKey) -> str:
    """The Get/Set/Delete route of one association."""
    if key.kind == "package_default":
        application_id, f_port = key.ids
        return f"{collection_path(application_id)}/{f_port}"
    application_id, device_id, f_port = key.ids
    return f"{collection_path(application_id, device_id)}/{f_port}"


def body_ids(key: ResourceKey) -> dict[str, Any]:
    """The `ids` of the Set body (the path holds them too; the server takes the path's)."""
    application = {"application_id": key.ids[0]}
    f_port = int(key.ids[-1])
    if key.kind == "package_default":
        return {"application_ids": application, "f_port": f_port}
    return {
        "end_device_ids": {"application_ids": application, "device_id": key.ids[1]},
        "f_port": f_port,
    }


def listed_key(item: Any, application_id: str, device_id: str | None) -> ResourceKey | None:
    """The key of one listed association, None when the server's answer lacks its FPort."""
    ids = item.get("ids") if isinstance(item, dict) else None
    f_port = ids.get("f_port") if isinstance(ids, dict) else None
    if isinstance(f_port, bool) or not isinstance(f_port, int) or f_port <= 0:
        return None
    if device_id is None:
        return package_default_key(application_id, f_port)
    return package_association_key(application_id, device_id, f_port)
