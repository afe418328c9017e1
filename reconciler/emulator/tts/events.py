"""The event stream `POST /events` and the registry events behind it.

As on the real server: registry events (`end_device.update`, `ns.end_device.update`,
`application.update`, ...) name the identifiers and, for updates, the changed field paths; each
event carries who caused it (the request's user agent, remote IP and API key ID); the history
that `tail` and `after` replay is short (payloads kept `history_ttl_s`, 10 minutes by default,
and at most `history_per_entity`, 100, per entity). The Application Server's webhook and link
registries publish no events (the real ones define none), so a watcher must sweep them.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import StreamingResponse

from reconciler.emulator.tts import errors
from reconciler.emulator.tts.codec import decode_timestamp, now_timestamp, timestamp_key

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Call, Operation

_REGISTRY_EVENTS = [
    f"{prefix}end_device.{verb}"
    for prefix in ("", "ns.", "as.", "js.")
    for verb in ("create", "update", "delete", "batch.delete")
]
KNOWN_EVENTS = frozenset(
    [
        "events.stream.start",
        *_REGISTRY_EVENTS,
        *(
            f"{entity}.{verb}"
            for entity in ("application", "gateway", "organization", "user")
            for verb in ("create", "update", "delete", "restore", "purge")
        ),
        *(
            f"{entity}.api-key.{verb}"
            for entity in ("application", "gateway", "organization", "user")
            for verb in ("create", "update", "delete")
        ),
        *(
            f"{entity}.collaborator.{verb}"
            for entity in ("application", "gateway")
            for verb in ("update", "delete")
        ),
        "as.pubsub.set",
        "as.pubsub.delete",
        "as.down.data.receive",
        "as.down.data.forward",
        "as.up.data.forward",
        "as.up.data.receive",
        "as.up.join.receive",
        "as.up.join.forward",
        "ns.up.data.receive",
        "ns.up.data.process",
        "ns.up.data.forward",
        "ns.up.join.receive",
        "ns.up.join.process",
        "ns.up.join.accept.forward",
        "ns.down.data.schedule.attempt",
        "js.join.accept",
        "js.join.reject",
        "gs.up.receive",
        "gs.gateway.connect",
        "gs.gateway.disconnect",
    ]
)
_START = "events.stream.start"
HISTORY_TTL_S = 600.0  # the real server keeps event payloads 10 minutes by default
HISTORY_PER_ENTITY = 100  # and at most about 100 events per entity


@dataclass(frozen=True)
class Origin:
    """Who caused the events of one request (every event of the request carries it)."""

    user_agent: str = ""
    remote_ip: str = ""
    token_id: str = ""


# Set by the request pipeline for the request being handled: makes the request's origin (called
# only when the request publishes an event).
current_origin: contextvars.ContextVar[Callable[[], Origin] | None] = contextvars.ContextVar(
    "current_origin", default=None
)


def _ids_match(wanted: dict[str, Any], event_ids: dict[str, Any]) -> bool:
    """Whether an event's identifiers fall under a requested identifier."""
    if "application_ids" in wanted:
        app = wanted["application_ids"].get("application_id")
        if "application_ids" in event_ids:
            return bool(event_ids["application_ids"].get("application_id") == app)
        if "device_ids" in event_ids:
            return bool(
                event_ids["device_ids"].get("application_ids", {}).get("application_id") == app
            )
        return False
    if "device_ids" in wanted and "device_ids" in event_ids:
        w, e = wanted["device_ids"], event_ids["device_ids"]
        return bool(
            w.get("device_id") == e.get("device_id")
            and w.get("application_ids", {}).get("application_id")
            == e.get("application_ids", {}).get("application_id")
        )
    for kind, key in (
        ("gateway_ids", "gateway_id"),
        ("organization_ids", "organization_id"),
        ("user_ids", "user_id"),
    ):
        if kind in wanted and kind in event_ids:
            return bool(wanted[kind].get(key) == event_ids[kind].get(key))
    return False


