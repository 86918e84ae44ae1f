"""The console's commands: one text line in, one block of text out.

Commands that need the running recorder go through the control socket; the rest (calls, logs,
config, version) read the data directory and the configuration directly, so a technician can still
find out why the service is down when it is down. The shell knows nothing about serial ports, which
keeps it usable from any other text front end.
"""

from __future__ import annotations

import logging
import platform
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callrec import __version__
from callrec.config import Config
from callrec.console import render
from callrec.control import CommandError, ControlClient, ServiceUnreachable
from callrec.errors import CallrecError
from callrec.store import StoreDamaged

log = logging.getLogger(__name__)

MAX_CALLS = 200
MAX_LOGS = 500
_NUMBER = re.compile(r"^[0-9]{1,6}$")   # ASCII digits only: int() would also take "١٢"
OFFLINE_COMMANDS = ("calls", "logs", "config", "version")


class UsageError(CallrecError, ValueError):
    """The command line was wrong; the message is the usage text."""


@dataclass(frozen=True)
class _Command:
    run: Callable[[list[str]], str]
    usage: str
    summary: str


class Shell:
    def __init__(self, config: Config, client: ControlClient, *, config_source: str = "<built-in defaults>",
                 config_problem: str | None = None) -> None:
        self.config = config
        self.client = client
        self.config_source = config_source
        self.config_problem = config_problem
        self.data_dir = Path(config.storage.data_dir)
        self.commands: dict[str, _Command] = {
            "help": _Command(self._help, "help", "this list"),
            "status": _Command(self._status, "status", "line states, calls in progress, alarms"),
            "levels": _Command(self._levels, "levels [watch]", "audio level per line (watch: until a key)"),
            "test-announcement": _Command(self._test_announcement, "test-announcement LINE",
                                          "play the announcement into an idle line"),
            "pause": _Command(self._pause, "pause LINE", "pause the recording of the call on LINE"),
            "resume": _Command(self._resume, "resume LINE", "resume a paused recording"),
            "mark": _Command(self._mark, "mark CALL_ID TAG", "tag a call (e.g. important)"),
            "calls": _Command(self._calls, f"calls [N<={MAX_CALLS}]", "latest calls from the index"),
            "logs": _Command(self._logs, f"logs [N<={MAX_LOGS}]", "latest events from the journal"),
            "config": _Command(self._config, "config", "the configuration in effect (no secrets)"),
            "version": _Command(self._version, "version", "firmware version"),
            "exit": _Command(lambda _: "", "exit", "end the session"),
        }

    def execute(self, line: str) -> str:
        """Run one command line; every failure becomes text for the technician, never an exception."""
        try:
            words = shlex.split(line)
        except ValueError as error:
            return f"cannot read that line: {error}"
        if not words:
            return ""
        name, args = words[0].lower(), words[1:]
        command = self.commands.get(name)
        if command is None:
            return f"unknown command {name!r}; type 'help'"
        try:
            return command.run(args)
        except UsageError as error:
            return f"usage: {error or command.usage}"
        except ServiceUnreachable as error:
            return (f"the recorder service is not reachable: {error}\n"
                    f"(is callrec.service running? {', '.join(OFFLINE_COMMANDS)} still work)")
        except CommandError as error:
            return f"refused: {error}"
        except Exception as error:   # a console that crashes on one bad answer locks the technician out
            log.exception("console command %r failed", name)
            return f"{name} failed: {error}"

    # ---- help, version, config ---------------------------------------------------------------------

    def _help(self, args: list[str]) -> str:
        width = max(len(c.usage) for c in self.commands.values())
        lines = [f"  {c.usage:<{width}}  {c.summary}" for c in self.commands.values()]
        return "\n".join(["commands:", *lines, "keys: Backspace, Ctrl-U erase line, Ctrl-C cancel"])

    def _version(self, args: list[str]) -> str:
        return (f"callrec {__version__} (Python {platform.python_version()}) on {platform.node()}\n"
                f"device {self.config.device_name}, configuration {self.config_source}")

    def _config(self, args: list[str]) -> str:
        head = [f"# configuration in effect, from {self.config_source}"]
        if self.config_problem:
            head += ["# THE CONFIGURATION FILE IS NOT USABLE; the defaults are shown. Problems:",
                     *(f"#   {line.strip()}" for line in self.config_problem.splitlines())]
        source = self.config.mqtt.password_source()
        if self.config.mqtt.enabled:
            head.append(f"# mqtt password: {'set (hidden), from ' + str(source) if source else 'none'}")
        return "\n".join([*head, render.config_text(self.config.model_dump(mode="json"))])

    # ---- the recorder, through the control socket --------------------------------------------------

    def _status(self, args: list[str]) -> str:
        states = self.client.status()
        alarms = self.client.alarms()
        stats = self.client.stats()
        names = {line.id: line.name for line in self.config.lines}
        rows = [[s["line"], names.get(s["line"]), s["state"], s.get("since"), s.get("direction"),
                 s.get("call_id")] for s in states]
        out = [f"{self.config.device_name}: service running, up {render.duration(stats.get('uptime_s') or 0)}",
               render.table(["LINE", "NAME", "STATE", "SINCE (UTC)", "DIR", "CALL ID"], rows)]
        if alarms:
            out.append("ALARMS:")
            out += [f"  {a.get('since') or '-'}  line {a.get('line') or '-'}  {a.get('kind')}: {a.get('message')}"
                    for a in alarms]
        else:
            out.append("alarms: none")
        temp = stats.get("cpu_temp_c")
        out.append(f"disk free {render.size(stats.get('disk_free_bytes'))}, calls today {stats.get('calls_today')}, "
                   f"recordings {stats.get('recordings_stored')}, overruns {stats.get('capture_overruns')}"
                   + (f", CPU {temp} C" if temp is not None else ""))
        out.append("recordings are " + ("encrypted at rest (age)" if stats.get("encrypted")
                                        else "stored UNENCRYPTED ([privacy] recipient is not set)"))
        backlog = stats.get("archive_backlog")
        if isinstance(backlog, dict):
            out.append(f"archive backlog: {backlog.get('count')} call(s), {render.size(backlog.get('bytes'))}, "
                       f"oldest {backlog.get('oldest') or '-'}")
        if stats.get("purpose"):
            out.append(f"purpose of use: {stats['purpose']}")
        return "\n".join(out)

    def _levels(self, args: list[str]) -> str:
        if args and args != ["watch"]:
            raise UsageError("levels [watch]")
        return render.levels(self.client.levels())

    def _test_announcement(self, args: list[str]) -> str:
        result = self.client.command("announcement.test", {"line": _line(args, "test-announcement LINE")})
        return f"line {result.get('line')}: test announcement playing ({result.get('duration_s')} s)"

    def _pause(self, args: list[str]) -> str:
        result = self.client.command("recording.pause", {"line": _line(args, "pause LINE")})
        return f"line {result['line']}: recording of {result['call_id']} paused at {result['at_s']} s"

    def _resume(self, args: list[str]) -> str:
        result = self.client.command("recording.resume", {"line": _line(args, "resume LINE")})
        return f"line {result['line']}: recording of {result['call_id']} resumed at {result['at_s']} s"

    def _mark(self, args: list[str]) -> str:
        if len(args) != 2:
            raise UsageError("mark CALL_ID TAG")
        result = self.client.command("call.mark", {"call_id": args[0], "tag": args[1]})
        return f"call {result['call_id']} tags: {', '.join(result['tags'])}"

    # ---- the data directory, read directly ---------------------------------------------------------

    def _calls(self, args: list[str]) -> str:
        count = _count(args, 10, MAX_CALLS, "calls [N]")
        path = self.data_dir / "index.sqlite"
        if not path.exists():
            return f"no call index at {path} yet"
        from callrec.store import CallIndex

        try:
            index = CallIndex(path, readonly=True)
        except StoreDamaged as damage:
            return f"the call index is damaged ({damage.reason}); the service rebuilds it at its next start"
        with index:
            records = index.latest(count)
        if not records:
            return "no calls recorded yet"
        rows = [[r["call_id"], r["line"], r.get("direction"), r.get("started_at"), float(r.get("duration_s") or 0),
                 r.get("status"), ",".join(r.get("tags") or [])] for r in records]
        return render.table(["CALL ID", "LINE", "DIR", "STARTED (UTC)", "SECS", "STATUS", "TAGS"], rows)

    def _logs(self, args: list[str]) -> str:
        count = _count(args, 20, MAX_LOGS, "logs [N]")
        path = self.data_dir / "journal.sqlite"
        if not path.exists():
            return f"no event journal at {path} yet"
        from callrec.store import Journal

        try:
            journal = Journal(path, readonly=True)
        except StoreDamaged as damage:
            return f"the event journal is damaged ({damage.reason}); the service replaces it at its next start"
        try:
            events = journal.since(max(0, journal.last_seq() - count), limit=count)
        finally:
            journal.close()
        if not events:
            return "the journal is empty"
        return "\n".join(render.event_line(e) for e in events)


def _line(args: list[str], usage: str) -> int:
    if len(args) != 1 or not _NUMBER.match(args[0]):
        raise UsageError(usage)
    return int(args[0])


def _count(args: list[str], default: int, most: int, usage: str) -> int:
    if not args:
        return default
    if len(args) != 1 or not _NUMBER.match(args[0]) or not 1 <= int(args[0]) <= most:
        raise UsageError(f"{usage} with N from 1 to {most}")
    return int(args[0])

