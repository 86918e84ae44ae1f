"""The technician's console, finished: login, selftest, live GPIO and meter, safe config changes.

Everything real: `callrec simulate --realtime --control PATH` is the recorder (a call on line 1,
line 2 idle), a real mosquitto is its broker, a directory its archive; `callrec console --control
PATH` owns one end of a socat pty pair and pyserial types on the other. The scripted session is
compared with a golden transcript (tests/golden/console_session.txt) after the parts that change
from run to run (times, call ids, levels, sizes, paths) are masked; CALLREC_UPDATE_GOLDEN=1 rewrites
it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import noise_wav, scenario_toml
from console_support import (
    PROMPT,
    PtyPair,
    Terminal,
    close_console,
    open_console,
    start_console,
    stop,
    wait_for,
)
from mqtt_support import Broker

PASSPHRASE = "correct horse battery"
GOLDEN = Path(__file__).parent / "golden" / "console_session.txt"
CALL_ON_S, CALL_OFF_S = 1.0, 14.0


@dataclass
class Rig:
    work: Path
    config: Path
    data: Path
    socket: Path
    service: subprocess.Popen[bytes]
    call_id: str
    restarted: Path


def _write_config(work: Path, broker_port: int, *, device_id: str = "callrec-console-test") -> Path:
    (work / "archive").mkdir(exist_ok=True)
    config = work / "callrec.toml"
    config.write_text(
        "# the appliance's settings\n"
        f'device_name = "front-office"\n\n[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n'
        f'device_id = "{device_id}"\n\n'
        f'[archive]\nurl = "file://{work / "archive"}"\n\n'
        f'[console]\nrestart_command = ["sh", "-c", "echo restarted >> {work / "restarted"}"]\n'
        f'reboot_command = ["sh", "-c", "echo rebooted >> {work / "rebooted"}"]\n')
    done = subprocess.run([sys.executable, "-m", "callrec", "passwd", "--config", str(config)],
                          input=PASSPHRASE + "\n", text=True, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    return config


def _start_service(work: Path, config: Path, *, faults: str = "",
                   call: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    noise_wav(work / "line1.wav", CALL_OFF_S + 120, seed=1)
    noise_wav(work / "line2.wav", CALL_OFF_S + 120, seed=2, level=0.02)
    events = [(CALL_ON_S, "hook", "off"), (CALL_OFF_S, "hook", "on")] if call else []
    (work / "scenario.toml").write_text(scenario_toml([
        {"line": 1, "audio": "line1.wav", "events": events},
        {"line": 2, "audio": "line2.wav", "events": []},
    ]) + faults)
    out = work / "events.jsonl"
    out.unlink(missing_ok=True)
    with open(out, "ab") as events_out, open(work / "service.log", "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "callrec", "--config", str(config), "simulate",
                                 str(work / "scenario.toml"), "--data", str(work / "data"), "--realtime",
                                 "--control", str(work / "control.sock")], stdout=events_out, stderr=err)
    found: list[str] = []

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError((work / "service.log").read_text())
        lines = out.read_text().split("\n")[:-1]
        kinds = [json.loads(line) for line in lines]
        found.extend(e["call_id"] for e in kinds if e["type"] == "call.started")
        return bool(found) if call else any(e["type"] == "line.state" for e in kinds)

    wait_for(ready, 30, "the simulated service")
    return proc, found[0] if found else ""


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    server = Broker(tmp_path_factory.mktemp("broker"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rig(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    work = tmp_path_factory.mktemp("technician")
    config = _write_config(work, broker.port)
    proc, call_id = _start_service(work, config)
    yield Rig(work, config, work / "data", work / "control.sock", proc, call_id, work / "restarted")
    _kill(proc)


@pytest.fixture
def console(rig: Rig, tmp_path: Path) -> Iterator[dict[str, Any]]:
    console = open_console(tmp_path, rig.data, rig.socket, "--config", str(rig.config))
    yield console
    close_console(console)


def _at_passphrase_prompt(terminal: Terminal) -> str:
    """Enter wakes the console (an empty line is no attempt: it only asks again); then settle."""
    terminal.type("\r")
    seen = terminal.read_until("passphrase: ", timeout=15)
    time.sleep(0.5)
    terminal.port.read(4096)   # the prompt asked again for the empty line
    terminal.seen = ""
    return seen


def _login(terminal: Terminal, passphrase: str = PASSPHRASE) -> str:
    _at_passphrase_prompt(terminal)
    terminal.type(passphrase + "\r")
    return terminal.read_until(PROMPT, timeout=10)


def _live(terminal: Terminal, command: str, seconds: float) -> str:
    terminal.type(command + "\r")
    time.sleep(seconds)
    terminal.type("q")
    return terminal.read_until(PROMPT, timeout=10)


def _mask(text: str, work: Path, tty_dir: Path) -> str:
    text = text.replace("\r", "").replace(str(work), "<WORK>").replace(str(tty_dir), "<TTY>")
    text = re.sub(r"\d+(\.\d+)? (B|kB|MB|GB|TB)\b", "<SIZE>", text)
    text = re.sub(r"\d{8}T\d{9}Z-L\d-[0-9a-f]{4}", "<CALL>", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}T[\d:.]+Z", "<TIME>", text)
    text = re.sub(r"\|[#.]+\|", "|BAR|", text)
    text = re.sub(r"\d+h\d\dm\d\ds", "<DUR>", text)
    text = re.sub(r"-?\d+(\.\d+)?", "N", text)
    return "\n".join(re.sub(r" {2,}", "  ", line).rstrip() for line in text.split("\n"))


def _audit(data: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (data / "evidence" / "audit.jsonl").read_text().splitlines()]


def test_a_scripted_technician_session_matches_its_golden_transcript(console: dict[str, Any], rig: Rig) -> None:
    terminal = console["terminal"]
    transcript: list[str] = []

    def step(command: str, answer: str) -> None:
        transcript.extend([f"> {command}", _mask(answer, rig.work, console["ptys"].console.parent)])

    step("<Enter>", _at_passphrase_prompt(terminal))
    terminal.type(PASSPHRASE + "\r")
    step("<passphrase>", terminal.read_until(PROMPT, timeout=10))
    status = terminal.run("status")
    assert re.search(rf"^\s*1\s.*recording.*{rig.call_id}", status, re.MULTILINE), status
    assert "mqtt: connected" in status and "clock: synchronised" in status, status
    step("status", status)
    meter = _live(terminal, "meter 1", 1.0)
    assert meter.count("\rline 1 |") >= 5, meter   # about 10 frames a second, in place
    step("meter 1", meter.split("\r")[0] + "\n" + meter.split("\r")[1] + "\n" + PROMPT)
    gpio = _live(terminal, "gpio", 0.6)
    assert re.search(r"^\s*1\s+GPIO17\s+ACTIVE\s+off-hook", gpio, re.MULTILINE), gpio
    step("gpio", gpio)
    for command in ("test announce 2", "test announce 1", "config set retention.days many",
                    "config set retention.days 30"):
        answer = terminal.run(command, timeout=20)
        step(command, answer)
    assert "refused: line N is not idle" in transcript[-5]
    assert "retention.days: " in transcript[-3] and "N problem(s)" in transcript[-3]
    assert "[retention]\ndays = 30" in rig.config.read_text()
    assert "# the appliance's settings" in rig.config.read_text(), "config set keeps the file's comments"
    assert (rig.config.parent / "callrec.toml.bak").exists()
    wait_for(lambda: "idle" in terminal.run("status").split("\n")[2], 40, "the end of the call on line 1", step=1)
    selftest = terminal.run("selftest", timeout=120)
    assert "selftest PASSED" in selftest and not re.search(r"^(WARN|FAIL)", selftest, re.MULTILINE), selftest
    step("selftest", selftest)
    step("restart", terminal.run("restart", timeout=30))
    assert rig.restarted.read_text() == "restarted\n"
    terminal.type("logout\r")
    step("logout", terminal.read_until("passphrase: ", timeout=10))
    text = "\n".join(transcript) + "\n"
    if os.environ.get("CALLREC_UPDATE_GOLDEN") or not GOLDEN.exists():
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    kinds = [(e["action"], e["who"]) for e in _audit(rig.data)]
    port = f"console:{console['ptys'].console}"
    for kind in ("console.session.started", "console.login", "config.set", "console.selftest", "console.restart",
                 "console.logout", "console.session.ended"):
        assert (kind, port) in kinds, kind


def test_five_wrong_passphrases_lock_the_console_and_the_right_one_is_refused_while_locked(
        console: dict[str, Any], rig: Rig) -> None:
    terminal = console["terminal"]
    _at_passphrase_prompt(terminal)
    for left in (4, 3, 2, 1):
        terminal.type(f"guess {left}\r")
        assert f"wrong passphrase ({left} tr" in terminal.read_until("passphrase: ", timeout=10)
    terminal.type("guess 0\r")
    assert "5 failures: the console is locked for 60 s" in terminal.read_until("passphrase: ", timeout=10)
    terminal.type(PASSPHRASE + "\r")
    assert "the console is locked for" in terminal.read_until("passphrase: ", timeout=10)
    events = [e for e in _audit(rig.data) if e["who"] == f"console:{console['ptys'].console}"]
    failed = [e for e in events if e["action"] == "console.login.failed"]
    assert len(failed) == 6 and "locked_s" in failed[-1]["what"], "the attempt while locked is audited too"
    assert any(e["action"] == "console.locked" and e["what"]["seconds"] == 60 for e in events)
    assert not any(e["action"] == "console.login" for e in events)


def test_the_lockout_ends_and_the_right_passphrase_then_logs_in(rig: Rig, tmp_path: Path) -> None:
    config = tmp_path / "short-lock.toml"
    config.write_text(rig.config.read_text().replace("[console]\n", "[console]\nlockout_s = 1.0\nmax_failures = 2\n"))
    ptys = PtyPair(tmp_path).start()
    proc = start_console(ptys.console, rig.data, rig.socket, tmp_path / "console.log", "--config", str(config))
    terminal = Terminal(ptys.technician)
    try:
        _at_passphrase_prompt(terminal)
        terminal.type("nope\rnope again\r")
        assert "locked for 1 s" in terminal.read_until("locked for 1 s", timeout=10)
        time.sleep(1.3)
        terminal.read_until("passphrase: ", timeout=5)
        terminal.type(PASSPHRASE + "\r")
        assert "logged in" in terminal.read_until(PROMPT, timeout=10)
    finally:
        terminal.close()
        stop(proc)
        ptys.stop()


def test_a_restart_of_the_service_during_a_session_is_survived(console: dict[str, Any], rig: Rig) -> None:
    terminal = console["terminal"]
    _login(terminal)
    assert "service running" in terminal.run("status")
    _kill(rig.service)
    assert "the recorder service is not reachable" in terminal.run("status")
    assert terminal.run("version").startswith("callrec ")   # the offline commands go on
    rig.service, _ = _start_service(rig.work, rig.config, call=False)
    wait_for(lambda: "service running" in terminal.run("status"), 30, "the service back", step=0.5)
    assert "idle" in terminal.run("status")


def test_a_hang_up_logs_out_and_the_returning_technician_logs_in_again(console: dict[str, Any], rig: Rig) -> None:
    terminal = console["terminal"]
    _login(terminal)
    terminal.run("version")
    terminal.close()
    console["ptys"].stop()
    wait_for(lambda: "ended (hang-up)" in console["log"].read_text(), 10, "the hang-up in the log")
    ptys = console["ptys"] = PtyPair(Path(console["ptys"].console).parent).start()
    terminal = console["terminal"] = Terminal(ptys.technician)
    assert "logged in" in _login(terminal)
    assert console["proc"].poll() is None
    port = f"console:{ptys.console}"
    assert any(e["action"] == "console.logout" and e["who"] == port and e["what"]["reason"] == "hang-up"
               for e in _audit(rig.data))


def test_selftest_with_the_sound_card_removed_fails_and_names_it(broker: Broker, tmp_path: Path) -> None:
    config = _write_config(tmp_path, broker.port, device_id="callrec-no-card")
    fault = '\n[[fault]]\nat = 1.0\nkind = "capture_gone"\nseconds = 600\n'
    proc, _ = _start_service(tmp_path, config, faults=fault, call=False)
    ptys = PtyPair(tmp_path).start()
    console = start_console(ptys.console, tmp_path / "data", tmp_path / "control.sock", tmp_path / "console.log",
                            "--config", str(config))
    terminal = Terminal(ptys.technician)
    try:
        _login(terminal)
        wait_for(lambda: "capture" in terminal.run("status"), 20, "the capture alarm", step=0.5)
        out = terminal.run("selftest", timeout=120)
        assert re.search(r"^FAIL\s+sound card line 1\s+callrec_sim_in_0 channel 0: capture from callrec_sim_in_0",
                         out, re.MULTILINE), out
        assert "selftest FAILED" in out
    finally:
        terminal.close()
        stop(console)
        ptys.stop()
        _kill(proc)


def test_net_shows_addresses_route_and_that_broker_and_archive_answer(console: dict[str, Any], rig: Rig) -> None:
    terminal = console["terminal"]
    _login(terminal)
    out = terminal.run("net", timeout=40)
    assert re.search(r"^\s+lo\s+127\.0\.0\.1\r?$", out, re.MULTILINE), out
    assert "default route:" in out
    assert re.search(r"^broker: reachable: connected to 127\.0\.0\.1:\d+\r?$", out, re.MULTILINE), out
    assert re.search(r"^archive: reachable: file://.* answers", out, re.MULTILINE), out
    assert "usage: help [COMMAND]" in terminal.run("help help")
    assert "Validated exactly as `callrec check-config`" in terminal.run("help config")


def test_reboot_asks_first_and_runs_only_on_yes(console: dict[str, Any], rig: Rig) -> None:
    terminal = console["terminal"]
    _login(terminal)
    terminal.type("reboot\r")
    assert "Type yes:" in terminal.read_until("Type yes: ", timeout=10)
    terminal.type("no\r")
    assert "cancelled" in terminal.read_until(PROMPT, timeout=10)
    assert not (rig.work / "rebooted").exists()
    terminal.type("reboot\r")
    terminal.read_until("Type yes: ", timeout=10)
    terminal.type("yes\r")
    assert "reboot: done" in terminal.read_until(PROMPT, timeout=30)
    assert (rig.work / "rebooted").read_text() == "rebooted\n"
    assert any(e["action"] == "console.reboot" for e in _audit(rig.data))
