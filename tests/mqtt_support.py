"""Real parts for the MQTT tests: a mosquitto broker process, a recording subscriber, a small Device.

The broker is the real mosquitto with persistence on, so killing and restarting it behaves as in the
field (retained messages survive). The Device is our own control API, implemented just far enough to
hold line states and alarms and to log the commands it accepted.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from callrec.config import MqttSettings
from callrec.control import CommandError
from callrec.events import Event, EventBus, StampedEvent, utc_iso
from callrec.mqtt import MqttService
from callrec.store import Journal
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=callrec test CA",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
        "-out", "server.csr")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    return TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")


class Broker:
    """A mosquitto child process on 127.0.0.1 with its own directory and persistence."""

    def __init__(
        self,
        directory: Path,
        *,
        tls: TlsFiles | None = None,
        users: dict[str, str] | None = None,
        persistence: bool = True,
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "persist").mkdir(exist_ok=True)
        lines = [
            "user root",
            f"listener {self.port} 127.0.0.1",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {directory / 'persist'}/",
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_inflight_messages 100",
        ]
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        if users:
            pwfile = directory / "passwd"
            for i, (user, password) in enumerate(users.items()):
                flags = ["-b", "-c"] if i == 0 else ["-b"]
                subprocess.run(["mosquitto_passwd", *flags, str(pwfile), user, password], check=True)
            lines += [f"password_file {pwfile}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        log_file = (self.directory / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.config)], stdout=log_file, stderr=log_file
        )
        log_file.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    output = (self.directory / "mosquitto.log").read_text()
                    raise RuntimeError(f"mosquitto exited: {output}") from None
                time.sleep(0.01)
        raise RuntimeError("mosquitto did not open its port")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class Subscriber:
    """A real MQTT v5 client recording everything under its filters, with the retain flag as sent."""

    def __init__(self, broker: Broker, *filters: str, **tls: Any) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if broker.tls is not None:
            self.client.tls_set(ca_certs=str(broker.tls.ca))
        if "username" in tls:
            self.client.username_pw_set(tls["username"], tls["password"])
        self._filters = filters
        self._subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("subscriber did not get SUBACK")

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        options = SubscribeOptions(qos=1, retainAsPublished=True)
        client.subscribe([(f, options) for f in self._filters])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def payloads(self, topic: str) -> list[Any]:
        return [json.loads(m.payload) if m.payload else None for m in self.on(topic)]

    def texts(self, topic: str) -> list[str]:
        return [m.payload.decode() for m in self.on(topic)]

    def last(self, topic: str) -> Any:
        found = self.payloads(topic)
        return found[-1] if found else None

    def events(self, topic: str) -> list[dict[str, Any]]:
        return self.payloads(topic)

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class FakeDevice:
    """The Device protocol over plain dicts: line states, alarms from the bus, a log of commands."""

    def __init__(self, lines: int = 2) -> None:
        self._lock = threading.Lock()
        now = utc_iso(time.time())
        self.states = {
            n: {
                "line": n,
                "state": "idle",
                "call_id": None,
                "since": now,
                "direction": None,
                "caller_number": None,
            }
            for n in range(1, lines + 1)
        }
        self.alarms: dict[str, dict[str, Any]] = {}
        self.accepted: list[tuple[str, dict[str, Any]]] = []
        self.paused: set[int] = set()
        self.violations: list[tuple[str, dict[str, Any]]] = []

    def on_event(self, stamped: StampedEvent) -> None:
        """Bus listener: alarms are tracked from the event stream, as the real service does."""
        event = stamped.event
        with self._lock:
            if event.type == "alarm.raised":
                alarm_id = str(event.fields["id"])
                self.alarms[alarm_id] = {
                    "id": alarm_id,
                    "line": event.line,
                    "kind": event.fields.get("kind"),
                    "message": event.fields.get("message"),
                    "since": utc_iso(event.wall),
                }
            elif event.type == "alarm.cleared":
                self.alarms.pop(str(event.fields["id"]), None)

    def set_state(self, line: int, state: str, **fields: Any) -> None:
        with self._lock:
            self.states[line] = {**self.states[line], "state": state, "since": utc_iso(time.time()), **fields}

    def line_states(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self.states.values()]

    def active_alarms(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self.alarms.values()]

    def stats(self) -> dict[str, Any]:
        return {
            "uptime_s": 12.5,
            "disk_free_bytes": 10_000_000_000,
            "calls_today": 3,
            "recordings_stored": 42,
            "capture_overruns": 0,
            "cpu_temp_c": None,
        }

    def command(self, name: str, args: dict[str, Any], *, actor: str = "unknown") -> dict[str, Any]:
        # The device re-checks what the MQTT layer promised; a broken promise is recorded, not hidden.
        expected = {"ping": set(), "call.mark": {"call_id", "tag"}}.get(name, {"line"})
        if set(args) != expected or ("line" in args and type(args["line"]) is not int):
            self.violations.append((name, args))
            raise CommandError("device got malformed arguments")
        with self._lock:
            if name == "ping":
                self.accepted.append((name, args))
                return {"pong": True}
            if name in ("announcement.test", "recording.pause", "recording.resume"):
                line = args["line"]
                if line not in self.states:
                    raise CommandError(f"no line {line}")
                if name == "announcement.test" and self.states[line]["state"] != "idle":
                    raise CommandError(f"line {line} is busy; the announcement test needs it idle")
                if name == "recording.pause":
                    self.paused.add(line)
                if name == "recording.resume":
                    self.paused.discard(line)
                self.accepted.append((name, args))
                return {}
            if name == "call.mark":
                self.accepted.append((name, args))
                return {}
        self.violations.append((name, args))
        raise CommandError(f"unknown command {name}")


class Rig:
    """One appliance's MQTT side over a real journal; `restart_service()` simulates a restart."""

    def __init__(self, tmp_path: Path, broker: Broker | None, lines: int = 2, **overrides: Any) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.journal_path = tmp_path / "data" / "journal.sqlite"
        self.journal = Journal(self.journal_path)
        self.bus = EventBus(self.journal)
        self.device = FakeDevice(lines)
        self.bus.subscribe(self.device.on_event)
        fields: dict[str, Any] = {
            "host": "127.0.0.1" if broker else None,
            "port": broker.port if broker else 1883,
            "device_id": "testbox",
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.3,
            "keepalive": 5,
        }
        fields.update(overrides)
        self.settings = MqttSettings(**fields)
        self.services: list[MqttService] = []
        self.subscribers: list[Subscriber] = []
        self.service = self.new_service()

    @property
    def root(self) -> str:
        return f"{self.settings.base_topic}/{self.settings.device_id}"

    def new_service(self, **kwargs: Any) -> MqttService:
        service = MqttService(self.settings, self.bus, self.device, **kwargs)
        self.services.append(service)
        return service

    def subscribe(self, *filters: str, **auth: Any) -> Subscriber:
        assert self.broker is not None
        subscriber = Subscriber(self.broker, *filters, **auth)
        self.subscribers.append(subscriber)
        return subscriber

    def emit(self, event_type: str = "line.ring", line: int | None = 1, /, **fields: Any) -> int:
        return self.bus.emit(Event(event_type, line, fields.pop("call_id", None), time.time(), fields)).seq

    def close(self) -> None:
        for service in self.services:
            service.stop()
        for subscriber in self.subscribers:
            subscriber.close()
        self.journal.close()


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return env
