"""The viewer's pages: server-rendered HTML with a little inline script of our own (no build
step, no third-party front-end code). Everything shown is escaped; changes go through the JSON API
with the page's CSRF token."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from callrec.viewer.catalog import Found, Query
from callrec.viewer.sessions import Session
from callrec.viewer.users import role_allows

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222} header{background:#234;color:#fff;padding:.5em 1em}
header a{color:#cde;margin-right:1em} main{padding:1em} table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;font-size:.9em} th{background:#f4f4f4}
form.search input,form.search select{margin:.2em} .bad{color:#b00} .ok{color:#070} .muted{color:#777}
#wave{width:100%;height:120px;border:1px solid #ccc;cursor:pointer;background:#fafafa} .markers span{margin-right:1em}
button{cursor:pointer} .pager a{margin-right:1em}
"""

SCRIPT = """
const csrf = document.querySelector('meta[name=csrf]')?.content;
async function api(method, url, body) {
  const r = await fetch(url, {method, headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                              body: body === undefined ? undefined : JSON.stringify(body)});
  if (!r.ok) { const e = await r.json().catch(() => ({error: r.statusText})); throw new Error(e.error); }
  return r;
}
async function logout() { await api('POST', '/api/logout'); location = '/login'; }
"""


def layout(title: str, body: str, session: Session | None = None, script: str = "") -> str:
    nav = ""
    meta = ""
    if session is not None:
        meta = f'<meta name="csrf" content="{escape(session.csrf)}">'
        links = ['<a href="/calls">Calls</a>']
        if role_allows(session.user.role, "officer"):
            links.append('<a href="/export">Disclosure</a>')
        nav = (" ".join(links) + f'<span style="float:right">{escape(session.user.name)} ({escape(session.user.role)}) '
               '<button id="logout" onclick="logout()">Log out</button></span>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · callrec</title>'
            f'{meta}<style>{STYLE}</style></head><body><header><b>callrec</b> &nbsp; {nav}</header>'
            f'<main>{body}</main><script>{SCRIPT}{script}</script></body></html>')


def login(next_url: str) -> str:
    target = next_url if next_url.startswith("/") and not next_url.startswith("//") else "/calls"
    body = """<h1>Log in</h1><form id="login"><p><label>User <input name="user" id="user" autocomplete="username">
</label></p><p><label>Password <input name="password" id="password" type="password"
autocomplete="current-password"></label></p><p><button type="submit" id="submit">Log in</button></p>
<p id="message" class="bad"></p></form>"""
    script = f"""
document.getElementById('login').addEventListener('submit', async (e) => {{
  e.preventDefault();
  const r = await fetch('/api/login', {{method: 'POST', headers: {{'Content-Type': 'application/json'}},
    body: JSON.stringify({{user: user.value, password: password.value}})}});
  if (r.ok) {{ location = {json.dumps(target)}; }}
  else {{ document.getElementById('message').textContent = (await r.json()).error; }}
}});"""
    return layout("Log in", body, None, script)


def refused(session: Session, role: str) -> str:
    return layout("Not allowed", f'<h1>Not allowed</h1><p class="bad" id="refused">A {escape(session.user.role)} '
                                 f"may not do this (needs {escape(role)}).</p>", session)


def error(session: Session, status: int, message: str) -> str:
    return layout("Error", f'<h1>{status}</h1><p class="bad">{escape(message)}</p>', session)


def _value(value: Any) -> str:
    return "" if value is None else escape(str(value))


