"""The base of every configuration model: TOML's types are what the file means, so keep them.

pydantic's lax mode turns `preroll_seconds = true` into 1.0, `enabled = 1` into True and
`debounce_ms = "30"` into 30. In a TOML file each of those is a typo or a misunderstanding, and a
recorder that quietly runs with a value nobody wrote is worse than one that refuses to start. So
before pydantic converts anything, a value whose TOML type cannot be meant for the field (a
boolean for a number, a number for a boolean, a string for either) is an error that names the key.
Everything else (ranges, choices, unknown keys) stays pydantic's.

Strings are refused when they hold control characters: every string of the configuration ends up
in a topic, a file name, a log line, a console screen or a page, where a NUL cuts it, a newline
forges a log line and an escape sequence repaints the technician's terminal. Only a field marked
`multiline` (the purpose notice) keeps its newlines and tabs.

And the file itself is read by one function, `toml_document`, for every caller (the configuration,
the console's fallback, `config set`, scenarios): whatever a file holds (a byte order mark, bytes
that are not UTF-8, a 2,000-deep array, a number of 5,000 digits), the caller gets a dict or its
own error type naming the file, never an exception from tomllib.
"""

from __future__ import annotations

import re
import tomllib
import types
import unicodedata
from collections.abc import Callable
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

_NAMES = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
          "array": "an array", "table": "a table", "none": "unset"}
_SCALARS = {"bool", "int", "float", "str"}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "table"
    if value is None:
        return "none"
    return "other"   # an already-built object (a Path, a model): not from a TOML file


def _kinds(annotation: Any) -> set[str] | None:
    """The TOML kinds a field accepts; None when it accepts anything."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kinds(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        kinds: set[str] = set()
        for arg in get_args(annotation):
            inner = _kinds(arg)
            if inner is None:
                return None
            kinds |= inner
        return kinds
    if origin is Literal:
        return {_kind_of(value) for value in get_args(annotation)}
    if origin in (tuple, list, set, frozenset):
        return {"array"}
    if origin is dict:
        return {"table"}
    if annotation is bool:
        return {"bool"}
    if annotation is int:
        return {"int"}
    if annotation is float:
        return {"int", "float"}
    if annotation is type(None):
        return {"none"}
    if isinstance(annotation, type):
        if issubclass(annotation, str | PurePath):
            return {"str"}
        if issubclass(annotation, BaseModel):
            return {"table"}
    return None


def _element_annotation(annotation: Any) -> Any | None:
    """X of tuple[X, ...] / list[X] (after unwrapping Optional), for checking array items."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        arrays = [arg for arg in get_args(annotation) if get_origin(arg) in (tuple, list)]
        return _element_annotation(arrays[0]) if len(arrays) == 1 else None
    if origin in (tuple, list):
        args = [arg for arg in get_args(annotation) if arg is not Ellipsis]
        return args[0] if len(set(args)) == 1 else None
    return None


def toml_type_problem(annotation: Any, value: Any) -> str | None:
    """Why `value` (as TOML gives it) cannot be meant for a field of this type, or None."""
    kinds = _kinds(annotation)
    kind = _kind_of(value)
    if kind == "float" and kinds is not None and "int" in kinds:
        return None   # 30.0 for an integer: pydantic says whether it is whole
    if kinds is None or kind in kinds or kind == "other":
        if kind == "array" and kinds is not None:
            element = _element_annotation(annotation)
            if element is not None:
                for position, item in enumerate(value):
                    problem = toml_type_problem(element, item)
                    if problem is not None:
                        return f"item {position}: {problem}"
        return None
    if kind not in _SCALARS or not kinds & _SCALARS:
        return None   # arrays for tables and the like: pydantic's own message says it well
    shown = kinds - {"none"} - ({"int"} if "float" in kinds else set())   # TOML cannot say "unset"
    expected = " or ".join(_NAMES[k] for k in sorted(shown))
    return f"must be {expected}, not {_NAMES[kind].replace('true or false', 'a boolean')}"


# Bidirectional embeddings, overrides and isolates reorder what a log or a page shows (the "Trojan
# Source" trick); line and paragraph separators end a line for some readers and not for others.
_INVISIBLE = {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)), "\u2028", "\u2029"}
MULTILINE: JsonDict = {"multiline": True}   # json_schema_extra of a free text field that may hold \n and \t


