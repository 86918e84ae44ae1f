"""`callrec demo --viewer` ends by serving the viewer over the demo's calls with a printed one-time
login (issue 13), and the viewer reads an archive as well as a data directory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from http.cookiejar import CookieJar

import pytest

pytest.importorskip("uvicorn")
from archive_support import free_port  # noqa: E402
from conftest import callrec, noise_wav, scenario_toml  # noqa: E402


def _session(base: str, user: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    body = json.dumps({"user": user, "password": password}).encode()
    request = urllib.request.Request(f"{base}/api/login", data=body, headers={"Content-Type": "application/json"})
    with opener.open(request, timeout=10) as reply:
        assert json.loads(reply.read())["role"] == "officer"
    return opener


def test_demo_viewer_prints_a_one_time_login_that_opens_the_demo_calls(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "callrec", "demo", "--data", str(tmp_path / "d"), "--viewer",
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        password = None
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            match = re.search(r"log in as\s+demo\s+with the one-time password\s+(\S+)", line)
            if match:
                password = match.group(1)
                break
            assert time.monotonic() < deadline
        assert password, "no login printed"
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                opener = _session(base, "demo", password)
                break
            except OSError:
                time.sleep(0.1)
        with opener.open(f"{base}/api/calls", timeout=10) as reply:
            assert json.loads(reply.read())["total"] == 4
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_viewer_reads_the_office_archive_alone(tmp_path):
    from callrec.config import parse
    from callrec.viewer.app import build_app
    from callrec.viewer.commands import make_viewer
    from callrec.viewer.users import Users
    from starlette.testclient import TestClient

    archive = tmp_path / "archive"
    config = tmp_path / "c.toml"
    config.write_text(f'[mqtt]\ndevice_id = "shop"\n[archive]\nurl = "file://{archive}"\n')
    noise_wav(tmp_path / "line1.wav", 10, seed=4)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (0.5, "hook", "off"), (6.0, "hook", "on")]}]))
    assert callrec("simulate", str(tmp_path / "s.toml"), "--data", str(tmp_path / "data"), "--config",
                   str(config)).returncode == 0
    import argparse
    import shutil

    shutil.rmtree(tmp_path / "data")   # the office has the archive only
    Users(tmp_path / "u.json").add("ann", "officer", "office-pass-1")
    args = argparse.Namespace(data=None, archive=f"file://{archive}", identity=None, users=tmp_path / "u.json",
                              annotations=tmp_path / "notes.sqlite", device=None, tls_cert=None)
    import tomllib

    viewer = make_viewer(args, parse(tomllib.loads(config.read_text())))
    client = TestClient(build_app(viewer))
    token = client.post("/api/login", json={"user": "ann", "password": "office-pass-1"}).json()["csrf_token"]
    (call,) = client.get("/api/calls").json()["calls"]
    assert call["device_id"] == "shop"
    detail = client.get(f"/api/calls/{call['call_id']}").json()
    assert detail["verification"]["ok"], detail["verification"]
    assert client.get(f"/api/calls/{call['call_id']}/audio").content.startswith(b"fLaC")
    refused = client.post(f"/api/calls/{call['call_id']}/hold", json={"reason": "x"}, headers={"X-CSRF-Token": token})
    assert refused.status_code == 409 and "on the device" in refused.json()["error"]
    assert (tmp_path / "callrec-office-evidence" / "evidence" / "audit.jsonl").exists()
