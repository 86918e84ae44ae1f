"""The viewer's accounts: a JSON file of names, roles and scrypt password hashes.

Roles nest: a listener searches and plays; a supervisor also adds notes and tags; an officer also
exports, holds and releases. Passwords are stored as `hashlib.scrypt` (n=2^14, r=8, p=1, a 16-byte
random salt) and compared in constant time; the file is written owner-only. An unknown name costs
the same scrypt run as a known one (checked against a dummy hash), so the time of an answer does
not tell which names exist. Repeated failures lock that name from that client address, and many
failures lock the address (throttle.Lockout; in the viewer's memory: a restart is the
administrator's unlock); a try counts from before its password check, so parallel tries cannot
outrun the count. `login` is blocking (scrypt): the app runs it in a worker thread.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callrec.errors import CallrecError
from callrec.evidence import check_password, hash_password, parse_json
from callrec.viewer.throttle import ADDRESS_MAX_FAILURES, PAIR_MAX_FAILURES, WINDOW_S, Lockout

ROLES = ("listener", "supervisor", "officer")
MAX_FAILURES = PAIR_MAX_FAILURES
LOCKOUT_S = WINDOW_S
__all__ = ["ADDRESS_MAX_FAILURES", "LOCKOUT_S", "MAX_FAILURES", "ROLES", "User", "Users", "UsersError", "role_allows"]
# checked when the name is unknown: the same scrypt work as a real check, and it never matches
_DUMMY_HASH = "scrypt$" + base64.b64encode(bytes(16)).decode() + "$" + base64.b64encode(bytes(32)).decode()


class UsersError(CallrecError, ValueError):
    """The users file or a user's entry is not usable; the message says which and why."""


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class User:
    name: str
    role: str


class Users:
    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._lockout = Lockout()

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = parse_json(self.path.read_bytes())   # deep nesting, bad UTF-8: ValueError too
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise UsersError(f"{self.path}: not a callrec users file ({error})") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise UsersError(f"{self.path}: not a callrec users file (an object of users)")
        return data

    def add(self, name: str, role: str, password: str) -> None:
        if role not in ROLES:
            raise UsersError(f"role {role!r}: one of {', '.join(ROLES)}")
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise UsersError(f"user name {name!r}: letters, digits, '-', '_' and '.' only")
        if len(password) < 8:
            raise UsersError("the password is shorter than 8 characters")
        with self._lock:
            users = self._load()
            users[name] = {"role": role, "password": hash_password(password)}
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(users, handle, indent=2)
            os.replace(tmp, self.path)

    def names(self) -> list[str]:
        return sorted(self._load())

    def login(self, name: str, password: str, address: str = "") -> User | None:
        """The user, or None (wrong name or password, or locked out: the caller cannot tell).

        The try is counted as in flight before the password check and given its verdict after, all
        under the lock: parallel tries cannot get past the limits while the checks run.
        """
        now = self.clock()
        with self._lock:
            if not self._lockout.begin(name, address, now):
                return None
        user: User | None = None
        verdict: bool | None = None   # None: no verdict (an error below), the try is dropped uncounted
        try:
            user = self._check(name, password)
            verdict = user is not None
        finally:
            with self._lock:
                self._lockout.end(name, address, now, verdict)
        return user

    def _check(self, name: str, password: str) -> User | None:
        """The user when name and password match (blocking: scrypt, also for an unknown name)."""
        entry = self._load().get(name)
        stored = str(entry.get("password", "")) if entry is not None else _DUMMY_HASH
        if not check_password(password, stored) or entry is None or entry.get("role") not in ROLES:
            return None
        return User(name, str(entry["role"]))

    def locked(self, name: str, address: str = "") -> bool:
        with self._lock:
            return self._lockout.locked(name, address, self.clock())
