"""MQTT for dashboards: the publisher of the journal and the states, discovery, commands (docs/mqtt.md)."""

from callrec.mqtt.backlog import JournalKeeper, PruneResult
from callrec.mqtt.commands import MAX_PAYLOAD_BYTES, CommandHandler
from callrec.mqtt.discovery import discovery_payload
from callrec.mqtt.service import MqttService
from callrec.mqtt.topics import ALARM_FIELDS, HEAD_FIELDS, LINE_STATE_FIELDS, RESULT_FIELDS, STATS_FIELDS, Topics
from callrec.mqtt.witness import read_retained_head

__all__ = ["ALARM_FIELDS", "CommandHandler", "HEAD_FIELDS", "JournalKeeper", "LINE_STATE_FIELDS", "MAX_PAYLOAD_BYTES",
           "MqttService", "PruneResult", "RESULT_FIELDS", "STATS_FIELDS", "Topics", "discovery_payload",
           "read_retained_head"]