def search(session: Session, query: Query, found: Found, tags: list[tuple[str, int]]) -> str:
    fields = (f'<input name="number" id="q-number" placeholder="number (prefix)" value="{_value(query.number)}">'
              f'<input name="since" type="date" value="{_value((query.since or "")[:10])}">'
              f'<input name="until" type="date" value="{_value((query.until or "")[:10])}">'
              f'<input name="line" size="3" placeholder="line" value="{_value(query.line)}">'
              '<select name="direction"><option value="">either direction</option>'
              + "".join(f'<option{" selected" if query.direction == d else ""}>{d}</option>'
                        for d in ("inbound", "outbound")) + "</select>"
              f'<input name="tag" placeholder="tag" value="{_value(query.tag)}">'
              f'<input name="text" placeholder="note text" value="{_value(query.text)}">'
              '<button type="submit" id="search">Search</button>')
    rows = "".join(
        f'<tr><td><a href="/calls/{escape(r["call_id"])}">{escape(r["call_id"])}</a></td>'
        f'<td>{_value(r.get("line"))}</td>'
        f'<td>{_value(r.get("direction"))}</td><td>{_value(r.get("started_at"))}</td>'
        f'<td>{_value(r.get("caller_number"))}</td><td>{_value(r.get("dialed_number"))}</td>'
        f'<td>{_value(r.get("duration_s"))}</td><td>{_value(r.get("status"))}</td></tr>' for r in found.calls)
    pager = []
    base = "&".join(f"{k}={escape(str(v))}" for k, v in vars(query).items() if v not in (None, "") and k != "offset")
    if query.offset > 0:
        pager.append(f'<a href="/calls?{base}&offset={max(0, query.offset - query.limit)}">newer</a>')
    if query.offset + query.limit < found.total:
        pager.append(f'<a id="older" href="/calls?{base}&offset={query.offset + query.limit}">older</a>')
    tag_links = " ".join(f'<a href="/tags/{escape(t)}">{escape(t)}</a> ({n})' for t, n in tags)
    body = (f'<h1>Calls</h1><form class="search" method="get" action="/calls">{fields}</form>'
            f'{chart(found.per_day)}<p id="total">{found.total} call(s)</p>'
            '<table id="results"><tr><th>Call</th><th>Line</th><th>Direction</th><th>Started (UTC)</th>'
            f'<th>Caller</th><th>Dialled</th><th>Seconds</th><th>Status</th></tr>{rows}</table>'
            f'<p class="pager">{" ".join(pager)}</p><p class="muted">Training sets: {tag_links or "none yet"}</p>')
    return layout("Calls", body, session)


def chart(per_day: list[dict[str, Any]]) -> str:
    """Calls per day per line over the search range, as an inline SVG (stacked bars)."""
    if not per_day:
        return ""
    days = sorted({p["day"] for p in per_day})
    lines = sorted({p["line"] for p in per_day if p["line"] is not None})
    totals = {d: sum(p["count"] for p in per_day if p["day"] == d) for d in days}
    top = max(totals.values()) or 1
    width, height, bar = max(200, 14 * len(days)), 80, 12
    colours = ["#36c", "#c63", "#393", "#939"]
    parts = []
    for i, day in enumerate(days):
        y = height
        for j, line in enumerate(lines):
            count = sum(p["count"] for p in per_day if p["day"] == day and p["line"] == line)
            h = count / top * (height - 10)
            y -= h
            parts.append(f'<rect x="{i * 14}" y="{y:.1f}" width="{bar}" height="{h:.1f}" fill="{colours[j % 4]}">'
                         f"<title>{escape(day)} line {line}: {count}</title></rect>")
    legend = " ".join(f'<span style="color:{colours[j % 4]}">■ line {line}</span>' for j, line in enumerate(lines))
    return (f'<figure id="chart"><svg width="{width}" height="{height}" role="img" '
            f'aria-label="calls per day per line">{"".join(parts)}</svg>'
            f"<figcaption class=muted>{escape(days[0])} … {escape(days[-1])} {legend}</figcaption></figure>")


