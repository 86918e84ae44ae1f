"""Fixtures for the MQTT tests, loaded with `pytest_plugins = ["conftest_mqtt"]` from each test file.

`broker` is a real mosquitto on a free port; `rig` builds journal, bus, Device and MqttService the
way the service wires them, and stops everything at the end of the test.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mqtt_support import Broker, Rig

if shutil.which("mosquitto") is None:  # pragma: no cover - the dev image installs it
    pytest.skip(
        "mosquitto is not installed (apt-get install mosquitto mosquitto-clients)", allow_module_level=True
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    server = Broker(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(broker: Broker | None, **overrides: object) -> Rig:
        rig = Rig(tmp_path / f"rig{len(rigs)}", broker, **overrides)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


@pytest.fixture
def rig(rig_factory: Callable[..., Rig], broker: Broker) -> Rig:
    return rig_factory(broker)
