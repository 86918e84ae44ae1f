"""Fuzzing the viewer's JSON bodies, query strings, paths and Range headers (issue 22): whatever
comes in, the answer is the viewer's own — JSON, a page, audio or a bundle with a status under 500 —
never a traceback. Over the ASGI app itself (Starlette's TestClient), as a logged-in officer (who
may do everything) and anonymously. More examples with CALLREC_SOAK=1."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("starlette")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from viewer_support import CALLER, PASSWORDS, record_calls, viewer_for  # noqa: E402

EXAMPLES = 2000 if os.environ.get("CALLREC_SOAK") == "1" else 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ANSWERS = ("application/json", "text/html", "text/plain", "audio/", "application/zip", "application/octet-stream")

hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["</script><script>x()</script>", "\x00", "'\"><img src=x onerror=x()>", "javascript:x()",
                     "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "9" * 5000, "-1", "1e999", "NaN",
                     CALLER, "good example", "x" * 10_000, "\u2028", "%00", "..", "/\\evil.localhost"]),
)
offsets = st.builds(dt.timezone, st.timedeltas(min_value=-dt.timedelta(hours=23, minutes=59),
                                               max_value=dt.timedelta(hours=23, minutes=59)))
near_the_ends = st.datetimes(max_value=dt.datetime(1, 1, 2), timezones=offsets) | \
    st.datetimes(min_value=dt.datetime(9999, 12, 30), timezones=offsets)
iso_times = st.one_of(near_the_ends.map(dt.datetime.isoformat),
                      st.datetimes(timezones=offsets).map(dt.datetime.isoformat),
                      st.dates().map(dt.date.isoformat), st.datetimes().map(dt.datetime.isoformat))
numbers_as_text = st.integers(-(10**30), 10**30).map(str)
hostile_text = st.one_of(hostile_text, iso_times, numbers_as_text)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | hostile_text
KEYS = ["user", "password", "at_s", "text", "tag", "number", "since", "until", "reason", "extra"]
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
                           max_leaves=20)
shaped_bodies = st.fixed_dictionaries({}, optional={key: scalars for key in KEYS})
bodies = st.one_of(json_values, shaped_bodies)
PARAMS = ["number", "since", "until", "line", "direction", "status", "tag", "text", "limit", "offset", "width",
          "next"]
query_params = st.dictionaries(st.sampled_from(PARAMS), hostile_text.filter(lambda t: len(t) < 6000), max_size=6)
nested = st.builds(lambda depth, opener: opener * depth + (b"]" if opener == b"[" else b"}") * depth,
                   st.integers(1, 120_000), st.sampled_from([b"[", b"{"])) | \
    st.builds(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth, st.integers(1, 40_000))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The app over a recorded data directory; an officer's client and CSRF token; a call id."""
    from callrec.viewer.app import build_app

    recorded = record_calls(tmp_path_factory.mktemp("fuzz"))
    app = build_app(viewer_for(recorded))
    officer = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    token = officer.post("/api/login", json={"user": "olga", "password": PASSWORDS["olga"]}).json()["csrf_token"]
    call_id = officer.get("/api/calls", params={"number": CALLER}).json()["calls"][0]["call_id"]
    anonymous = TestClient(app, raise_server_exceptions=False, follow_redirects=False)
    return officer, token, call_id, anonymous


def assert_answered(reply: Any, what: str) -> None:
    assert reply.status_code < 500, f"{what}: {reply.status_code} {reply.text[:300]}"
    media = reply.headers.get("content-type", "")
    assert reply.status_code in (204, 303, 304, 307) or media.startswith(ANSWERS), f"{what}: {media}"
    if not media.startswith(("audio/", "application/zip", "application/octet-stream")):
        assert "Traceback" not in reply.text and 'File "' not in reply.text, what
    if media.startswith("application/json") and reply.status_code >= 400:
        assert isinstance(reply.json().get("error"), str), what


def post_json(client: TestClient, url: str, body: Any, token: str) -> Any:
    import json

    try:
        content = json.dumps(body, allow_nan=True).encode()
    except (ValueError, RecursionError):
        content = b"{"
    return client.post(url, content=content, headers={"Content-Type": "application/json", "X-CSRF-Token": token})


