"""What the viewer's API accepts: JSON bodies and query strings, checked before anything acts on them.

Everything a client sends is refused with `ApiError` (422 naming the field) when it is not what
docs/viewer.md says: the body models are strict and forbid unknown keys; dates are read as the
index keeps them (UTC) and a time whose offset takes it past year 1 or 9999 is refused, not an
OverflowError; JSON nested past Python's recursion limit is refused, not a RecursionError;
numbers too long to be anything are refused or read as "past the end" before `int()` sees them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callrec.errors import CallrecError
from callrec.viewer.catalog import Query

TAG = re.compile(r"^[\w .:/+-]{1,40}$")


class ApiError(CallrecError, ValueError):
    """A request the API refuses: the HTTP status, the reason, and the field when input was bad."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(_Body):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class NoteBody(_Body):
    at_s: float = Field(ge=0, le=86400)
    text: str = Field(min_length=1, max_length=2000)


class TagBody(_Body):
    tag: str = Field(pattern=TAG.pattern)


class ExportBody(_Body):
    number: str = Field(min_length=1, max_length=40)
    since: str | None = None
    until: str | None = None


class HoldBody(_Body):
    reason: str = Field(min_length=1, max_length=500)


def parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        item = error.errors(include_url=False)[0]
        name = ".".join(str(p)[:64] for p in item["loc"])[:200] or "body"
        raise ApiError(422, f"{name}: {item['msg']}", name) from None


def date_of(value: str | None, name: str) -> str | None:
    """A date or a time as the index keeps it (UTC); 422 naming the field for anything else,
    including times whose offset takes them past the ends of the calendar (year 1, year 9999)."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10]).isoformat() if len(value) == 10 else \
            dt.datetime.fromisoformat(value).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:
        raise ApiError(422, f"{name}: {value[:40]!r} is outside the calendar once in UTC", name) from None
    except ValueError:
        raise ApiError(422, f"{name}: not a date (YYYY-MM-DD) or ISO 8601 time: {value[:40]!r}", name) from None


def text_of(params: Any, name: str, longest: int) -> str | None:
    value = params.get(name) or None
    if value is not None and len(value) > longest:
        raise ApiError(422, f"{name}: at most {longest} characters", name)
    return str(value) if value is not None else None


def int_of(value: str | None, name: str, low: int, high: int, default: int | None) -> int | None:
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise ApiError(422, f"{name}: not an integer: {str(value)[:20]!r}", name) from None
    if not low <= number <= high:
        raise ApiError(422, f"{name}: must be {low} to {high}", name)
    return number


def query_of(params: Any) -> Query:
    number = params.get("number") or None
    if number is not None and not re.fullmatch(r"[0-9*#+A-D]{1,32}", number):
        raise ApiError(422, "number: digits (a prefix of either party's number)", "number")
    direction = params.get("direction") or None
    if direction not in (None, "inbound", "outbound"):
        raise ApiError(422, "direction: inbound or outbound", "direction")
    return Query(number=number, since=date_of(params.get("since"), "since"),
                 until=date_of(params.get("until"), "until"), line=int_of(params.get("line"), "line", 1, 99, None),
                 direction=direction, status=text_of(params, "status", 40), tag=text_of(params, "tag", 40),
                 text=text_of(params, "text", 200),
                 limit=int_of(params.get("limit"), "limit", 1, 500, 50) or 50,
                 offset=int_of(params.get("offset"), "offset", 0, 10_000_000, 0) or 0)


def json_of(raw: bytes) -> Any:
    """The JSON value of a request body (at most guards.BODY_LIMIT bytes: the Guard stops a longer one)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ApiError(422, "body: JSON nested too deeply", "body") from None
    except ValueError:
        raise ApiError(422, "body: not JSON", "body") from None


def position_of(digits: str) -> int | None:
    if not digits:
        return None
    return int(digits) if len(digits) <= 18 else 10 ** 18


def file_safe(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z*#+-]", "_", text)[:40]
