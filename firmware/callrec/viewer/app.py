"""The viewer as an ASGI application (Starlette): server-rendered pages and the JSON API behind
them (docs/viewer.md; routes, fields and status codes are contracts).

Every request but the login is a session's; a role that may not do something gets 403 with the
reason, an unknown call 404, bad input 422 naming the field. Every login, playback, download, note,
tag, export and hold goes to the audit log with the user's name (`viewer:<name>`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from callrec.errors import CallrecError
from callrec.evidence import build_bundle
from callrec.privacy import started_wall
from callrec.viewer import pages
from callrec.viewer.annotations import Annotations
from callrec.viewer.catalog import Catalog, Query
from callrec.viewer.media import peaks, playable
from callrec.viewer.sessions import COOKIE, Session, Sessions, csrf_ok
from callrec.viewer.source import CallSource
from callrec.viewer.users import User, Users, role_allows

log = logging.getLogger(__name__)
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

    def audit(self, action: str, user: User, what: dict[str, Any]) -> None:
        self.source.audit.try_record(action, f"viewer:{user.name}", what)


def parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        item = error.errors(include_url=False)[0]
        field = ".".join(str(p) for p in item["loc"]) or "body"
        raise ApiError(422, f"{field}: {item['msg']}", field) from None


def _date(value: str | None, field: str) -> str | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10]).isoformat() if len(value) == 10 else \
            dt.datetime.fromisoformat(value).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    except ValueError:
        raise ApiError(422, f"{field}: not a date (YYYY-MM-DD) or ISO 8601 time: {value[:40]!r}", field) from None


def _int(value: str | None, field: str, low: int, high: int, default: int | None) -> int | None:
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise ApiError(422, f"{field}: not an integer: {str(value)[:20]!r}", field) from None
    if not low <= number <= high:
        raise ApiError(422, f"{field}: must be {low} to {high}", field)
    return number


def query_of(params: Any) -> Query:
    number = params.get("number") or None
    if number is not None and not re.fullmatch(r"[0-9*#+A-D]{1,32}", number):
        raise ApiError(422, "number: digits (a prefix of either party's number)", "number")
    direction = params.get("direction") or None
    if direction not in (None, "inbound", "outbound"):
        raise ApiError(422, "direction: inbound or outbound", "direction")
    return Query(number=number, since=_date(params.get("since"), "since"), until=_date(params.get("until"), "until"),
                 line=_int(params.get("line"), "line", 1, 99, None), direction=direction,
                 status=params.get("status") or None, tag=params.get("tag") or None, text=params.get("text") or None,
                 limit=_int(params.get("limit"), "limit", 1, 500, 50) or 50,
                 offset=_int(params.get("offset"), "offset", 0, 10_000_000, 0) or 0)


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
        try:
            return await request.json()
        except ValueError:
            raise ApiError(422, "body: not JSON", "body") from None

    # ---- the API --------------------------------------------------------------------------------

    @api(None)
    async def api_login(request: Request, _: Session | None) -> Response:
        body = parse(LoginBody, await json_body(request))
        user = viewer.users.login(body.user, body.password)
        if user is None:
            locked = viewer.users.locked(body.user)
            viewer.source.audit.try_record("viewer.login.failed", f"viewer:{body.user[:64]}", {"locked": locked})
            raise ApiError(401, "wrong user or password" + (" (too many failures: wait, then try again)"
                                                            if locked else ""))
        session = viewer.sessions.open(user)
        viewer.audit("viewer.login", user, {})
        response = JSONResponse({"user": user.name, "role": user.role, "csrf_token": session.csrf})
        response.set_cookie(COOKIE, session.token, httponly=True, samesite="strict", secure=viewer.secure_cookie)
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
        width = _int(request.query_params.get("width"), "width", 1, 4000, 800) or 800
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
        records = _matching(viewer, body.number, _date(body.since, "since"), _date(body.until, "until"))
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
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="disclosure-{body.number}.zip"'})

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
        viewer.audit("release" if release else "hold", session.user, {"call_id": record["call_id"],
                                                                       "reason": body.reason})
        viewer.catalog.reload(record["call_id"])
        return JSONResponse({"call_id": record["call_id"], "held": not release})

    # ---- the pages ------------------------------------------------------------------------------

    def page(role: str = "listener") -> Callable[[Any], Handler]:
        def wrap(handler: Any) -> Handler:
            async def endpoint(request: Request) -> Response:
                session = viewer.sessions.get(request.cookies.get(COOKIE))
                if session is None:
                    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
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
        return HTMLResponse(pages.login(request.query_params.get("next") or "/calls"))

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
        records = _matching(viewer, number, _date(request.query_params.get("since"), "since"),
                            _date(request.query_params.get("until"), "until")) if number else []
        return HTMLResponse(pages.export(session, number, request.query_params.get("since") or "",
                                         request.query_params.get("until") or "", records))

    routes = [
        Route("/", root), Route("/login", login_page), Route("/calls", calls_page),
        Route("/calls/{call_id}", call_page), Route("/tags/{tag}", tag_page), Route("/export", export_page),
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
    return Starlette(routes=routes)


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
    """HTTP Range (one `bytes=a-b` range), as the audio element seeks."""
    size = len(data)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not header or match is None or (not match.group(1) and not match.group(2)):
        return Response(data, media_type=media, headers=headers)
    if match.group(1):
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    else:
        start, end = max(0, size - int(match.group(2))), size - 1
    if start >= size or start > end:
        return Response(b"", status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
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