def control_character_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why `text` cannot be a name or setting: the first control character in it, or None."""
    for position, char in enumerate(text):
        if multiline and char in "\n\t":
            continue
        if unicodedata.category(char) == "Cc" or char in _INVISIBLE:
            return (f"control character U+{ord(char):04X} at position {position} is not allowed (it would reach "
                    "topics, file names, logs and pages); remove it")
    return None


def _strings_problem(value: Any, multiline: bool) -> str | None:
    """The first control character in a string, a path or an array of them (items named)."""
    if isinstance(value, str | PurePath):
        return control_character_problem(str(value), multiline=multiline)
    if isinstance(value, list | tuple):
        for position, item in enumerate(value):
            if isinstance(item, str | PurePath):
                problem = control_character_problem(str(item), multiline=multiline)
                if problem is not None:
                    return f"item {position}: {problem}"
    return None


class TomlModel(BaseModel):
    """A table of the configuration: unknown keys are errors, values keep their TOML type, strings
    hold no control characters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _as_written(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None:
            return value
        field = cls.model_fields[info.field_name]
        problem = toml_type_problem(field.annotation, value)
        if problem is None:
            extra = field.json_schema_extra
            problem = _strings_problem(value, multiline=isinstance(extra, dict) and bool(extra.get("multiline")))
        if problem is not None:
            raise PydanticCustomError("toml_type", problem)
        return value


# ---- reading the file: one way for every caller ----------------------------------------------------

BOM = "\ufeff"
# No setting nests deeper than 4 (telephony.tones.busy.freqs[0]); anything far past that is a
# damaged or hostile file, refused before code that walks the data (pydantic, repr, JSON) meets it.
MAX_DEPTH = 16
_DEEP = "arrays or inline tables nested too deeply"


def toml_document(raw: bytes | str, source: str, fail: Callable[[str], Exception]) -> dict[str, Any]:
    """The TOML document in `raw`; every way it can be unusable raises `fail(message)`, the message
    starting with `source` and saying what to do.

    A leading UTF-8 byte order mark is dropped: Windows editors write one, TOML 1.0 does not allow
    it, and tomllib's "Invalid statement (at line 1, column 1)" sends a technician looking for a
    typo that is not there. tomllib raises more than TOMLDecodeError: RecursionError on deep
    nesting, ValueError on an integer past Python's digit limit; each becomes `fail` too.
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            raise fail(f"{source}: not UTF-8 text (byte 0x{raw[error.start]:02x} on line {line}); "
                       "save the file as UTF-8") from None
    else:
        text = raw
    try:
        data = tomllib.loads(text.removeprefix(BOM))
    except RecursionError:
        raise fail(f"{source}: not valid TOML: {_DEEP} for the reader; no setting nests more than "
                   f"{MAX_DEPTH} levels: look for a long run of [ or {{") from None
    except tomllib.TOMLDecodeError as error:
        raise fail(f"{source}: not valid TOML: {error}") from None
    except ValueError as error:   # int("9" * 5000): past sys.get_int_max_str_digits()
        raise fail(f"{source}: not valid TOML: a value no setting can hold ({str(error).split(';')[0]})") from None
    deep = _too_deep(data)
    if deep is not None:
        raise fail(f"{source}: {deep}: {_DEEP} (more than {MAX_DEPTH} levels; no setting needs more than 4)")
    return data


def _too_deep(data: dict[str, Any]) -> str | None:
    """The key path of the first value nested deeper than MAX_DEPTH, or None (iterative: no recursion
    on exactly the data that could exhaust it)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            return key_path(loc[:MAX_DEPTH + 1])
        if isinstance(value, dict):
            stack += [(item, (*loc, key)) for key, item in value.items()]
        elif isinstance(value, list):
            stack += [(item, (*loc, position)) for position, item in enumerate(value)]
    return None


# ---- errors as people read them: "key.path: what is wrong", every problem of a file at once -----


_RELATIVE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*)*$")


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def printable(text: str) -> str:
    """`text` with every character that is not printable (controls, bidi overrides, separators)
    written as its escape, the rest (other scripts included) as it is."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
                   for char in text)


def key_path(loc: tuple[Any, ...]) -> str:
    """`lines[0].name` for ("lines", 0, "name"); a key that is not a bare TOML key is shown quoted with
    its control characters escaped, so an error message cannot carry them to a terminal."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        name = str(part)
        shown = name if _BARE_KEY.match(name) else '"' + printable(name)[:64] + '"'
        path += f".{shown}" if path else shown
    return path


def field_problems(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """Each problem pydantic found, as `key.path: message`; `root` is the model that was validated."""
    items = error.errors()
    locs = [item["loc"] for item in items]
    messages: list[str] = []
    for item in items:
        loc = item["loc"]
        # A container error caused by an error inside it (e.g. a tuple left empty) only repeats it.
        if any(other != loc and other[: len(loc)] == loc for other in locs):
            continue
        path, message = key_path(loc), item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"unknown key; allowed here: {', '.join(allowed_keys(root, loc))}"
        elif message.startswith("Value error, "):
            # A rule across keys may report several problems, one "path: message" per line.
            for text in message.removeprefix("Value error, ").splitlines():
                sub_path, message = path, text
                key, _, rest = text.partition(": ")
                if rest and _RELATIVE_KEY.match(key):
                    # a rule names the key it is about: absolute at the root, else inside the table
                    sub_path, message = (f"{path}.{key}" if path else key), rest
                messages.append(f"{sub_path}: {message}" if sub_path else message)
            continue
        else:
            message = f"{message} (got {item.get('input')!r})"
        messages.append(f"{path}: {message}" if path else message)
    return messages


def report(source: str, what: str, problems: list[str]) -> str:
    """`source: N problem(s) in the <what>:` and one indented line per problem (duplicates once)."""
    unique = list(dict.fromkeys(problems))
    return "\n".join([f"{source}: {len(unique)} problem(s) in the {what}:", *(f"  {p}" for p in unique)])


def allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return sorted(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or inside a tuple, list, dict or Optional."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
