"""The base of every configuration model: TOML's types are what the file means, so keep them.

pydantic's lax mode turns `preroll_seconds = true` into 1.0, `enabled = 1` into True and
`debounce_ms = "30"` into 30. In a TOML file each of those is a typo or a misunderstanding, and a
recorder that quietly runs with a value nobody wrote is worse than one that refuses to start. So
before pydantic converts anything, a value whose TOML type cannot be meant for the field (a
boolean for a number, a number for a boolean, a string for either) is an error that names the key.
Everything else (ranges, choices, unknown keys) stays pydantic's.
"""

from __future__ import annotations

import re
import types
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
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


class TomlModel(BaseModel):
    """A table of the configuration: unknown keys are errors, values keep their TOML type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _as_written(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None:
            return value
        problem = toml_type_problem(cls.model_fields[info.field_name].annotation, value)
        if problem is not None:
            raise PydanticCustomError("toml_type", problem)
        return value


# ---- errors as people read them: "key.path: what is wrong", every problem of a file at once -----


_RELATIVE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*)*$")


def key_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
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
