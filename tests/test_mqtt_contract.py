"""docs/mqtt.md is the contract: what the service publishes must be exactly what it documents."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mqtt_support import Rig, wait_until

pytest_plugins = ["conftest_mqtt"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt.md"
# Fields a payload may carry beyond the documented list, by topic (documented as open-ended there).
OPEN_ENDED = {"B/event", "B/cmd/result"}


def _documented() -> tuple[dict[str, tuple[str, bool, int]], dict[str, list[str]]]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## Topics", 1)[1].split("###", 1)[0]
    topics: dict[str, tuple[str, bool, int]] = {}
    for row in re.findall(r"^\| `([^`]+)` \| (in|out) \| (yes|no) \| (\d) \|", table, flags=re.M):
        topic, direction, retained, qos = row
        topics[topic] = (direction, retained == "yes", int(qos))
    fields: dict[str, list[str]] = {}
    for section in text.split("\n### ")[1:]:
        heading = re.findall(r"`([^`]+)`", section.splitlines()[0])
        listed = re.search(r"^Fields: (.*)$", section, flags=re.M)
        if listed:
            names = re.findall(r"`([^`]+)`", listed.group(1).split("(")[0])
            for topic in heading:
                fields[topic] = names
    return topics, fields


def _normalise(topic: str, rig: Rig) -> str:
    topic = topic.replace(rig.root, "B", 1)
    topic = re.sub(r"^B/line/\d+/", "B/line/<n>/", topic)
    topic = re.sub(r"^B/cmd/(?!result$)[^/]+$", "B/cmd/<name>", topic)
    return topic.replace("homeassistant/device/testbox/", "<prefix>/device/<device_id>/").replace(
        "homeassistant/", "<prefix>/"
    )


def _keys(payload: Any) -> list[str] | None:
    if isinstance(payload, dict):
        return list(payload)
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        return list(payload[0])
    return None


def test_published_topics_flags_and_fields_equal_docs_mqtt_md(rig_factory, broker) -> None:
    rig: Rig = rig_factory(broker, stats_interval_s=0.2)
    sub = rig.subscribe("#")
    rig.service.start()
    assert wait_until(lambda: sub.texts(f"{rig.root}/status")[-1:] == ["online"])  # subscribed by now
    rig.device.set_state(1, "ringing", call_id="c-1", direction="in", caller_number="0301234")
    rig.emit("call.started", 1, call_id="c-1", direction="in")
    rig.emit("alarm.raised", 1, id="capture.1", kind="capture", message="overrun")
    rig.emit("evidence.head", None, chain={"seq": 3, "hash": "ab" * 32}, audit={"seq": 7, "hash": "cd" * 32})
    sub.publish(f"{rig.root}/cmd/ping", json.dumps({"id": "c1"}))
    sub.publish(f"{rig.root}/cmd/recording.pause", json.dumps({"id": "c2", "line": "x"}))
    sub.publish("homeassistant/status", "online")
    wanted = {"B/status", "B/line/<n>/state", "B/event", "B/alarms", "B/stats", "B/cmd/result", "B/evidence/head"}

    def seen() -> set[str]:
        return {_normalise(m.topic, rig) for m in sub.messages}

    assert wait_until(lambda: wanted <= seen() and len(sub.on(f"{rig.root}/cmd/result")) == 2)
    rig.service.stop()  # the clean stop's `offline` is part of the contract too
    assert wait_until(lambda: sub.texts(f"{rig.root}/status")[-1:] == ["offline"])

    documented, documented_fields = _documented()
    inbound = {topic for topic, (direction, _, _) in documented.items() if direction == "in"}
    observed: dict[str, set[tuple[bool, int]]] = {}
    observed_fields: dict[str, set[str]] = {}
    for message in sub.messages:
        topic = _normalise(message.topic, rig)
        if topic in inbound:
            continue  # published by this test, not by the service
        observed.setdefault(topic, set()).add((bool(message.retain), message.qos))
        keys = _keys(json.loads(message.payload)) if message.payload[:1] in (b"{", b"[") else None
        if keys is not None:
            observed_fields.setdefault(topic, set()).update(keys)

    outbound = {topic for topic, (direction, _, _) in documented.items() if direction == "out"}
    assert set(observed) == outbound
    for topic, flags in observed.items():
        _, retained, qos = documented[topic]
        assert flags == {(retained, qos)}, topic
    assert set(documented_fields) >= set(observed_fields)
    for topic, keys in observed_fields.items():
        if topic in OPEN_ENDED:
            assert set(documented_fields[topic]) <= keys, topic
        else:
            assert keys == set(documented_fields[topic]), topic


def test_documented_field_lists_match_the_code_constants() -> None:
    from callrec.mqtt import ALARM_FIELDS, HEAD_FIELDS, LINE_STATE_FIELDS, RESULT_FIELDS, STATS_FIELDS

    _, fields = _documented()
    assert fields["B/evidence/head"] == list(HEAD_FIELDS)
    assert fields["B/line/<n>/state"] == list(LINE_STATE_FIELDS)
    assert fields["B/alarms"] == list(ALARM_FIELDS)
    assert fields["B/stats"] == list(STATS_FIELDS)
    assert fields["B/cmd/result"] == list(RESULT_FIELDS)