def call(session: Session, detail: dict[str, Any], can_hold: bool) -> str:
    record = detail["record"]
    call_id = record["call_id"]
    proof = record.get("announcement") or {}
    check = detail["verification"]
    rows = [("Line", record.get("line")), ("Direction", record.get("direction")),
            ("Caller", record.get("caller_number")), ("Caller name", record.get("caller_name")),
            ("Caller ID", (record.get("caller_id") or {}).get("standard")), ("Dialled", record.get("dialed_number")),
            ("Started (UTC)", record.get("started_at")), ("Answered", record.get("answered_at")),
            ("Ended", record.get("ended_at")), ("Duration (s)", record.get("duration_s")),
            ("Rings", record.get("rings")), ("Flashes", record.get("flashes")),
            ("Digits", " ".join(str(d.get("digit", "")) for d in record.get("digits") or [] if isinstance(d, dict))),
            ("Announcement", f'{proof.get("file", "-")} (sha256 {str(proof.get("sha256") or "-")[:16]}…), '
                             f'{proof.get("started_s")}–{proof.get("ended_s")} s after the answer'
             if proof else "none"),
            ("Purpose of use", proof.get("purpose")), ("Status", record.get("status")),
            ("Archived", record.get("archived_at") or "no"), ("Hold", (record.get("hold") or {}).get("reason") or "no"),
            ("Chain", f'entry {(record.get("chain") or {}).get("seq", "-")}')]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{_value(v)}</td></tr>" for k, v in rows)
    problems = escape("; ".join(check["problems"]))
    verdict = ('<p class="ok" id="verified">Verified: the recording and its record match the evidence chain.</p>'
               if check["ok"] else f'<p class="bad" id="verified">Not verified: {problems}</p>')
    notes = "".join(f'<li><a href="#t={n["at_s"]}">{n["at_s"]:.1f} s</a> {escape(n["text"])} '
                    f'<span class="muted">— {escape(n["by"])}</span></li>' for n in detail["notes"])
    tags = ", ".join(f'<a href="/tags/{escape(t)}">{escape(t)}</a>' for t in detail["tags"]) or "none"
    editor = ""
    if role_allows(session.user.role, "supervisor"):
        editor = ('<h3>Add a note at the playhead</h3><input id="note-text" size="60" placeholder="what happens here">'
                  '<button id="add-note">Add note</button> <input id="tag-text" placeholder="tag, e.g. good example">'
                  '<button id="add-tag">Add tag</button>')
    holds = ""
    if role_allows(session.user.role, "officer") and can_hold:
        action = "release" if record.get("hold") else "hold"
        holds = (f'<h3>Legal hold</h3><input id="hold-reason" placeholder="reason"> '
                 f'<button id="hold" data-action="{action}">{action.capitalize()}</button>')
    body = f"""<h1>Call {escape(call_id)}</h1>{verdict}
<audio id="player" controls preload="auto" src="/api/calls/{escape(call_id)}/audio"></audio>
<canvas id="wave" width="1000" height="120"></canvas>
<p><button id="back5">−5 s</button> <button id="fwd5">+5 s</button>
<label>speed <select id="speed"><option>0.5</option><option>0.75</option><option selected>1</option>
<option>1.5</option><option>2</option></select></label> <a id="share" href="#t=0">link to this moment</a>
<a href="/api/calls/{escape(call_id)}/download">download</a></p>
<p class="markers" id="markers"></p>
<table>{table}</table><h2>Notes</h2><ul id="notes">{notes}</ul><p>Tags: <span id="tags">{tags}</span></p>
{editor}{holds}<p id="message" class="bad"></p>"""
    script = f"""
const callId = {json.dumps(call_id)};
const markers = {json.dumps(detail["markers"])};
const player = document.getElementById('player'), wave = document.getElementById('wave');
let peaks = null;
const colours = {{announcement: '#e90', answer: '#393', flash: '#c33', dtmf: '#36c', note: '#909'}};
function duration() {{ return (peaks && peaks.duration_s) || player.duration || 1; }}
function draw() {{
  const g = wave.getContext('2d'), w = wave.width, h = wave.height;
  g.clearRect(0, 0, w, h);
  if (peaks) {{
    g.fillStyle = '#678';
    for (let x = 0; x < peaks.width; x++) {{
      const top = (1 - peaks.max[x]) * h / 2, bottom = (1 - peaks.min[x]) * h / 2;
      g.fillRect(x * w / peaks.width, top, Math.max(1, w / peaks.width), Math.max(1, bottom - top));
    }}
  }}
  for (const m of markers) {{
    g.fillStyle = colours[m.kind] || '#000';
    const x = m.at_s / duration() * w;
    if (m.end_s !== undefined) {{ g.globalAlpha = 0.2; g.fillRect(x, 0, (m.end_s - m.at_s) / duration() * w, h);
                                  g.globalAlpha = 1; }}
    g.fillRect(x, 0, 2, h);
  }}
  g.fillStyle = '#d00'; g.fillRect(player.currentTime / duration() * w, 0, 2, h);
}}
fetch('/api/calls/' + callId + '/peaks?width=' + wave.width).then(r => r.json()).then(p => {{ peaks = p; draw(); }});
document.getElementById('markers').innerHTML = markers.map(m =>
  `<span data-kind="${{m.kind}}" style="color:${{colours[m.kind]}}">${{m.kind}} ${{m.at_s.toFixed(1)}} s</span>`
).join('');
wave.addEventListener('click', (e) => {{
  const rect = wave.getBoundingClientRect();
  player.currentTime = (e.clientX - rect.left) / rect.width * duration(); draw();
}});
player.addEventListener('timeupdate', () => {{
  draw(); document.getElementById('share').href = '#t=' + player.currentTime.toFixed(1);
}});
document.getElementById('back5').onclick = () => {{ player.currentTime = Math.max(0, player.currentTime - 5); }};
document.getElementById('fwd5').onclick = () => {{ player.currentTime = player.currentTime + 5; }};
document.getElementById('speed').onchange = (e) => {{ player.playbackRate = parseFloat(e.target.value); }};
function seekToHash() {{
  const m = location.hash.match(/^#t=([0-9.]+)$/);
  if (m) {{ player.currentTime = parseFloat(m[1]); draw(); }}
}}
player.addEventListener('loadedmetadata', seekToHash); window.addEventListener('hashchange', seekToHash);
function say(text) {{ document.getElementById('message').textContent = text; }}
const addNote = document.getElementById('add-note');
if (addNote) addNote.onclick = async () => {{
  try {{ await api('POST', '/api/calls/' + callId + '/notes',
                   {{at_s: player.currentTime, text: document.getElementById('note-text').value}});
        location.hash = '#t=' + player.currentTime.toFixed(1); location.reload(); }}
  catch (e) {{ say(e.message); }}
}};
const addTag = document.getElementById('add-tag');
if (addTag) addTag.onclick = async () => {{
  try {{ await api('POST', '/api/calls/' + callId + '/tags', {{tag: document.getElementById('tag-text').value}});
        location.reload(); }} catch (e) {{ say(e.message); }}
}};
const hold = document.getElementById('hold');
if (hold) hold.onclick = async () => {{
  try {{ await api('POST', '/api/calls/' + callId + '/' + hold.dataset.action,
                   {{reason: document.getElementById('hold-reason').value}}); location.reload(); }}
  catch (e) {{ say(e.message); }}
}};"""
    return layout(f"Call {call_id}", body, session, script)


