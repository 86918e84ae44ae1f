"""The MQTT side of the running recorder: one thread that owns the broker connection.

The recorder never waits for the broker. Events reach MQTT only through the journal: the bus listener
installed here just wakes the publisher thread, which reads the journal and publishes. A dead broker
therefore costs nothing but a growing backlog, which drains in order after the next connect.

Each connection attempt uses a fresh paho client (network thread from `loop_start`, automatic
reconnect off): whatever was queued in a client dies with it, and the next connection starts from the
journal and from the Device's current state. This makes the order after a reconnect a property of
the journal, not of paho's internal resend queue, and keeps stale retained states from overtaking
fresh ones. Trouble after `start()` is logged and raised as an `alarm.raised` event of kind `mqtt`,
never as an exception into the caller.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from callrec.config import MqttSettings
from callrec.control import Device
from callrec.events import Event, EventBus, StampedEvent
from callrec.evidence import HEAD_EVENT
from callrec.mqtt.backlog import JournalKeeper
from callrec.mqtt.client import new_client
from callrec.mqtt.commands import CommandHandler
from callrec.mqtt.discovery import discovery_payload
from callrec.mqtt.publisher import EventWindow
from callrec.mqtt.topics import (
    ALARM_FIELDS,
    HEAD_FIELDS,
    LINE_STATE_FIELDS,
    STATS_FIELDS,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    Topics,
)
from callrec.mqtt.witness import head_payload, journaled_head

log = logging.getLogger(__name__)

ALARM_CONNECTION = "mqtt.connection"
ALARM_JOURNAL_OVERFLOW = "mqtt.journal_overflow"
_CONNACK_TIMEOUT_S = 10.0
_STOP_FLUSH_S = 2.0
# CONNACK codes that no retry will fix: the configuration must change (3.1.1 and 5.0 numbering).
_LOGIN_REFUSED = {4, 5, 134, 135}


@dataclass
class _Session:
    """What one connection attempt shares between the network thread and the publisher thread."""

    client: mqtt.Client
    connack: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    reason: ReasonCode | None = None
    acks: deque[int] = field(default_factory=deque)


class MqttService:
    """Publishes the journal, the line states, alarms and stats; takes commands; announces to HA.

    `start()` returns at once; `stop()` publishes `offline`, disconnects and joins the thread.
    With `settings.host` unset only the journal bounds are enforced.
    """

    def __init__(
        self,
        settings: MqttSettings,
        bus: EventBus,
        device: Device,
        *,
        clock: Callable[[], float] = time.time,
        housekeeping_interval_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self._bus = bus
        self._device = device
        self._clock = clock
        self._housekeeping_interval_s = housekeeping_interval_s
        self.topics = Topics(settings.base_topic, settings.device_id, settings.discovery_prefix)
        self._keeper = JournalKeeper(bus.journal.path)
        self._window = EventWindow(bus.journal, settings.max_inflight)
        self._commands = CommandHandler(device)
        # Commands run on a thread of their own: a Device command may take seconds (it waits for the
        # core), and the event stream must not wait for it.
        self._command_queue: queue.SimpleQueue[tuple[_Session, str, bytes, bool] | None] = queue.SimpleQueue()
        self._command_thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: _Session | None = None
        # Flags set by the bus listener (any thread) and cleared by the publisher thread before it
        # reads the Device, so a change arriving meanwhile sets them again and is not lost.
        self._states_dirty = True
        self._alarms_dirty = True
        self._discovery_due = True
        self._head: dict[str, Any] | None = None   # the ledgers' heads, retained on B/evidence/head
        self._head_dirty = False
        self._last_states: dict[int, dict[str, Any]] = {}
        self._last_alarms: list[dict[str, Any]] | None = None
        self._next_stats = 0.0
        self._stats_due = False
        self._next_housekeeping = 0.0
        self._raised: set[str] = set()
        self._outage_since: float | None = None
        self._last_failure = ""
        self.dropped_undelivered = 0
        self._listening = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("MqttService already started")
        if not self._listening:
            self._bus.subscribe(self._on_bus_event)
            self._listening = True
        if self.settings.enabled:
            log.info("MQTT: publishing to %s:%d as %s", self.settings.host, self.settings.port, self.topics.root)
        else:
            log.info("MQTT off (mqtt.host unset); only the journal bounds are kept")
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()
        self._command_thread = threading.Thread(target=self._run_commands, name="mqtt-commands", daemon=True)
        self._command_thread.start()

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until the journal holds no undelivered event (or the broker is away): for a clean
        stop that leaves nothing for next time. Returns True when everything was delivered."""
        if not self.settings.enabled:
            return True   # nothing is published, so nothing waits for delivery
        deadline = time.monotonic() + timeout
        ever_connected = False
        while time.monotonic() < deadline:
            if not self._bus.journal.undelivered(1):
                return True
            ever_connected = ever_connected or self.connected
            if ever_connected and not self.connected:
                return False   # the broker went away: the journal keeps the rest for next time
            time.sleep(0.02)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Publish `offline`, disconnect cleanly and wait for the thread; safe to call twice."""
        self._stopping.set()
        self._wake.set()
        self._command_queue.put(None)
        if self._command_thread is not None:
            self._command_thread.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("MQTT publisher did not stop within %.1f s", timeout)
        self._keeper.close()

    @property
    def connected(self) -> bool:
        session = self._session
        return session is not None and session.connack.is_set() and not session.ended.is_set()

    def backlog_size(self) -> int:
        return self._keeper.backlog_size()

    # -- bus listener: runs on the emitting thread under the bus lock, so it only sets flags --------

    def _on_bus_event(self, stamped: StampedEvent) -> None:
        if self._stopping.is_set():
            return
        kind = stamped.event.type
        if kind == "line.state":
            self._states_dirty = True
        elif kind.startswith("alarm."):
            self._alarms_dirty = True
        elif kind == "call.ended":
            self._stats_due = True   # calls_today and recordings_stored moved: dashboards see it now
        elif kind == HEAD_EVENT:
            self._head, self._head_dirty = head_payload(stamped), True
        self._wake.set()

    # -- the publisher thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._housekeeping(force=True)
            if not self.settings.enabled:
                while not self._stopping.is_set():
                    self._housekeeping()
                    self._stopping.wait(1.0)
                return
            delay = self.settings.reconnect_min_s
            while not self._stopping.is_set():
                if self._connect_and_serve():
                    delay = self.settings.reconnect_min_s
                if self._stopping.is_set():
                    break
                self._idle(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.settings.reconnect_max_s)
        except Exception:  # the last line of defence: the recorder must keep recording
            log.exception("MQTT publisher thread crashed; MQTT is off until the service restarts")
            self._raise_alarm(ALARM_CONNECTION, "MQTT publisher crashed; see the log")

    def _idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            self._housekeeping()
            self._check_outage()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stopping.wait(min(remaining, 1.0))

    def _connect_and_serve(self) -> bool:
        """One connection from connect to its end; True if the broker accepted us."""
        try:
            client = self._make_client()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._failure(f"MQTT configuration unusable: {exc}", config_error=True)
            return False
        session = _Session(client)
        self._wire_callbacks(session)
        host, port = self.settings.host or "", self.settings.port
        try:
            client.connect(host, port, keepalive=self.settings.keepalive, clean_start=True)
        except ssl.SSLError as exc:
            self._failure(f"TLS handshake with {host}:{port} failed: {exc}", config_error=True)
            return False
        except (OSError, ValueError) as exc:
            self._failure(f"cannot reach MQTT broker {host}:{port}: {exc}")
            return False
        # paho's own network thread; it is the only writer on the socket, so packets leave in the
        # order they were published (two writers could interleave them).
        client.loop_start()
        try:
            deadline = time.monotonic() + _CONNACK_TIMEOUT_S
            while not (session.connack.is_set() or session.ended.is_set() or self._stopping.is_set()):
                if time.monotonic() > deadline:
                    break
                session.connack.wait(0.1)
            if not session.connack.is_set():
                if session.reason is not None and session.reason.is_failure:
                    self._refused(session.reason)
                elif not self._stopping.is_set():
                    self._failure(f"MQTT broker {host}:{port} did not accept the connection")
                return False
            self._session = session
            self._connected()
            self._serve(session)
            return True
        finally:
            self._session = None
            if self._stopping.is_set() and session.connack.is_set() and not session.ended.is_set():
                self._say_goodbye(session)
            session.ended.set()
            _release(client)

    def _make_client(self) -> mqtt.Client:
        client = new_client(self.settings, f"callrec-{self.settings.device_id}")
        client.will_set(self.topics.status, STATUS_OFFLINE, qos=1, retain=True)
        # Room for the event window plus the retained states of a reconnect, so paho never holds
        # messages back in a queue of its own.
        client.max_inflight_messages_set(self.settings.max_inflight + 100)
        return client

    def _wire_callbacks(self, session: _Session) -> None:
        def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
            session.reason = reason
            if not reason.is_failure:
                session.connack.set()
            else:
                session.ended.set()
            self._wake.set()

        def on_disconnect(client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
            session.ended.set()
            self._wake.set()

        def on_publish(client: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
            session.acks.append(mid)
            self._wake.set()

        def on_message(client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            if message.topic == self.topics.ha_status:
                if message.payload.strip() == STATUS_ONLINE.encode() and not message.retain:
                    log.info("Home Assistant came online; announcing the device again")
                    self._discovery_due = True
                    self._wake.set()
                return
            name = self.topics.command_name(message.topic)
            if name is not None:
                self._command_queue.put((session, name, bytes(message.payload), bool(message.retain)))

        session.client.on_connect = on_connect
        session.client.on_disconnect = on_disconnect
        session.client.on_publish = on_publish
        session.client.on_message = on_message

    def _connected(self) -> None:
        if self._outage_since is not None or self._last_failure:
            log.info("MQTT connected to %s:%d", self.settings.host, self.settings.port)
        else:
            log.info("MQTT connected")
        self._outage_since = None
        self._last_failure = ""
        self._clear_alarm(ALARM_CONNECTION)

    def _serve(self, session: _Session) -> None:
        client = session.client
        self._window.reset()
        # Retain-as-published: a retained command keeps its flag even when it arrives live, so it
        # is ignored (docs/mqtt.md) rather than run now and again at every reconnect.
        client.subscribe(self.topics.cmd_filter, options=SubscribeOptions(qos=1, retainAsPublished=True))
        if self.settings.discovery:
            client.subscribe(self.topics.ha_status, qos=1)
        # Every retained topic again, fresh from the Device, then `online`.
        self._publish_states(client, force=True)
        self._publish_alarms(client, force=True)
        self._publish_stats(client)
        self._publish_head(client)
        self._publish_discovery(client)
        self._publish(client, self.topics.status, STATUS_ONLINE, retain=True)
        while not session.ended.is_set() and not self._stopping.is_set():
            self._window.acknowledged(_drain(session.acks))
            now = time.monotonic()
            if self._states_dirty:
                self._publish_states(client)
            if self._alarms_dirty:
                self._publish_alarms(client)
            if now >= self._next_stats or self._stats_due:
                self._publish_stats(client)
            if self._discovery_due:
                self._publish_discovery(client)
            if self._head_dirty:
                self._publish_head(client)
            if not self._publish_events(client):
                break
            self._housekeeping()
            self._wake.wait(0.5)
            self._wake.clear()
        self._window.acknowledged(_drain(session.acks))

    def _say_goodbye(self, session: _Session) -> None:
        """A clean stop: `offline` retained, then DISCONNECT (so the broker does not fire the will)."""
        try:
            self._publish_stats(session.client)   # the last figures, fresh, before going away
            info = session.client.publish(self.topics.status, STATUS_OFFLINE, qos=1, retain=True)
            info.wait_for_publish(_STOP_FLUSH_S)
            self._window.acknowledged(_drain(session.acks))
            session.client.disconnect()
            deadline = time.monotonic() + _STOP_FLUSH_S
            while not session.ended.is_set() and time.monotonic() < deadline:
                session.ended.wait(0.05)
        except (RuntimeError, ValueError, OSError):
            log.warning("could not publish offline before stopping", exc_info=True)

    # -- publishing ------------------------------------------------------------------------------

    def _publish(self, client: mqtt.Client, topic: str, payload: str, *, retain: bool) -> int | None:
        info = client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return info.mid

    def _publish_events(self, client: mqtt.Client) -> bool:
        while batch := self._window.next_batch():
            for stamped in batch:
                mid = self._publish(client, self.topics.event, stamped.to_json(), retain=False)
                if mid is None:
                    return False
                self._window.sent(mid, stamped.seq)
        return True

    def _publish_states(self, client: mqtt.Client, *, force: bool = False) -> None:
        self._states_dirty = False
        if force:
            self._last_states.clear()
        try:
            states = self._device.line_states()
        except Exception:
            log.exception("Device.line_states() failed; line states not published")
            return
        for state in states:
            line = int(state["line"])
            payload = {key: state.get(key) for key in LINE_STATE_FIELDS}
            if self._last_states.get(line) != payload:
                self._publish(client, self.topics.line_state(line), _json(payload), retain=True)
                self._last_states[line] = payload

    def _publish_alarms(self, client: mqtt.Client, *, force: bool = False) -> None:
        self._alarms_dirty = False
        try:
            alarms = [{key: alarm.get(key) for key in ALARM_FIELDS} for alarm in self._device.active_alarms()]
        except Exception:
            log.exception("Device.active_alarms() failed; alarms not published")
            return
        if force or alarms != self._last_alarms:
            self._publish(client, self.topics.alarms, _json(alarms), retain=True)
            self._last_alarms = alarms

    def _publish_stats(self, client: mqtt.Client) -> None:
        self._stats_due = False
        self._next_stats = time.monotonic() + self.settings.stats_interval_s
        try:
            stats = dict(self._device.stats())
        except Exception:
            log.exception("Device.stats() failed; stats published without the device's figures")
            stats = {}
        stats["backlog"] = self._keeper.backlog_size()
        payload = {key: stats.get(key) for key in STATS_FIELDS}
        self._publish(client, self.topics.stats, _json(payload), retain=True)

    def _publish_head(self, client: mqtt.Client) -> None:
        """The ledgers' heads, retained: a witness of them off the device (docs/privacy.md)."""
        self._head_dirty = False
        if self._head is None:
            try:
                self._head = journaled_head(self._bus.journal)
            except (sqlite3.Error, OSError, ValueError):
                log.exception("the journaled evidence head cannot be read; published at the next change")
        if self._head is not None:
            self._publish(client, self.topics.evidence_head, _json({k: self._head.get(k) for k in HEAD_FIELDS}),
                          retain=True)

    def _publish_discovery(self, client: mqtt.Client) -> None:
        self._discovery_due = False
        if not self.settings.discovery:
            # Switched off: an empty retained config removes the device from HA.
            self._publish(client, self.topics.discovery, "", retain=True)
            return
        try:
            lines = sorted(int(state["line"]) for state in self._device.line_states())
        except Exception:
            log.exception("Device.line_states() failed; discovery not published")
            return
        payload = discovery_payload(self.topics, lines)
        self._publish(client, self.topics.discovery, _json(payload), retain=True)

    def _run_commands(self) -> None:
        while (item := self._command_queue.get()) is not None:
            session, name, payload, retained = item
            if session.ended.is_set() or self._stopping.is_set():
                # Arrived on a connection that is gone: the sender got no result and may retry;
                # running it now could act long after the sender gave up.
                log.info("dropping command %r from a closed connection", name[:64])
                continue
            try:
                result = self._commands.handle(name, payload, retained=retained)
                if result is not None:
                    self._publish(session.client, self.topics.cmd_result, _json(result), retain=False)
            except Exception:
                log.exception("command handling failed")

    # -- journal bounds and alarms ---------------------------------------------------------------

    def _housekeeping(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_housekeeping:
            return
        self._next_housekeeping = now + self._housekeeping_interval_s
        settings = self.settings
        try:
            result = self._keeper.prune(
                max_events=settings.journal_max_events, max_days=settings.journal_max_days, now=self._clock()
            )
        except sqlite3.OperationalError as error:   # a full disk, a journal not there yet
            log.warning("journal pruning failed (%s); will retry", error)
            return
        except Exception:
            log.exception("journal pruning failed; will retry")
            return
        if result.dropped:
            log.info("journal bound: dropped %d oldest events (%d undelivered)", result.dropped, result.undelivered)
        if result.undelivered and settings.enabled:
            self.dropped_undelivered += result.undelivered
            message = (
                f"event journal full: {self.dropped_undelivered} events were dropped before MQTT delivered "
                f"them (bound {settings.journal_max_events} events / {settings.journal_max_days:g} days)"
            )
            log.error("%s", message)
            self._raise_alarm(ALARM_JOURNAL_OVERFLOW, message)
        elif ALARM_JOURNAL_OVERFLOW in self._raised and self.connected and self._keeper.backlog_size() == 0:
            self.dropped_undelivered = 0
            self._clear_alarm(ALARM_JOURNAL_OVERFLOW)

    def _failure(self, message: str, *, config_error: bool = False) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
        if message != self._last_failure:  # one line per new kind of trouble, not one per retry
            (log.error if config_error else log.warning)("%s; retrying with backoff", message)
            self._last_failure = message
        if config_error:
            self._raise_alarm(ALARM_CONNECTION, message)
        else:
            self._check_outage()

    def _refused(self, reason: ReasonCode) -> None:
        who = f"user {self.settings.username!r}" if self.settings.username else "anonymous login"
        if reason.value in _LOGIN_REFUSED:
            source = self.settings.password_source()
            self._failure(
                f"MQTT broker {self.settings.host}:{self.settings.port} refused {who}: {reason} "
                f"(check mqtt.username and the password in {source or 'no password file'})",
                config_error=True,
            )
        else:
            self._failure(f"MQTT broker {self.settings.host}:{self.settings.port} refused {who}: {reason}")

    def _check_outage(self) -> None:
        if self._outage_since is None or ALARM_CONNECTION in self._raised:
            return
        if time.monotonic() - self._outage_since >= self.settings.outage_alarm_after_s:
            self._raise_alarm(ALARM_CONNECTION, self._last_failure or "MQTT broker unreachable")

    def _raise_alarm(self, alarm_id: str, message: str) -> None:
        if alarm_id in self._raised:
            return
        self._raised.add(alarm_id)
        fields = {"id": alarm_id, "kind": "mqtt", "message": message}
        self._bus.emit(Event("alarm.raised", None, None, self._clock(), fields))

    def _clear_alarm(self, alarm_id: str) -> None:
        if alarm_id not in self._raised:
            return
        self._raised.discard(alarm_id)
        self._bus.emit(Event("alarm.cleared", None, None, self._clock(), {"id": alarm_id, "kind": "mqtt"}))


def _release(client: mqtt.Client) -> None:
    """Close what is left of a finished connection; the client object is never used again."""
    try:
        client.disconnect()
        client.loop_stop()
    except Exception:  # already closed
        log.debug("disconnect after session end failed", exc_info=True)
    sock = client.socket()
    if sock is not None:
        try:
            sock.close()
        except OSError:
            log.debug("closing the MQTT socket failed", exc_info=True)


def _drain(acks: deque[int]) -> list[int]:
    out = []
    while acks:
        out.append(acks.popleft())
    return out


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