class Subscription:
    def __init__(self, identifiers: list[dict[str, Any]], names: list[str] | None) -> None:
        self.identifiers = identifiers
        self.names = frozenset(names) if names else None
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def next(self, idle: float | None) -> dict[str, Any] | None:
        """The next event, or None when the stream ends (shutdown or idle timeout)."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout=idle)
        except TimeoutError:
            return None

    def matches(self, event: dict[str, Any]) -> bool:
        if self.names is not None and event["name"] not in self.names:
            return False
        return any(
            _ids_match(wanted, ids) for wanted in self.identifiers for ids in event["identifiers"]
        )


def _entity_key(identifiers: dict[str, Any]) -> str:
    return json.dumps(identifiers, sort_keys=True, separators=(",", ":"))


class EventBus:
    """Recent events per entity (for `tail`/`after`) and live subscribers."""

    def __init__(self) -> None:
        # entity identifiers -> (monotonic time, event), oldest first, per entity
        self.entities: dict[str, deque[tuple[float, dict[str, Any]]]] = {}
        self.subscribers: set[Subscription] = set()
        self.history_ttl_s = HISTORY_TTL_S
        self.history_per_entity = HISTORY_PER_ENTITY
        self._published = 0

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Apply the `events` part of `PUT /_emulator/config`; ValueError when invalid.
        `drop_streams: true` ends every open stream now (a lost connection)."""
        unknown = set(settings) - {"history_ttl_s", "history_per_entity", "drop_streams"}
        if unknown:
            raise ValueError(f"unknown event settings: {', '.join(sorted(unknown))}")
        try:
            ttl = float(settings.get("history_ttl_s", self.history_ttl_s))
            per_entity = int(settings.get("history_per_entity", self.history_per_entity))
        except (TypeError, ValueError):
            raise ValueError("event history settings must be numbers") from None
        if ttl < 0 or per_entity < 0:
            raise ValueError("event history settings must not be negative")
        self.history_ttl_s, self.history_per_entity = ttl, per_entity
        for entity, events in list(self.entities.items()):
            self.entities[entity] = deque(events, maxlen=per_entity)
        if settings.get("drop_streams"):
            self.close()
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        return {
            "history_ttl_s": self.history_ttl_s,
            "history_per_entity": self.history_per_entity,
            "open_streams": len(self.subscribers),
        }

    def recent(self, subscription: Subscription) -> list[dict[str, Any]]:
        """The kept events the subscription matches, oldest first."""
        oldest = time.monotonic() - self.history_ttl_s
        found = [
            (kept, event)
            for events in self.entities.values()
            for kept, event in events
            if kept >= oldest and subscription.matches(event)
        ]
        return [event for _, event in sorted(found, key=lambda item: item[0])]

    def publish(
        self, name: str, identifiers: list[dict[str, Any]], data: dict[str, Any] | None = None
    ) -> None:
        event: dict[str, Any] = {
            "name": name,
            "time": now_timestamp(),
            "identifiers": identifiers,
            "correlation_ids": [f"emulator:{uuid.uuid4().hex}"],
            "origin": "emulator",
            "visibility": {"rights": ["RIGHT_APPLICATION_ALL"]},
            "unique_id": uuid.uuid4().hex.upper(),
        }
        if data is not None:
            event["data"] = data
        origin_of = current_origin.get()
        if origin_of is not None:
            origin = origin_of()
            if origin.token_id:
                event["authentication"] = {
                    "type": "Bearer",
                    "token_type": "APIKey",
                    "token_id": origin.token_id,
                }
            if origin.remote_ip:
                event["remote_ip"] = origin.remote_ip
            if origin.user_agent:
                event["user_agent"] = origin.user_agent
        if self.history_per_entity:
            now = time.monotonic()
            for ids in identifiers:
                key = _entity_key(ids)
                kept = self.entities.get(key)
                if kept is None:
                    kept = self.entities[key] = deque(maxlen=self.history_per_entity)
                while kept and kept[0][0] < now - self.history_ttl_s:
                    kept.popleft()
                kept.append((now, event))
            self._published += 1
            if self._published % 10_000 == 0:
                # Entities that went quiet (deleted devices) keep nothing past the TTL either.
                oldest = now - self.history_ttl_s
                for key in [
                    k for k, kept in self.entities.items() if not kept or kept[-1][0] < oldest
                ]:
                    del self.entities[key]
        for subscription in self.subscribers:
            if subscription.matches(event):
                subscription.queue.put_nowait(event)

    def close(self) -> None:
        """End every open stream."""
        for subscription in self.subscribers:
            subscription.queue.put_nowait(None)
        self.subscribers.clear()


def paths_data(paths: list[str]) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.protobuf.FieldMask", "paths": list(paths)}


