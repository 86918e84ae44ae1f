"""A callrec MQTT side in a process of its own, so a test can kill -9 it.

Usage: mqtt_child.py <broker port> <data dir>. Runs until killed.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from callrec.config import MqttSettings
from callrec.events import EventBus
from callrec.mqtt import MqttService
from callrec.store import Journal
from mqtt_support import FakeDevice


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="child %(levelname)s %(name)s: %(message)s")
    port, data_dir = int(sys.argv[1]), Path(sys.argv[2])
    journal = Journal(data_dir / "journal.sqlite")
    bus = EventBus(journal)
    device = FakeDevice()
    bus.subscribe(device.on_event)
    settings = MqttSettings(host="127.0.0.1", port=port, device_id="childbox", reconnect_min_s=0.1)
    MqttService(settings, bus, device).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
