"""Retained state topics (line states, alarms, stats) and Home Assistant discovery."""

from __future__ import annotations

import json

from mqtt_support import Broker, Rig, wait_until

pytest_plugins = ["conftest_mqtt"]


def test_line_states_are_retained_on_connect_and_republished_on_change(rig: Rig) -> None:
    sub = rig.subscribe(f"{rig.root}/line/+/state")
    rig.service.start()
    topic = f"{rig.root}/line/1/state"
    assert wait_until(lambda: sub.on(topic) and sub.on(f"{rig.root}/line/2/state"))
    first = sub.on(topic)[0]
    assert first.retain and first.qos == 1
    assert set(sub.last(topic)) == {"state", "call_id", "since", "direction", "caller_number", "last_caller_number"}
    rig.device.set_state(1, "ringing", call_id="c-1", direction="in", caller_number="0301234")
    rig.emit("line.state", 1, state="ringing")   # the event that says the line changed
    assert wait_until(lambda: sub.last(topic)["state"] == "ringing")
    assert sub.last(topic)["caller_number"] == "0301234"
    assert len(sub.on(f"{rig.root}/line/2/state")) == 1, "unchanged line 2 must not be republished"


def test_line_states_are_republished_after_a_broker_restart(rig: Rig, broker: Broker) -> None:
    rig.service.start()
    assert wait_until(lambda: rig.service.connected)
    broker.kill()
    assert wait_until(lambda: not rig.service.connected)
    rig.device.set_state(2, "recording", call_id="c-2")  # changed while the broker was away
    broker.start()
    sub = rig.subscribe(f"{rig.root}/line/+/state", f"{rig.root}/status")
    assert wait_until(lambda: (sub.last(f"{rig.root}/line/2/state") or {}).get("state") == "recording")
    assert wait_until(lambda: sub.texts(f"{rig.root}/status")[-1:] == ["online"])


def test_alarms_topic_is_a_retained_list_following_raise_and_clear(rig: Rig) -> None:
    sub = rig.subscribe(f"{rig.root}/alarms")
    rig.service.start()
    assert wait_until(lambda: sub.payloads(f"{rig.root}/alarms") == [[]])
    rig.emit("alarm.raised", 1, id="capture.1", kind="capture", message="overrun")
    assert wait_until(lambda: len(sub.last(f"{rig.root}/alarms")) == 1)
    alarm = sub.last(f"{rig.root}/alarms")[0]
    assert alarm["id"] == "capture.1" and alarm["kind"] == "capture" and alarm["line"] == 1
    assert set(alarm) == {"id", "line", "kind", "message", "since"}
    rig.emit("alarm.cleared", 1, id="capture.1", kind="capture")
    assert wait_until(lambda: sub.last(f"{rig.root}/alarms") == [])
    assert all(m.retain for m in sub.on(f"{rig.root}/alarms"))


def test_stats_are_retained_periodically_with_the_backlog(rig_factory, broker: Broker) -> None:
    rig: Rig = rig_factory(broker, stats_interval_s=0.2)
    sub = rig.subscribe(f"{rig.root}/stats")
    rig.service.start()
    assert wait_until(lambda: len(sub.on(f"{rig.root}/stats")) >= 3)
    stats = sub.last(f"{rig.root}/stats")
    assert stats["calls_today"] == 3 and stats["backlog"] == 0 and "cpu_temp_c" in stats
    assert all(m.retain for m in sub.on(f"{rig.root}/stats"))


def test_discovery_payload_is_one_device_config_with_components_and_availability(rig: Rig) -> None:
    sub = rig.subscribe("homeassistant/#")
    rig.service.start()
    topic = "homeassistant/device/testbox/config"
    assert wait_until(lambda: sub.on(topic))
    assert sub.on(topic)[0].retain
    config = sub.last(topic)
    assert config["dev"]["ids"] == ["callrec_testbox"] and config["o"]["name"] == "callrec"
    assert config["avty_t"] == f"{rig.root}/status"
    components = config["cmps"]
    assert all({"p", "uniq_id", "name"} <= set(c) for c in components.values())
    assert len({c["uniq_id"] for c in components.values()}) == len(components)
    platforms = {key: c["p"] for key, c in components.items()}
    assert platforms["line1_state"] == platforms["line2_caller"] == "sensor"
    assert platforms["line1_recording"] == "binary_sensor"
    assert platforms["call_event"] == "event" and platforms["line2_announcement_test"] == "button"
    assert {"calls_today", "disk_free", "alarms"} <= set(components)
    assert components["line1_announcement_test"]["cmd_t"] == f"{rig.root}/cmd/announcement.test"
    assert components["line1_state"]["stat_t"] == f"{rig.root}/line/1/state"
    assert all(c["qos"] == 1 for c in components.values()), "HA does not inherit qos from the device level"
    assert components["line1_caller"]["val_tpl"] == "{{ value_json.last_caller_number }}"
    assert "this.state" not in json.dumps(config), "HA's own unavailable/unknown must never become a value"


def test_discovery_is_announced_again_when_home_assistant_comes_online(rig: Rig) -> None:
    sub = rig.subscribe("homeassistant/device/+/config")
    rig.service.start()
    topic = "homeassistant/device/testbox/config"
    assert wait_until(lambda: len(sub.on(topic)) == 1)
    sub.publish("homeassistant/status", "offline")
    sub.publish("homeassistant/status", "online")
    assert wait_until(lambda: len(sub.on(topic)) == 2)


def test_discovery_switched_off_removes_the_device_config(rig_factory, broker: Broker) -> None:
    rig: Rig = rig_factory(broker, discovery=False)
    sub = rig.subscribe("homeassistant/device/+/config")
    rig.service.start()
    assert wait_until(lambda: sub.on("homeassistant/device/testbox/config"))
    assert sub.on("homeassistant/device/testbox/config")[-1].payload == b""
