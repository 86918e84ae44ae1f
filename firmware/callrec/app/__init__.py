"""The application: the service wired from the configuration, its front ends, systemd's notify."""

from callrec.app.frontends import attach_control, attach_front_ends, attach_mqtt  # noqa: I001 - after the service
from callrec.app.service import (
    Backend,
    Service,
    StartupError,
    Store,
    card_problems,
    channel_problems,
    config_problems,
    hardware_backend,
    load_sound,
    open_store,
    take_data_lock,
)

__all__ = [
    "Backend", "Service", "StartupError", "Store", "attach_control", "attach_front_ends", "attach_mqtt",
    "card_problems", "channel_problems", "config_problems", "hardware_backend", "load_sound", "open_store",
    "take_data_lock"
]
