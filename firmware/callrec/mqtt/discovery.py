"""Home Assistant device-based discovery: one retained message describes the whole appliance.

HA (2024.11+) reads `<prefix>/device/<device_id>/config` with shared `dev` (device), `o` (origin) and
availability, and one entry per entity under `cmps`, each naming its platform in `p` and carrying a
`unique_id`. Every entity reads the topics callrec publishes anyway (no HA-only topics), so a user
without HA loses nothing and HA sees exactly what other consumers see. Availability follows
`B/status`, which the broker flips to `offline` through the will when the appliance dies.
"""

from __future__ import annotations

from typing import Any

from callrec import __version__
from callrec.mqtt.topics import STATUS_OFFLINE, STATUS_ONLINE, Topics

LINE_STATES = ["idle", "ringing", "offhook", "recording", "fault"]
CALL_EVENT_TYPES = ["call.started", "call.answered", "call.ended"]

# HA ignores an event message whose template renders empty, so non-call events on B/event are skipped
# instead of logged by HA as "invalid event type".
_CALL_EVENT_TEMPLATE = (
    "{% if value_json.type in ['call.started', 'call.answered', 'call.ended'] %}"
    "{{ {'event_type': value_json.type, 'line': value_json.line, 'call_id': value_json.call_id,"
    " 'seq': value_json.seq} | tojson }}{% endif %}"
)


def discovery_payload(topics: Topics, lines: list[int]) -> dict[str, Any]:
    """The device discovery document for an appliance with the given line numbers."""
    uid = f"callrec_{topics.device_id}"
    components: dict[str, dict[str, Any]] = {}
    for n in lines:
        state_topic = topics.line_state(n)
        components[f"line{n}_state"] = {
            "p": "sensor",
            "name": f"Line {n} state",
            "uniq_id": f"{uid}_line{n}_state",
            "stat_t": state_topic,
            "val_tpl": "{{ value_json.state }}",
            "dev_cla": "enum",
            "options": LINE_STATES,
            "json_attr_t": state_topic,
            "ic": "mdi:phone-classic",
        }
        components[f"line{n}_caller"] = {
            "p": "sensor",
            "name": f"Line {n} last caller",
            "uniq_id": f"{uid}_line{n}_caller",
            "stat_t": state_topic,
            # Retained in the line's state itself: survives a restart of Home Assistant, and never
            # turns HA's own `unavailable` into the value (a template keeping `this.state` did).
            "val_tpl": "{{ value_json.last_caller_number }}",
            "ic": "mdi:phone-incoming",
        }
        components[f"line{n}_recording"] = {
            "p": "binary_sensor",
            "name": f"Line {n} recording",
            "uniq_id": f"{uid}_line{n}_recording",
            "stat_t": state_topic,
            "val_tpl": "{{ 'ON' if value_json.state == 'recording' else 'OFF' }}",
            "dev_cla": "running",
            "ic": "mdi:record-rec",
        }
        components[f"line{n}_announcement_test"] = {
            "p": "button",
            "name": f"Line {n} test announcement",
            "uniq_id": f"{uid}_line{n}_announcement_test",
            "cmd_t": topics.cmd("announcement.test"),
            "pl_prs": f'{{"id": "homeassistant", "line": {n}}}',
            "ent_cat": "diagnostic",
        }
    components["calls_today"] = {
        "p": "sensor",
        "name": "Calls today",
        "uniq_id": f"{uid}_calls_today",
        "stat_t": topics.stats,
        "val_tpl": "{{ value_json.calls_today }}",
        # the purpose of use (APPI Art. 21) and whether recordings are encrypted, shown with it
        "json_attr_t": topics.stats,
        "json_attr_tpl": "{{ {'purpose': value_json.purpose, 'encrypted': value_json.encrypted} | tojson }}",
        "stat_cla": "total_increasing",
        "ic": "mdi:phone-log",
    }
    components["disk_free"] = {
        "p": "sensor",
        "name": "Disk free",
        "uniq_id": f"{uid}_disk_free",
        "stat_t": topics.stats,
        "val_tpl": "{{ value_json.disk_free_bytes }}",
        "dev_cla": "data_size",
        "unit_of_meas": "B",
        "stat_cla": "measurement",
        "ent_cat": "diagnostic",
    }
    components["alarms"] = {
        "p": "sensor",
        "name": "Active alarms",
        "uniq_id": f"{uid}_alarms",
        "stat_t": topics.alarms,
        "val_tpl": "{{ value_json | length }}",
        "json_attr_t": topics.alarms,
        "json_attr_tpl": "{{ {'alarms': value_json} | tojson }}",
        "stat_cla": "measurement",
        "ic": "mdi:alert",
        "ent_cat": "diagnostic",
    }
    components["call_event"] = {
        "p": "event",
        "name": "Call",
        "uniq_id": f"{uid}_call_event",
        "stat_t": topics.event,
        "evt_typ": CALL_EVENT_TYPES,
        "val_tpl": _CALL_EVENT_TEMPLATE,
        "ic": "mdi:phone",
    }
    for component in components.values():
        # HA inherits availability from the device level, but not `qos` (Home Assistant 2025.4
        # subscribed and pressed at QoS 0 with it there only): each component says it itself.
        component["qos"] = 1
    return {
        "dev": {
            "ids": [uid],
            "name": f"Call recorder {topics.device_id}",
            "mf": "callrec",
            "mdl": "Call recorder",
            "sw": __version__,
        },
        "o": {"name": "callrec", "sw": __version__},
        "avty_t": topics.status,
        "pl_avail": STATUS_ONLINE,
        "pl_not_avail": STATUS_OFFLINE,
        "qos": 1,
        "cmps": components,
    }
