"""The viewer's pages: Jinja2 templates (templates/: a base layout and one template per page) that
escape everything by construction, and the viewer's own static scripts and stylesheet (static/: no
build step, no third-party front-end code).

Nothing a user wrote reaches HTML or a script unescaped: templates autoescape; data for a page's
script goes in a JSON data island (`|tojson`, which escapes < > & ' so `</script>` cannot close
it) that the static scripts read with JSON.parse; the Content-Security-Policy (guards.py) runs no
inline script at all. Each function here gathers what its page shows; the words are the
templates' (and `LANG` the page's language), so a translated set can take their place (issue 25).
"""

from __future__ import annotations

from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined

from callrec.viewer.catalog import Found, Query
from callrec.viewer.sessions import Session
from callrec.viewer.users import role_allows

LANG = "en"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ENV = Environment(loader=PackageLoader("callrec.viewer", "templates"), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters["show"] = lambda value: "" if value is None else value          # a missing value shows as nothing
ENV.filters["segment"] = lambda value: quote(str(value), safe="")           # one path segment of a link


def render(template: str, session: Session | None, **context: Any) -> str:
    role = session.user.role if session is not None else None
    return ENV.get_template(template).render(
        lang=LANG, session=session, supervisor=role is not None and role_allows(role, "supervisor"),
        officer=role is not None and role_allows(role, "officer"), **context)


def static(name: str) -> tuple[bytes, str] | None:
    """(bytes, media type) of one of the viewer's own static files, or None for any other name."""
    suffix = name[name.rfind("."):] if "." in name else ""
    if suffix not in STATIC_TYPES or "/" in name or name.startswith("."):
        return None
    item = resources.files("callrec.viewer").joinpath("static", name)
    return (item.read_bytes(), STATIC_TYPES[suffix]) if item.is_file() else None


def login(next_path: str) -> str:
    """The login page; `next_path` is already known to be a path on this site (guards.safe_next)."""
    return render("login.html", None, data={"next": next_path})


def refused(session: Session, role: str) -> str:
    return render("refused.html", session, role=role)


def error(session: Session, status: int, message: str) -> str:
    return render("error.html", session, status=status, message=message)


def search(session: Session, query: Query, found: Found, tags: list[tuple[str, int]]) -> str:
    kept = [(k, str(v)) for k, v in vars(query).items() if v not in (None, "") and k != "offset"]

    def page_at(offset: int) -> str:
        return "/calls?" + urlencode([*kept, ("offset", str(offset))])

    newer = page_at(max(0, query.offset - query.limit)) if query.offset > 0 else None
    older = page_at(query.offset + query.limit) if query.offset + query.limit < found.total else None
    return render("calls.html", session, query=query, found=found, tags=tags, chart=chart(found.per_day),
                  newer=newer, older=older)


def chart(per_day: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Calls per day per line over the search range: the geometry of stacked bars for an SVG."""
    if not per_day:
        return None
    days = sorted({p["day"] for p in per_day})
    lines = sorted({p["line"] for p in per_day if p["line"] is not None})
    totals = {d: sum(p["count"] for p in per_day if p["day"] == d) for d in days}
    top = max(totals.values()) or 1
    height, bars = 80, []
    for i, day in enumerate(days):
        y = float(height)
        for j, line in enumerate(lines):
            count = sum(p["count"] for p in per_day if p["day"] == day and p["line"] == line)
            h = count / top * (height - 10)
            y -= h
            bars.append({"x": i * 14, "y": y, "h": h, "colour": j % 4, "day": day, "line": line, "count": count})
    return {"width": max(200, 14 * len(days)), "height": height, "bar": 12, "bars": bars,
            "legend": [(j % 4, line) for j, line in enumerate(lines)], "first": days[0], "last": days[-1]}


def call(session: Session, detail: dict[str, Any], can_hold: bool) -> str:
    record = detail["record"]
    digits = " ".join(str(d.get("digit", "")) for d in record.get("digits") or [] if isinstance(d, dict))
    return render("call.html", session, record=record, digits=digits, verification=detail["verification"],
                  notes=detail["notes"], tags=detail["tags"], can_hold=can_hold,
                  data={"call_id": record["call_id"], "markers": detail["markers"]})


def tag(session: Session, name: str, calls: list[dict[str, Any]]) -> str:
    return render("tag.html", session, name=name, calls=calls)


def export(session: Session, number: str, since: str, until: str, records: list[dict[str, Any]]) -> str:
    return render("export.html", session, number=number, since=since, until=until, records=records,
                  data={"query": {"number": number, "since": since or None, "until": until or None}})
