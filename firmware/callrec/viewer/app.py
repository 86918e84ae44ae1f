"""The viewer as an ASGI application (Starlette): server-rendered pages and the JSON API behind
them (docs/viewer.md; routes, fields and status codes are contracts).

Every request but the login is a session's; a role that may not do something gets 403 with the
reason, an unknown call 404, bad input 422 naming the field, a body over 64 KiB 413. Every login,
playback, download, note, tag, export and hold goes to the audit log with the user's name
(`viewer:<name>`); failed logins too, boundedly (throttle.FailureLog). Pages come from autoescaping
templates (pages.py); security headers, the body limit and the plain 500 for the unexpected are the
`Guard` middleware's (guards.py), so no handler can forget them.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from callrec.evidence import build_bundle
from callrec.privacy import started_wall
from callrec.viewer import pages
from callrec.viewer.annotations import Annotations
from callrec.viewer.catalog import Catalog, Query
from callrec.viewer.guards import Guard, safe_next
from callrec.viewer.inputs import (
    ApiError,
    ExportBody,
    HoldBody,
    LoginBody,
    NoteBody,
    TagBody,
    date_of,
    file_safe,
    int_of,
    json_of,
    parse,
    position_of,
    query_of,
)
from callrec.viewer.media import peaks, playable
from callrec.viewer.sessions import COOKIE, Session, Sessions, csrf_ok
from callrec.viewer.source import CallSource
from callrec.viewer.throttle import FailureLog
from callrec.viewer.users import User, Users, role_allows

log = logging.getLogger(__name__)


@dataclass
class Viewer:
    source: CallSource
    catalog: Catalog
    annotations: Annotations
    users: Users
    sessions: Sessions
    identities: list[Any]
    purpose: str
    secure_cookie: bool = False
    login_audit: FailureLog = field(default_factory=FailureLog)

    def audit(self, action: str, user: User, what: dict[str, Any]) -> None:
        self.source.audit.try_record(action, f"viewer:{user.name}", what)

    def audit_suppressed(self, summary: dict[str, Any] | None) -> None:
        """The one entry that stands for the failed logins not audited one by one in a window."""
        if summary is not None:
            self.source.audit.try_record("viewer.login.failed.suppressed", "viewer", summary)


def build_app(viewer: Viewer) -> Starlette:
    Handler = Callable[[Request], Awaitable[Response]]

    def api(role: str | None = "listener", *, change: bool = False) -> Callable[[Any], Handler]:
        """Session, role and CSRF checks around a JSON handler; errors as JSON."""
        def wrap(handler: Any) -> Handler:
            async def endpoint(request: Request) -> Response:
                try:
                    session = None
                    if role is not None:
                        session = viewer.sessions.get(request.cookies.get(COOKIE))
                        if session is None:
                            raise ApiError(401, "not logged in, or the session expired: POST /api/login")
                        if not role_allows(session.user.role, role):
                            raise ApiError(403, f"a {session.user.role} may not do this (needs {role})")
                        if change and not csrf_ok(session, request.headers.get("X-CSRF-Token")):
                            raise ApiError(403, "missing or wrong X-CSRF-Token (from the login answer)")
                    result: Response = await handler(request, session)
                    return result
                except ApiError as error:
                    body: dict[str, Any] = {"error": error.message}
                    if error.field:
                        body["field"] = error.field
                    return JSONResponse(body, status_code=error.status)
            return endpoint
        return wrap

    def call_or_404(call_id: str) -> dict[str, Any]:
        record = viewer.catalog.get(call_id)
        if record is None:
            raise ApiError(404, f"no call {call_id[:64]!r}")
        return record

    async def json_body(request: Request) -> Any:
        return json_of(await request.body())

    # ---- the API --------------------------------------------------------------------------------

    @api(None)
    async def api_login(request: Request, _: Session | None) -> Response:
        body = parse(LoginBody, await json_body(request))
        address = request.client.host if request.client else "unknown"
        # scrypt takes tens of milliseconds: in a worker thread, so other requests go on meanwhile
        response: Response = await run_in_threadpool(_log_in, viewer, body.user, body.password, address)
        return response

    @api("listener", change=True)
    async def api_logout(request: Request, session: Session) -> Response:
        viewer.sessions.close(session.token)
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE)
        return response

    @api("listener")
    async def api_calls(request: Request, session: Session) -> Response:
        found = viewer.catalog.search(query_of(request.query_params))
        return JSONResponse({"total": found.total, "calls": [_summary(r) for r in found.calls],
                             "per_day": found.per_day})

    @api("listener")
    async def api_call(request: Request, session: Session) -> Response:
        record = call_or_404(request.path_params["call_id"])
        return JSONResponse(_detail(viewer, record))

    @api("listener")
    async def api_audio(request: Request, session: Session) -> Response:
        record = call_or_404(request.path_params["call_id"])
        data, media = _audio(viewer, record)
        range_header = request.headers.get("range")
        if not range_header or range_header.startswith("bytes=0-"):
            viewer.audit("viewer.playback", session.user, {"call_id": record["call_id"]})
        return _ranged(data, media, range_header)

    @api("listener")
    async def api_download(request: Request, session: Session) -> Response:
        record = call_or_404(request.path_params["call_id"])
        data = viewer.source.read(record)
        if data is None:
            raise ApiError(404, "the recording file is not there")
        viewer.audit("viewer.download", session.user, {"call_id": record["call_id"]})
        name = Path((record.get("recording") or {}).get("path") or "call").name
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @api("listener")
    async def api_peaks(request: Request, session: Session) -> Response:
        record = call_or_404(request.path_params["call_id"])
        width = int_of(request.query_params.get("width"), "width", 1, 4000, 800) or 800
        data, _media = _audio(viewer, record)
        return JSONResponse(peaks(data, width))

    @api("supervisor", change=True)
    async def api_note(request: Request, session: Session) -> Response:
        record = call_or_404(request.path_params["call_id"])
        body = parse(NoteBody, await json_body(request))
        note = viewer.annotations.add_note(record["call_id"], body.at_s, body.text, session.user.name)
        viewer.audit("viewer.note", session.user, {"call_id": record["call_id"], "at_s": body.at_s})
        return JSONResponse(note, status_code=201)

    @api("supervisor", change=True)
    async def api_tag(request: Request, session: Session) -> Response:
        record = call_or_404(request.path_params["call_id"])
        body = parse(TagBody, await json_body(request))
        viewer.annotations.add_tag(record["call_id"], body.tag, session.user.name)
        viewer.audit("viewer.tag", session.user, {"call_id": record["call_id"], "tag": body.tag})
        return JSONResponse({"call_id": record["call_id"], "tags": viewer.annotations.tags(record["call_id"])},
                            status_code=201)

    @api("officer", change=True)
    async def api_export(request: Request, session: Session) -> Response:
        body = parse(ExportBody, await json_body(request))
        records = _matching(viewer, body.number, date_of(body.since, "since"), date_of(body.until, "until"))
        if not records:
            raise ApiError(404, "no calls match; nothing was exported")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "bundle.zip"
            done = build_bundle(records, lambda rel: _read_path(viewer, records, rel), viewer.source.entries(),
                                viewer.source.public_key(), viewer.purpose, out,
                                query={"number": body.number, "since": body.since, "until": body.until},
                                device_name=viewer.source.name)
            data = out.read_bytes()
        viewer.audit("export", session.user, {"calls": done.calls, "sha256": done.sha256, "number": body.number,
                                              "since": body.since, "until": body.until, "via": "viewer"})
        name = f"disclosure-{file_safe(body.number)}.zip"
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @api("officer", change=True)
    async def api_hold(request: Request, session: Session) -> Response:
        record = call_or_404(request.path_params["call_id"])
        body = parse(HoldBody, await json_body(request))
        release = request.url.path.endswith("/release")
        try:
            (viewer.source.release if release else viewer.source.hold)(record["call_id"], body.reason,
                                                                       f"viewer:{session.user.name}")
        except PermissionError as error:
            raise ApiError(409, str(error)) from None
        # audited by the evidence room's hold/release itself, with this user as `who`
        viewer.catalog.reload(record["call_id"])
        return JSONResponse({"call_id": record["call_id"], "held": not release})

    # ---- the pages ------------------------------------------------------------------------------

    def page(role: str = "listener") -> Callable[[Any], Handler]:
        def wrap(handler: Any) -> Handler:
            async def endpoint(request: Request) -> Response:
                session = viewer.sessions.get(request.cookies.get(COOKIE))
                if session is None:   # back here after the login, filters and all (the browser keeps the #t=)
                    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse("/login?next=" + quote(here, safe=""), status_code=303)
                if not role_allows(session.user.role, role):
                    return HTMLResponse(pages.refused(session, role), status_code=403)
                try:
                    result: Response = await handler(request, session)
                    return result
                except ApiError as error:
                    return HTMLResponse(pages.error(session, error.status, error.message), status_code=error.status)
            return endpoint
        return wrap

    async def login_page(request: Request) -> Response:
        return HTMLResponse(pages.login(safe_next(request.query_params.get("next"))))

    async def static_file(request: Request) -> Response:
        found = pages.static(request.path_params["name"])
        if found is None:
            return Response("no such file\n", status_code=404, media_type="text/plain")
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    async def root(request: Request) -> Response:
        return RedirectResponse("/calls", status_code=303)

    @page()
    async def calls_page(request: Request, session: Session) -> Response:
        query = query_of(request.query_params)
        found = viewer.catalog.search(query)
        return HTMLResponse(pages.search(session, query, found, viewer.annotations.all_tags()))

    @page()
    async def call_page(request: Request, session: Session) -> Response:
        record = call_or_404(request.path_params["call_id"])
        return HTMLResponse(pages.call(session, _detail(viewer, record), viewer.source.can_hold))

    @page()
    async def tag_page(request: Request, session: Session) -> Response:
        tag = request.path_params["tag"]
        calls = [r for r in (viewer.catalog.get(c) for c in sorted(viewer.annotations.calls_with_tag(tag))) if r]
        return HTMLResponse(pages.tag(session, tag, calls))

    @page("officer")
    async def export_page(request: Request, session: Session) -> Response:
        number = request.query_params.get("number") or ""
        records = _matching(viewer, number, date_of(request.query_params.get("since"), "since"),
                            date_of(request.query_params.get("until"), "until")) if number else []
        return HTMLResponse(pages.export(session, number, request.query_params.get("since") or "",
                                         request.query_params.get("until") or "", records))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        viewer.audit_suppressed(viewer.login_audit.flush())   # the count of a window cut short

    routes = [
        Route("/", root), Route("/login", login_page), Route("/static/{name}", static_file),
        Route("/calls", calls_page), Route("/calls/{call_id}", call_page), Route("/tags/{tag:path}", tag_page),
        Route("/export", export_page),
        Route("/api/login", api_login, methods=["POST"]), Route("/api/logout", api_logout, methods=["POST"]),
        Route("/api/calls", api_calls), Route("/api/calls/{call_id}", api_call),
        Route("/api/calls/{call_id}/audio", api_audio), Route("/api/calls/{call_id}/download", api_download),
        Route("/api/calls/{call_id}/peaks", api_peaks),
        Route("/api/calls/{call_id}/notes", api_note, methods=["POST"]),
        Route("/api/calls/{call_id}/tags", api_tag, methods=["POST"]),
        Route("/api/calls/{call_id}/hold", api_hold, methods=["POST"]),
        Route("/api/calls/{call_id}/release", api_hold, methods=["POST"]),
        Route("/api/export", api_export, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard)], lifespan=lifespan)


def _log_in(viewer: Viewer, name: str, password: str, address: str) -> Response:
    """Check the password (blocking: scrypt), audit, and open the session; 401 when refused.
    Failed logins are audited boundedly (throttle.FailureLog), the rest summed up in one entry."""
    user = viewer.users.login(name, password, address)
    if user is None:
        locked = viewer.users.locked(name, address)
        audit, summary = viewer.login_audit.failed(name, address)
        viewer.audit_suppressed(summary)
        if audit:
            viewer.source.audit.try_record("viewer.login.failed", f"viewer:{name[:64]}",
                                           {"locked": locked, "address": address[:64]})
        raise ApiError(401, "wrong user or password" + (" (too many failures: wait, then try again)"
                                                        if locked else ""))
    viewer.audit_suppressed(viewer.login_audit.due())
    session = viewer.sessions.open(user)
    viewer.audit("viewer.login", user, {})
    response = JSONResponse({"user": user.name, "role": user.role, "csrf_token": session.csrf})
    response.set_cookie(COOKIE, session.token, httponly=True, samesite="strict", secure=viewer.secure_cookie)
    return response


# ---- helpers ------------------------------------------------------------------------------------


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("call_id", "device_id", "line", "direction", "started_at", "duration_s", "caller_number",
            "dialed_number", "status", "archived_at")
    return {key: record.get(key) for key in keys if key in record or key in ("call_id", "line")}


def _detail(viewer: Viewer, record: dict[str, Any]) -> dict[str, Any]:
    check = viewer.source.check(record)
    return {"record": record, "notes": viewer.annotations.notes(record["call_id"]),
            "tags": viewer.annotations.tags(record["call_id"]),
            "verification": {"ok": check.ok, "problems": check.problems},
            "markers": markers(record, viewer.annotations.notes(record["call_id"]))}


def markers(record: dict[str, Any], notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Moments on the recording's own timeline (seconds from its first sample, pre-roll included)."""
    preroll = float(record.get("preroll_s") or 0.0)
    out: list[dict[str, Any]] = []
    started, answered = started_wall(record), started_wall({"started_at": record.get("answered_at")})
    answer_at = preroll + (answered - started) if started is not None and answered is not None else None
    if answer_at is not None:
        out.append({"kind": "answer", "at_s": round(answer_at, 3), "label": "answered"})
    proof = record.get("announcement") or {}
    if answer_at is not None and proof.get("started_s") is not None:
        out.append({"kind": "announcement", "at_s": round(answer_at + float(proof["started_s"]), 3),
                    "end_s": round(answer_at + float(proof.get("ended_s") or proof["started_s"]), 3),
                    "label": "announcement"})
    for flash in record.get("flash_times") or []:
        if isinstance(flash, dict) and isinstance(flash.get("at_s"), int | float):
            out.append({"kind": "flash", "at_s": round(preroll + float(flash["at_s"]), 3), "label": "flash"})
    for digit in record.get("digits") or []:
        if isinstance(digit, dict) and isinstance(digit.get("at_s"), int | float):
            out.append({"kind": "dtmf", "at_s": round(preroll + float(digit["at_s"]), 3),
                        "label": str(digit.get("digit", ""))})
    for note in notes:
        out.append({"kind": "note", "at_s": note["at_s"], "label": note["text"][:40]})
    return sorted(out, key=lambda m: m["at_s"])


