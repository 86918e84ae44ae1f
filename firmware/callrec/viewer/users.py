"""The viewer's accounts: a JSON file of names, roles and scrypt password hashes.

Roles nest: a listener searches and plays; a supervisor also adds notes and tags; an officer also
exports, holds and releases. Passwords are stored as `hashlib.scrypt` (n=2^14, r=8, p=1, a 16-byte
random salt) and compared in constant time; the file is written owner-only. Repeated failures lock
the account for a while (in the viewer's memory: a restart is the administrator's unlock).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from callrec.errors import CallrecError
from callrec.evidence import check_password, hash_password

ROLES = ("listener", "supervisor", "officer")
MAX_FAILURES = 5
LOCKOUT_S = 300.0


class UsersError(CallrecError, ValueError):
    """The users file or a user's entry is not usable; the message says which and why."""


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class User:
    name: str
    role: str


class Users:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
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

    def login(self, name: str, password: str, now: float | None = None) -> User | None:
        """The user, or None (wrong name or password, or locked out: the caller cannot tell)."""
        moment = time.time() if now is None else now
        with self._lock:
            recent = [t for t in self._failures.get(name, []) if moment - t < LOCKOUT_S]
            self._failures[name] = recent
            if len(recent) >= MAX_FAILURES:
                return None
        entry = self._load().get(name)
        if entry is None or not check_password(password, str(entry.get("password", ""))) \
                or entry.get("role") not in ROLES:
            with self._lock:
                self._failures.setdefault(name, []).append(moment)
            return None
        with self._lock:
            self._failures.pop(name, None)
        return User(name, str(entry["role"]))

    def locked(self, name: str, now: float | None = None) -> bool:
        moment = time.time() if now is None else now
        with self._lock:
            return len([t for t in self._failures.get(name, []) if moment - t < LOCKOUT_S]) >= MAX_FAILURES
