"""A real Home Assistant loads callrec's MQTT discovery and follows a call (CALLREC_HA_TEST=1 only).

Home Assistant 2025.4.4 (the newest that installs on the Python 3.13.0 of this machine kind) runs
as a child process on loopback with a real mosquitto; it is onboarded and given the MQTT
integration through its own HTTP API, then a paced `callrec simulate` makes a call with caller ID.
The test reads back what HA made of it: every entity, their states during and after the call, and
HA's log. HA lives in its own virtualenv (`CALLREC_HA_VENV`, default ~/.cache/callrec-ha/venv),
made on first use with pyenv's Python 3.13.0 (several minutes, about 850 MB).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from conftest import noise_wav, scenario_toml
from mqtt_support import Broker, free_port

pytestmark = pytest.mark.skipif(os.environ.get("CALLREC_HA_TEST") != "1", reason="set CALLREC_HA_TEST=1")

HA_VERSION = "2025.4.4"
HA_EXTRA = ["home-assistant-frontend==20250411.0", "paho-mqtt==2.1.0"]   # what HA 2025.4.4 loads at start
DEVICE = "habox"
CALLER = "2125551234"


def _ha_venv() -> Path:
    venv = Path(os.environ.get("CALLREC_HA_VENV", Path.home() / ".cache" / "callrec-ha" / "venv"))
    if (venv / "bin" / "hass").exists():
        return venv
    python = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([f"{python}/versions/3.13.0/bin/python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"homeassistant=={HA_VERSION}", *HA_EXTRA],
                   check=True, timeout=3600)
    return venv


class HomeAssistant:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = directory / "config"
        self.config.mkdir(parents=True)
        (self.config / "configuration.yaml").write_text(
            "homeassistant:\n  name: callrec test\n  time_zone: UTC\n  country: US\n  unit_system: metric\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\napi:\nconfig:\nonboarding:\n"
            "logger:\n  default: warning\n")
        self.log = directory / "ha.log"
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, venv: Path) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(venv / "bin" / "hass"), "-c", str(self.config), "--skip-pip"],
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/api/onboarding")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"Home Assistant did not start: {self.log.read_text()[-3000:]}")

    def request(self, method: str, path: str, body: Any = None, *, form: bool = False) -> tuple[int, Any]:
        data, headers = None, {}
        if body is not None:
            data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded" if form else "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def onboard_with_mqtt(self, broker_port: int) -> None:
        client = self.url + "/"
        status, user = self.request("POST", "/api/onboarding/users", {
            "client_id": client, "name": "Test", "username": "test", "password": "callrec-test-pass",
            "language": "en"})
        assert status == 200, user
        status, token = self.request("POST", "/auth/token", {"grant_type": "authorization_code",
                                                             "code": user["auth_code"], "client_id": client}, form=True)
        assert status == 200, token
        self.token = token["access_token"]
        status, flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        assert status == 200, flow
        status, entry = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                                     {"broker": "127.0.0.1", "port": broker_port})
        assert status == 200 and entry["type"] == "create_entry", entry

    def states(self) -> dict[str, dict[str, Any]]:
        status, states = self.request("GET", "/api/states")
        assert status == 200, states
        return {s["entity_id"]: s for s in states if f"_{DEVICE}_" in s["entity_id"]}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _state(states: dict[str, dict[str, Any]], suffix: str) -> str | None:
    found = [s["state"] for entity, s in states.items() if entity.endswith(suffix)]
    return found[0] if found else None


def _wait(ha: HomeAssistant, predicate: Any, timeout: float, what: str) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    states = ha.states()
    while time.monotonic() < deadline:
        states = ha.states()
        if predicate(states):
            return states
        time.sleep(0.2)
    raise AssertionError(f"{what}; Home Assistant shows {json.dumps({k: v['state'] for k, v in states.items()})}")


def test_home_assistant_makes_every_entity_and_follows_a_call_with_caller_id(tmp_path):
    from callrec.dsp import callerid

    if shutil.which("pyenv") is None and "CALLREC_HA_VENV" not in os.environ:
        pytest.skip("needs pyenv's Python 3.13.0 for Home Assistant")
    venv = _ha_venv()
    broker = Broker(tmp_path / "broker")
    broker.start()
    ha = HomeAssistant(tmp_path / "ha")
    run = None
    try:
        ha.start(venv)
        ha.onboard_with_mqtt(broker.port)
        noise_wav(tmp_path / "line1.wav", 26, level=0.001)
        audio, _ = soundfile.read(str(tmp_path / "line1.wav"), dtype="float64")
        burst = callerid.signal(callerid.sdmf_message("12021200", CALLER), "bell202") / 32768.0
        audio[int(6.2 * 8000):int(6.2 * 8000) + len(burst)] += burst
        soundfile.write(str(tmp_path / "line1.wav"), np.clip(audio, -1, 1), 8000, subtype="PCM_16")
        noise_wav(tmp_path / "line2.wav", 26, level=0.001)
        (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
            (4.0, "ring", "on"), (6.0, "ring", "off"), (9.0, "ring", "on"), (9.5, "hook", "off"),
            (14.5, "hook", "on")]}, {"line": 2, "audio": "line2.wav", "events": []}]))
        (tmp_path / "c.toml").write_text(f'region = "US"\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
                                         f'device_id = "{DEVICE}"\n')
        run = subprocess.Popen([sys.executable, "-m", "callrec", "simulate", str(tmp_path / "s.toml"), "--data",
                                str(tmp_path / "data"), "--config", str(tmp_path / "c.toml"), "--realtime"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        states = _wait(ha, lambda s: len(s) >= 12, 30, "Home Assistant did not make the 12 entities")
        assert len(states) == 12, sorted(states)
        _wait(ha, lambda s: _state(s, "_line_1_state") == "idle" and _state(s, "_line_2_state") == "idle", 20,
              "the lines were not shown idle once the device was online")
        _wait(ha, lambda s: _state(s, "_line_1_state") == "recording" and _state(s, "_line_1_recording") == "on",
              30, "the call was not shown")
        states = _wait(ha, lambda s: _state(s, "_line_1_state") == "idle" and _state(s, "_calls_today") == "1", 20,
                       "the end of the call was not shown")
        assert _state(states, "_line_1_last_caller") == CALLER, "the last caller stays once the line is idle"
        assert _state(states, "_line_2_last_caller") in ("unknown", None, ""), "no caller is not 'unavailable'"
        assert run.wait(60) == 0, run.stderr.read() if run.stderr else ""
        states = _wait(ha, lambda s: _state(s, "_line_1_state") == "unavailable", 20, "offline was not shown")
        log = ha.log.read_text()
        complaints = [line for line in log.splitlines() if "mqtt" in line.lower() and (" WARNING " in line or
                                                                                      " ERROR " in line)]
        assert complaints == [], complaints
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        ha.stop()
        broker.stop()
