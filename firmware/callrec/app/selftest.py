"""`selftest`: one command that proves an installation works, run by the service for the console.

Each check answers one question a technician has after wiring a tap, with PASS, WARN or FAIL and
the reason, in the order they would look: does the card deliver the line's audio, does our playback
reach the line, do the GPIO inputs make sense, can the disk keep recordings, are the index and the
evidence chain whole, do the broker and the archive answer, is the clock to be trusted. It runs in
the service because the service owns the card, the pins and the data directory; it changes nothing
but plays a short test tone into each idle line (heard back through the tap's hybrid).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from callrec.app.netinfo import reach_archive, reach_broker
from callrec.config import Config

Verdict = str   # "PASS" | "WARN" | "FAIL"
SILENT_DBFS = -100.0          # below any real line's noise: digital zero, a card or cable problem
LOOPBACK_RISE_DB = 15.0       # the test tone's frequency must rise this much on the line to count as heard
HEARD_DBFS = -45.0            # ... and be at least this loud (the hybrid returns it 10-30 dB down)
TONE_HZ = 1000
BUSY_WAIT_S = 5.0
LOOPBACK_TONE_S = 1.0
LOOPBACK_WAIT_S = 1.8
LOOPBACK_AFTER_S = 0.5   # after the tone: the line's own level at 1 kHz


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str


TAP_FAIL = ("tap_zero", "tap_silent", "dead_line", "hook_stuck")   # the line is not being recorded as it should
TAP_WARN = ("tap_one_sided", "tap_clipping", "tap_hum")           # the last call was suspect


class SelfTest:
    def __init__(self, config: Config, command: Callable[[str, dict[str, Any]], dict[str, Any]],
                 alarms: Callable[[], list[dict[str, Any]]], line_states: Callable[[], list[dict[str, Any]]],
                 mqtt_connected: Callable[[], bool | None], clock: Callable[[], dict[str, Any] | None]) -> None:
        self.config = config
        self._command = command
        self._alarms = alarms
        self._states = line_states
        self._mqtt = mqtt_connected
        self._clock = clock

    def run(self) -> dict[str, Any]:
        checks: list[Check] = []
        for step in (self._sound_card, self._playback, self._gpio, self._tap_health, self._disk, self._store,
                     self._broker, self._archive, self._clock_check):
            try:
                checks += step()
            except Exception as error:   # one broken check must not hide the others
                checks.append(Check(step.__name__.strip("_").replace("_", " "), "FAIL", f"the check failed: {error}"))
        counts = {verdict: sum(c.verdict == verdict for c in checks) for verdict in ("PASS", "WARN", "FAIL")}
        return {"checks": [asdict(c) for c in checks], "summary": counts, "ok": counts["FAIL"] == 0}

    # ---- the checks ------------------------------------------------------------------------------

    def _sound_card(self) -> list[Check]:
        capture_alarms = {a["id"].split(":", 1)[1]: a for a in self._alarms() if a.get("kind") == "capture"}
        levels = {row["line"]: row for row in self._command("levels", {})["lines"]}
        checks = []
        for line in self.config.lines:
            where = f"{line.capture_pcm} channel {line.capture_channel}"
            alarm = capture_alarms.get(line.capture_pcm)
            rms = levels.get(line.id, {}).get("rms_dbfs")
            if alarm is not None:
                checks.append(Check(f"sound card line {line.id}", "FAIL", f"{where}: {alarm.get('message')}"))
            elif rms is None:
                checks.append(Check(f"sound card line {line.id}", "FAIL", f"{where}: no audio has arrived"))
            elif rms <= SILENT_DBFS:
                checks.append(Check(f"sound card line {line.id}", "FAIL",
                                    f"{where}: digital silence (a real line always has some noise): check the "
                                    "card's input and the tap's cable"))
            else:
                checks.append(Check(f"sound card line {line.id}", "PASS", f"{where}: audio at {rms:.1f} dBFS"))
        return checks

    def _playback(self) -> list[Check]:
        """A short 1 kHz tone into each idle line, heard back on its capture channel."""
        checks = []
        busy = {s["line"] for s in self._states() if s.get("state") != "idle"}
        playback_alarms = {a.get("line") for a in self._alarms() if a.get("kind") == "playback"}
        for line in self.config.lines:
            name = f"playback line {line.id}"
            if line.id in playback_alarms:
                checks.append(Check(name, "FAIL", f"{line.playback_pcm}: announcement playback failed (see alarms)"))
                continue
            if line.id in busy:
                checks.append(Check(name, "WARN", "the line is not idle: not tested (run selftest when idle)"))
                continue
            before = self._tone_level(line.id)
            error = self._play_tone(line.id)
            if error is not None:
                checks.append(Check(name, "FAIL", f"cannot play into the line: {error}"))
                continue
            loudest = self._loudest(line.id, LOOPBACK_WAIT_S)
            # Quiet before or after: a test tone still sounding from just before cannot fake a pass.
            before = min(before, self._loudest(line.id, LOOPBACK_AFTER_S))
            if loudest - before >= LOOPBACK_RISE_DB and loudest > HEARD_DBFS:
                checks.append(Check(name, "PASS", f"1 kHz test tone heard back at {loudest:.1f} dBFS "
                                                  f"({before:.1f} dBFS at 1 kHz before)"))
            else:
                checks.append(Check(name, "FAIL", f"test tone played on {line.playback_pcm} channel "
                                                  f"{line.playback_channel} but not heard on the line (stayed at "
                                                  f"{loudest:.1f} dBFS): check the injection wiring"))
        return checks

    def _play_tone(self, line: int) -> str | None:
        """Start the tone (waiting out a test still playing); the refusal, if it stays refused."""
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            try:
                self._command("tone.test", {"line": line, "seconds": LOOPBACK_TONE_S})
                return None
            except Exception as error:
                if "playing" not in str(error) or time.monotonic() > deadline:
                    return str(error)
                time.sleep(0.2)

    def _tone_level(self, line: int) -> float:
        rows = {row["line"]: row for row in self._command("levels", {"tone_hz": TONE_HZ})["lines"]}
        value = rows.get(line, {}).get("tone_dbfs")
        return float(value) if value is not None else -120.0

    def _loudest(self, line: int, seconds: float) -> float:
        """The loudest the tone's frequency was over the next `seconds`."""
        loudest = -120.0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.1)
            loudest = max(loudest, self._tone_level(line))
        return loudest

    def _gpio(self) -> list[Check]:
        checks = []
        states = {s["line"]: s for s in self._states()}
        for row in self._command("gpio", {})["lines"]:
            name = f"gpio line {row['line']}"
            if row["hook_pin"] is None:
                continue   # an ISDN line: its D-channel, not a pin, says when it is in use
            pins = f"hook GPIO{row['hook_pin']}, ring GPIO{row['ring_pin']}"
            if row["hook_raw"] is None:
                checks.append(Check(name, "FAIL", f"{pins}: the hook input never reported a level"))
            elif row["offhook"] and states.get(row["line"], {}).get("state") not in ("recording", "offhook"):
                checks.append(Check(name, "WARN", f"{pins}: reads off-hook with no call (a handset off, or the "
                                                  "sense input wired the wrong way round: hook_active_low)"))
            else:
                hook = "off-hook" if row["offhook"] else "on-hook"
                ring = "ringing" if row["ringing"] else "quiet"
                checks.append(Check(name, "PASS", f"{pins}: {hook}, ring {ring} ({row['hook_edges']} hook and "
                                                  f"{row['ring_edges']} ring edges so far)"))
        return checks

    def _tap_health(self) -> list[Check]:
        """What the tap-health watch holds against each line now (docs/tap-health.md): a line that is
        digital zero, silent in a call, dead or stuck off-hook fails; a suspect last call (one side,
        clipping, hum) warns, since the wiring may be right and that call odd."""
        raised: dict[int, list[dict[str, Any]]] = {}
        for alarm in self._alarms():
            if alarm.get("line") is not None and alarm.get("kind") in TAP_FAIL + TAP_WARN:
                raised.setdefault(int(alarm["line"]), []).append(alarm)
        checks = []
        for line in self.config.lines:
            name = f"tap health line {line.id}"
            alarms = raised.get(line.id, [])
            failing = [a for a in alarms if a.get("kind") in TAP_FAIL]
            if alarms:
                checks.append(Check(name, "FAIL" if failing else "WARN",
                                    "; ".join(str(a.get("message") or a.get("id")) for a in failing or alarms)))
            elif not self.config.health.enabled:
                checks.append(Check(name, "WARN", "the tap-health watch is off ([health] enabled = false)"))
            else:
                checks.append(Check(name, "PASS", "no tap-health alarm (silence, one side, clipping, hum, zero "
                                                  "audio, dead line, stuck hook)"))
        return checks

    def _disk(self) -> list[Check]:
        data_dir = Path(self.config.storage.data_dir)
        probe = data_dir / f".selftest-{os.getpid()}"
        try:
            with open(probe, "wb") as out:
                out.write(os.urandom(4096))
                out.flush()
                os.fsync(out.fileno())
            ok = len(probe.read_bytes()) == 4096
        except OSError as error:
            return [Check("disk", "FAIL", f"{data_dir} is not writable: {error.strerror or error}")]
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
        if not ok:
            return [Check("disk", "FAIL", f"{data_dir}: what was written did not read back")]
        usage = shutil.disk_usage(data_dir)
        percent = 100 * usage.free / usage.total
        floor = self.config.retention.min_free_percent
        detail = f"{data_dir} writable, {usage.free / 1e9:.1f} GB free ({percent:.0f} %)"
        if percent < floor:
            return [Check("disk", "FAIL", f"{detail}: below the disk guard's {floor:g} %: old calls are deleted")]
        if percent < 2 * floor:
            return [Check("disk", "WARN", f"{detail}: near the disk guard's {floor:g} %")]
        return [Check("disk", "PASS", detail)]

    def _store(self) -> list[Check]:
        from callrec.evidence import verify_data as verify

        data_dir = Path(self.config.storage.data_dir)
        since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
        try:
            report = verify(data_dir, since=since)
        except (OSError, sqlite3.Error, ValueError) as error:
            return [Check("index and chain", "FAIL", f"cannot be read: {error}")]
        if report.problems:
            first = report.problems[0]
            return [Check("index and chain", "FAIL", f"{len(report.problems)} problem(s), first: "
                                                     f"{first.call_id or '-'} {first.kind}: {first.detail} "
                                                     "(`callrec verify` lists them)")]
        return [Check("index and chain", "PASS", f"{report.calls} call(s) indexed, chain of {report.chain_entries} "
                                                 f"entries and audit log of {report.audit_entries} whole")]

    def _broker(self) -> list[Check]:
        answer = reach_broker(self.config, self._mqtt())
        return [Check("broker", _verdict(answer), answer["detail"])]

    def _archive(self) -> list[Check]:
        answer = reach_archive(self.config)
        return [Check("archive", _verdict(answer), answer["detail"])]

    def _clock_check(self) -> list[Check]:
        status = self._clock()
        if status is None or status.get("synchronised") is None:
            return [Check("clock", "WARN", "whether the clock is synchronised cannot be told on this system")]
        offset = status.get("offset_s")
        detail = f"source {status.get('source')}" + (f", offset {offset * 1000:.1f} ms" if offset is not None else "")
        if status["synchronised"]:
            return [Check("clock", "PASS", f"synchronised ({detail})")]
        return [Check("clock", "FAIL", f"NOT synchronised ({detail}): recordings are stamped clock_trusted false "
                                       "until it is (check NTP, or fit the RTC module)")]


def _verdict(answer: dict[str, Any]) -> Verdict:
    if not answer["configured"]:
        return "WARN"
    return "PASS" if answer["reachable"] else "FAIL"
