"""Real parts for the console tests: a socat pty pair, the console process, a live simulated service.

The technician's side is pyserial on one end of a pty pair; `callrec console` owns the other end, as
it owns the UART on the appliance. The live service is `callrec simulate --realtime` with a long
call on line 1 and an idle line 2, so status, pause/resume and the test announcement meet a real
Core through the real control socket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serial
from conftest import noise_wav, scenario_toml

PROMPT = "callrec> "
CALL_OFFHOOK_S = 1.0
CALL_ONHOOK_S = 40.0


def wait_for(predicate, timeout: float, what: str, step: float = 0.05) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class PtyPair:
    """`socat` joining two ptys: `console` is the appliance's UART, `technician` the laptop's end."""

    def __init__(self, directory: Path) -> None:
        self.console = directory / "ttyConsole"
        self.technician = directory / "ttyTech"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PtyPair:
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.console}", f"pty,raw,echo=0,link={self.technician}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.console.exists() and self.technician.exists(), 5, "the socat ptys")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


class Terminal:
    """The technician: types lines, reads what the console writes back."""

    def __init__(self, path: Path) -> None:
        self.port = serial.Serial(str(path), 115200, timeout=0.1)
        self.seen = ""

    def type(self, data: bytes | str) -> None:
        self.port.write(data.encode() if isinstance(data, str) else data)

    def read_until(self, marker: str, timeout: float = 10.0) -> str:
        """Everything received up to and including the first `marker` not yet consumed."""
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {marker!r} from the console; got {self.seen!r}")
            self.seen += self.port.read(4096).decode("utf-8", "replace")
        head, _, self.seen = self.seen.partition(marker)
        return head + marker

    def run(self, command: str, timeout: float = 10.0) -> str:
        """Type a command and Enter; return the console's answer (without the echo and the prompt)."""
        self.type(command + "\r")
        self.read_until(command + "\r\n", timeout)
        return self.read_until(PROMPT, timeout)[: -len(PROMPT)]

    def close(self) -> None:
        self.port.close()


OPEN_CONSOLE = "[console]\nopen = true\n"


def start_console(tty: Path, data: Path, control_socket: Path, log_path: Path,
                  *extra: str) -> subprocess.Popen[bytes]:
    """With no --config among `extra`, an open console (no passphrase), as the older tests expect."""
    if "--config" not in extra:
        config = log_path.parent / "open-console.toml"
        config.write_text(OPEN_CONSOLE)
        extra = (*extra, "--config", str(config))
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "callrec", "console", "--port", str(tty), "--data", str(data),
             "--control-socket", str(control_socket), *extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def open_console(work: Path, data: Path, control_socket: Path, *extra: str, ready: bool = False) -> dict[str, Any]:
    """`callrec console` on a new pty pair in `work`, with pyserial at the technician's end:
    {"terminal", "proc", "ptys", "log"}. `ready`: press Enter and wait for the prompt (an open console)."""
    ptys = PtyPair(work).start()
    log = work / "console.log"
    proc = start_console(ptys.console, data, control_socket, log, *extra)
    terminal = Terminal(ptys.technician)
    if ready:
        terminal.type("\r")
        terminal.read_until(PROMPT, timeout=15)
    return {"terminal": terminal, "proc": proc, "ptys": ptys, "log": log}


def close_console(console: dict[str, Any]) -> None:
    """Close what `console` holds now: a hang-up test puts a new pty pair and terminal in it."""
    console["terminal"].close()
    stop(console["proc"])
    console["ptys"].stop()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_stale_socket(path: Path) -> None:
    """What a kill -9 leaves behind: a socket file nobody listens on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


@dataclass
class LiveService:
    proc: subprocess.Popen[bytes]
    data: Path
    socket: Path
    stderr: Path
    call_id: str

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def start_live_service(work: Path, *extra: str) -> LiveService:
    """`callrec simulate --realtime`: line 1 off-hook at 1 s, on-hook at 40 s; line 2 idle throughout.

    A stale socket is left at the control socket's path first, as a killed service would, so every
    test that reaches the service also shows that the stale file was replaced. `extra` goes to
    `callrec simulate` (`--work DIR` keeps the simulated cards' files, what was played among them).
    """
    work.mkdir(parents=True, exist_ok=True)
    noise_wav(work / "line1.wav", CALL_ONHOOK_S + 5, seed=1)
    noise_wav(work / "line2.wav", CALL_ONHOOK_S + 5, seed=2)
    (work / "scenario.toml").write_text(scenario_toml([
        {"line": 1, "audio": "line1.wav", "events": [(CALL_OFFHOOK_S, "hook", "off"), (CALL_ONHOOK_S, "hook", "on")]},
        {"line": 2, "audio": "line2.wav", "events": []},
    ]))
    data = work / "data"
    control_socket = data / "control.sock"
    make_stale_socket(control_socket)
    events, stderr = work / "events.jsonl", work / "service.log"
    with open(events, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "callrec", "simulate", str(work / "scenario.toml"),
                                 "--data", str(data), "--realtime", *extra], stdout=out, stderr=err)
    call_ids: list[str] = []

    def call_started() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the simulator exited: {stderr.read_text()}")
        lines = events.read_text().split("\n")[:-1]   # the last piece may be a line half written
        call_ids.extend(e["call_id"] for e in map(json.loads, lines) if e["type"] == "call.started")
        return bool(call_ids)

    try:
        wait_for(call_started, 20, "call.started on line 1")
    except BaseException:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return LiveService(proc, data, control_socket, stderr, call_ids[0])
