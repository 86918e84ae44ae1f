"""The serial console when the recorder service is down: the technician can still find out why.

A finished simulation leaves a real index and journal; no service runs, so the control socket path
has nobody behind it. The console runs on a real pty pair with pyserial on the technician's side.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import callrec, noise_wav, scenario_toml
from console_support import (
    PROMPT,
    close_console,
    open_console,
)

SECRET = "hunter2-do-not-show"


def _console(work: Path, data: Path, config: Path) -> dict[str, Any]:
    return open_console(work, data, work / "nobody-home.sock", "--config", str(config), ready=True)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("recorded")
    noise_wav(work / "line1.wav", 8)
    (work / "s.toml").write_text(scenario_toml(
        [{"line": 1, "audio": "line1.wav", "events": [(1.0, "hook", "off"), (5.0, "hook", "on")]}]))
    out = callrec("simulate", str(work / "s.toml"), "--data", str(work / "data"))
    assert out.returncode == 0, out.stderr
    call_id = re.search(r'"call_id":"([^"]+)"', out.stdout.replace(" ", ""))
    assert call_id
    return {"work": work, "data": work / "data", "call_id": call_id.group(1), "events": out.stdout.splitlines()}


@pytest.fixture(scope="module")
def offline(recorded: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("offline")
    (work / "mqtt_password").write_text(SECRET + "\n")
    config = work / "callrec.toml"
    config.write_text(f'device_name = "受付"\n[mqtt]\nhost = "broker.example"\nusername = "rec"\n'
                      f'password_file = "{work / "mqtt_password"}"\n[console]\nopen = true\n')
    console = _console(work, recorded["data"], config)
    console["config"] = config
    yield console
    close_console(console)


def test_calls_lists_the_recorded_call_from_the_index(offline: dict[str, Any], recorded: dict[str, Any]) -> None:
    out = offline["terminal"].run("calls 5")
    assert "CALL ID" in out and recorded["call_id"] in out and "complete" in out


def test_logs_show_the_latest_journal_events_in_order(offline: dict[str, Any], recorded: dict[str, Any]) -> None:
    out = offline["terminal"].run("logs 3")
    rows = [line for line in out.splitlines() if line.strip()]
    assert len(rows) == 3
    seqs = [int(row.split()[0]) for row in rows]
    assert seqs == sorted(seqs) and seqs[-1] == len(recorded["events"])
    assert "recording.saved" in out or "call.ended" in out


def test_config_shows_the_settings_in_effect_and_never_the_password(offline: dict[str, Any]) -> None:
    out = offline["terminal"].run("config")
    assert f"from {offline['config']}" in out
    assert 'device_name = "受付"' in out and 'host = "broker.example"' in out and "[[lines]]" in out
    assert "mqtt password: set (hidden)" in out
    assert SECRET not in out


def test_version_names_the_firmware_and_the_device(offline: dict[str, Any]) -> None:
    out = offline["terminal"].run("version")
    assert out.startswith("callrec 0.") and "device 受付" in out


@pytest.mark.parametrize("command", ["status", "levels", "test-announcement 2", "pause 1", "resume 1",
                                     "mark 20240101T000000000Z-L1-abcd important"])
def test_commands_that_need_the_service_say_it_is_not_reachable(offline: dict[str, Any], command: str) -> None:
    out = offline["terminal"].run(command)
    assert "the recorder service is not reachable" in out
    assert "calls, logs, config, version, call still work" in out


def test_bad_commands_and_arguments_get_a_usage_line(offline: dict[str, Any]) -> None:
    terminal = offline["terminal"]
    assert "unknown command 'shutdown'" in terminal.run("shutdown")
    assert terminal.run("calls many").startswith("usage: calls [N]")
    assert terminal.run("logs 100000").startswith("usage: logs [N]")
    assert terminal.run("mark onlyone").startswith("usage: mark CALL_ID TAG")
    assert terminal.run('status "unclosed').startswith("cannot read that line")


def test_ctrl_c_and_ctrl_u_abandon_what_was_typed(offline: dict[str, Any]) -> None:
    terminal = offline["terminal"]
    terminal.type(b"reboot now\x03")
    terminal.read_until("^C\r\n" + PROMPT, timeout=5)
    terminal.type(b"reboot\x15version\r")
    terminal.read_until("\b \b" * 6 + "version\r\n", timeout=5)
    assert terminal.read_until(PROMPT, timeout=5).startswith("callrec ")


def test_a_broken_configuration_still_gives_a_console_that_says_what_is_wrong(
        recorded: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[audio]\nsample_rate = 44100\n[console]\nopen = true\n")
    console = _console(tmp_path, recorded["data"], config)
    try:
        out = console["terminal"].run("config")
        assert "NOT USABLE" in out and "audio.sample_rate" in out
        assert recorded["call_id"] in console["terminal"].run("calls")
    finally:
        close_console(console)
