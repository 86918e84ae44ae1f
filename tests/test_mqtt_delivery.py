"""Nothing lost: events reach subscribers in journal order, across broker outages and restarts."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from callrec.events import Event
from mqtt_support import Broker, Rig, Subscriber, child_env, wait_until
from paho.mqtt.enums import CallbackAPIVersion

pytest_plugins = ["conftest_mqtt"]


def _seqs(rig: Rig, subscriber: object) -> list[int]:
    return [event["seq"] for event in subscriber.events(f"{rig.root}/event")]  # type: ignore[attr-defined]


def test_live_events_arrive_in_order_with_contiguous_seq(rig: Rig) -> None:
    sub = rig.subscribe(f"{rig.root}/event")
    rig.service.start()
    assert wait_until(lambda: rig.service.connected)
    sent = [rig.emit("line.ring", 1, n=i) for i in range(200)]
    assert wait_until(lambda: len(_seqs(rig, sub)) >= 200)
    got = _seqs(rig, sub)
    assert got == sent
    assert got == list(range(got[0], got[0] + 200))
    assert wait_until(lambda: rig.service.backlog_size() == 0)


def test_event_payload_is_the_journal_json_unchanged_qos1_not_retained(rig: Rig) -> None:
    sub = rig.subscribe(f"{rig.root}/event")
    rig.service.start()
    fields = {"direction": "in", "caller_number": "0301234"}
    stamped = rig.bus.emit(Event("call.started", 2, "c-1", time.time(), fields))
    assert wait_until(lambda: sub.on(f"{rig.root}/event"))
    message = sub.on(f"{rig.root}/event")[0]
    assert message.payload.decode() == stamped.to_json()
    assert message.qos == 1 and not message.retain


def test_broker_killed_mid_stream_every_event_arrives_in_order(rig: Rig, broker: Broker) -> None:
    rig.service.start()
    assert wait_until(lambda: rig.service.connected)
    sub = rig.subscribe(f"{rig.root}/event")
    sent = [rig.emit("line.ring", 1, n=i) for i in range(100)]
    broker.kill()
    sub.close()
    rig.subscribers.remove(sub)
    sent += [rig.emit("line.hook", 1, n=i) for i in range(100, 300)]  # recorder keeps going meanwhile
    assert wait_until(lambda: not rig.service.connected)
    broker.start()
    # A persistent session is what a real consumer would use to catch up; here we just need to see the
    # drained backlog, so subscribe before the publisher reconnects and compare the union with dedup.
    sub2 = rig.subscribe(f"{rig.root}/event")
    sent += [rig.emit("line.flash", 1, n=i) for i in range(300, 350)]
    assert wait_until(lambda: rig.service.backlog_size() == 0, timeout=20)
    received = _seqs(rig, sub2)
    deduped = list(dict.fromkeys(received))
    assert deduped == sorted(deduped), "events out of order after the outage"
    undelivered_before_kill = [s for s in sent if s >= deduped[0]]
    assert deduped == undelivered_before_kill
    assert set(sent[150:]) <= set(deduped)


def test_broker_restart_backlog_reaches_a_persistent_subscriber_completely_in_order(rig: Rig, broker: Broker) -> None:
    # A consumer with a persistent session (clean_session false) gets everything across the outage.
    got: list[int] = []

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        got.append(json.loads(message.payload)["seq"])

    consumer = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="consumer", clean_session=False)
    consumer.on_message = on_message
    consumer.on_connect = lambda c, *a: c.subscribe(f"{rig.root}/event", qos=1)
    consumer.connect("127.0.0.1", broker.port)
    consumer.loop_start()
    try:
        assert wait_until(lambda: consumer.is_connected())
        time.sleep(0.1)
        rig.service.start()
        sent = [rig.emit("line.ring", 1, n=i) for i in range(50)]
        assert wait_until(lambda: len(set(got)) >= 50)
        # SIGTERM: mosquitto writes the consumer's session to disk on the way down (after SIGKILL it
        # would depend on the autosave timer); the publisher sees the same dropped connection.
        broker.stop()
        sent += [rig.emit("line.hook", 1, n=i) for i in range(200)]
        broker.start()
        assert wait_until(lambda: set(sent) <= set(got), timeout=30), (len(got), sorted(set(sent) - set(got))[:5])
        deduped = list(dict.fromkeys(got))
        assert deduped == sent
    finally:
        consumer.disconnect()
        consumer.loop_stop()


def test_restart_with_undelivered_backlog_drains_it_first_then_live(rig_factory, broker: Broker) -> None:
    rig: Rig = rig_factory(broker)
    backlog = [rig.emit("line.ring", 1, n=i) for i in range(500)]  # journal filled, service not running
    sub = rig.subscribe(f"{rig.root}/event")
    rig.service.start()
    live = [rig.emit("call.started", 1, call_id="c1")]
    assert wait_until(lambda: len(_seqs(rig, sub)) >= 501, timeout=20)
    assert _seqs(rig, sub) == backlog + live


def test_restart_of_the_service_resumes_after_what_was_acknowledged(rig: Rig) -> None:
    sub = rig.subscribe(f"{rig.root}/event")
    rig.service.start()
    first = [rig.emit("line.ring", 1, n=i) for i in range(20)]
    assert wait_until(lambda: rig.service.backlog_size() == 0)
    rig.service.stop()
    pending = [rig.emit("line.ring", 1, n=i) for i in range(20, 60)]
    second = rig.new_service()
    second.start()
    assert wait_until(lambda: len(_seqs(rig, sub)) >= 60)
    assert _seqs(rig, sub) == first + pending


def test_clean_stop_publishes_offline_and_start_online(rig: Rig) -> None:
    sub = rig.subscribe(f"{rig.root}/status")
    rig.service.start()
    assert wait_until(lambda: sub.texts(f"{rig.root}/status") == ["online"])
    rig.service.stop()
    assert wait_until(lambda: sub.texts(f"{rig.root}/status") == ["online", "offline"])
    assert all(m.retain and m.qos == 1 for m in sub.on(f"{rig.root}/status"))


def test_kill_9_of_the_service_process_lets_the_will_say_offline(broker: Broker, tmp_path: Path) -> None:
    watcher = Subscriber(broker, "callrec/childbox/status")
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "mqtt_child.py"),
            str(broker.port),
            str(tmp_path / "child"),
        ],
        env=child_env(),
    )
    try:
        assert wait_until(lambda: watcher.texts("callrec/childbox/status")[-1:] == ["online"], timeout=20)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        # The kernel closes the dead process's socket, so mosquitto fires the will without a keepalive wait.
        assert wait_until(lambda: watcher.texts("callrec/childbox/status")[-1:] == ["offline"], timeout=20)
        assert watcher.on("callrec/childbox/status")[-1].retain
    finally:
        if child.poll() is None:
            child.kill()
        watcher.close()


def test_recorder_keeps_emitting_while_the_broker_never_answers(rig_factory, tmp_path: Path) -> None:
    # A port that completes TCP handshakes but never speaks MQTT: the publisher thread sits waiting for
    # a CONNACK. Emitting must not care; if it waited on the network this test would hang.
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        dead = Broker(tmp_path / "blackhole")
        dead.port = blackhole.getsockname()[1]
        rig: Rig = rig_factory(dead)
        rig.service.start()
        seqs = [rig.emit("line.ring", 1, n=i) for i in range(1000)]
        assert seqs == list(range(seqs[0], seqs[0] + 1000))
        assert not rig.service.connected
        assert rig.service.backlog_size() == 1000
