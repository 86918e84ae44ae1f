"""MQTT figures: emit-to-subscriber latency, backlog drain rate, journal write cost.

Run: .venv/bin/python bench/bench_mqtt.py   (needs mosquitto on PATH)

Every figure is printed next to a reference measured in the same run on the same machine, so the
numbers mean something on a Pi and on a laptop alike:
- latency: bus.emit -> subscriber, next to a bare paho publish -> subscriber round trip;
- drain: events/s of a 10,000-event backlog after an outage, next to bare paho QoS 1 publishing
  with the same in-flight window;
- Journal.append, next to a plain sqlite insert with synchronous=FULL (one transaction per row)
  and a JSON line appended to a file with fsync.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import paho.mqtt.client as mqtt  # noqa: E402
from callrec.config import MqttSettings
from callrec.events import Event, EventBus
from callrec.mqtt import MqttService
from callrec.store import Journal
from mqtt_support import Broker, FakeDevice, wait_until  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

log = logging.getLogger("bench_mqtt")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Arrivals:
    """A subscriber that timestamps every message on arrival."""

    def __init__(self, port: int, topic: str) -> None:
        self.times: dict[int, float] = {}
        self.count = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        ready = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        ready.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        key = json.loads(message.payload)["seq"]
        self.times.setdefault(key, now)
        self.count += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bench_latency(broker: Broker, tmp: Path, n: int = 500) -> None:
    journal = Journal(tmp / "lat.sqlite")
    bus = EventBus(journal)
    settings = MqttSettings(host="127.0.0.1", port=broker.port, device_id="bench", discovery=False)
    service = MqttService(settings, bus, FakeDevice())
    arrivals = Arrivals(broker.port, "callrec/bench/event")
    service.start()
    wait_until(lambda: service.connected)
    sent: dict[int, float] = {}
    for _ in range(n):
        start = time.perf_counter()
        seq = bus.emit(Event("line.ring", 1, None, time.time(), {})).seq
        sent[seq] = start
        wait_until(lambda s=seq: s in arrivals.times, timeout=5, interval=0.0002)
        time.sleep(0.002)  # one state change at a time, as on a phone line
    ours = [(arrivals.times[s] - t) * 1000 for s, t in sent.items() if s in arrivals.times]
    service.stop()
    arrivals.close()
    journal.close()

    # Reference: a bare paho client publishing the same size of payload, QoS 1.
    ref_arrivals = Arrivals(broker.port, "ref/event")
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    ref: list[float] = []
    for i in range(n):
        start = time.perf_counter()
        client.publish("ref/event", json.dumps({"seq": i, "pad": "x" * 80}), qos=1)
        wait_until(lambda k=i: k in ref_arrivals.times, timeout=5, interval=0.0002)
        ref.append((ref_arrivals.times[i] - start) * 1000)
        time.sleep(0.002)
    client.disconnect()
    client.loop_stop()
    ref_arrivals.close()
    print(f"latency bus.emit -> subscriber: median {statistics.median(ours):.2f} ms, p99 {pct(ours, 0.99):.2f} ms "
          f"(n={len(ours)})")  # fmt: skip
    print(f"  reference bare paho publish -> subscriber: median {statistics.median(ref):.2f} ms, "
          f"p99 {pct(ref, 0.99):.2f} ms")  # fmt: skip


def bench_drain(broker: Broker, tmp: Path, n: int = 10_000) -> None:
    journal = Journal(tmp / "drain.sqlite")
    bus = EventBus(journal)
    for i in range(n):  # the outage: events journaled, nothing published
        bus.emit(Event("line.ring", 1, None, time.time(), {"n": i}))
    settings = MqttSettings(host="127.0.0.1", port=broker.port, device_id="drain", discovery=False)
    arrivals = Arrivals(broker.port, "callrec/drain/event")
    service = MqttService(settings, bus, FakeDevice())
    start = time.perf_counter()
    service.start()
    wait_until(lambda: service.backlog_size() == 0, timeout=300, interval=0.005)
    elapsed = time.perf_counter() - start
    wait_until(lambda: arrivals.count >= n, timeout=30)
    service.stop()
    arrivals.close()
    journal.close()

    # Reference: bare paho QoS 1 publishing of n messages with the same window of 20 in flight.
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(settings.max_inflight)
    acked = threading.Semaphore(0)
    client.on_publish = lambda *a: acked.release()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    payload = json.dumps({"v": 1, "seq": 1, "ts": "2024-06-11T09:30:12.004Z", "type": "line.ring", "line": 1})
    ref_start = time.perf_counter()
    for _ in range(n):
        client.publish("ref/drain", payload, qos=1)
    for _ in range(n):
        acked.acquire(timeout=30)
    ref_elapsed = time.perf_counter() - ref_start
    client.disconnect()
    client.loop_stop()
    print(f"drain of a {n}-event backlog: {n / elapsed:,.0f} events/s ({elapsed:.2f} s, "
          f"incl. journal reads and delivered marks)")  # fmt: skip
    print(f"  reference bare paho QoS 1, window {settings.max_inflight}: {n / ref_elapsed:,.0f} msgs/s")


def bench_journal(tmp: Path, n: int = 2000) -> None:
    journal = Journal(tmp / "append.sqlite")
    event = Event("call.started", 1, "c-1", time.time(), {"direction": "in", "caller_number": "0301234567"})
    start = time.perf_counter()
    for _ in range(n):
        journal.append(event)
    ours = (time.perf_counter() - start) / n * 1e6
    journal.close()

    db = sqlite3.connect(tmp / "full.sqlite", isolation_level=None)
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, body TEXT, delivered INT)")
    body = json.dumps({"type": "call.started", "line": 1, "call_id": "c-1", "fields": event.fields})
    start = time.perf_counter()
    for _ in range(n):
        db.execute("INSERT INTO events(ts, body, delivered) VALUES (?, ?, 0)", (time.time(), body))
    full = (time.perf_counter() - start) / n * 1e6
    db.close()

    fd = os.open(tmp / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    line = (body + "\n").encode()
    start = time.perf_counter()
    for _ in range(n):
        os.write(fd, line)
        os.fsync(fd)
    jsonl = (time.perf_counter() - start) / n * 1e6
    os.close(fd)
    print(f"Journal.append (WAL, synchronous=NORMAL): {ours:.1f} us/event")
    print(f"  reference sqlite insert, rollback journal, synchronous=FULL: {full:.1f} us/event")
    print(f"  reference JSON line + fsync: {jsonl:.1f} us/event")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        broker = Broker(tmp / "broker")
        broker.start()
        try:
            bench_latency(broker, tmp)
            bench_drain(broker, tmp)
        finally:
            broker.stop()
        bench_journal(tmp)


if __name__ == "__main__":
    main()