def tag(session: Session, name: str, calls: list[dict[str, Any]]) -> str:
    rows = "".join(f'<li><a href="/calls/{escape(r["call_id"])}">{escape(r["call_id"])}</a> '
                   f'{_value(r.get("started_at"))} {_value(r.get("caller_number") or r.get("dialed_number"))}</li>'
                   for r in calls)
    return layout(f"Tag {name}", f"<h1>Training set: {escape(name)}</h1><ul>{rows or '<li>none</li>'}</ul>", session)


def export(session: Session, number: str, since: str, until: str, records: list[dict[str, Any]]) -> str:
    form = (f'<form method="get" action="/export"><input name="number" id="x-number" placeholder="number" '
            f'value="{escape(number)}"> <input name="since" type="date" value="{escape(since)}"> '
            f'<input name="until" type="date" value="{escape(until)}"> <button id="preview">Preview</button></form>')
    listing = ""
    if number:
        rows = "".join(f'<li>{escape(r["call_id"])} {_value(r.get("started_at"))} {_value(r.get("direction"))} '
                       f'{_value(r.get("duration_s"))} s</li>' for r in records)
        listing = (f'<p id="bundle-count">{len(records)} call(s) would be in the bundle:</p><ul>{rows}</ul>'
                   + ('<button id="download-bundle">Download the disclosure bundle</button>' if records else ""))
    script = f"""
const download = document.getElementById('download-bundle');
if (download) download.onclick = async () => {{
  const r = await api('POST', '/api/export', {json.dumps({"number": number, "since": since or None,
                                                          "until": until or None})});
  const a = document.createElement('a'); a.href = URL.createObjectURL(await r.blob());
  a.download = 'disclosure.zip'; a.id = 'bundle-link'; a.textContent = 'disclosure.zip';
  document.querySelector('main').appendChild(a); a.click();
}};"""
    return layout("Disclosure", f"<h1>Disclosure (APPI Art. 33)</h1>{form}{listing}", session, script)
