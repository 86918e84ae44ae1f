"""What every answer of the viewer gets, whatever its handler does (docs/viewer.md, "Security").

`Guard` is a plain ASGI middleware around the routes:
- the security headers on every answer: a Content-Security-Policy that lets only the viewer's own
  static scripts run (no inline script, no framing), nosniff, no referrer;
- a request body limit (`BODY_LIMIT`), enforced from the declared length before anything is read
  and again while the body is read (a chunked body, a missing or lying length): 413 naming `body`;
- any exception a handler did not expect becomes a plain-text 500 that says where to look, and
  the traceback goes to the viewer's log, never to the client.

`safe_next` decides where the login page may send the browser afterwards.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote, urlsplit

from callrec.errors import CallrecError

log = logging.getLogger(__name__)

BODY_LIMIT = 64 * 1024
MAX_NEXT = 2000
DEFAULT_NEXT = "/calls"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
INTERNAL_ERROR = ("internal error: the viewer could not answer this request. Nothing was changed by it "
                  "unless the audit log says so; the details are in the viewer's log.\n")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(CallrecError, ValueError):
    """The request body is over the viewer's limit (raised while it is being read)."""


def safe_next(value: str | None, default: str = DEFAULT_NEXT) -> str:
    """`value` when it is a path on this site, else `default`.

    Browsers read `//host`, `/\\host` and `\\/host` as another site, drop tabs and newlines anywhere
    in a URL and strip leading spaces and control characters, and undo `.` segments (`/.//host`
    ends as `//host`). So: exactly one leading '/', no backslash, no control, format or space
    character, no dot segment (also percent-encoded), no scheme or host when parsed, and short.
    And a page, not the API: a crafted login link must not make the browser fetch a download
    (audited as the victim's) the moment the victim logs in.
    """
    if not value or len(value) > MAX_NEXT or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(_invisible(c) for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(unquote(s) in (".", "..") for s in parts.path.split("/")):
        return default
    if unquote(parts.path).lower().startswith("/api/"):
        return default
    return value


def _invisible(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("C")


class Guard:
    """Security headers, the body limit and the last word on errors, for every HTTP request."""

    def __init__(self, app: ASGIApp, body_limit: int = BODY_LIMIT) -> None:
        self.app = app
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers") or [])
                present = {bytes(name).lower() for name, _ in headers}
                message["headers"] = headers + [(n, v) for n, v in HEADERS if n not in present]
            await send(message)

        declared = _declared_length(scope)
        if declared is None:
            await _answer(send_with_headers, 400, {"error": "Content-Length: not a number", "field": "body"})
            return
        if declared > self.body_limit:
            await _answer(send_with_headers, 413, self._too_large())
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_limit:
                    raise BodyTooLarge(self._too_large()["error"])
            return message

        try:
            await self.app(scope, receive_limited, send_with_headers)
        except BodyTooLarge:
            if not started:
                await _answer(send_with_headers, 413, self._too_large())
        except Exception:
            log.exception("the viewer failed on %s %s", scope.get("method"), str(scope.get("path"))[:200])
            if not started:
                await _answer(send_with_headers, 500, INTERNAL_ERROR)

    def _too_large(self) -> dict[str, str]:
        return {"error": f"body: the request body is over {self.body_limit} bytes ({self.body_limit // 1024} KiB); "
                         "send less", "field": "body"}


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length in bytes (0 when absent), or None when it is not a number."""
    for name, value in scope.get("headers") or []:
        if bytes(name).lower() == b"content-length":
            text = bytes(value).strip()
            if not text.isdigit():
                return None
            return int(text) if len(text) <= 18 else 10 ** 18   # more digits: over any limit, never parsed
    return 0


async def _answer(send: Send, status: int, body: dict[str, str] | str) -> None:
    if isinstance(body, dict):
        data, media = json.dumps(body).encode(), b"application/json"
    else:
        data, media = body.encode(), b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})
