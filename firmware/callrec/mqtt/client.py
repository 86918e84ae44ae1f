"""One way to make a paho client for the configured broker: MQTT 5, the login, TLS.

The publisher makes one per connection attempt (service.py); `verify` makes a short-lived one
of its own to read the retained witness of the ledgers' heads (witness.py), under another client
id so it never takes the service's session over.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from callrec.config import MqttSettings


def new_client(settings: MqttSettings, client_id: str) -> mqtt.Client:
    """A client with the login and TLS of `settings`; reconnecting is the caller's business.
    Raises OSError, ssl.SSLError or ValueError when the password file or a TLS file is unusable."""
    # MQTT 5: only there does a subscription see whether a command was published retained
    # while we were connected (retain-as-published); 3.1.1 marks only replays at subscribe.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                         reconnect_on_failure=False)
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.read_password())
    if settings.tls_ca is not None:
        client.tls_set(
            ca_certs=str(settings.tls_ca),
            certfile=str(settings.tls_cert) if settings.tls_cert else None,
            keyfile=str(settings.tls_key) if settings.tls_key else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    return client
