"""The serial console over a real pty pair, against a real running service (realtime simulation).

The technician's side is pyserial on one pty; `callrec console` owns the other, as it owns the UART.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_support import (
    PROMPT,
    LiveService,
    PtyPair,
    Terminal,
    close_console,
    open_console,
    start_live_service,
    wait_for,
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    service = start_live_service(tmp_path_factory.mktemp("live"))
    yield service
    service.kill()


@pytest.fixture(scope="module")
def console(live: LiveService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    console = open_console(tmp_path_factory.mktemp("console"), live.data, live.socket)
    yield console
    close_console(console)


def _prompt(terminal: Terminal) -> None:
    """Wait until the console is listening: Enter on an empty line answers with a prompt."""
    terminal.type("\r")
    terminal.read_until(PROMPT, timeout=15)


def test_status_shows_the_recording_call_and_the_idle_line(console: dict[str, Any], live: LiveService) -> None:
    terminal = console["terminal"]
    _prompt(terminal)
    out = terminal.run("status")
    assert "service running" in out and "alarms: none" in out
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"^\s*(\d)\s.*$", out, re.MULTILINE)}
    assert "recording" in rows[1] and live.call_id in rows[1]
    assert "idle" in rows[2]


def test_levels_show_each_line_with_a_bar(console: dict[str, Any]) -> None:
    out = console["terminal"].run("levels")
    assert "RMS dBFS" in out
    assert len(re.findall(r"^\s+[12]\s+-\d+\.\d\s+-?\d+\.\d\s+\|#+\.*\|", out, re.MULTILINE)) == 2, out


def test_levels_watch_repeats_until_a_key_is_pressed(console: dict[str, Any]) -> None:
    terminal = console["terminal"]
    terminal.type("levels watch\r")
    terminal.read_until("(any key stops)", timeout=10)
    terminal.read_until("|", timeout=5)
    terminal.read_until("|", timeout=5)
    terminal.type("q")
    terminal.read_until(PROMPT, timeout=5)
    assert terminal.run("version").startswith("callrec ")


def test_test_announcement_is_refused_on_the_busy_line_and_plays_on_idle_line_2(console: dict[str, Any]) -> None:
    terminal = console["terminal"]
    assert "refused: line 1 is not idle" in terminal.run("test-announcement 1")
    assert "line 2: test announcement playing" in terminal.run("test-announcement 2")


def test_pause_and_resume_the_recording_from_the_console(console: dict[str, Any], live: LiveService) -> None:
    terminal = console["terminal"]
    assert f"recording of {live.call_id} paused" in terminal.run("pause 1")
    assert "refused: " in terminal.run("pause 1")
    assert f"recording of {live.call_id} resumed" in terminal.run("resume 1")
    assert terminal.run("pause one").startswith("usage: pause LINE")


def test_mark_tags_the_call_in_progress(console: dict[str, Any], live: LiveService) -> None:
    out = console["terminal"].run(f"mark {live.call_id} complaint")
    assert f"call {live.call_id} tags: complaint" in out


def test_typing_is_echoed_and_backspace_and_cr_lf_edit_the_line(console: dict[str, Any]) -> None:
    terminal = console["terminal"]
    terminal.type(b"verzz\x7f\x08sion\r\n")   # DEL and BS both erase; CR LF is one Enter
    echo = terminal.read_until("\r\n", timeout=5)
    assert echo.endswith("verzz\b \b\b \bsion\r\n")
    answer = terminal.read_until(PROMPT, timeout=5)
    assert answer.startswith("callrec ") and PROMPT not in answer[: -len(PROMPT)]
    terminal.type(b"stat\x1b[Dus\r")   # an arrow key's escape sequence is ignored, not typed
    terminal.read_until("status\r\n", timeout=5)
    assert "service running" in terminal.read_until(PROMPT, timeout=10)


def test_the_log_records_the_session_and_every_command(console: dict[str, Any]) -> None:
    terminal = console["terminal"]
    terminal.type("exit\r")
    terminal.read_until("bye", timeout=5)
    wait_for(lambda: "ended (exit)" in console["log"].read_text(), 5, "the session end in the log")
    text = console["log"].read_text()
    assert f"console session started on {console['ptys'].console}" in text
    assert "console command on" in text and ": pause 1" in text


def test_a_hang_up_is_survived_and_the_port_reopened(console: dict[str, Any]) -> None:
    """The far end closing raises "returned no data" in pyserial: end the session, reopen, never exit."""
    console["terminal"].run("version")   # a session in progress when the line drops
    console["terminal"].close()
    console["ptys"].stop()   # both ptys go away, as a USB adapter pulled out
    wait_for(lambda: "ended (hang-up)" in console["log"].read_text(), 10, "the session end in the log")
    assert "returned no data" in console["log"].read_text()
    assert console["proc"].poll() is None, "the console must not exit on a hang-up"
    ptys = console["ptys"] = PtyPair(Path(console["ptys"].console).parent).start()
    terminal = console["terminal"] = Terminal(ptys.technician)
    terminal.type("\r")
    terminal.read_until(PROMPT, timeout=20)
    assert terminal.run("version").startswith("callrec ")
    assert console["proc"].poll() is None
