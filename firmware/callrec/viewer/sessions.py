"""Logged-in sessions: a random token in an HttpOnly, SameSite=Strict cookie, and a CSRF token
that every change must send back in `X-CSRF-Token` (or the form field `csrf`). Sessions end after
`IDLE_S` without a request, or at logout; they live in the viewer's memory only."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from callrec.viewer.users import User

COOKIE = "callrec_session"
IDLE_S = 1800.0


@dataclass
class Session:
    token: str
    user: User
    csrf: str
    last_seen: float


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic, idle_s: float = IDLE_S) -> None:
        self.clock = clock
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}

    def open(self, user: User) -> Session:
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), self.clock())
        with self._lock:
            self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The session, touched; None when there is none or it expired (then it is gone)."""
        if not token:
            return None
        now = self.clock()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if now - session.last_seen > self.idle_s:
                del self._by_token[token]
                return None
            session.last_seen = now
            return session

    def close(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf, sent or "")
