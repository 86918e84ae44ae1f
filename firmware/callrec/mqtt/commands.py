"""Commands arriving on `B/cmd/<name>`: validated here, run by the Device, answered on `B/cmd/result`.

The MQTT layer checks the shape (known name, JSON object, required keys, strict types, no stray keys)
before the Device sees anything, so a malformed or malicious message can only ever produce an error
result. Retained command messages are dropped without a result: a retained `announcement.test` would
otherwise fire again at every reconnect. Nothing that deletes or exports recordings is in `COMMANDS`,
and the Device is only asked for names in it.
"""

from __future__ import annotations

import logging
from typing import Any

from callrec.control import COMMANDS, CommandError, Device, Refused, parse_object, request_id, validate_command

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096
__all__ = ["COMMANDS", "CommandHandler", "MAX_PAYLOAD_BYTES"]


class CommandHandler:
    """Turns one incoming command message into one result dict (or None for retained messages)."""

    def __init__(self, device: Device) -> None:
        self._device = device

    def handle(self, name: str, payload: bytes, *, retained: bool) -> dict[str, Any] | None:
        if retained:
            log.warning("ignoring retained command message on cmd/%s (would replay on every reconnect)", name)
            return None
        command_id: str | int | None = None
        try:
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise Refused(f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
            body = parse_object(payload, "payload", '{"id": "1", ...}')
            command_id = request_id(body, required=True)
            validated = validate_command(name, {key: value for key, value in body.items() if key != "id"})
        except Refused as exc:
            log.info("refused command %r: %s", name[:64], exc)
            return _result(command_id, name, ok=False, error=str(exc))
        try:
            extra = self._device.command(name, validated, actor=f"mqtt:cmd/{name}")
        except CommandError as exc:
            log.info("device refused command %s (id %r): %s", name, command_id, exc)
            return _result(command_id, name, ok=False, error=str(exc) or type(exc).__name__)
        except Exception:  # a bug behind the Device must not take the MQTT link down
            log.exception("command %s (id %r) failed inside the device", name, command_id)
            return _result(command_id, name, ok=False, error="internal error; see the device log")
        log.info("command %s (id %r) done", name, command_id)
        return _result(command_id, name, ok=True, error=None, extra=extra)


def _result(
    command_id: str | int | None,
    name: str,
    *,
    ok: bool,
    error: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"id": command_id, "command": name[:64], "ok": ok, "error": error}
    for key, value in (extra or {}).items():
        result.setdefault(key, value)  # the device may add fields, never overwrite the envelope
    return result
