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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import serial

from callrec import __version__
from callrec.config import Config
from callrec.console.lineedit import LineEditor
from callrec.console.login import Gate
from callrec.console.shell import Confirm, Live, Shell
from callrec.control import CommandError, ControlClient, ServiceUnreachable
from callrec.evidence import AuditLog

log = logging.getLogger(__name__)

PROMPT = "callrec> "
READ_TIMEOUT_S = 0.2
WRITE_TIMEOUT_S = 5.0
LIVE_MAX_S = 600.0
MAX_READ_BYTES = 4096
_EXIT_WORDS = ("exit", "quit", "logout")
CLOSED = ("this console is CLOSED: no technician passphrase is set. Set one with `callrec passwd`, or allow an "
          "open console with console.open = true in the configuration.")
NO_PASSPHRASE = ("WARNING: no technician passphrase is set (console.open = true): anyone at this port sees every "
                 "caller's number. Set one with `callrec passwd`.")


class SerialConsole:
    def __init__(self, port: str, baud: int, shell: Shell, *, reopen_wait_s: float = 2.0,
                 idle_timeout_s: float | None = None, audit: AuditLog | None = None,
                 reload: Callable[[], Config | None] | None = None) -> None:
        self.audit = audit
        self.port = port
        self.baud = baud
        self.shell = shell
        self.reopen_wait_s = reopen_wait_s
        self._idle_timeout_s = idle_timeout_s
        self._reload = reload
        self.gate = Gate(shell.config.console)
        self._failures = 0
        self._session_start: float | None = None
        self._logged_in = False
        self._confirm: Confirm | None = None
        self._commands = 0
        self._last_input = 0.0
        self._actor = f"console:{port}"
        self._editor = LineEditor(prompt=PROMPT)

    @property
    def idle_timeout_s(self) -> float:
        return self._idle_timeout_s if self._idle_timeout_s is not None else self.shell.config.console.idle_logout_s

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
        self._greet(port)
        while not stop.is_set():
            data = port.read(port.in_waiting or 1)
            now = time.monotonic()
            if not data:
                if self._session_start is not None and now - self._last_input > self.idle_timeout_s:
                    self._end_session("idle")
                    _write(port, f"\nlogged out (no input for {_duration(self.idle_timeout_s)})\n")
                    self._greet(port)
                continue
            self._failures = 0
            self._last_input = now
            if self._session_start is None:
                before = (self.gate.required, self.gate.closed)
                self._reload_config()   # a passphrase set since the greeting applies to this session
                if (self.gate.required, self.gate.closed) != before:
                    _write(port, "\n(the console's settings have changed)\n")
                    self._greet(port, reload=False)
                    continue   # what was typed was meant for the old greeting
                self._start_session()
            editor = self._editor
            echo, lines = editor.feed(data[:MAX_READ_BYTES])
            if echo:
                port.write(echo)
            for line in lines:
                self._line(port, editor, line, stop)
                if self._session_start is None:
                    break   # logged out: the rest of what was typed belongs to no session

    # ---- the session: greeting, login, lines -----------------------------------------------------

    def _greet(self, port: Any, *, reload: bool = True) -> None:
        """What a technician sees at the port: who this is, and the way in (or why there is none).
        Each session gets a fresh line editor: nothing typed or recalled crosses from the last one."""
        if reload:
            self._reload_config()
        editor = self._editor = LineEditor(complete=lambda _text: self.shell.names(), prompt=PROMPT)
        _write(port, f"\ncallrec {__version__} console on {self.shell.config.device_name} ({self.port})\n")
        if self.gate.closed:
            log.warning("console on %s is closed: no console.passphrase_hash is set (`callrec passwd`) and "
                        "console.open is not true", self.port)
            _write(port, CLOSED + "\n")
            if self.shell.config_problem:
                _write(port, "The configuration file is not usable:\n" + self.shell.config_problem + "\n")
            return
        if self.gate.required:
            editor.secret = True
            _write(port, "passphrase: ")
            return
        editor.secret = False
        _write(port, NO_PASSPHRASE + "\ntype 'help'\n" + PROMPT)

    def _reload_config(self) -> None:
        """Each session starts with the configuration as it is now (a passphrase set meanwhile)."""
        if self._reload is None:
            return
        config = self._reload()
        if config is not None:
            self.shell.config = config
            self.gate.settings = config.console

    def _start_session(self) -> None:
        self._session_start = self._last_input
        self._commands = 0
        self._logged_in = not self.gate.required
        self._confirm = None
        log.info("console session started on %s", self.port)
        self._audit("console.session.started", {"baud": self.baud, "passphrase": self.gate.required,
                                                "open": self.gate.closed is False and not self.gate.required})

    def _line(self, port: Any, editor: LineEditor, line: str, stop: threading.Event) -> None:
        if self.gate.closed:
            _write(port, CLOSED + "\n")
            return
        if not self._logged_in:
            self._login(port, editor, line)
            return
        line = line.strip()
        if self._confirm is not None:
            confirm, self._confirm = self._confirm, None
            answer = confirm.action() if line.lower() == "yes" else "cancelled"
            _write(port, answer + "\n" + PROMPT)
            return
        if line:
            editor.remember(line)
        self._command(port, editor, line, stop)

    def _login(self, port: Any, editor: LineEditor, passphrase: str) -> None:
        if not passphrase:   # Enter to wake the console, or a stray CR of line noise: not an attempt
            _write(port, "passphrase: ")
            return
        attempt = self.gate.attempt(passphrase, time.monotonic())
        if attempt.ok:
            self._logged_in = True
            editor.secret = False
            log.info("console login on %s", self.port)
            self._audit("console.login", {})
            _write(port, "logged in; type 'help'\n" + PROMPT)
        elif attempt.left:
            log.warning("console: wrong passphrase on %s", self.port)
            self._audit("console.login.failed", {"tries_left": attempt.left})
            _write(port, f"wrong passphrase ({attempt.left} tr{'y' if attempt.left == 1 else 'ies'} left)\n"
                         "passphrase: ")
        elif attempt.just_locked:
            log.warning("console on %s locked for %.0f s after %d wrong passphrases", self.port, attempt.locked_s,
                        self.gate.settings.max_failures)
            self._audit("console.login.failed", {"tries_left": 0})
            self._audit("console.locked", {"seconds": attempt.locked_s,
                                           "failures": self.gate.settings.max_failures})
            _write(port, f"wrong passphrase, {self.gate.settings.max_failures} failures: the console is locked "
                         f"for {attempt.locked_s:.0f} s\npassphrase: ")
        else:
            self._audit("console.login.failed", {"locked_s": round(attempt.locked_s)})
            _write(port, f"the console is locked for {attempt.locked_s:.0f} more s after too many wrong "
                         "passphrases\npassphrase: ")

    # ---- commands --------------------------------------------------------------------------------

    def _command(self, port: Any, editor: LineEditor, line: str, stop: threading.Event) -> None:
        if not line:
            _write(port, PROMPT)
            return
        self._commands += 1
        log.info("console command on %s: %s", self.port, line[:200])
        if line.lower() in _EXIT_WORDS:
            _write(port, "bye\n")
            self._end_session(line.lower())
            self._greet(port)
            return
        answer = self.shell.execute(line)
        if isinstance(answer, Live):
            self._live(port, answer, stop)
        elif isinstance(answer, Confirm):
            self._confirm = answer
            _write(port, answer.question)
            return
        elif answer:
            _write(port, answer + "\n")
        _write(port, PROMPT)

    def _live(self, port: Any, live: Live, stop: threading.Event) -> None:
        """Show frames until any key (or LIVE_MAX_S): the key is taken, it types nothing."""
        _write(port, live.head + "\n" if live.head else "")
        deadline = time.monotonic() + LIVE_MAX_S
        last = None
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                frame = live.frame()
            except (ServiceUnreachable, CommandError) as error:
                _write(port, f"\nstopped: {error}\n")
                return
            if live.overwrite:
                _write(port, "\r" + frame)
            elif frame != last or not live.changes_only:
                _write(port, frame + "\n")
            last = frame
            pause_until = time.monotonic() + live.every_s
            while time.monotonic() < pause_until:
                if port.in_waiting:
                    port.read(port.in_waiting)
                    self._last_input = time.monotonic()
                    if live.overwrite:
                        _write(port, "\n")
                    return
                time.sleep(0.02)
        if live.overwrite:
            _write(port, "\n")

    def _end_session(self, reason: str) -> None:
        if self._session_start is None:
            return
        if self._logged_in and self.gate.required:
            self._audit("console.logout", {"reason": reason})
        log.info("console session on %s ended (%s) after %d command(s), %.0f s", self.port, reason,
                 self._commands, time.monotonic() - self._session_start)
        self._audit("console.session.ended", {"reason": reason, "commands": self._commands,
                                              "seconds": round(time.monotonic() - self._session_start)})
        self._session_start = None
        self._logged_in = False
        self._confirm = None

    def _audit(self, kind: str, fields: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.try_record(kind, self._actor, fields)


def _duration(seconds: float) -> str:
    """10 min, 90 s, 2 s: how long the idle logout waited, as its setting says it."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _write(port: Any, text: str) -> None:
    """Terminals want CR LF; raw serial has no line discipline to add the CR."""
    port.write(text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "replace"))


def run_console(config: Config, *, port: str, baud: int, control_socket: Path, config_source: str,
                config_problem: str | None, reload: Callable[[], Config | None] | None = None) -> int:
    """`callrec console`: serve the port until SIGTERM (systemd stop) or SIGINT."""
    audit = _audit_log(config)
    actor = f"console:{port}"
    shell = Shell(config, ControlClient(control_socket, by=actor), config_source=config_source,
                  config_problem=config_problem,
                  audit=(lambda kind, fields: audit.try_record(kind, actor, fields)) if audit else None)
    console = SerialConsole(port, baud, shell, audit=audit, reload=reload)
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
