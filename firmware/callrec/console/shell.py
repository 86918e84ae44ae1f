"""The console's commands: one text line in, one block of text out.

Commands that need the running recorder go through the control socket; the rest (calls, logs,
config, version) read the data directory and the configuration directly, so a technician can still
find out why the service is down when it is down. The shell knows nothing about serial ports, which
keeps it usable from any other text front end.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callrec import __version__
from callrec.config import DEFAULT_CONFIG_PATH, Config
from callrec.console import maintenance, render, views
from callrec.control import CommandError, ControlClient, ServiceUnreachable
from callrec.errors import CallrecError
from callrec.store import StoreDamaged

log = logging.getLogger(__name__)

MAX_CALLS = 200
MAX_LOGS = 500
_NUMBER = re.compile(r"^[0-9]{1,6}$")   # ASCII digits only: int() would also take "١٢"
OFFLINE_COMMANDS = ("calls", "logs", "config", "version", "call")
SELFTEST_TIMEOUT_S = 90.0
METER_EVERY_S = 0.1
WATCH_EVERY_S = 0.5
GPIO_EVERY_S = 0.2
LIVE_MAX_S = 600.0
Audit = Callable[[str, dict[str, Any]], None]


class UsageError(CallrecError, ValueError):
    """The command line was wrong; the message is the usage text."""


@dataclass(frozen=True)
class Live:
    """A command that keeps showing until a key is pressed: `frame()` is called every `every_s`.
    `overwrite`: each frame replaces the last on the same line (a meter); else frames scroll, and
    only frames that differ from the previous one are shown."""

    frame: Callable[[], str]
    every_s: float
    overwrite: bool
    head: str = ""
    changes_only: bool = True


@dataclass(frozen=True)
class Confirm:
    """A command that asks first: `question` is shown, `action` runs only on the answer `yes`."""

    question: str
    action: Callable[[], str]


Answer = str | Live | Confirm


@dataclass(frozen=True)
class _Command:
    run: Callable[[list[str]], Answer]
    usage: str
    summary: str
    details: str = ""
    aliases: tuple[str, ...] = field(default=())


class Shell:
    def __init__(self, config: Config, client: ControlClient, *, config_source: str = "<built-in defaults>",
                 config_problem: str | None = None, audit: Audit | None = None) -> None:
        self.audit = audit
        self.config = config
        self.client = client
        self.config_source = config_source
        self.config_problem = config_problem
        self.data_dir = Path(config.storage.data_dir)
        self.commands: dict[str, _Command] = {
            "help": _Command(self._help, "help [COMMAND]", "this list, or one command in detail"),
            "status": _Command(self._status, "status", "lines, calls, alarms, links, clock, uptime",
                               "Line states and calls in progress, active alarms, disk, the MQTT link and its\n"
                               "backlog, the archive backlog, the clock and NTP state, service and system uptime."),
            "levels": _Command(self._levels, "levels [watch]", "audio level per line (watch: until a key)"),
            "meter": _Command(self._meter, "meter [LINE]", "a live level bar, 10 times a second, until a key",
                              "Shows LINE's (default 1) RMS level on a -60..0 dBFS bar and its peak, updated\n"
                              "about 10 times a second in place. Any key stops it."),
            "gpio": _Command(self._gpio, "gpio", "raw and debounced hook and ring inputs, live until a key",
                             "Per line: the hook and ring pins, their raw level as last read (ACTIVE = off-hook /\n"
                             "ringing voltage), the debounced state the recorder acts on, and how many edges\n"
                             "each input has had. A new table is shown whenever anything changes; any key stops."),
            "test": _Command(self._test, "test tone|announce LINE",
                             "a 1 kHz tone or the announcement into an idle line",
                             "test tone LINE: 2 s of 1 kHz at -10 dBFS into LINE, for checking the injection\n"
                             "level with a meter on the line. test announce LINE: the recording announcement.\n"
                             "Both are refused while the line is ringing, off-hook or recording."),
            "test-announcement": _Command(self._test_announcement, "test-announcement LINE",
                                          "play the announcement into an idle line"),
            "selftest": _Command(self._selftest, "selftest", "prove the installation: PASS/WARN/FAIL per check",
                                 "Checks: the sound card delivers each line's audio (not digital silence), a test\n"
                                 "tone played into each idle line is heard back, the GPIO inputs read sanely,\n"
                                 "the disk is writable with free space, the index and the evidence chain are whole,\n"
                                 "the broker and the archive answer, the clock is synchronised. Takes ~10 s."),
            "pause": _Command(self._pause, "pause LINE", "pause the recording of the call on LINE"),
            "resume": _Command(self._resume, "resume LINE", "resume a paused recording"),
            "mark": _Command(self._mark, "mark CALL_ID TAG", "tag a call (e.g. important)"),
            "calls": _Command(self._calls, f"calls [N<={MAX_CALLS}]", "latest calls from the index"),
            "call": _Command(self._call, "call CALL_ID", "one call's full record from the index"),
            "logs": _Command(self._logs, f"logs [N<={MAX_LOGS}]", "latest events from the journal"),
            "config": _Command(self._config, "config [set KEY VALUE]", "the settings in effect, or change one",
                               "config: the configuration in effect (secrets hidden).\n"
                               "config set KEY VALUE: KEY as the configuration's messages name it (mqtt.host,\n"
                               "lines[0].name, retention.days); VALUE in TOML (42, true, \"text\") or a bare word.\n"
                               "Validated exactly as `callrec check-config` does before anything is written;\n"
                               "the file keeps its comments, the old one is kept as FILE.bak, and the answer\n"
                               "says whether the recorder needs a restart."),
            "net": _Command(self._net, "net", "IP addresses, default route, broker and archive reachability"),
            "restart": _Command(self._restart, "restart", "restart the recorder service (calls in progress end)"),
            "reboot": _Command(self._reboot, "reboot", "reboot the appliance (asks first)"),
            "version": _Command(self._version, "version", "firmware version"),
            "logout": _Command(lambda _: "", "logout", "end the session", aliases=("exit", "quit")),
        }

    def names(self) -> list[str]:
        """Command names for Tab completion."""
        return [*self.commands, *(alias for c in self.commands.values() for alias in c.aliases)]

    def execute(self, line: str) -> Answer:
        """Run one command line; every failure becomes text for the technician, never an exception."""
        try:
            words = shlex.split(line)
        except ValueError as error:
            return f"cannot read that line: {error}"
        if not words:
            return ""
        name, args = words[0].lower(), words[1:]
        command = self.commands.get(name) or next(
            (c for c in self.commands.values() if name in c.aliases), None)
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
        if args:
            if len(args) != 1:
                raise UsageError("help [COMMAND]")
            command = self.commands.get(args[0].lower())
            if command is None:
                return f"no command {args[0]!r}; type 'help' for the list"
            return "\n".join([f"usage: {command.usage}", command.details or command.summary])
        width = max(len(c.usage) for c in self.commands.values())
        lines = [f"  {c.usage:<{width}}  {c.summary}" for c in self.commands.values()]
        return "\n".join(["commands:", *lines, "keys: Up/Down history, Tab completes, Backspace, Ctrl-U erase line, "
                          "Ctrl-C cancel; 'help COMMAND' for more"])

    def _version(self, args: list[str]) -> str:
        return (f"callrec {__version__} (Python {platform.python_version()}) on {platform.node()}\n"
                f"device {self.config.device_name}, configuration {self.config_source}")

    def _config(self, args: list[str]) -> str:
        if args:
            if len(args) != 3 or args[0] != "set":
                raise UsageError("config [set KEY VALUE]  (quote a VALUE with spaces: \"Front desk\")")
            path = Path(self.config_source) if self.config_source.startswith("/") else DEFAULT_CONFIG_PATH
            answer, config = maintenance.config_set(path, args[1], args[2])
            if config is not None:
                self._audited("config.set", {"key": args[1], "file": str(path),
                                             "value": "(hidden)" if "pass" in args[1] else args[2]})
                self.config_source, self.config_problem = str(path), None
                if not answer.count("restart needed"):
                    self.config = config.with_data_dir(self.data_dir)
            return answer
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
        out = [f"{self.config.device_name}: service running",
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
        out += views.link_lines(stats)
        if stats.get("purpose"):
            out.append(f"purpose of use: {stats['purpose']}")
        return "\n".join(out)

    def _levels(self, args: list[str]) -> Answer:
        if args and args != ["watch"]:
            raise UsageError("levels [watch]")
        text = render.levels(self.client.levels())
        if not args:
            return text

        def rows() -> str:   # the heading once, then only the rows scroll by
            return "\n".join(render.levels(self.client.levels()).splitlines()[1:])

        return Live(rows, WATCH_EVERY_S, overwrite=False, head=text.splitlines()[0] + "\n(any key stops)",
                    changes_only=False)

    def _test_announcement(self, args: list[str]) -> str:
        result = self.client.command("announcement.test", {"line": _line(args, "test-announcement LINE")})
        return f"line {result.get('line')}: test announcement playing ({result.get('duration_s')} s)"

    def _meter(self, args: list[str]) -> Answer:
        number = _line(args, "meter [LINE]") if args else 1
        if number not in {line.id for line in self.config.lines}:
            raise UsageError(f"meter [LINE] with LINE one of {', '.join(str(line.id) for line in self.config.lines)}")

        def frame() -> str:
            rows = {row["line"]: row for row in self.client.levels().get("lines", [])}
            return views.meter_line(rows.get(number, {"line": number}))

        frame()   # an unreachable service is said now, not inside the live loop
        return Live(frame, METER_EVERY_S, overwrite=True, head=f"line {number}, bar -60..0 dBFS (any key stops)")

    def _gpio(self, args: list[str]) -> Answer:
        if args:
            raise UsageError("gpio")

        def frame() -> str:
            return views.gpio_table(self.client.diagnostic("gpio"))

        frame()
        return Live(frame, GPIO_EVERY_S, overwrite=False, head="(live: a new table on every change; any key stops)")

    def _test(self, args: list[str]) -> str:
        if len(args) != 2 or args[0] not in ("tone", "announce", "announcement"):
            raise UsageError("test tone LINE | test announce LINE")
        if args[0] == "tone":
            result = self.client.command("tone.test", {"line": _line(args[1:], "test tone LINE")})
            return (f"line {result.get('line')}: test tone playing ({result.get('frequency_hz')} Hz at "
                    f"{result.get('level_dbfs')} dBFS for {result.get('duration_s')} s)")
        return self._test_announcement(args[1:])

    def _selftest(self, args: list[str]) -> str:
        if args:
            raise UsageError("selftest")
        result = self.client.diagnostic("selftest", timeout_s=SELFTEST_TIMEOUT_S)
        self._audited("console.selftest", {"summary": result.get("summary")})
        return views.selftest_text(result)

    def _net(self, args: list[str]) -> str:
        if args:
            raise UsageError("net")
        return views.net_text(self.client.diagnostic("net", timeout_s=30.0))

    def _restart(self, args: list[str]) -> str:
        if args:
            raise UsageError("restart")
        answer = maintenance.run_system(self.config.console.restart_command, "restart of the recorder")
        self._audited("console.restart", {"command": list(self.config.console.restart_command), "outcome": answer})
        return answer

    def _reboot(self, args: list[str]) -> Answer:
        if args:
            raise UsageError("reboot")

        def reboot() -> str:
            answer = maintenance.run_system(self.config.console.reboot_command, "reboot")
            self._audited("console.reboot", {"command": list(self.config.console.reboot_command), "outcome": answer})
            return answer

        return Confirm("reboot the appliance? Recording stops until it is back (about a minute). Type yes: ", reboot)

    def _audited(self, kind: str, fields: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit(kind, fields)

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

    def _index(self) -> Any:
        """The call index for reading, or the sentence saying why there is none to read."""
        path = self.data_dir / "index.sqlite"
        if not path.exists():
            return f"no call index at {path} yet"
        from callrec.store import CallIndex

        try:
            return CallIndex(path, readonly=True)
        except StoreDamaged as damage:
            return f"the call index is damaged ({damage.reason}); the service rebuilds it at its next start"

    def _calls(self, args: list[str]) -> str:
        count = _count(args, 10, MAX_CALLS, "calls [N]")
        index = self._index()
        if isinstance(index, str):
            return index
        with index:
            records = index.latest(count)
        if not records:
            return "no calls recorded yet"
        rows = [[r["call_id"], r["line"], r.get("direction"), r.get("started_at"), float(r.get("duration_s") or 0),
                 r.get("status"), ",".join(r.get("tags") or [])] for r in records]
        return render.table(["CALL ID", "LINE", "DIR", "STARTED (UTC)", "SECS", "STATUS", "TAGS"], rows)

    def _call(self, args: list[str]) -> str:
        if len(args) != 1 or len(args[0]) > 128:
            raise UsageError("call CALL_ID  (ids are listed by `calls`)")
        index = self._index()
        if isinstance(index, str):
            return index
        with index:
            record = index.get(args[0])
        if record is None:
            live = self._live_call(args[0])
            return live or f"no call {args[0]!r} in the index (`calls` lists the latest)"
        return json.dumps(record, indent=2, ensure_ascii=False)

    def _live_call(self, call_id: str) -> str | None:
        """A call still in progress is not in the index yet: say where it is."""
        try:
            states = self.client.status()
        except (ServiceUnreachable, CommandError):
            return None
        for state in states:
            if state.get("call_id") == call_id:
                return (f"call {call_id} is in progress on line {state['line']} ({state.get('state')} since "
                        f"{state.get('since')}, {state.get('direction') or 'direction unknown'}); its full record "
                        "is in the index when it ends")
        return None

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

