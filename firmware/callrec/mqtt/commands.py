"""Commands arriving on `B/cmd/<name>`: validated here, run by the Device, answered on `B/cmd/result`.

The MQTT layer checks the shape (known name, JSON object, required keys, strict types, no stray keys)
before the Device sees anything, so a malformed or malicious message can only ever produce an error
result. Retained command messages are dropped without a result: a retained `announcement.test` would
otherwise fire again at every reconnect. Nothing that deletes or exports recordings is in `COMMANDS`,
and the Device is only asked for names in it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callrec.control import CommandError, Device

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096
_MAX_ID_CHARS = 128


class _Args(BaseModel):
    # strict: "1" is not a line number and true is not 1; forbid: a typo in a key is an error,
    # not a silently ignored option.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoArgs(_Args):
    """`ping`: proves the command path end to end and changes nothing."""


class LineArgs(_Args):
    """Commands aimed at one line."""

    line: int = Field(ge=1, le=64, description="Line number, as in B/line/<n>/state.")


class CallMarkArgs(_Args):
    """`call.mark`: attach a tag to a call (e.g. 'important', 'complaint')."""

    call_id: str = Field(min_length=1, max_length=128)
    tag: str = Field(min_length=1, max_length=64)


COMMANDS: dict[str, type[_Args]] = {
    "ping": NoArgs,
    "announcement.test": LineArgs,
    "recording.pause": LineArgs,
    "recording.resume": LineArgs,
    "call.mark": CallMarkArgs,
}


class _Refused(Exception):
    """A message that never reaches the Device; the text goes into the result's `error`."""


def _reject_constant(name: str) -> Any:
    raise _Refused(f"payload is not valid JSON ({name} is not allowed)")


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
            body = self._parse(payload)
            command_id = self._command_id(body)
            model = COMMANDS.get(name)
            if model is None:
                raise _Refused(f"unknown command {name[:64]!r}; known: {', '.join(sorted(COMMANDS))}")
            args = {key: value for key, value in body.items() if key != "id"}
            try:
                validated = model.model_validate(args)
            except ValidationError as exc:
                raise _Refused(_describe(exc)) from None
        except _Refused as exc:
            log.info("refused command %r: %s", name[:64], exc)
            return _result(command_id, name, ok=False, error=str(exc))
        try:
            extra = self._device.command(name, validated.model_dump())
        except CommandError as exc:
            log.info("device refused command %s (id %r): %s", name, command_id, exc)
            return _result(command_id, name, ok=False, error=str(exc) or type(exc).__name__)
        except Exception:  # a bug behind the Device must not take the MQTT link down
            log.exception("command %s (id %r) failed inside the device", name, command_id)
            return _result(command_id, name, ok=False, error="internal error; see the device log")
        log.info("command %s (id %r) done", name, command_id)
        return _result(command_id, name, ok=True, error=None, extra=extra)

    @staticmethod
    def _parse(payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _Refused(f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            body = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _Refused(f"payload is not valid JSON: {str(exc)[:120]}") from None
        if not isinstance(body, dict):
            raise _Refused('payload must be a JSON object like {"id": "1", ...}')
        return body

    @staticmethod
    def _command_id(body: dict[str, Any]) -> str | int:
        if "id" not in body:
            raise _Refused("missing 'id'")
        value = body["id"]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _Refused("'id' must be a string or an integer")
        if isinstance(value, str) and len(value) > _MAX_ID_CHARS:
            raise _Refused(f"'id' longer than {_MAX_ID_CHARS} characters")
        if isinstance(value, int) and abs(value) >= 2**63:
            raise _Refused("'id' out of range")
        return value


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


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
