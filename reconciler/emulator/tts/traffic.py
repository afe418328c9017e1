"""Emulated traffic: end devices that join and send uplinks, as on a live network.

Off by default; `reconciler emulator serve --traffic-interval SECONDS` or `PUT /_emulator/config
{"traffic_interval": SECONDS}` (null or 0: off) turns it on. SECONDS is the mean time between
two uplinks of one device; each gap is drawn uniformly between half and one and a half times it.

What one uplink does, following what the real servers store (the server-managed fields):

* OTAA device without a session: a join. The Join Server counts nonces (`last_join_nonce`;
  `last_dev_nonce` for LoRaWAN 1.0.4 and 1.1, `used_dev_nonces` before); the Network Server
  gets a `pending_session` (new DevAddr and session keys) and `pending_mac_state`, the
  Application Server a `pending_session` with the AppSKey. A device whose Join Server record or
  AppKey is missing is rejected (`js.join.reject`) and tries again on its next uplink.
* Data uplink (OTAA after a join, ABP with its configured session): the first one of a new
  session makes the pending session current on the Network and Application Servers (and sets
  `ids.dev_addr`); every one counts `session.last_f_cnt_up` and keeps `mac_state` on the Network
  Server, whose record (and `updated_at`) is written each time, and every 200th (and the first
  of a session) reports device status (`battery_percentage`, `downlink_margin`,
  `last_dev_status_received_at`), as the Network Server's default DevStatusReq periodicity asks.
* The Identity Server gets `last_seen_at` on every uplink and `activated_at` on the first; its
  `updated_at` does not move and it publishes no registry event, as on the real server.
* Events, as the real servers name them: `ns.up.join.receive`, `js.join.accept` (or
  `js.join.reject`), `ns.up.join.process`, `ns.up.join.accept.forward`, `as.up.join.receive`,
  `as.up.join.forward` for a join; `ns.up.data.receive`, `ns.up.data.process`,
  `ns.up.data.forward`, `as.up.data.receive`, `as.up.data.forward` for an uplink.

Simplified: no gateways (no `gs.*` events, no downlinks or MAC commands answered, ADR never
changes the data rate), the join-accept is taken as delivered, frame counters start at 0 with
each session, and the Identity Server's `last_seen_at` is written at once (the real Application
Server batches it).

Cost: one scheduler, not a task per device: a heap of (due time, device) that the serving
loop sleeps on, so an idle fleet costs nothing and 10,000 devices at one uplink per 10 minutes
are about 17 short dictionary updates a second. Devices enter it when their Network Server
record is created (and all at once when traffic is switched on); a deleted device leaves it
when it comes due. With a seed (`TTSConfig.seed`), the order of uplinks, DevAddrs, keys and nonces
repeat; tests drive a manual clock with `advance(seconds)` instead of the serving loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import math
import random
import time
from typing import TYPE_CHECKING, Any

from reconciler.emulator.faults import Setting
from reconciler.emulator.tts.codec import now_timestamp
from reconciler.emulator.tts.events import current_origin, device_identifiers

if TYPE_CHECKING:
    from reconciler.emulator.tts.app import Emulator

# The Network Server asks for device status every 200 uplinks by default.
DEV_STATUS_EVERY = 200
# The serving loop gives the event loop back after this many uplinks in one go.
BATCH = 500
# DevAddr block of The Things Network's NetID 0x000013 (26000000/7): addresses start 26/27.
DEV_ADDR_PREFIX = 0x26000000
DEV_ADDR_SPAN = 1 << 25
# LoRaWAN versions whose devices count DevNonce up (1.0.4, 1.1); older ones pick it at random.
COUNTING_DEV_NONCE = frozenset({"MAC_V1_0_4", "MAC_V1_1"})


def parse_interval(value: Any) -> float | None:
    """A `traffic_interval` setting: seconds > 0, or None / 0 for off. ValueError otherwise."""
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("traffic_interval: want seconds (a number) or null")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"traffic_interval: {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("traffic_interval must be a positive number of seconds (0 or null: off)")
    return seconds or None


class Traffic:
    """The scheduler of emulated uplinks for one emulator."""

    def __init__(
        self, emu: Emulator, interval: float | None, seed: int | None, *, manual_clock: bool
    ) -> None:
        self.emu = emu
        self.interval = parse_interval(interval)
        self.rng = random.Random(seed)
        self.manual_clock = manual_clock
        self._manual_now = 0.0
        self._queue: list[tuple[float, int, str]] = []  # (due, tie-breaker, device key)
        self._scheduled: set[str] = set()
        self._sequence = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.counts = {"joins": 0, "join_rejects": 0, "uplinks": 0}
        if self.interval is not None:
            self._schedule_all()
        emu.faults.add_setting(
            "traffic_interval", Setting(lambda: self.interval, parse_interval, self.set_interval)
        )

    # --- clock and schedule ------------------------------------------------------------------

    def now(self) -> float:
        return self._manual_now if self.manual_clock else time.monotonic()

    def set_interval(self, interval: float | None) -> None:
        """A new mean interval (None: off); the whole fleet is rescheduled at random phases."""
        self.interval = interval
        self._queue.clear()
        self._scheduled.clear()
        if interval is not None:
            self._schedule_all()
        if self._wake is not None:
            self._wake.set()

    def _schedule_all(self) -> None:
        for key, _ in sorted(self.emu.store.ns_devices.items()):
            self._push(key, self.now() + self.rng.uniform(0, self._mean()))

    def _mean(self) -> float:
        return self.interval or 0.0

    def _push(self, key: str, due: float) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (due, self._sequence, key))
        self._scheduled.add(key)

    def track(self, key: str) -> None:
        """A device whose Network Server record was just created: its first uplink (or join)
        comes a jittered interval from now."""
        if self.interval is None or key in self._scheduled:
            return
        self._push(key, self.now() + self._gap())
        if self._wake is not None:
            self._wake.set()

    def _gap(self) -> float:
        return self._mean() * self.rng.uniform(0.5, 1.5)

    def run_due(self, until: float, limit: int | None = None) -> int:
        """Send every uplink due at or before `until` (at most `limit`); how many were due."""
        done = 0
        queue = self._queue
        while queue and queue[0][0] <= until and (limit is None or done < limit):
            _, _, key = heapq.heappop(queue)
            done += 1
            if self.interval is None:
                break
            if key not in self.emu.store.ns_devices:
                self._scheduled.discard(key)  # deleted; a new record tracks it again
                continue
            self._push(key, max(until, self.now()) + self._gap())
            self.uplink(key)
        return done

    def advance(self, seconds: float) -> int:
        """Manual clock (tests): move time on and send what came due; how many uplinks."""
        if not self.manual_clock:
            raise RuntimeError("advance() drives the manual clock only")
        self._manual_now += seconds
        return self.run_due(self._manual_now)

    # --- the serving loop --------------------------------------------------------------------

    def start(self) -> None:
        if self.manual_clock or self._task is not None:
            return
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tts-traffic")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        # Traffic comes from the radio side, not from the API request that started it: its
        # events name no caller (this task's own copy of the context).
        current_origin.set(None)
        wake = self._wake
        assert wake is not None
        while True:
            delay = None
            if self.interval is not None and self._queue:
                delay = self._queue[0][0] - self.now()
            if delay is None or delay > 0:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
                continue
            self.run_due(self.now(), BATCH)
            await asyncio.sleep(0)

    # --- one uplink --------------------------------------------------------------------------

    def uplink(self, key: str) -> None:
        store = self.emu.store
        ns = store.ns_devices.get(key)
        if ns is None or ns.get("multicast"):
            return
        if ns.get("supports_join") and not ns.get("session") and not ns.get("pending_session"):
            self._join(key, ns)
        elif ns.get("session") or ns.get("pending_session"):
            self._data_uplink(key, ns)

    def _publish(self, name: str, ids: dict[str, Any], data: dict[str, Any] | None = None) -> None:
        self.emu.events.publish(name, device_identifiers(ids), data)

    def _key(self) -> str:
        return f"{self.rng.getrandbits(128):032X}"

    def _join(self, key: str, ns: dict[str, Any]) -> None:
        store = self.emu.store
        now = now_timestamp()
        self._publish("ns.up.join.receive", ns["ids"])
        js = store.js_devices.get(key)
        app_key = ((js or {}).get("root_keys") or {}).get("app_key") or {}
        if js is None or not app_key.get("key"):
            self.counts["join_rejects"] += 1
            if js is not None:
                self._publish("js.join.reject", js["ids"])
            return
        mac_version = ns.get("lorawan_version", "")
        js["last_join_nonce"] = (js.get("last_join_nonce") or 0) + 1
        if mac_version in COUNTING_DEV_NONCE:
            js["last_dev_nonce"] = (js.get("last_dev_nonce") or 0) + 1
        else:
            js["used_dev_nonces"] = [*(js.get("used_dev_nonces") or []), self.rng.getrandbits(16)]
        js["updated_at"] = now
        store.js_devices.put(key, js)
        self._publish("js.join.accept", js["ids"])

        dev_addr = f"{DEV_ADDR_PREFIX + self.rng.randrange(DEV_ADDR_SPAN):08X}"
        session_key_id = base64.b64encode(self.rng.randbytes(16)).decode()
        network_key = {"key": self._key()}
        if mac_version == "MAC_V1_1":
            network_keys = {
                name: {"key": self._key()}
                for name in ("f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key")
            }
        else:  # LoRaWAN 1.0.x has one network session key
            network_keys = {
                name: dict(network_key)
                for name in ("f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key")
            }
        ns["pending_session"] = {
            "dev_addr": dev_addr,
            "keys": {"session_key_id": session_key_id, **network_keys},
        }
        ns["pending_mac_state"] = _mac_state(ns)
        ns["updated_at"] = now
        store.ns_devices.put(key, ns)
        self._publish("ns.up.join.process", ns["ids"])
        self._publish("ns.up.join.accept.forward", ns["ids"])
        self.counts["joins"] += 1

        application = store.as_devices.get(key)
        if application is None:
            return
        application["pending_session"] = {
            "dev_addr": dev_addr,
            "keys": {"session_key_id": session_key_id, "app_s_key": {"key": self._key()}},
            "started_at": now,
        }
        application["updated_at"] = now
        store.as_devices.put(key, application)
        ids = {**application["ids"], "dev_addr": dev_addr}
        self._publish("as.up.join.receive", ids)
        self._publish("as.up.join.forward", ids)

    def _data_uplink(self, key: str, ns: dict[str, Any]) -> None:
        store = self.emu.store
        now = now_timestamp()
        new_session = False
        pending = ns.pop("pending_session", None)
        if pending is not None:
            ns["session"] = {**pending, "started_at": now}
            ns["mac_state"] = ns.pop("pending_mac_state", None) or _mac_state(ns)
            new_session = True
        session = ns["session"]
        if "started_at" not in session:  # an ABP session starts with its first uplink
            session["started_at"] = now
            new_session = True
        if ns["ids"].get("dev_addr") != session.get("dev_addr"):
            # A new ids object: events already published keep the one they were sent with.
            ns["ids"] = {**ns["ids"], "dev_addr": session.get("dev_addr", "")}
        f_cnt = (session.get("last_f_cnt_up") or 0) + 1 if not new_session else 0
        session["last_f_cnt_up"] = f_cnt
        ns.setdefault("mac_state", _mac_state(ns))
        if new_session or f_cnt % DEV_STATUS_EVERY == 0:
            ns["battery_percentage"] = {"value": round(self.rng.uniform(0.2, 1.0), 2)}
            ns["downlink_margin"] = self.rng.randint(5, 30)
            ns["last_dev_status_received_at"] = now
        ns["updated_at"] = now
        store.ns_devices.put(key, ns)
        uplink = {"f_port": 1, "f_cnt": f_cnt, "frm_payload": "AQ=="}
        for name in ("ns.up.data.receive", "ns.up.data.process", "ns.up.data.forward"):
            self._publish(name, ns["ids"])
        self.counts["uplinks"] += 1

        application = store.as_devices.get(key)
        if application is not None:
            self._application_session(key, application, ns, now)
            self._publish("as.up.data.receive", ns["ids"])
            self._publish(
                "as.up.data.forward",
                ns["ids"],
                {
                    "@type": "type.googleapis.com/ttn.lorawan.v3.ApplicationUp",
                    "end_device_ids": ns["ids"],
                    "uplink_message": uplink,
                    "received_at": now,
                },
            )

        identity = store.is_devices.get(key)
        if identity is not None:
            identity["last_seen_at"] = now
            identity.setdefault("activated_at", now)
            store.is_devices.put(key, identity)

    def _application_session(
        self, key: str, application: dict[str, Any], ns: dict[str, Any], now: str
    ) -> None:
        """The Application Server on an uplink: it stores the device only when the session
        changes (the pending one confirmed, or one restored)."""
        session = ns["session"]
        pending = application.get("pending_session")
        if pending is not None and pending.get("dev_addr") == session.get("dev_addr"):
            application["session"] = application.pop("pending_session")
        elif not application.get("session") and ns.get("supports_join"):
            # Registered on the AS after the join: it restores the session with the AppSKey it
            # gets from the Join Server.
            application["session"] = {
                "dev_addr": session.get("dev_addr", ""),
                "keys": {
                    "session_key_id": session.get("keys", {}).get("session_key_id", ""),
                    "app_s_key": {"key": self._key()},
                },
                "started_at": now,
            }
        else:
            return
        application["ids"] = {**application["ids"], "dev_addr": session.get("dev_addr", "")}
        application["updated_at"] = now
        self.emu.store.as_devices.put(key, application)

    def snapshot(self) -> dict[str, Any]:
        return {
            "traffic_interval": self.interval,
            "devices": len(self._scheduled),
            **self.counts,
        }


def _mac_state(ns: dict[str, Any]) -> dict[str, Any]:
    """The MAC state a new session starts with (the parameters of the device's band defaults;
    simplified to what every band shares)."""
    return {
        "lorawan_version": ns.get("lorawan_version", ""),
        "device_class": "CLASS_A",
        "current_parameters": {"rx1_delay": "RX_DELAY_1", "adr_nb_trans": 1, "max_eirp": 16},
        "desired_parameters": {"rx1_delay": "RX_DELAY_5", "adr_nb_trans": 1, "max_eirp": 16},
        "rx_windows_available": True,
    }
