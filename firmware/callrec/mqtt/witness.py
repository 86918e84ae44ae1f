"""The ledgers' heads on the broker: published retained on `B/evidence/head` from each
`evidence.head` event (the service), and read back by `verify` as a witness held off the device.

The broker keeps the last heads the device published, so a chain or audit log cut on the SD card
afterwards is named by `verify` even when the card's event journal was cut too (docs/mqtt.md,
docs/privacy.md).
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from callrec.config import MqttSettings
from callrec.events import StampedEvent, utc_iso
from callrec.evidence import Heads, Witness, WitnessUnavailable, journal_witness, parse_json
from callrec.mqtt.client import new_client
from callrec.mqtt.topics import Topics
from callrec.store import Journal

RETAINED_GRACE_S = 3.0   # after the subscription is acknowledged, the retained message follows at once


def head_payload(stamped: StampedEvent) -> dict[str, Any]:
    """The retained message of an `evidence.head` event: both heads and when they were witnessed."""
    fields = stamped.event.fields
    return {"chain": fields.get("chain"), "audit": fields.get("audit"), "at": utc_iso(stamped.event.wall)}


def journaled_head(journal: Journal) -> dict[str, Any] | None:
    """The newest heads in the journal, as the retained message has them (after a restart)."""
    witness = journal_witness(journal)
    return {**witness.heads.fields(), "at": witness.at} if witness is not None else None


def read_retained_head(settings: MqttSettings, timeout: float) -> Witness | None:
    """The broker's retained heads of this device (None: it holds none). WitnessUnavailable when
    the broker cannot be reached or refuses, within `timeout` seconds."""
    topic = Topics(settings.base_topic, settings.device_id, settings.discovery_prefix).evidence_head
    where = f"the MQTT broker {settings.host}:{settings.port}"
    subscribed, done = threading.Event(), threading.Event()
    box: dict[str, Any] = {}

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            box["refused"] = str(reason)
            done.set()
        else:
            client.subscribe(topic, qos=1)

    def on_subscribe(*_args: Any) -> None:
        subscribed.set()

    def on_message(_client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == topic:
            box["payload"] = bytes(message.payload)
            done.set()

    try:
        client = new_client(settings, f"callrec-verify-{settings.device_id}-{os.getpid()}")
        client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
        client.connect(settings.host or "", settings.port, keepalive=max(5, int(timeout)))
    except (OSError, ssl.SSLError, ValueError) as error:
        raise WitnessUnavailable(f"{where} cannot be reached ({error})") from None
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not (subscribed.is_set() or done.is_set()) and time.monotonic() < deadline:
            subscribed.wait(0.05)
        if subscribed.is_set():
            done.wait(max(0.0, min(RETAINED_GRACE_S, deadline - time.monotonic())))
    finally:
        client.disconnect()
        client.loop_stop()
    if "refused" in box:
        raise WitnessUnavailable(f"{where} refused the login ({box['refused']})")
    if not subscribed.is_set() and "payload" not in box:
        raise WitnessUnavailable(f"{where} did not answer within {timeout:g} s")
    if "payload" not in box:
        return None
    try:
        data = parse_json(box["payload"])
    except ValueError as error:
        raise WitnessUnavailable(f"{where}: {topic} holds no heads ({error})") from None
    heads = Heads.from_fields(data)
    if heads is None:
        raise WitnessUnavailable(f"{where}: {topic} holds no heads")
    at = data.get("at") if isinstance(data.get("at"), str) else None
    return Witness(f"the MQTT broker ({topic}, retained)", at, heads)
