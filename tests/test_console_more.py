"""The console's remaining promises, over real ptys: idle logout, `call ID`, `test tone`, the closed
and the open console, history and Tab completion.

As in the other console tests, `callrec console` owns one end of a socat pty pair and pyserial types
on the other; the recorder is `callrec simulate --realtime` (a call on line 1 from 1 s to 40 s, line 2
idle) with `--work` keeping the simulated card's files, so what the tone put into line 2 is read back
from the card's playback file.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SimResult
from console_support import (
    PROMPT,
    LiveService,
    close_console,
    open_console,
    start_live_service,
    wait_for,
)

PASSPHRASE = "a technician's passphrase"
CLOSED_WHY = "this console is CLOSED: no technician passphrase is set"
OPEN_WARNING = "WARNING: no technician passphrase is set (console.open = true)"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    work = tmp_path_factory.mktemp("live-more")
    service = start_live_service(work, "--work", str(work / "cards"))
    yield service
    service.kill()


@pytest.fixture(scope="module")
def console(live: LiveService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An open console (no passphrase) on the live service, ready at its prompt."""
    console = open_console(tmp_path_factory.mktemp("console-more"), live.data, live.socket, ready=True)
    yield console
    close_console(console)


@pytest.fixture
def own_console(tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """A console of its own, for a test that needs its own configuration."""
    made: list[dict[str, Any]] = []

    def make(config_text: str, *, data: Path | None = None, control_socket: Path | None = None,
             passphrase: str | None = None) -> dict[str, Any]:
        config = tmp_path / "callrec.toml"
        config.write_text(config_text)
        if passphrase is not None:
            done = subprocess.run([sys.executable, "-m", "callrec", "passwd", "--config", str(config)],
                                  input=passphrase + "\n", text=True, capture_output=True, check=False)
            assert done.returncode == 0, done.stderr
        made.append(open_console(tmp_path, data or tmp_path / "data", control_socket or tmp_path / "nobody.sock",
                                 "--config", str(config)))
        return made[-1]

    yield make
    for port in made:
        close_console(port)


def _audit(data: Path) -> list[dict[str, Any]]:
    path = data / "evidence" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _played(path: Path) -> tuple[int, np.ndarray]:
    """The simulated card's playback WAV while it is still being written (its sizes not final yet):
    the rate, and the frames so far as (frames, channels) int16."""
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE", raw[:12]
    pos, channels, rate = 12, 0, 0
    while pos + 8 <= len(raw):
        chunk, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if chunk == b"fmt ":
            channels, rate = struct.unpack("<HI", raw[pos + 10:pos + 16])
        elif chunk == b"data":
            body = raw[pos + 8:]
            frames = len(body) // (2 * channels)
            return rate, np.frombuffer(body[: frames * 2 * channels], "<i2").reshape(frames, channels)
        pos += 8 + size + (size & 1)
    return rate, np.zeros((0, max(channels, 1)), dtype=np.int16)


def _sounding(samples: np.ndarray) -> np.ndarray:
    """From the first to the last sample that is not digital silence."""
    loud = np.flatnonzero(samples)
    return samples[loud[0]:loud[-1] + 1] if len(loud) else samples[:0]


# ---- idle logout -------------------------------------------------------------------------------------

def test_a_session_left_idle_for_console_idle_logout_s_is_logged_out_said_and_audited(
        own_console: Callable[..., dict[str, Any]], live: LiveService) -> None:
    port = own_console("[console]\nidle_logout_s = 2.0\n", data=live.data, control_socket=live.socket,
                       passphrase=PASSPHRASE)
    terminal = port["terminal"]
    terminal.type("\r")   # wakes the console; an empty line is no attempt, it only asks again
    terminal.read_until("passphrase: ", timeout=15)
    time.sleep(0.5)
    terminal.port.read(4096)
    terminal.seen = ""
    terminal.type(PASSPHRASE + "\r")
    typed = time.monotonic()
    assert "logged in" in terminal.read_until(PROMPT, timeout=10)
    terminal.read_until("logged out (no input for 2 s)", timeout=8)
    assert time.monotonic() - typed >= 2.0, "not before the idle time is up"
    terminal.read_until("passphrase: ", timeout=5)   # the next session asks again
    who = f"console:{port['ptys'].console}"

    def audited() -> bool:
        kinds = {(e["action"], e["what"].get("reason")) for e in _audit(live.data) if e["who"] == who}
        return {("console.logout", "idle"), ("console.session.ended", "idle")} <= kinds

    wait_for(audited, 5, "the idle logout in the audit log")
    assert "ended (idle)" in port["log"].read_text()


# ---- call ID -----------------------------------------------------------------------------------------

def test_call_id_shows_the_recorded_calls_full_record_from_the_index(
        simulate: Callable[..., SimResult], own_console: Callable[..., dict[str, Any]]) -> None:
    result = simulate([{"line": 1, "audio": "line1.wav", "seconds": 8,
                        "events": [(1.0, "hook", "off"), (4.0, "hook", "on")]}])
    assert result.returncode == 0, result.stderr
    (started,) = result.of_type("call.started")
    call_id = started["call_id"]
    port = own_console("[console]\nopen = true\n", data=result.data)
    terminal = port["terminal"]
    terminal.type("\r")
    terminal.read_until(PROMPT, timeout=15)
    shown = json.loads(terminal.run(f"call {call_id}"))
    assert shown == result.record(call_id), "the same record as `callrec calls show`"
    assert shown["call_id"] == call_id and shown["status"] == "complete"
    assert "no call 'NOPE' in the index" in terminal.run("call NOPE")
    assert terminal.run("call").startswith("usage: call CALL_ID")


def test_call_id_of_a_call_still_in_progress_says_which_line_it_is_on(
        console: dict[str, Any], live: LiveService) -> None:
    out = console["terminal"].run(f"call {live.call_id}")
    assert f"call {live.call_id} is in progress on line 1" in out


# ---- test tone ---------------------------------------------------------------------------------------

def test_test_tone_plays_1_khz_at_minus_10_dbfs_into_the_idle_line_and_is_refused_on_the_busy_one(
        console: dict[str, Any], live: LiveService) -> None:
    terminal = console["terminal"]
    assert "refused: line 1 is not idle; the test tone plays only when idle" in terminal.run("test tone 1")
    assert "line 2: test tone playing (1000 Hz at -10.0 dBFS for 2.0 s)" in terminal.run("test tone 2")
    assert "refused: line 2 is playing a test already" in terminal.run("test tone 2")
    played = live.data.parent / "cards" / "played_card0.wav"
    rate = 0
    tone = np.zeros(0, dtype=np.int16)

    def tone_played() -> bool:
        nonlocal rate, tone
        rate, frames = _played(played)
        tone = _sounding(frames[:, 1])   # line 2 is the card's right channel
        return len(tone) >= 1.8 * rate   # the card's file keeps its last periods until the next write

    wait_for(tone_played, 10, "the 2 s tone in line 2's playback", step=0.2)
    spectrum = np.abs(np.fft.rfft(tone * np.hanning(len(tone))))
    peak_hz = float(np.argmax(spectrum)) * rate / len(tone)
    assert abs(peak_hz - 1000) < 5, peak_hz
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(tone.astype(np.float64) ** 2)) / 32768)
    assert -11.0 < rms_dbfs < -9.0, rms_dbfs
    assert len(tone) < 2.1 * rate, "one tone of 2 s: the refused second one played nothing"


