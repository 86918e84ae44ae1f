"""The local control API: one surface that MQTT, the serial console and the CLI all drive.

The running service implements `Device`. Front ends (mqtt/, console/) only translate their wire
format into these calls, so a command behaves the same from every place, and a new front end
attaches without touching the core.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from callrec.config import control_character_problem
from callrec.errors import CallrecError


class CommandError(CallrecError, ValueError):
    """A command was refused: wrong arguments, wrong line state. The message is shown to the caller."""


class Refused(CallrecError, ValueError):
    """A request a front end turns away before it reaches the Device; the text is the reply's `error`."""


# ---- the commands every front end offers, and how their requests are read -------------------------
# One table and one parser, so MQTT and the control socket accept exactly the same things.


class _Args(BaseModel):
    # strict: "1" is not a line number and true is not 1; forbid: a typo in a key is an error,
    # not a silently ignored option.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: object) -> object:
        """A call id or tag goes into the index, the journal, logs and the viewer's pages: a NUL, a
        newline or an escape sequence there is an attack, not a tag."""
        problem = control_character_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise ValueError(problem)
        return value


class NoArgs(_Args):
    """`ping`: proves the command path end to end and changes nothing."""


class LineArgs(_Args):
    """Commands aimed at one line."""

    line: int = Field(ge=1, le=64, description="Line number, as in B/line/<n>/state.")


class ToneArgs(LineArgs):
    """`tone.test`: a 1 kHz tone into an idle line, for checking the injection level."""

    seconds: float = Field(2.0, ge=0.2, le=10.0, description="How long the tone sounds.")


class CallMarkArgs(_Args):
    """`call.mark`: attach a tag to a call (e.g. 'important', 'complaint')."""

    call_id: str = Field(min_length=1, max_length=128)
    tag: str = Field(min_length=1, max_length=64)


COMMANDS: dict[str, type[_Args]] = {
    "ping": NoArgs,
    "announcement.test": LineArgs,
    "tone.test": ToneArgs,
    "recording.pause": LineArgs,
    "recording.resume": LineArgs,
    "call.mark": CallMarkArgs,
}

MAX_ID_CHARS = 128


def parse_object(raw: bytes, what: str, example: str) -> dict[str, Any]:
    """One JSON object from the wire; `what` ("payload", "request") names it in the error."""
    def reject_constant(name: str) -> Any:
        raise Refused(f"{what} is not valid JSON ({name} is not allowed)")

    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise Refused(f"{what} is not valid JSON: {str(error)[:120]}") from None
    if not isinstance(body, dict):
        raise Refused(f"{what} must be a JSON object like {example}")
    return body


def actor_name(by: Any, fallback: str) -> str:
    """Who a front end says sent a request (`by`), as it goes into logs and the audit log; `fallback`
    when it says nothing. Refused when it holds control characters (a forged log line)."""
    if not isinstance(by, str) or not by:
        return fallback
    problem = control_character_problem(by)
    if problem is not None:
        raise Refused(f"'by': {problem}")
    return by[:64]


def request_id(body: dict[str, Any], *, required: bool) -> str | int | None:
    """The caller's `id`, echoed in the reply: a string or an integer of sane size."""
    if "id" not in body or body["id"] is None:
        if required:
            raise Refused("missing 'id'")
        return None
    value = body["id"]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Refused("'id' must be a string or an integer")
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        raise Refused(f"'id' longer than {MAX_ID_CHARS} characters")
    if isinstance(value, int) and abs(value) >= 2**63:
        raise Refused("'id' out of range")
    return value


def validate_command(name: Any, args: Any) -> dict[str, Any]:
    """The arguments of a known command, checked against its model; Refused otherwise."""
    model = COMMANDS.get(name) if isinstance(name, str) else None
    if model is None:
        shown = name[:64] if isinstance(name, str) else name
        raise Refused(f"unknown command {shown!r}; known: {', '.join(sorted(COMMANDS))}")
    if not isinstance(args, dict):
        raise Refused("'args' must be a JSON object")
    try:
        return model.model_validate(args).model_dump()
    except ValidationError as error:
        parts = [f"{'.'.join(str(p) for p in item['loc']) or 'arguments'}: {item['msg'].removeprefix('Value error, ')}"
                 for item in error.errors(include_url=False, include_input=False)]
        raise Refused("; ".join(parts)) from None


class Device(Protocol):
    """What a front end may ask of the running recorder."""

    def line_states(self) -> list[dict[str, Any]]:
        """One dict per configured line: `line`, `state` (idle|ringing|offhook|recording|fault),
        `call_id`, `since` (UTC ISO 8601), `direction`, `caller_number`."""
        ...

    def active_alarms(self) -> list[dict[str, Any]]:
        """Active alarms: `id`, `line`, `kind`, `message`, `since`."""
        ...

    def stats(self) -> dict[str, Any]:
        """uptime_s, disk_free_bytes, calls_today, recordings_stored, capture_overruns, cpu_temp_c."""
        ...

    def command(self, name: str, args: dict[str, Any], *, actor: str = "unknown") -> dict[str, Any]:
        """Run a named command (`ping`, `announcement.test`, `tone.test`, `recording.pause`,
        `recording.resume`, `call.mark`, `levels`). Returns extra result fields; raises CommandError
        when refused.

        `levels` returns `{"lines": [{"line", "rms_dbfs", "peak_dbfs", "window_s"}, ...]}`: what each
        line carried over the last 0.2 s (for the console's live level display). `actor` says who
        sent it (`console:/dev/ttyAMA0 (pid … uid …)`, `mqtt:cmd/…`): commands that change state
        are audited with it."""
        ...

    def diagnostic(self, name: str) -> dict[str, Any]:
        """The console's diagnostics: `gpio` (per line `hook_pin`, `ring_pin`, `hook_raw`,
        `ring_raw`, `offhook`, `ringing`, edge counts), `net` (`addresses`, `default_route`,
        `broker`, `archive` with `configured`, `reachable`, `detail`) and `selftest` (`checks`: name,
        verdict PASS|WARN|FAIL, detail; `summary`; `ok`)."""
        ...
