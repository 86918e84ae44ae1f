"""The viewer's JSON API (issue 13): every endpoint, role and error of docs/viewer.md, over a real
recorded and encrypted data directory; an expired session and a forged CSRF token."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402
from viewer_support import CALLER, PASSWORDS, record_calls, viewer_for  # noqa: E402


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record_calls(tmp_path_factory.mktemp("viewer"))


@pytest.fixture
def viewer(recorded):
    return viewer_for(recorded)


@pytest.fixture
def client(viewer):
    from callrec.viewer.app import build_app

    return TestClient(build_app(viewer))


def login(client: TestClient, name: str) -> str:
    reply = client.post("/api/login", json={"user": name, "password": PASSWORDS[name]})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["csrf_token"])


def first_call(client: TestClient, **params: str) -> dict:
    reply = client.get("/api/calls", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()["calls"][0]


def test_login_gives_the_role_a_csrf_token_and_a_strict_httponly_cookie(client):
    reply = client.post("/api/login", json={"user": "sam", "password": PASSWORDS["sam"]})
    assert reply.status_code == 200
    body = reply.json()
    assert body["user"] == "sam" and body["role"] == "supervisor" and len(body["csrf_token"]) > 20
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_wrong_passwords_lock_the_account_and_bad_bodies_name_the_field(client):
    for _ in range(5):
        assert client.post("/api/login", json={"user": "lena", "password": "nope"}).status_code == 401
    locked = client.post("/api/login", json={"user": "lena", "password": PASSWORDS["lena"]})
    assert locked.status_code == 401 and "too many failures" in locked.json()["error"]
    bad = client.post("/api/login", json={"user": "lena"})
    assert bad.status_code == 422 and bad.json()["field"] == "password"
    assert client.post("/api/login", content=b"{").status_code == 422


def test_nothing_without_a_session(client):
    for url in ("/api/calls", "/api/calls/x", "/api/calls/x/audio", "/api/calls/x/peaks"):
        assert client.get(url).status_code == 401
    assert client.get("/calls", follow_redirects=False).status_code == 303


def test_search_by_number_prefix_line_direction_and_paging_with_a_count_per_day(client):
    login(client, "lena")
    everything = client.get("/api/calls").json()
    assert everything["total"] == 3 and len(everything["calls"]) == 3
    calls = everything["calls"]
    assert [c["call_id"] for c in calls] == sorted((c["call_id"] for c in calls), reverse=True), "newest first"
    assert sum(d["count"] for d in everything["per_day"]) == 3
    by_number = client.get("/api/calls", params={"number": CALLER[:4]}).json()
    assert by_number["total"] == 1 and by_number["calls"][0]["caller_number"] == CALLER
    assert client.get("/api/calls", params={"line": "2"}).json()["total"] == 2
    page = client.get("/api/calls", params={"limit": "1", "offset": "1"}).json()
    assert page["total"] == 3 and page["calls"][0]["call_id"] == calls[1]["call_id"]
    assert client.get("/api/calls", params={"since": "2099-01-01"}).json()["total"] == 0
    for params, field in (({"limit": "0"}, "limit"), ({"line": "x"}, "line"), ({"since": "yesterday"}, "since"),
                          ({"number": "12; drop"}, "number")):
        reply = client.get("/api/calls", params=params)
        assert reply.status_code == 422 and reply.json()["field"] == field


def test_a_call_shows_its_record_verification_and_markers_and_an_unknown_one_is_404(client):
    login(client, "lena")
    call = first_call(client, number=CALLER)
    detail = client.get(f"/api/calls/{call['call_id']}").json()
    assert detail["record"]["caller_number"] == CALLER and detail["verification"] == {"ok": True, "problems": []}
    kinds = {m["kind"] for m in detail["markers"]}
    assert {"answer", "announcement"} <= kinds
    assert client.get("/api/calls/20990101T000000000Z-L1-0000").status_code == 404


def test_audio_is_decrypted_for_the_request_with_ranges_and_peaks(client, recorded):
    login(client, "lena")
    call = first_call(client)
    whole = client.get(f"/api/calls/{call['call_id']}/audio")
    assert whole.status_code == 200 and whole.content.startswith(b"fLaC")
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get(f"/api/calls/{call['call_id']}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert client.get(f"/api/calls/{call['call_id']}/audio",
                      headers={"Range": f"bytes={len(whole.content) + 5}-"}).status_code == 416
    peaks = client.get(f"/api/calls/{call['call_id']}/peaks", params={"width": "200"}).json()
    assert peaks["width"] == 200 and len(peaks["max"]) == 200 and peaks["duration_s"] > 5
    assert client.get(f"/api/calls/{call['call_id']}/peaks", params={"width": "0"}).status_code == 422
    chunk = whole.content[4000:4064]
    for path in recorded.data.rglob("*"):
        assert not path.is_file() or chunk not in path.read_bytes(), f"decrypted audio reached the disk: {path}"


def test_notes_and_tags_need_a_supervisor_and_the_csrf_token(client, recorded):
    call_id = None
    login(client, "lena")
    call_id = first_call(client)["call_id"]
    listener_token = client.cookies.get("callrec_session")
    refused = client.post(f"/api/calls/{call_id}/notes", json={"at_s": 3.0, "text": "x"})
    assert refused.status_code == 403 and "listener" in refused.json()["error"]
    assert listener_token
    token = login(client, "sam")
    assert client.post(f"/api/calls/{call_id}/notes", json={"at_s": 3.0, "text": "x"}).status_code == 403
    forged = client.post(f"/api/calls/{call_id}/notes", json={"at_s": 3.0, "text": "x"},
                         headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
    headers = {"X-CSRF-Token": token}
    note = client.post(f"/api/calls/{call_id}/notes", json={"at_s": 3.5, "text": "greets warmly"}, headers=headers)
    assert note.status_code == 201 and note.json()["by"] == "sam"
    bad = client.post(f"/api/calls/{call_id}/notes", json={"at_s": "soon", "text": "x"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["field"] == "at_s"
    tagged = client.post(f"/api/calls/{call_id}/tags", json={"tag": "good example"}, headers=headers)
    assert tagged.status_code == 201 and tagged.json()["tags"] == ["good example"]
    assert client.post(f"/api/calls/{call_id}/tags", json={"tag": ""}, headers=headers).status_code == 422
    assert client.post("/api/calls/nope/tags", json={"tag": "x"}, headers=headers).status_code == 404
    found = client.get("/api/calls", params={"tag": "good example"}).json()
    assert [c["call_id"] for c in found["calls"]] == [call_id]
    assert client.get("/api/calls", params={"text": "warmly"}).json()["total"] == 1
    detail = client.get(f"/api/calls/{call_id}").json()
    assert detail["notes"][0]["text"] == "greets warmly" and any(m["kind"] == "note" for m in detail["markers"])
    assert detail["verification"]["ok"], "notes never change the evidence"
    assert client.get(f"/api/calls/{call_id}").json()["record"].get("tags") in ([], None)


def test_export_and_hold_are_for_officers(client, recorded):
    token = login(client, "sam")
    refused = client.post("/api/export", json={"number": CALLER}, headers={"X-CSRF-Token": token})
    assert refused.status_code == 403 and "officer" in refused.json()["error"]
    token = login(client, "olga")
    headers = {"X-CSRF-Token": token}
    assert client.post("/api/export", json={}, headers=headers).json()["field"] == "number"
    assert client.post("/api/export", json={"number": "0000"}, headers=headers).status_code == 404
    bundle = client.post("/api/export", json={"number": CALLER}, headers=headers)
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as z:
        names = z.namelist()
        manifest = json.loads(z.read("manifest.json"))
    assert any(n.endswith(".flac.age") for n in names) and "summary.html" in names
    assert [c["call_id"] for c in manifest["calls"]] == [first_call(client, number=CALLER)["call_id"]]
    call_id = first_call(client, number=CALLER)["call_id"]
    held = client.post(f"/api/calls/{call_id}/hold", json={"reason": "complaint 4711"}, headers=headers)
    assert held.status_code == 200 and held.json()["held"] is True
    assert client.get(f"/api/calls/{call_id}").json()["record"]["hold"]["reason"] == "complaint 4711"
    assert client.post(f"/api/calls/{call_id}/release", json={"reason": "settled"}, headers=headers).status_code == 200


def test_an_expired_session_is_refused(recorded):
    from callrec.viewer.app import build_app

    now = [1000.0]
    viewer = viewer_for(recorded, clock=lambda: now[0], idle_s=60.0)
    client = TestClient(build_app(viewer))
    login(client, "lena")
    assert client.get("/api/calls").status_code == 200
    now[0] += 61
    expired = client.get("/api/calls")
    assert expired.status_code == 401 and "expired" in expired.json()["error"]


def test_every_login_playback_note_and_export_is_audited_with_the_user(client, recorded):
    login(client, "lena")
    call_id = first_call(client)["call_id"]
    client.get(f"/api/calls/{call_id}/audio")
    token = login(client, "olga")
    client.post("/api/export", json={"number": CALLER}, headers={"X-CSRF-Token": token})
    audit = [json.loads(line) for line in (recorded.data / "evidence" / "audit.jsonl").read_text().splitlines()]
    seen = {(e["action"], e["who"]) for e in audit}
    assert {("viewer.login", "viewer:lena"), ("viewer.playback", "viewer:lena"), ("viewer.login", "viewer:olga"),
            ("export", "viewer:olga")} <= seen
    assert callrec_verify(recorded.data) == 0


def callrec_verify(data: Path) -> int:
    from conftest import callrec

    return callrec("verify", "--data", str(data)).returncode


def test_viewer_user_add_reads_the_password_from_stdin_and_refuses_bad_roles(tmp_path):
    import subprocess
    import sys

    users = tmp_path / "u.json"
    done = subprocess.run([sys.executable, "-m", "callrec", "viewer-user", "add", "kim", "--role", "officer",
                           "--users", str(users)], input="a-long-password\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stored = json.loads(users.read_text())
    assert stored["kim"]["role"] == "officer" and "a-long-password" not in users.read_text()
    assert stored["kim"]["password"].startswith("scrypt$") and users.stat().st_mode & 0o077 == 0
    short = subprocess.run([sys.executable, "-m", "callrec", "viewer-user", "add", "kim", "--role", "officer",
                            "--users", str(users)], input="short\n", capture_output=True, text=True)
    assert short.returncode == 1 and "shorter than 8" in short.stderr


def test_download_gives_the_file_as_stored_and_logout_ends_the_session(client, recorded):
    token = login(client, "lena")
    call = first_call(client)
    stored = client.get(f"/api/calls/{call['call_id']}/download")
    assert stored.status_code == 200 and stored.content.startswith(b"age-encryption.org/v1")
    assert "attachment" in stored.headers["content-disposition"]
    audit = [json.loads(line) for line in (recorded.data / "evidence" / "audit.jsonl").read_text().splitlines()]
    assert ("viewer.download", "viewer:lena") in {(e["action"], e["who"]) for e in audit}
    assert client.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert client.get("/api/calls").status_code == 401