@FUZZ
@given(body=bodies)
def test_fuzzed_login_bodies_are_answered_without_a_500(site, body):
    _officer, _token, _call, anonymous = site
    assert_answered(post_json(anonymous, "/api/login", body, ""), f"login {body!r:.200}")


@FUZZ
@given(route=st.sampled_from(["notes", "tags", "hold", "release"]), body=bodies)
def test_fuzzed_call_change_bodies_are_answered_without_a_500(site, route, body):
    officer, token, call_id, _anonymous = site
    assert_answered(post_json(officer, f"/api/calls/{call_id}/{route}", body, token), f"{route} {body!r:.200}")


@FUZZ
@given(body=bodies)
def test_fuzzed_export_bodies_are_answered_without_a_500(site, body):
    officer, token, _call, _anonymous = site
    assert_answered(post_json(officer, "/api/export", body, token), f"export {body!r:.200}")


@FUZZ
@given(raw=st.binary(max_size=300) | nested)
def test_fuzzed_raw_bytes_to_every_json_route_are_answered_without_a_500(site, raw):
    officer, token, call_id, anonymous = site
    for client, url in ((anonymous, "/api/login"), (officer, f"/api/calls/{call_id}/notes"),
                        (officer, f"/api/calls/{call_id}/tags"), (officer, "/api/export")):
        reply = client.post(url, content=raw, headers={"Content-Type": "application/json", "X-CSRF-Token": token})
        assert_answered(reply, f"{url} {raw!r:.100}")


@FUZZ
@given(url=st.sampled_from(["/api/calls", "/calls", "/export", "/login", "/tags/x", "/api/calls/{id}/peaks",
                            "/calls/{id}"]), params=query_params)
def test_fuzzed_query_strings_are_answered_without_a_500(site, url, params):
    officer, _token, call_id, anonymous = site
    for client in (officer, anonymous):
        reply = client.get(url.replace("{id}", call_id), params=params)
        assert_answered(reply, f"{url} {params!r:.200}")


@FUZZ
@given(field=st.sampled_from(["since", "until"]), value=iso_times)
def test_fuzzed_dates_and_times_in_every_date_field_are_answered_without_a_500(site, field, value):
    officer, token, _call, _anonymous = site
    for url in ("/api/calls", "/calls", "/export"):
        assert_answered(officer.get(url, params={field: value, "number": CALLER}), f"{url} {field}={value}")
    assert_answered(post_json(officer, "/api/export", {"number": "0000", field: value}, token), f"export {value}")


@FUZZ
@given(raw=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200))
def test_fuzzed_raw_query_strings_are_answered_without_a_500(site, raw):
    officer, _token, _call, _anonymous = site
    for url in ("/api/calls", "/calls", "/export", "/login"):
        reply = officer.get(f"{url}?{raw}")
        assert_answered(reply, f"{url}?{raw}")


@FUZZ
@given(segment=hostile_text)
def test_fuzzed_call_ids_and_tags_in_paths_are_answered_without_a_500(site, segment):
    officer, _token, _call, _anonymous = site
    part = quote(segment[:2000], safe="")
    for url in (f"/calls/{part}", f"/api/calls/{part}", f"/api/calls/{part}/peaks", f"/tags/{part}",
                f"/static/{part}"):
        assert_answered(officer.get(url), url[:200])


ranges = st.one_of(st.from_regex(r"\Abytes=[0-9]{0,40}-[0-9]{0,40}\Z"),
                   st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
                   st.builds(lambda a, b: f"bytes={a}-{b}", st.integers(0, 10**30), st.integers(0, 10**30)))


@FUZZ
@given(header=ranges)
def test_fuzzed_range_headers_are_answered_without_a_500(site, header):
    officer, _token, call_id, _anonymous = site
    reply = officer.get(f"/api/calls/{call_id}/audio", headers={"Range": header})
    assert_answered(reply, f"Range: {header}")
    assert reply.status_code in (200, 206, 416)
