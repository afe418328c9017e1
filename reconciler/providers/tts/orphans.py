"""Orphans: Network, Application and Join Server records of a device the Identity Server no
longer holds.

The registries do not check each other: the Identity Server's delete does not cascade, and a
Set on the Network, Application or Join Server creates a record whatever the Identity Server
holds. So a device deleted on the Identity Server while another run (or a script, or the
Console) still registers it elsewhere leaves records that no Identity Server listing shows,
while the Network Server keeps serving their session.

Those registries cannot be listed (the API has no list for them), so candidates come from:

* the manifests: a declared device missing on the Identity Server is looked up on the other
  three before its creation is planned (`probes_for_declared`), so a creation never merges into
  a stale record (the Set RPCs upsert, keeping its session and MAC state) or fails on one;
* the application's event history (`POST /events` with `tail`): the registry events that name
  devices (`end_device.delete`, `end_device.batch.delete` with its list of devices, and the
  Network, Application and Join Servers' `*.end_device.create/update/delete/batch.delete`). A
  device they name that the Identity Server lacks is looked up on the registries whose last
  event about it is not a delete. The server keeps a short history (the real one about 100
  events per application for a day, their data ten minutes), so this finds recent orphans only;
  the README states the limits.

This module is the pure part: which events to ask for and what they say about each device.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.providers.tts.servers import Server

# The event history asked for: the last events of the application's stream (the real server
# keeps about 100 per entity), of the registry events that name devices. One pattern, so a
# server without one of these names (older versions lack the batch events) still answers.
HISTORY_TAIL = 100
HISTORY_NAMES = ("/^((ns|as|js)\\.)?end_device\\.(create|update|delete|batch\\.delete)$/",)
# The stream never ends: reading stops once it has been quiet this long (the history comes at
# once, right after the stream's start event).
HISTORY_IDLE_S = 0.5

_SERVER_OF_PREFIX: dict[str, Server] = {"": "is", "ns.": "ns", "as.": "as", "js.": "js"}
REGISTRIES: tuple[Server, ...] = ("ns", "as", "js")

# What an event says about a device's record on its server.
PRESENT = "present"
GONE = "gone"


def history_request(app_id: str) -> dict[str, Any]:
    return {
        "identifiers": [{"application_ids": {"application_id": app_id}}],
        "tail": HISTORY_TAIL,
        "names": list(HISTORY_NAMES),
    }


def history_events(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of a stream's messages (`{"result": event}`), without its start event."""
    events = []
    for message in messages:
        event = message.get("result")
        if isinstance(event, dict) and event.get("name") != "events.stream.start":
            events.append(event)
    return events


def _classify(name: Any) -> tuple[Server, str] | None:
    if not isinstance(name, str):
        return None
    prefix, found, verb = name.partition("end_device.")
    server = _SERVER_OF_PREFIX.get(prefix)
    if not found or server is None:
        return None
    if verb in ("create", "update"):
        return server, PRESENT
    if verb in ("delete", "batch.delete"):
        return server, GONE
    return None


def _device_ids(event: dict[str, Any], app_id: str) -> list[str]:
    """The devices of `app_id` an event names: in its identifiers, or (batch deletes) in its
    data, which the real server keeps only ten minutes."""
    named: list[Any] = [
        i.get("device_ids") for i in event.get("identifiers") or [] if isinstance(i, dict)
    ]
    data = event.get("data")
    if isinstance(data, dict) and isinstance(data.get("end_device_ids"), list):
        named.extend(data["end_device_ids"])
    found = []
    for ids in named:
        if not isinstance(ids, dict):
            continue
        app = ids.get("application_ids")
        device_id = ids.get("device_id")
        if (
            isinstance(app, dict)
            and app.get("application_id") == app_id
            and isinstance(device_id, str)
            and device_id
        ):
            found.append(device_id)
    return found


def last_states(events: Iterable[dict[str, Any]], app_id: str) -> dict[str, dict[Server, str]]:
    """Device id -> server -> what its latest event there says (PRESENT or GONE), for the
    devices of `app_id` the events name (events in the order the stream gave them: oldest
    first)."""
    states: dict[str, dict[Server, str]] = {}
    for event in events:
        kind = _classify(event.get("name"))
        if kind is None:
            continue
        server, state = kind
        for device_id in _device_ids(event, app_id):
            states.setdefault(device_id, {})[server] = state
    return states


def registries_to_probe(states: dict[Server, str]) -> list[Server]:
    """The registries that may still hold a record: all but those whose latest event about
    the device is a delete (a later write would have left a later event)."""
    return [server for server in REGISTRIES if states.get(server) != GONE]


_SHORT_NAMES: dict[Server, str] = {"ns": "Network", "as": "Application", "js": "Join"}


def orphan_reason(app_id: str, servers: Iterable[Server]) -> str:
    """`an orphan: on the Network and Join Servers, with no Identity Server record (...)`."""
    names = [_SHORT_NAMES[s] for s in REGISTRIES if s in set(servers)]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    plural = "Servers" if len(names) > 1 else "Server"
    return (
        f"an orphan: on the {listed} {plural}, with no Identity Server record (in application "
        f"{app_id}, which this stack owns)"
    )