def device_identifiers(ids: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"device_ids": ids}]


def publish_batch_delete(
    call: Call, prefix: str, app_id: str, deleted: list[dict[str, Any]]
) -> None:
    """A registry's batch delete: one `<prefix>end_device.batch.delete` event on the
    application, naming the devices it deleted in its data (nothing when none was there), as
    the real registries publish it."""
    if not deleted:
        return
    call.emu.events.publish(
        f"{prefix}end_device.batch.delete",
        [{"application_ids": {"application_id": app_id}}],
        {
            "@type": "type.googleapis.com/ttn.lorawan.v3.EndDeviceIdentifiersList",
            "end_device_ids": [dict(ids) for ids in deleted],
        },
    )


def _names(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise errors.DecodeError("invalid value for repeated string field names")
    if not raw:
        return None
    selected: list[str] = []
    for name in raw:
        if len(name) > 2 and name.startswith("/") and name.endswith("/"):
            pattern = name[1:-1]
            try:
                regex = re.compile(pattern)
            except re.error:
                raise errors.TTSError(
                    "pkg/events",
                    "invalid_regexp",
                    "invalid regexp",
                    errors.INVALID_ARGUMENT,
                    {"regexp": pattern},
                ) from None
            matched = [known for known in sorted(KNOWN_EVENTS) if regex.search(known)]
            if not matched:
                raise errors.TTSError(
                    "pkg/events",
                    "no_matching_events",
                    "no matching events for regexp `{regexp}`",
                    errors.INVALID_ARGUMENT,
                    {"regexp": pattern},
                )
            selected.extend(matched)
        elif name in KNOWN_EVENTS:
            selected.append(name)
        else:
            raise errors.TTSError(
                "pkg/events",
                "unknown_event_name",
                "unknown event `{name}`",
                errors.INVALID_ARGUMENT,
                {"name": name},
            )
    return selected


async def stream(call: Call) -> StreamingResponse:
    from reconciler.emulator.tts.identity import require_entity_access

    body = call.body
    identifiers = body.get("identifiers")
    if not isinstance(identifiers, list | type(None)):
        raise errors.DecodeError("invalid value for repeated field identifiers")
    identifiers = [i for i in identifiers or [] if isinstance(i, dict) and i]
    tail = body.get("tail", 0) or 0
    if isinstance(tail, str) and tail.isdigit():
        tail = int(tail)
    if not isinstance(tail, int) or isinstance(tail, bool) or tail < 0:
        raise errors.DecodeError("invalid value for uint32 field tail")
    after = decode_timestamp(body["after"], "after") if body.get("after") else None
    names = _names(body.get("names"))
    if not identifiers:
        raise errors.TTSError(
            "pkg/events/grpc", "no_identifiers", "no identifiers", errors.INVALID_ARGUMENT
        )
    caller = call.caller()
    for ids in identifiers:
        require_entity_access(call, caller, ids)

    bus = call.emu.events
    subscription = Subscription(identifiers, names)
    backlog: list[dict[str, Any]] = []
    if tail or after:
        after_key = timestamp_key(after) if after else None
        backlog = [
            e
            for e in bus.recent(subscription)
            if after_key is None or timestamp_key(e["time"]) > after_key
        ]
        if tail:
            backlog = backlog[-tail:]
    bus.subscribers.add(subscription)
    sse = "text/event-stream" in (call.request.headers.get("accept") or "")
    separator = "\n\n" if sse else "\n"
    start = {
        "name": _START,
        "time": now_timestamp(),
        "identifiers": identifiers,
        "origin": "emulator",
        "unique_id": uuid.uuid4().hex.upper(),
    }
    idle = call.emu.faults.event_stream_idle_s

    async def messages() -> AsyncIterator[str]:
        try:
            for event in [start, *backlog]:
                yield json.dumps({"result": event}, separators=(",", ":")) + separator
            while True:
                live = await subscription.next(idle)
                if live is None:
                    return
                yield json.dumps({"result": live}, separators=(",", ":")) + separator
        finally:
            bus.subscribers.discard(subscription)

    media = "text/event-stream" if sse else "application/json"
    return StreamingResponse(messages(), media_type=media)


def operations() -> list[Operation]:
    from reconciler.emulator.tts.app import Operation

    return [Operation("POST", "/events", "Events/Stream", stream, body=True, stream=True)]
