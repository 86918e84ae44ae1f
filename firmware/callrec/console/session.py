"""The serial console process: a pyserial port, the line editor and the shell, surviving hang-ups.

The unit restarts the console forever (Restart=always), so the console itself must never turn a
far end that goes away into an exit: a USB-serial adapter pulled from the laptop, or a pty whose
other side closed (pyserial: SerialException "returned no data"), is a hang-up. The port is closed,
the session logged as ended, and the port reopened after a growing pause, so a port that keeps
failing costs a retry every few seconds rather than a crash loop.

A session starts with the first byte a technician sends and ends on `exit`, on a hang-up, after
`idle_timeout_s` without input, or at shutdown; start and end are logged (the audit log builds on
this), and so is every command line.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import serial

from callrec import __version__
from callrec.config import Config
from callrec.console.lineedit import LineEditor
from callrec.console.shell import Shell
from callrec.control import ControlClient
from callrec.evidence import AuditLog

log = logging.getLogger(__name__)

PROMPT = "callrec> "
READ_TIMEOUT_S = 0.2
WRITE_TIMEOUT_S = 5.0
WATCH_EVERY_S = 0.5
WATCH_MAX_S = 60.0
_EXIT_WORDS = ("exit", "quit", "logout")


class SerialConsole:
    def __init__(self, port: str, baud: int, shell: Shell, *, reopen_wait_s: float = 2.0,
                 idle_timeout_s: float = 600.0, audit: AuditLog | None = None) -> None:
        self.audit = audit
        self.port = port
        self.baud = baud
        self.shell = shell
        self.reopen_wait_s = reopen_wait_s
        self.idle_timeout_s = idle_timeout_s
        self._failures = 0
        self._session_start: float | None = None
        self._commands = 0
        self._last_input = 0.0

    # ---- the port --------------------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        """Run until `stop` is set; hang-ups and a missing port only ever mean "wait and reopen"."""
        while not stop.is_set():
            port = self._open()
            if port is not None:
                try:
                    self._run(port, stop)
                except (serial.SerialException, OSError) as error:
                    self._failures += 1
                    log.log(logging.INFO if self._failures == 1 else logging.DEBUG,
                            "hang-up on %s (%s); reopening", self.port, error)
                finally:
                    self._end_session("shutdown" if stop.is_set() else "hang-up")
                    with contextlib.suppress(serial.SerialException, OSError):
                        port.close()
            stop.wait(self.reopen_wait_s * min(max(self._failures, 1), 5))

    def _open(self) -> Any | None:
        try:
            port = serial.Serial(self.port, self.baud, timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S,
                                exclusive=True)
        except (serial.SerialException, OSError, ValueError) as error:
            self._failures += 1
            log.log(logging.WARNING if self._failures == 1 else logging.DEBUG,
                    "cannot open %s: %s; retrying", self.port, error)
            return None
        log.info("console listening on %s at %d baud", self.port, self.baud)
        return port

    def _run(self, port: Any, stop: threading.Event) -> None:
        editor = LineEditor()
        _write(port, f"\ncallrec {__version__} console on {self.shell.config.device_name} ({self.port}); "
                     "type 'help'\n" + PROMPT)
        while not stop.is_set():
            data = port.read(port.in_waiting or 1)
            now = time.monotonic()
            if not data:
                if self._session_start is not None and now - self._last_input > self.idle_timeout_s:
                    self._end_session("idle")
                    _write(port, "\nsession ended (idle)\n" + PROMPT)
                continue
            self._failures = 0
            self._last_input = now
            if self._session_start is None:
                self._session_start = now
                self._commands = 0
                log.info("console session started on %s", self.port)
                if self.audit is not None:
                    self.audit.try_record("console.session.started", f"console:{self.port}", {"baud": self.baud})
            echo, lines = editor.feed(data)
            if echo:
                port.write(echo)
            for line in lines:
                self._command(port, line.strip(), stop)
                if self._session_start is None:
                    break   # `exit`: the rest of what was typed belongs to no session
                _write(port, PROMPT)

    # ---- commands --------------------------------------------------------------------------------

    def _command(self, port: Any, line: str, stop: threading.Event) -> None:
        if not line:
            return
        self._commands += 1
        log.info("console command on %s: %s", self.port, line[:200])
        if line.lower() in _EXIT_WORDS:
            _write(port, "bye\n")
            self._end_session("exit")
            _write(port, "\n" + PROMPT)
            return
        if line.split()[:2] == ["levels", "watch"]:
            self._watch_levels(port, stop)
            return
        output = self.shell.execute(line)
        if output:
            _write(port, output + "\n")

    def _watch_levels(self, port: Any, stop: threading.Event) -> None:
        """Repeat `levels` until any key (or a minute): the meter while someone talks on the line."""
        _write(port, "(any key stops)\n")
        deadline = time.monotonic() + WATCH_MAX_S
        first = True
        while not stop.is_set() and time.monotonic() < deadline:
            text = self.shell.execute("levels")
            lines = text.splitlines()
            if not first and lines and lines[0].startswith("LINE"):
                lines = lines[1:]   # the heading once, then only the rows scroll by
            _write(port, "\n".join(lines) + "\n")
            first = False
            pause_until = time.monotonic() + WATCH_EVERY_S
            while time.monotonic() < pause_until:
                if port.in_waiting:
                    port.read(port.in_waiting)
                    return
                time.sleep(0.05)

    def _end_session(self, reason: str) -> None:
        if self._session_start is None:
            return
        log.info("console session on %s ended (%s) after %d command(s), %.0f s", self.port, reason,
                 self._commands, time.monotonic() - self._session_start)
        if self.audit is not None:
            self.audit.try_record("console.session.ended", f"console:{self.port}", {
                "reason": reason, "commands": self._commands,
                "seconds": round(time.monotonic() - self._session_start)})
        self._session_start = None


def _write(port: Any, text: str) -> None:
    """Terminals want CR LF; raw serial has no line discipline to add the CR."""
    port.write(text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "replace"))


def run_console(config: Config, *, port: str, baud: int, control_socket: Path, config_source: str,
                config_problem: str | None) -> int:
    """`callrec console`: serve the port until SIGTERM (systemd stop) or SIGINT."""
    shell = Shell(config, ControlClient(control_socket, by=f"console:{port}"), config_source=config_source,
                  config_problem=config_problem)
    console = SerialConsole(port, baud, shell, audit=_audit_log(config))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    console.serve(stop)
    return 0


def _audit_log(config: Config) -> AuditLog | None:
    """The data directory's audit log, when this process may sign into it (it runs as the
    service's user); otherwise the sessions are only in the system log, said so once."""
    from callrec.evidence import Evidence

    try:
        return Evidence.open(config.storage.data_dir).audit
    except Exception as error:   # no data directory yet, or another user's key
        log.warning("console sessions are not audited: the evidence store in %s cannot be opened (%s)",
                    config.storage.data_dir, error)
        return None
