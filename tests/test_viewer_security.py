"""The viewer under attack (issue 22): a standing check that keeps its security defects closed.

Every route × {anonymous, listener, supervisor, officer} × {no, forged, another session's CSRF
token} against a table derived from the app's own route list (a new route without an entry fails);
hostile strings in every field a user can write, the pages then opened in Debian's headless
Chromium and checked that no injected script ran and the text is shown literally; `next=` with
every redirect trick, followed by a real browser; bodies over the limit; dates at the ends of the
calendar, deep JSON and absurd Range headers answered 4xx; no traceback ever reaches a user; the
login's hardening (constant work, off the event loop, bounded audit, lockout by address too, tries
in flight counted, X-Forwarded-For believed only from a `--trusted-proxy`).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402
from viewer_support import CALLER, PASSWORDS, ROLES, record_calls, serving, viewer_for  # noqa: E402

WHO = ("anonymous", "listener", "supervisor", "officer")
NAME_OF = {role: name for name, role in ROLES.items()}
PAGE_DATA = re.compile(r'<script type="application/json" id="page-data">(.*?)</script>', re.S)
EVIL = "evil.localhost"   # Chromium resolves *.localhost itself: a redirect there leaves no machine


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record_calls(tmp_path_factory.mktemp("security"))


@pytest.fixture
def viewer(recorded):
    return viewer_for(recorded)


@pytest.fixture
def app(viewer):
    from callrec.viewer.app import build_app

    return build_app(viewer)


def client_for(app: Any, who: str = "anonymous", address: str = "testclient") -> tuple[TestClient, str]:
    """A client of its own (cookie jar) logged in as `who`, and its CSRF token ("" when anonymous)."""
    client = TestClient(app, raise_server_exceptions=False, follow_redirects=False, client=(address, 50000))
    if who == "anonymous":
        return client, ""
    name = NAME_OF[who]
    reply = client.post("/api/login", json={"user": name, "password": PASSWORDS[name]})
    assert reply.status_code == 200, reply.text
    return client, str(reply.json()["csrf_token"])


@pytest.fixture
def call_id(app) -> str:
    client, _ = client_for(app, "listener")
    calls = client.get("/api/calls", params={"number": CALLER}).json()["calls"]
    return str(calls[0]["call_id"])


def page_data(html: str) -> dict[str, Any]:
    match = PAGE_DATA.search(html)
    assert match, "the page has no JSON data island"
    return dict(json.loads(match.group(1)))


# ---- every route × every role × no / forged / another session's CSRF token ---------------------------------


@dataclass(frozen=True)
class Access:
    role: str | None               # None: anyone may
    change: bool = False           # changes something: needs the session's CSRF token
    page: bool = False             # a page: the anonymous are sent to the login (303), not 401
    ok: int = 200                  # the answer when allowed
    body: dict[str, Any] | None = None


ROUTES: dict[tuple[str, str], Access] = {
    ("GET", "/"): Access(None, ok=303),
    ("GET", "/login"): Access(None),
    ("GET", "/static/{name}"): Access(None),
    ("GET", "/calls"): Access("listener", page=True),
    ("GET", "/calls/{call_id}"): Access("listener", page=True),
    ("GET", "/tags/{tag:path}"): Access("listener", page=True),
    ("GET", "/export"): Access("officer", page=True),
    ("POST", "/api/login"): Access(None, ok=401, body={"user": "nobody", "password": "not-the-password"}),
    ("POST", "/api/logout"): Access("listener", change=True),
    ("GET", "/api/calls"): Access("listener"),
    ("GET", "/api/calls/{call_id}"): Access("listener"),
    ("GET", "/api/calls/{call_id}/audio"): Access("listener"),
    ("GET", "/api/calls/{call_id}/download"): Access("listener"),
    ("GET", "/api/calls/{call_id}/peaks"): Access("listener"),
    ("POST", "/api/calls/{call_id}/notes"): Access("supervisor", change=True, body={"at_s": 1.0, "text": "x"}),
    ("POST", "/api/calls/{call_id}/tags"): Access("supervisor", change=True, body={"tag": "x"}),
    ("POST", "/api/calls/{call_id}/hold"): Access("officer", change=True, body={"reason": "x"}),
    ("POST", "/api/calls/{call_id}/release"): Access("officer", change=True, body={"reason": "x"}),
    ("POST", "/api/export"): Access("officer", change=True, body={"number": CALLER}),
}


def expected(access: Access, who: str) -> int:
    """The status a request must get with no valid CSRF token."""
    from callrec.viewer.users import role_allows

    if access.role is None:
        return access.ok
    if who == "anonymous":
        return 303 if access.page else 401
    if not role_allows(who, access.role) or access.change:
        return 403
    return access.ok


def concrete(path: str, call_id: str) -> str:
    values = {"call_id": call_id, "tag": "x", "name": "viewer.js"}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], path)


def test_the_access_table_names_every_route_of_the_app(app):
    served = {(method, route.path) for route in app.routes for method in route.methods - {"HEAD"}}
    assert served == set(ROUTES), "a route without an entry in ROUTES (or an entry for a route that is gone)"


def test_every_route_answers_every_role_without_a_valid_csrf_token_as_the_table_says(app, call_id):
    clients = {who: client_for(app, who) for who in WHO}
    other_token = clients["listener"][1]
    wrong = []
    for (method, path), access in ROUTES.items():
        url = concrete(path, call_id)
        for who, (client, _token) in clients.items():
            for csrf in ({}, {"X-CSRF-Token": "forged-" + "A" * 40}, {"X-CSRF-Token": other_token or "x"}):
                if who == "listener" and csrf.get("X-CSRF-Token") == other_token:
                    continue   # that is the listener's own token: valid, not part of this table
                reply = client.request(method, url, json=access.body, headers=csrf)
                if reply.status_code != expected(access, who):
                    wrong.append(f"{method} {url} as {who} {csrf}: {reply.status_code}, not {expected(access, who)}")
                if reply.status_code == 303 and access.page:
                    assert reply.headers["location"].startswith("/login?next=")
    assert not wrong, "\n".join(wrong)


def test_a_logged_out_page_request_goes_to_the_login_with_the_path_and_query_url_encoded(app, call_id):
    client, _ = client_for(app)
    reply = client.get("/calls", params={"number": "031", "line": "1"})
    assert reply.status_code == 303
    assert reply.headers["location"] == "/login?next=" + quote("/calls?number=031&line=1", safe="")
    hostile = client.get("/calls/" + quote("<x>\"'&y", safe=""))
    assert hostile.headers["location"] == "/login?next=" + quote("/calls/<x>\"'&y", safe="")
    target = page_data(client.get(reply.headers["location"]).text)["next"]
    assert target == "/calls?number=031&line=1", "the filters survive the login"


# ---- next= with every redirect trick -------------------------------------------------------------------------

REDIRECT_TRICKS = [
    f"/%5C{EVIL}/phish", f"/%5C%5C{EVIL}/phish", f"%5C%5C{EVIL}/phish", f"%5C/{EVIL}/phish", f"/%5C/{EVIL}/",
    f"//{EVIL}/phish", f"///{EVIL}/", f"////{EVIL}/", f"%2F%2F{EVIL}/", f"/%2F{EVIL}/",
    f"/%09/{EVIL}/", f"/%0A/{EVIL}/", f"/%0D%0A/{EVIL}/", f"%09//{EVIL}/", f"/%09%09/{EVIL}", f"%20//{EVIL}/",
    f"/%00/{EVIL}/", f"%00//{EVIL}/", f"/%E3%80%80/{EVIL}/", f"/%C2%A0/{EVIL}/",
    f"https://{EVIL}/", f"http:/{EVIL}/", f"http:{EVIL}", f"HTTPS:%2F%2F{EVIL}", f"https:%5C%5C{EVIL}",
    "javascript:document.title='X'", "JaVaScRiPt:document.title='X'", "%20javascript:document.title='X'",
    "data:text/html,%3Cscript%3Edocument.title='X'%3C/script%3E", "vbscript:x",
    f"/.//{EVIL}/", f"/./%2F{EVIL}/", f"/..//{EVIL}/", f"/%2e//{EVIL}/", f"/%2E%2E//{EVIL}/",
    f"{EVIL}", f"@{EVIL}", f"/%40{EVIL}", f"%2F%5C{EVIL}",
    "/%3C/script%3E%3Cscript%3Edocument.title=%27X%27%3C/script%3E",
]


def _same_origin_path(target: str) -> bool:
    return target.startswith("/") and not target.startswith("//") and "\\" not in target \
        and not any(ord(c) < 0x21 or ord(c) == 0x7F for c in target)


@pytest.mark.parametrize("trick", REDIRECT_TRICKS)
def test_the_login_page_only_ever_sends_to_a_path_on_this_site(app, trick):
    client, _ = client_for(app)
    reply = client.get("/login?next=" + trick)
    assert reply.status_code == 200
    target = page_data(reply.text)["next"]
    assert _same_origin_path(target), target
    assert EVIL not in target or target == "/calls" or not target.startswith(("//", "/\\")), target


def test_a_safe_next_keeps_a_same_site_path_and_its_query():
    from callrec.viewer.guards import safe_next

    assert safe_next("/calls/20260101T000000000Z-L1-0001") == "/calls/20260101T000000000Z-L1-0001"
    assert safe_next("/calls?number=031&line=1") == "/calls?number=031&line=1"
    assert safe_next("/%5Cfine/as/a/path") == "/%5Cfine/as/a/path"
    for bad in (None, "", "/\\x", "//x", "\\/x", "/\t/x", "/\n/x", "https://x/", "javascript:x", "/.//x",
                "/../x", "x" * 3000, "/" + "a" * 3000, "/api/calls/x/download", "/%61pi/calls/x/download"):
        assert safe_next(bad) == "/calls", bad


# ---- no 500s: the calendar's ends, deep JSON, absurd ranges, and anything unexpected ------------------------

CALENDAR_ENDS = [("since", "0001-01-01T00:00:00+14:00"), ("until", "9999-12-31T23:59:59-14:00"),
                 ("since", "9999-12-31T23:59:59-14:00"), ("until", "0001-01-01T00:00:00+14:00")]


@pytest.mark.parametrize(("field", "value"), CALENDAR_ENDS)
def test_a_date_at_the_end_of_the_calendar_is_a_422_naming_the_field(app, field, value):
    client, token = client_for(app, "officer")
    for url in ("/api/calls", "/calls", "/export"):
        reply = client.get(url, params={field: value, "number": CALLER})
        assert reply.status_code == 422, (url, reply.status_code, reply.text[:300])
        assert field in reply.text and "Traceback" not in reply.text
    reply = client.post("/api/export", json={"number": CALLER, field: value}, headers={"X-CSRF-Token": token})
    assert reply.status_code == 422 and reply.json()["field"] == field, reply.text[:300]


@pytest.mark.parametrize("depth", [3_000, 30_000, 100_000])
def test_deeply_nested_json_to_the_anonymous_login_is_refused_as_a_4xx(app, depth):
    client, _ = client_for(app)
    reply = client.post("/api/login", content=b"[" * depth + b"]" * depth,
                        headers={"Content-Type": "application/json"})
    assert reply.status_code in (413, 422), reply.status_code
    assert reply.json()["field"] == "body"


def test_deeply_nested_json_to_every_json_route_is_refused_as_a_4xx(app, call_id):
    client, token = client_for(app, "officer")
    for (method, path), access in ROUTES.items():
        if method != "POST" or access.body is None:
            continue   # logout reads no body
        for body in (b"[" * 30_000 + b"]" * 30_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000):
            reply = client.post(concrete(path, call_id), content=body,
                                headers={"X-CSRF-Token": token, "Content-Type": "application/json"})
            assert reply.status_code in (413, 422), (path, reply.status_code)
    assert client.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 200


@pytest.mark.parametrize("header", ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "9" * 5000,
                                    "bytes=" + "1" * 5000 + "-" + "2" * 5000, "bytes=99999999999999999999-"])
def test_an_absurd_range_header_is_answered_without_a_500(app, call_id, header):
    client, _ = client_for(app, "listener")
    whole = client.get(f"/api/calls/{call_id}/audio").content
    reply = client.get(f"/api/calls/{call_id}/audio", headers={"Range": header})
    assert reply.status_code in (200, 206, 416), reply.status_code
    if reply.status_code == 416:
        assert reply.headers["content-range"] == f"bytes */{len(whole)}" and reply.json()["field"] == "Range"
    else:
        assert whole.endswith(reply.content) and reply.content, "a range past the end is the rest of the file"


def test_an_unexpected_failure_is_a_plain_500_without_a_traceback_and_is_logged(app, viewer, caplog):
    client, _ = client_for(app, "listener")
    viewer.annotations.close()   # a real failure: the notes database is gone from under the viewer
    for url in ("/api/calls?tag=x", "/calls?tag=x"):
        reply = client.get(url)
        assert reply.status_code == 500
        assert reply.headers["content-type"].startswith("text/plain")
        assert "Traceback" not in reply.text and "sqlite3" not in reply.text and "File \"" not in reply.text
        assert "the viewer's log" in reply.text
    assert any(r.exc_info and "sqlite3" in str(r.exc_info[0]) for r in caplog.records), "logged with its traceback"


# ---- the security headers ---------------------------------------------------------------------------------------


def test_every_answer_carries_the_content_security_policy_and_friends(app, call_id):
    client, _ = client_for(app, "officer")
    for url in ("/login", "/calls", f"/calls/{call_id}", "/export", "/api/calls", "/nowhere", "/static/viewer.js"):
        headers = client.get(url).headers
        policy = headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "default-src 'none'" in policy, (url, policy)
        assert "frame-ancestors 'none'" in policy and "base-uri 'none'" in policy, (url, policy)
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        assert headers.get("x-content-type-options") == "nosniff", url
        assert headers.get("referrer-policy") == "no-referrer", url
        assert headers.get("x-frame-options") == "DENY", url


def test_pages_carry_no_inline_script_and_hand_data_to_scripts_as_a_json_data_island(app, call_id):
    client, _ = client_for(app, "officer")
    for url in ("/login", "/calls", f"/calls/{call_id}", "/export?number=1", "/tags/x"):
        html = client.get(url).text
        for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
            assert 'src="/static/' in attrs or ('type="application/json"' in attrs and "<" not in body), (url, attrs)
        assert not re.search(r"\son[a-z]+=", html), f"an inline event handler on {url}"


# ---- bodies over the limit ----------------------------------------------------------------------------------------


def test_a_json_body_over_64_kib_is_413_naming_the_body(app, call_id):
    client, token = client_for(app, "officer")
    big = json.dumps({"user": "x" * 70_000, "password": "y"})
    anonymous, _ = client_for(app)
    reply = anonymous.post("/api/login", content=big, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413 and reply.json()["field"] == "body"
    assert "65536" in reply.json()["error"]
    note = client.post(f"/api/calls/{call_id}/notes", content=json.dumps({"at_s": 1, "text": "z" * 70_000}),
                       headers={"X-CSRF-Token": token, "Content-Type": "application/json"})
    assert note.status_code == 413


def _raw_request(base: str, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send an HTTP request byte for byte and read the answer's head (the status line first)."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    assert host and port
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass   # the server answered and closed while we were still sending: that is the point
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer


@pytest.fixture
def live(app):
    pytest.importorskip("uvicorn")
    from viewer_support import serving

    with serving(app) as base:
        yield base


def test_a_lying_absent_or_chunked_length_cannot_get_more_than_the_limit_read(live):
    huge = b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
    assert _raw_request(live, huge, []).startswith(b"HTTP/1.1 413"), "refused before the body comes"
    chunked = (b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
    chunks = [b"%x\r\n%s\r\n" % (8192, b" " * 8192) for _ in range(16)] + [b"0\r\n\r\n"]
    assert _raw_request(live, chunked, chunks).startswith(b"HTTP/1.1 413")
    short = b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
    answer = _raw_request(live, short, [b" " * 200_000])
    assert re.match(rb"HTTP/1.1 4\d\d", answer), answer[:100]


# ---- the login's hardening ---------------------------------------------------------------------------------------


def test_an_unknown_user_costs_the_same_scrypt_as_a_known_one(app, monkeypatch):
    calls = []
    real = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    client, _ = client_for(app)
    for name in ("lena", "no-such-user", "x" * 64):
        calls.clear()
        assert client.post("/api/login", json={"user": name, "password": "wrong-password"}).status_code == 401
        assert len(calls) == 1, f"{name}: {len(calls)} scrypt runs"


def test_a_login_in_progress_does_not_stall_other_requests(app, live, monkeypatch):
    import urllib.request

    from callrec.viewer import users as users_module

    entered, release = threading.Event(), threading.Event()
    real = users_module.check_password

    def slow(password: str, stored: str) -> bool:
        entered.set()
        release.wait(30)
        return bool(real(password, stored))

    monkeypatch.setattr(users_module, "check_password", slow)
    body = json.dumps({"user": "lena", "password": PASSWORDS["lena"]}).encode()
    login = threading.Thread(target=lambda: urllib.request.urlopen(urllib.request.Request(
        f"{live}/api/login", data=body, headers={"Content-Type": "application/json"}), timeout=30).read())
    login.start()
    try:
        assert entered.wait(10), "the login never reached the password check"
        with urllib.request.urlopen(f"{live}/login", timeout=10) as reply:   # while the check is still running
            assert reply.status == 200
    finally:
        release.set()
        login.join(30)


def _audit(recorded: Any, action: str) -> list[dict[str, Any]]:
    lines = (recorded.data / "evidence" / "audit.jsonl").read_text().splitlines()
    return [e for e in (json.loads(line) for line in lines) if e["action"] == action]


def test_failed_logins_from_one_address_are_audited_boundedly_with_a_summary(recorded):
    from callrec.viewer.app import build_app

    now = [10_000.0]
    viewer = viewer_for(recorded)
    viewer.users.clock = viewer.login_audit.clock = lambda: now[0]
    app = build_app(viewer)
    before = len(_audit(recorded, "viewer.login.failed"))
    client, _ = client_for(app, address="192.0.2.7")
    for i in range(60):
        assert client.post("/api/login", json={"user": f"guess{i}", "password": "x"}).status_code == 401
    failed = _audit(recorded, "viewer.login.failed")[before:]
    assert len(failed) == 5 and failed[0]["what"]["address"] == "192.0.2.7"
    now[0] += 301
    client.post("/api/login", json={"user": "guess-late", "password": "x"})
    (summary,) = _audit(recorded, "viewer.login.failed.suppressed")[-1:]
    assert summary["what"]["suppressed"] == 55 and "55 more failures" in summary["what"]["message"]


def test_the_count_of_suppressed_failures_is_written_when_the_viewer_stops(recorded):
    from callrec.viewer.app import build_app

    viewer = viewer_for(recorded)
    before = len(_audit(recorded, "viewer.login.failed.suppressed"))
    with TestClient(build_app(viewer), client=("192.0.2.8", 50000)) as client:   # runs the app's lifespan
        for i in range(12):
            assert client.post("/api/login", json={"user": f"late{i}", "password": "x"}).status_code == 401
        assert len(_audit(recorded, "viewer.login.failed.suppressed")) == before, "not before the window ends"
    (summary,) = _audit(recorded, "viewer.login.failed.suppressed")[before:]
    assert summary["what"]["suppressed"] == 7


def test_failed_logins_for_one_name_from_many_addresses_are_audited_boundedly(recorded):
    from callrec.viewer.app import build_app

    viewer = viewer_for(recorded)
    app = build_app(viewer)
    before = len(_audit(recorded, "viewer.login.failed"))
    for i in range(30):
        client, _ = client_for(app, address=f"198.51.100.{i}")
        assert client.post("/api/login", json={"user": "olga", "password": "x"}).status_code == 401
    assert len(_audit(recorded, "viewer.login.failed")[before:]) == 5


def test_a_stranger_cannot_lock_an_account_for_everyone_else(app):
    stranger, _ = client_for(app, address="203.0.113.9")
    for _ in range(8):
        stranger.post("/api/login", json={"user": "lena", "password": "guessing"})
    refused = stranger.post("/api/login", json={"user": "lena", "password": PASSWORDS["lena"]})
    assert refused.status_code == 401 and "too many failures" in refused.json()["error"]
    lena, _ = client_for(app, address="192.0.2.50")
    assert lena.post("/api/login", json={"user": "lena", "password": PASSWORDS["lena"]}).status_code == 200


def test_one_address_guessing_many_accounts_is_locked_out_as_a_whole(app):
    from callrec.viewer.users import ADDRESS_MAX_FAILURES

    guesser, _ = client_for(app, address="203.0.113.10")
    for i in range(ADDRESS_MAX_FAILURES):
        guesser.post("/api/login", json={"user": f"user{i}", "password": "guessing"})
    refused = guesser.post("/api/login", json={"user": "sam", "password": PASSWORDS["sam"]})
    assert refused.status_code == 401 and "too many failures" in refused.json()["error"]
    sam, _ = client_for(app, address="192.0.2.51")
    assert sam.post("/api/login", json={"user": "sam", "password": PASSWORDS["sam"]}).status_code == 200


def test_thirty_wrong_passwords_at_once_to_the_server_get_no_more_password_checks_than_the_limit(live, viewer,
                                                                                               monkeypatch):
    import urllib.error
    import urllib.request

    from callrec.viewer import users as users_module
    from callrec.viewer.users import MAX_FAILURES

    checked: list[str] = []
    answers: list[int] = []
    release = threading.Event()
    real = users_module.check_password

    def held(password: str, stored: str) -> bool:   # every check waits until all 30 requests are under way
        checked.append(password)
        release.wait(60)
        return bool(real(password, stored))

    monkeypatch.setattr(users_module, "check_password", held)
    body = json.dumps({"user": "lena", "password": "guessing"}).encode()

    def guess() -> None:
        request = urllib.request.Request(f"{live}/api/login", data=body, headers={"Content-Type": "application/json"})
        try:
            answers.append(urllib.request.urlopen(request, timeout=120).status)
        except urllib.error.HTTPError as error:
            answers.append(error.code)

    threads = [threading.Thread(target=guess) for _ in range(30)]   # within the server's 40 worker threads
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60   # a guard against a hang, not a timed assertion
    while len(checked) + len(answers) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(120)
    assert len(checked) <= MAX_FAILURES, f"{len(checked)} passwords checked at once, the limit is {MAX_FAILURES}"
    assert answers == [401] * 30
    assert viewer.users.locked("lena", "127.0.0.1")


@contextmanager
def _served_as_the_viewer_command(viewer: Any, trusted_proxies: list[str]) -> Iterator[str]:
    """The viewer under uvicorn with the very options `serve()` hands to `uvicorn.run`, in a thread."""
    from callrec.viewer.app import build_app
    from callrec.viewer.commands import server_options

    with serving(build_app(viewer), lambda port: server_options(f"127.0.0.1:{port}",
                                                                trusted_proxies=trusted_proxies)) as url:
        yield url


@pytest.mark.parametrize(("trusted", "counted", "not_counted"),
                         [([], "127.0.0.1", "198.51.100.23"), (["127.0.0.1"], "198.51.100.23", "127.0.0.1")],
                         ids=["no-trusted-proxy", "trusted-proxy"])
def test_x_forwarded_for_moves_the_lockout_only_when_it_comes_from_a_trusted_proxy(viewer, trusted, counted,
                                                                                  not_counted):
    import urllib.error
    import urllib.request

    pytest.importorskip("uvicorn")
    from callrec.viewer.users import MAX_FAILURES

    body = json.dumps({"user": "lena", "password": "guessing"}).encode()
    # what a client wrote itself, then what the proxy appended: the proxy's entry is the one believed
    forwarded = "203.0.113.5, 198.51.100.23"
    with _served_as_the_viewer_command(viewer, trusted) as base:
        for _ in range(MAX_FAILURES):
            request = urllib.request.Request(f"{base}/api/login", data=body, headers={
                "Content-Type": "application/json", "X-Forwarded-For": forwarded})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=60)
            assert refused.value.code == 401
    assert viewer.users.locked("lena", counted)
    assert not viewer.users.locked("lena", not_counted)
    assert not viewer.users.locked("lena", "203.0.113.5"), "a client never names its own address"


def test_trusted_proxies_are_given_as_addresses_repeated_or_comma_separated_never_as_everyone(capsys):
    from callrec.cli import build_parser
    from callrec.viewer.commands import server_options

    args = build_parser().parse_args(["viewer", "--data", "d", "--users", "u", "--trusted-proxy", "127.0.0.1, ::1",
                                      "--trusted-proxy", "10.0.0.5"])
    options = server_options(args.listen, trusted_proxies=args.trusted_proxy)
    assert options["proxy_headers"] is True and options["forwarded_allow_ips"] == ["127.0.0.1", "::1", "10.0.0.5"]
    plain = build_parser().parse_args(["viewer", "--data", "d", "--users", "u"])
    assert server_options(plain.listen, trusted_proxies=plain.trusted_proxy)["proxy_headers"] is False
    for wrong in ("*", "proxy.example", "10.0.0.0/8", ""):
        with pytest.raises(SystemExit) as refused:
            build_parser().parse_args(["viewer", "--data", "d", "--users", "u", "--trusted-proxy", wrong])
        assert refused.value.code == 2
        assert "--trusted-proxy" in capsys.readouterr().err


# ---- hostile strings in every field a user can write --------------------------------------------------------------

FLAG = "window.__injected=1;document.title='INJECTED'"
PAYLOADS = [
    f"</script><script>{FLAG}</script>",
    f"<script>{FLAG}</script>",
    f'"><img src=x onerror="{FLAG}">',
    f"'><svg onload=\"{FLAG}\">",
    f"<img src=x onerror={FLAG}>",
    f"javascript:{FLAG}",
    f"' onmouseover='{FLAG}' x='",
    "${" + FLAG + "}",
    f"`;{FLAG};//",
    f"</textarea></title><iframe srcdoc='<script>parent.{FLAG}</script>'>",
    f"<!--<script>{FLAG}</script>-->",
    "\u2028\u2029\"};" + FLAG + ";//",
    "{{7*7}} {% raw %} &amp; &lt;b&gt; \\u003c",
]
HOSTILE_TAGS = ["javascript:x", f"//{EVIL}", "a/../../x", "x:/+-. y", f"/{EVIL}/phish"]
TOO_LONG = "x" * 10_000


def test_hostile_strings_are_stored_as_written_or_refused_naming_the_field(app, call_id):
    client, token = client_for(app, "officer")
    headers = {"X-CSRF-Token": token}
    for text in [*PAYLOADS, "nul\x00inside"]:
        reply = client.post(f"/api/calls/{call_id}/notes", json={"at_s": 1.0, "text": text}, headers=headers)
        assert reply.status_code == 201 and reply.json()["text"] == text
    for tag in HOSTILE_TAGS:
        assert client.post(f"/api/calls/{call_id}/tags", json={"tag": tag}, headers=headers).status_code == 201
    for tag in PAYLOADS[:5] + ["nul\x00"]:
        reply = client.post(f"/api/calls/{call_id}/tags", json={"tag": tag}, headers=headers)
        assert reply.status_code == 422 and reply.json()["field"] == "tag"
    for route, body, field in ((f"/api/calls/{call_id}/notes", {"at_s": 1, "text": TOO_LONG}, "text"),
                               (f"/api/calls/{call_id}/tags", {"tag": TOO_LONG}, "tag"),
                               (f"/api/calls/{call_id}/hold", {"reason": TOO_LONG}, "reason"),
                               ("/api/export", {"number": TOO_LONG}, "number"),
                               ("/api/login", {"user": TOO_LONG, "password": "x"}, "user")):
        reply = client.post(route, json=body, headers=headers)
        assert reply.status_code == 422 and reply.json()["field"] == field, (route, reply.text[:200])
    for param in ("number", "tag", "text", "status", "since", "until", "line", "direction", "limit", "offset"):
        for value in (TOO_LONG, "\x00", PAYLOADS[0]):
            reply = client.get("/api/calls", params={param: value})
            assert reply.status_code in (200, 422), (param, reply.status_code)
            if reply.status_code == 422:
                assert reply.json()["field"] == param
    exported = client.post("/api/export", json={"number": PAYLOADS[0][:40]}, headers=headers)
    assert exported.status_code == 404


# The browser part: one server and one Chromium for all of it.

INJECTION_CHECK = """
const executable = [...document.querySelectorAll('script')].filter(s => !(s.src && new URL(s.src).origin ===
    location.origin) && s.type !== 'application/json');
