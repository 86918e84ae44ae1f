"""Changing one key of the configuration file safely: validated first, written atomically, backed up.

A technician in the wiring closet changes a setting from the console (`config set KEY VALUE`) or sets
the passphrase (`callrec passwd`); either way the file keeps its comments, order and layout (tomlkit
edits the document, not a re-serialised dict), the new text is validated as a whole with the very
messages `check-config` prints before anything is written, the previous file is kept as `FILE.bak`,
and the new one replaces it by a rename, so a power cut leaves the old or the new file, never half
of one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table

from callrec.config.model import Config, ConfigError, parse
from callrec.config.toml import BOM, toml_document
from callrec.errors import CallrecError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\d{1,2}\])*(\.[A-Za-z_][A-Za-z0-9_]*(\[\d{1,2}\])*)*$")
_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d{1,2})\]")
# Keys only the console reads: a change takes effect at its next session, the recorder need not restart.
CONSOLE_ONLY = ("console.",)


class EditError(CallrecError, ValueError):
    """The change was not made; the message says why (the key, the value, the file) and what to do."""


@dataclass(frozen=True)
class Edit:
    path: Path
    key: str
    old: Any
    new: Any
    backup: Path | None
    restart_needed: bool
    config: Config


def parse_value(raw: str) -> Any:
    """A value as typed: TOML syntax when it is TOML (`42`, `true`, `"a b"`, `[1, 2]`), else a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except (ValueError, RecursionError):   # TOMLDecodeError, an integer past the digit limit, deep nesting
        return raw


def set_key(path: Path, key: str, value: Any, *, extra_check: Callable[[Config], list[str]] | None = None) -> Edit:
    """Set `key` (a key path as the error messages name it: `mqtt.port`, `lines[0].name`) to `value`
    in the file at `path`, or raise EditError with every problem and leave the file as it was."""
    if not _KEY.match(key):
        raise EditError(f"{key!r} is not a key path; write it as the configuration's messages do, "
                        "e.g. mqtt.host or lines[0].name")
    path = path.resolve()   # a link (the image's /etc/callrec/callrec.toml -> /data/config) stays a link
    text = _read(path)
    bom = BOM if text.startswith(BOM) else ""   # kept as the file had it (a Windows editor wrote it)
    try:
        document = tomlkit.parse(text.removeprefix(BOM))
    except Exception as error:   # tomlkit raises its own ParseError family, and RecursionError
        raise EditError(f"{path}: not valid TOML ({error}); fix the file first (check-config shows where)") from None
    parts = [name or int(index) for name, index in _PART.findall(key)]
    container: Any = document
    for depth, part in enumerate(parts[:-1]):
        container = _step(container, part, parts[depth + 1], key)
    last = parts[-1]
    if not isinstance(last, str):
        raise EditError(f"{key}: name a key inside the entry, e.g. {key}.name")
    old = container.get(last) if hasattr(container, "get") else None
    try:
        container[last] = value
        new_text = bom + tomlkit.dumps(document)
        new_text.encode("utf-8")   # a lone surrogate (from a caller, not from the console's decoder)
    except (ValueError, TypeError, RecursionError) as error:   # tomlkit or UTF-8 cannot write the value
        raise EditError(f"{key}: cannot be written as TOML in UTF-8 ({str(error)[:120]})") from None
    config = _validate(new_text, path, extra_check)
    backup = _write(path, text, new_text)
    return Edit(path, key, _plain(old), value, backup, not key.startswith(CONSOLE_ONLY), config)


def _step(container: Any, part: str | int, following: str | int, key: str) -> Any:
    if isinstance(part, int):
        if not isinstance(container, AoT | list) or part >= len(container):
            raise EditError(f"{key}: the file has no entry [{part}] there; the entries come from the defaults "
                            "until the file lists them: add the [[...]] tables to the file first")
        return container[part]
    if part not in container:
        if isinstance(following, int):
            raise EditError(f"{key}: the file has no {part} entries (the defaults are in effect); add the "
                            f"[[{part}]] tables to the file first")
        container[part] = tomlkit.table()
    child = container[part]
    if not isinstance(child, Table | AoT | dict | list):
        raise EditError(f"{key}: {part} is a value, not a table")
    return child


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""   # a new file: the defaults plus this key
    except UnicodeDecodeError:
        raise EditError(f"{path}: not UTF-8 text; fix the file first") from None
    except OSError as error:
        raise EditError(f"{path}: cannot read: {error.strerror or error}") from None


def _validate(text: str, path: Path, extra_check: Callable[[Config], list[str]] | None) -> Config:
    try:
        config = parse(toml_document(text, str(path), ConfigError), str(path))
    except ConfigError as error:
        raise EditError(f"not changed: {error}") from None
    problems = extra_check(config) if extra_check else []
    if problems:
        raise EditError("\n".join([f"not changed: {path}: {len(problems)} problem(s) in the configuration:",
                                   *(f"  {problem}" for problem in problems)]))
    return config


def _write(path: Path, old_text: str, new_text: str) -> Path | None:
    """The old file to FILE.bak, the new one in its place, each by write-fsync-rename."""
    backup = path.with_name(path.name + ".bak") if path.exists() else None
    st = path.stat() if path.exists() else None
    mode = st.st_mode & 0o7777 if st is not None else 0o640
    owner = (st.st_uid, st.st_gid) if st is not None else None
    try:
        if backup is not None:
            _atomic(backup, old_text, mode, owner)
        _atomic(path, new_text, mode, owner)
    except OSError as error:
        raise EditError(f"{path}: cannot write: {error.strerror or error} (the file is unchanged)") from None
    return backup


def _atomic(path: Path, text: str, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Write-fsync-rename, keeping the mode and, where allowed, the owner and group (a file of
    root:callrec 0640 written by root must stay readable by the service)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            if owner is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(out.fileno(), *owner)
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value