def _audio(viewer: Viewer, record: dict[str, Any]) -> tuple[bytes, str]:
    from callrec.privacy import CryptoError

    data = viewer.source.read(record)
    if data is None:
        raise ApiError(404, "the recording file is not there (offloaded, deleted or missing)")
    try:
        return playable(data, record, viewer.identities)
    except CryptoError as error:
        raise ApiError(409, str(error)) from None


def _ranged(data: bytes, media: str, header: str | None) -> Response:
    """HTTP Range (one `bytes=a-b` range), as the audio element seeks. A position with more digits
    than any file has bytes is read as "past the end", never parsed."""
    size = len(data)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not header or match is None or (not match.group(1) and not match.group(2)):
        return Response(data, media_type=media, headers=headers)
    first, last = position_of(match.group(1)), position_of(match.group(2))
    if first is not None:
        start, end = first, min(last, size - 1) if last is not None else size - 1
    else:
        start, end = max(0, size - (last or 0)), size - 1
    if start >= size or start > end:
        return JSONResponse({"error": f"Range: {header[:40]!r} is outside the recording ({size} bytes)",
                             "field": "Range"}, status_code=416,
                            headers={**headers, "Content-Range": f"bytes */{size}"})
    return Response(data[start:end + 1], status_code=206, media_type=media,
                    headers={**headers, "Content-Range": f"bytes {start}-{end}/{size}"})


def _matching(viewer: Viewer, number: str, since: str | None, until: str | None) -> list[dict[str, Any]]:
    found = viewer.catalog.search(Query(number=number, since=since, until=until, limit=100_000))
    return [r for r in found.calls if number in (r.get("caller_number"), r.get("dialed_number"))]


def _read_path(viewer: Viewer, records: list[dict[str, Any]], relative: str) -> bytes | None:
    for record in records:
        path = (record.get("recording") or {}).get("path")
        if not path:
            continue
        if relative == path:
            return viewer.source.read(record)
        if relative == str(Path(path).with_name(f"{record['call_id']}.json")):
            return viewer.source.read(record, "sidecar")
    return None
