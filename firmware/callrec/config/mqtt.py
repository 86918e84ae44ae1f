"""MQTT configuration: the `mqtt` table of the main config.

The broker password never lives in the TOML file (which is world-readable on many installs and ends
up in bug reports): it is read from `password_file`, or from the systemd credential `mqtt_password`
(`LoadCredential=`), at connect time. Nothing here logs it, and `repr()` of the settings cannot show it
because it is not a field.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import socket
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from callrec.config.toml import TomlModel

log = logging.getLogger(__name__)

# Topic levels and Home Assistant object ids allow only this alphabet; anything else is refused
# early instead of producing a topic the broker or HA silently mangles.
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_MACHINE_ID = Path("/etc/machine-id")
_DEVICE_ID = Path("/etc/callrec/device-id")   # written by the image's first boot
_CREDENTIAL_NAME = "mqtt_password"


def default_device_id(machine_id_path: Path = _MACHINE_ID, device_id_path: Path = _DEVICE_ID) -> str:
    """A stable id for this appliance, the same after every reboot and reinstall of the firmware.

    The image's first boot writes one to /etc/callrec/device-id (the name in the device's
    certificate too); that one wins. Elsewhere machine-id(5) asks applications not to publish the
    raw id, so it is hashed with an application key (like sd_id128_get_machine_app_specific); the
    hostname is the fallback on systems without one (containers, the simulator on a laptop).
    """
    try:
        written = device_id_path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        written = ""
    if re.fullmatch(_ID_PATTERN.strip("^$"), written):
        return written
    try:
        machine_id = machine_id_path.read_text(encoding="ascii").strip()
    except OSError:
        machine_id = ""
    if machine_id:
        digest = hmac.new(machine_id.encode(), b"callrec-mqtt-device-id", hashlib.sha256).hexdigest()
        return digest[:12]
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64].strip("-")
    return host or "callrec"


class MqttSettings(TomlModel):
    """Connection to an MQTT broker and what callrec publishes there. `host` unset = MQTT off."""


    host: str | None = Field(default=None, description="Broker host name or address; unset switches MQTT off.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port (8883 is usual for TLS).")
    username: str | None = Field(default=None, description="Login name at the broker; unset = anonymous.")
    password_file: Path | None = Field(
        default=None,
        description="File holding the broker password. Unset: $CREDENTIALS_DIRECTORY/mqtt_password "
        "(systemd LoadCredential=). The password is never written in the config.",
    )
    tls_ca: Path | None = Field(
        default=None, description="CA certificate (PEM) that signed the broker's certificate; set = use TLS."
    )
    tls_cert: Path | None = Field(default=None, description="Client certificate (PEM) for mutual TLS.")
    tls_key: Path | None = Field(default=None, description="Private key (PEM) of the client certificate.")
    keepalive: int = Field(
        default=30, ge=5, le=3600, description="Seconds between pings; a dead broker is noticed in 1.5x this."
    )
    base_topic: str = Field(default="callrec", description="First topic level of everything published.")
    device_id: str = Field(
        default_factory=default_device_id,
        description="Second topic level and Home Assistant device id; default derived from /etc/machine-id.",
    )
    discovery: bool = Field(default=True, description="Publish Home Assistant device discovery.")
    discovery_prefix: str = Field(
        default="homeassistant", description="Home Assistant discovery prefix (HA's own setting)."
    )
    journal_max_events: int = Field(
        default=100_000, ge=1, description="Most events kept in the journal; the oldest beyond are dropped."
    )
    journal_max_days: float = Field(
        default=30.0, gt=0, description="Events older than this many days are dropped from the journal."
    )
    stats_interval_s: float = Field(default=60.0, gt=0, description="Seconds between two `stats` messages.")
    max_inflight: int = Field(
        default=20, ge=1, le=1000, description="Events published but not yet acknowledged, at most."
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, description="First wait before reconnecting.")
    reconnect_max_s: float = Field(default=60.0, gt=0, description="Longest wait between reconnect attempts.")
    outage_alarm_after_s: float = Field(
        default=120.0, ge=0, description="Raise an alarm when the broker stays unreachable this long."
    )

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/") or any(c in value for c in "#+\0"):
            raise ValueError("must be a topic without wildcards and without leading or trailing '/'")
        return value

    @field_validator("device_id")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        if not re.match(_ID_PATTERN, value):
            raise ValueError("only letters, digits, '_' and '-' (1 to 64) are allowed")
        return value

    @model_validator(mode="after")
    def _cert_needs_key(self) -> MqttSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ValueError("tls_cert needs tls_ca (a client certificate only makes sense over TLS)")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be smaller than reconnect_min_s")
        return self

    @property
    def enabled(self) -> bool:
        return self.host is not None

    def password_source(self) -> Path | None:
        """Where the password is read from, or None: the explicit file wins over the credential."""
        if self.password_file is not None:
            return self.password_file
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if directory:
            candidate = Path(directory) / _CREDENTIAL_NAME
            if candidate.exists():
                return candidate
        return None

    def read_password(self) -> str | None:
        """The password, read fresh at every connect so a rotated credential needs no restart.

        Only the first line counts and a trailing newline is dropped (editors add one). Raises
        OSError when a configured file cannot be read; the caller turns that into an alarm.
        """
        source = self.password_source()
        if source is None:
            return None
        text = source.read_text(encoding="utf-8")
        return text.splitlines()[0] if text else ""