const handlers = [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => /^on/i.test(a.name)));
const links = [...document.querySelectorAll('[href],[src],[action],[srcdoc]')].filter(e =>
    e.hasAttribute('srcdoc') || ['href', 'src', 'action'].some(n => e.hasAttribute(n) &&
        new URL(e.getAttribute(n), location.href).origin !== location.origin));
return {flag: window.__injected === undefined ? null : String(window.__injected), title: document.title,
        executable: executable.map(s => s.outerHTML.slice(0, 80)),
        handlers: handlers.map(e => e.outerHTML.slice(0, 80)), links: links.map(e => e.outerHTML.slice(0, 80))};
"""


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    """A server over a recording carrying every hostile note, tag and hold reason, and Chromium."""
    pytest.importorskip("selenium")
    pytest.importorskip("uvicorn")
    from callrec.viewer.app import build_app
    from viewer_support import chromedriver, chromium, have_chromium, serving

    if not have_chromium():
        pytest.skip("needs Debian's chromium and chromium-driver")
    recorded = record_calls(tmp_path_factory.mktemp("hostile"))
    viewer = viewer_for(recorded)
    app = build_app(viewer)
    client, token = client_for(app, "officer")
    call = client.get("/api/calls", params={"number": CALLER}).json()["calls"][0]["call_id"]
    headers = {"X-CSRF-Token": token}
    for i, text in enumerate(PAYLOADS):
        assert client.post(f"/api/calls/{call}/notes", json={"at_s": 1.0 + i, "text": text},
                           headers=headers).status_code == 201
    for tag in HOSTILE_TAGS:
        assert client.post(f"/api/calls/{call}/tags", json={"tag": tag}, headers=headers).status_code == 201
    assert client.post(f"/api/calls/{call}/hold", json={"reason": PAYLOADS[0]}, headers=headers).status_code == 200
    with serving(app) as base, chromedriver() as driver_url, \
            chromium(driver_url, tmp_path_factory.mktemp("chromium")) as browser:
        yield base, browser, call


def _open(browser: Any, url: str, ready: str = "true") -> dict[str, Any]:
    from viewer_support import wait_for

    browser.get(url)
    wait_for(browser, f"document.readyState === 'complete' && ({ready})")
    return _check(browser, url)


def _check(browser: Any, url: str) -> dict[str, Any]:
    """No injected script ran on the page shown, and none could: no inline script, handler or foreign link."""
    found = browser.execute_script(INJECTION_CHECK)
    assert found["flag"] is None and found["title"] != "INJECTED", (url, found)
    assert not found["executable"] and not found["handlers"] and not found["links"], (url, found)
    return dict(found)


def _text(browser: Any, selector: str) -> str:
    return str(browser.execute_script(f"return document.querySelector({json.dumps(selector)}).textContent"))


def _value(browser: Any, selector: str) -> str:
    return str(browser.execute_script(f"return document.querySelector({json.dumps(selector)}).value"))


def _as(browser: Any, base: str, name: str) -> None:
    from viewer_support import log_in

    browser.delete_all_cookies()
    log_in(browser, base, name)


def test_hostile_notes_tags_and_hold_reason_run_nothing_on_the_call_page_and_show_literally(hostile_site):
    base, browser, call = hostile_site
    _as(browser, base, "olga")
    _open(browser, f"{base}/calls/{call}", "document.querySelectorAll('#markers span[data-kind=note]').length > 0")
    notes = _text(browser, "#notes")
    for text in PAYLOADS:
        assert text.replace("\r", "") in notes, text
    assert PAYLOADS[0] in _text(browser, "main table")
    tags = _text(browser, "#tags")
    for tag in HOSTILE_TAGS:
        assert tag in tags
    links = browser.execute_script("return [...document.querySelectorAll('#tags a')].map(a => new URL(a.href))"
                                   ".map(u => [u.origin === location.origin, decodeURIComponent(u.pathname)])")
    assert all(same and path.startswith("/tags/") for same, path in links), links
    labels = browser.execute_script("return [...document.querySelectorAll('#markers span[data-kind=note]')]"
                                    ".map(s => s.title)")
    assert PAYLOADS[0][:40] in labels


def test_a_hostile_tag_opens_its_own_training_set_page_literally(hostile_site):
    base, browser, call = hostile_site
    _as(browser, base, "sam")
    for tag in HOSTILE_TAGS:
        _open(browser, f"{base}/calls/{call}")
        browser.execute_script("[...document.querySelectorAll('#tags a')].find(a => a.textContent === arguments[0])"
                               ".click()", tag)
        _open(browser, browser.current_url, "location.pathname.startsWith('/tags/')")
        assert urlsplit(browser.current_url).netloc == urlsplit(base).netloc
        assert tag in _text(browser, "h1")
        assert call in _text(browser, "main ul")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_query_strings_and_paths_run_nothing_on_any_page(hostile_site, payload):
    base, browser, _call = hostile_site
    _as(browser, base, "olga")
    q, short = quote(payload, safe=""), quote(payload[:40], safe="")   # a tag or status is at most 40 long
    _open(browser, f"{base}/calls?tag={short}&text={q}&status={short}")
    assert _value(browser, "input[name=tag]") == payload[:40] and _value(browser, "input[name=text]") == payload
    _open(browser, f"{base}/export?number={q}")
    assert _value(browser, "#x-number") == payload
    for url in (f"/calls?since={q}", f"/calls?number={q}", f"/calls/{q}", f"/tags/{q}", f"/export?number=1&until={q}",
                f"/login?next={q}", f"/login?next=/{q}"):
        _open(browser, base + url)
    browser.delete_all_cookies()
    _open(browser, f"{base}/login?next={q}")


def test_the_issue_s_reflected_login_and_export_cases_run_nothing(hostile_site):
    base, browser, _call = hostile_site
    browser.delete_all_cookies()
    _open(browser, f"{base}/login?next=/%3C/script%3E%3Cscript%3Edocument.title=%27X%27%3C/script%3E")
    assert browser.title != "X"
    _as(browser, base, "olga")
    _open(browser, f"{base}/export?number=%3C/script%3E%3Cscript%3Edocument.title=%27X%27%3C/script%3E")
    assert browser.title != "X"


def test_a_hostile_user_name_at_the_login_runs_nothing(hostile_site):
    from selenium.webdriver.common.by import By
    from viewer_support import wait_for

    base, browser, _call = hostile_site
    browser.delete_all_cookies()
    for name in PAYLOADS[:5]:
        _open(browser, f"{base}/login")
        browser.find_element(By.ID, "user").send_keys(name)
        browser.find_element(By.ID, "password").send_keys("x")
        browser.find_element(By.ID, "submit").click()
        wait_for(browser, "document.getElementById('message').textContent !== ''")
        _check(browser, browser.current_url)
        message = _text(browser, "#message")
        assert "wrong user or password" in message or "user: String should have at most 64" in message, message


@pytest.mark.parametrize("trick", REDIRECT_TRICKS)
def test_after_the_login_every_redirect_trick_lands_on_this_site(hostile_site, trick):
    from selenium.webdriver.common.by import By
    from viewer_support import wait_for

    base, browser, _call = hostile_site
    browser.delete_all_cookies()
    browser.get(f"{base}/login?next={trick}")
    browser.find_element(By.ID, "user").send_keys("lena")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["lena"])
    browser.find_element(By.ID, "submit").click()
    wait_for(browser, "location.pathname !== '/login' || location.origin !== " + json.dumps(base))
    landed = urlsplit(browser.current_url)
    assert f"{landed.scheme}://{landed.netloc}" == base, browser.current_url
    assert browser.title != "X"


def test_a_link_to_a_moment_survives_the_login(hostile_site):
    from selenium.webdriver.common.by import By
    from viewer_support import wait_for

    base, browser, call = hostile_site
    browser.delete_all_cookies()
    browser.get(f"{base}/calls/{call}#t=2.5")
    wait_for(browser, "location.pathname === '/login'")
    browser.find_element(By.ID, "user").send_keys("lena")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["lena"])
    browser.find_element(By.ID, "submit").click()
    wait_for(browser, f"location.pathname === '/calls/{call}'")
    assert browser.current_url.endswith(f"/calls/{call}#t=2.5")
    wait_for(browser, "Math.abs(document.getElementById('player').currentTime - 2.5) < 0.2")