# ---- closed and open consoles ------------------------------------------------------------------------

def test_a_console_with_no_passphrase_and_not_open_serves_nobody_and_says_why(
        own_console: Callable[..., dict[str, Any]]) -> None:
    port = own_console('device_name = "front-office"\n')
    terminal = port["terminal"]
    terminal.type("\r")
    shown = terminal.read_until("in the configuration.", timeout=15)
    assert CLOSED_WHY in shown and "`callrec passwd`" in shown and "console.open = true" in shown
    terminal.type("version\r")
    terminal.read_until("version\r\n", timeout=5)
    assert CLOSED_WHY in terminal.read_until("in the configuration.", timeout=5)
    time.sleep(0.5)
    terminal.seen += terminal.port.read(4096).decode("utf-8", "replace")
    assert "(Python " not in terminal.seen and PROMPT not in terminal.seen, "no command runs"
    log = port["log"].read_text()
    assert "is closed: no console.passphrase_hash is set" in log and "console.open is not true" in log
    assert "Traceback" not in log
    assert port["proc"].poll() is None, "it keeps the port (Restart=always must not become a restart loop)"


def test_an_open_console_says_at_every_session_start_that_no_passphrase_is_set(
        own_console: Callable[..., dict[str, Any]]) -> None:
    port = own_console("[console]\nopen = true\n")
    terminal = port["terminal"]
    terminal.type("\r")
    terminal.read_until(PROMPT, timeout=15)
    for _session in range(2):
        assert terminal.run("version").startswith("callrec ")
        terminal.type("logout\r")
        greeting = terminal.read_until("type 'help'", timeout=10)
        assert "bye" in greeting and OPEN_WARNING in greeting and "`callrec passwd`" in greeting
        terminal.read_until(PROMPT, timeout=5)
    assert "is closed" not in port["log"].read_text()


# ---- history and Tab on a VT100-class terminal -------------------------------------------------------

def test_up_arrow_recalls_the_last_command_and_again_the_one_before(console: dict[str, Any]) -> None:
    terminal = console["terminal"]
    assert terminal.run("version").startswith("callrec ")
    assert terminal.run("help logout").startswith("usage: logout")
    terminal.type(b"\x1b[A")   # ESC [ A: Up, as a VT100 sends it
    terminal.read_until("help logout", timeout=5)
    terminal.type(b"\x1b[A")   # the one before replaces it on the line
    terminal.read_until("\b \b" * len("help logout") + "version", timeout=5)
    terminal.type("\r")
    terminal.read_until("\r\n", timeout=5)
    assert terminal.read_until(PROMPT, timeout=5).startswith("callrec ")


def test_tab_completes_a_command_name_over_the_pty(console: dict[str, Any]) -> None:
    terminal = console["terminal"]
    terminal.type(b"vers\t")
    terminal.read_until("version ", timeout=5)
    terminal.type("\r")
    terminal.read_until("\r\n", timeout=5)
    assert terminal.read_until(PROMPT, timeout=5).startswith("callrec ")
