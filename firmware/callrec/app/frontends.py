"""Front ends attached to a started service: the control socket (the console's way in) and MQTT.

Both talk to the service through the control API (`Device`) and the event bus only. The service
stops its `extras` after the core and the recorder (so the last calls' events are published) and
before it closes the journal, so MQTT's `offline` goes out while the journal is open.
"""

from __future__ import annotations

import logging
from pathlib import Path

from callrec.app.service import Service
from callrec.config import Config
from callrec.control import ControlServer
from callrec.mqtt import MqttService

log = logging.getLogger(__name__)


def attach_control(service: Service, path: Path) -> ControlServer | None:
    """Serve the control socket for a started service; None when it cannot bind.

    A missing /run/callrec (a development machine) or a path in use is a warning, not a crash: the
    recorder matters more than its maintenance door.
    """
    if service.device is None:
        raise RuntimeError("attach the control socket after Service.start()")
    server = ControlServer(service.device, path)
    try:
        server.start()
    except OSError as error:
        log.warning("control socket not available at %s: %s (the console will not reach this service)",
                    path, error.strerror or error)
        return None
    service.extras.append(server)
    return server


def attach_mqtt(service: Service, config: Config) -> MqttService:
    """Publish a started service's events and states; with no `mqtt.host` it only bounds the journal."""
    if service.bus is None or service.device is None:
        raise RuntimeError("attach MQTT after Service.start()")
    mqtt_service = MqttService(config.mqtt, service.bus, service.device)
    mqtt_service.start()
    service.device.mqtt = mqtt_service
    service.extras.append(mqtt_service)
    return mqtt_service


def attach_front_ends(service: Service, config: Config, control_socket: Path | None = None) -> None:
    """The control socket (when a path is given) and MQTT (always: it also keeps the journal bounded)."""
    if control_socket is not None:
        attach_control(service, control_socket)
    attach_mqtt(service, config)
