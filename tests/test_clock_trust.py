"""Clock trust (docs/tap-health.md): the backends never crash, the twin drives the trust logic, and
records stamped before synchronisation get the offset the clock was off by."""

from __future__ import annotations

import math

import pytest
from callrec.clock import (
    AdjtimexClock,
    ChronyClock,
    ClockStatus,
    ClockTrust,
    SimulatedClock,
    TimedatectlClock,
    detect_clock,
    parse_chrony_tracking,
    parse_timespan,
    span,
)

H = 3600.0


# --- real backends ---------------------------------------------------------------------------------

def test_adjtimex_on_this_machine_returns_a_sane_status():
    status = AdjtimexClock().status()
    assert isinstance(status, ClockStatus) and isinstance(status.synchronised, bool)
    assert status.source == "adjtimex" and status.offset_s is None
    assert status.max_error_s is not None and 0 <= status.max_error_s < 1e6 and math.isfinite(status.max_error_s)


@pytest.mark.parametrize("backend", [TimedatectlClock, ChronyClock])
def test_a_missing_tool_is_unknown_not_a_crash(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert backend().status() == ClockStatus.unknown()


@pytest.mark.parametrize("backend,tool", [(TimedatectlClock, "timedatectl"), (ChronyClock, "chronyc")])
@pytest.mark.parametrize("script", ["echo 'Failed to connect to bus' >&2; exit 1", "echo garbage", "exec /bin/sleep 5"])
def test_a_failing_tool_is_unknown_not_a_crash(backend, tool, script, tmp_path, monkeypatch):
    exe = tmp_path / tool
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert backend(timeout_s=0.3).status() == ClockStatus.unknown()


def test_detect_clock_falls_back_to_the_kernel_without_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_clock().status().source in ("adjtimex", "unknown")


def test_adjtimex_failure_is_unknown():
    class NoAdjtimex:
        def adjtimex(self, _buf: object) -> int:
            return -1

    assert AdjtimexClock(libc=NoAdjtimex()).status() == ClockStatus.unknown()


def test_chrony_tracking_csv_is_read_with_the_port_sign():
    line = "C0A80001,192.168.0.1,3,1760000000.123456789,0.000250000,-0.000010,0.000020,-12.5,0.001,0.05," \
           "0.020000000,0.001000000,64.2,Normal\n"
    status = parse_chrony_tracking(line)
    assert status.synchronised and status.source == "chrony"
    assert status.offset_s == pytest.approx(-0.00025)                 # 250 µs slow: the clock is behind
    assert status.max_error_s == pytest.approx(0.00025 + 0.001 + 0.01)
    unsynced = line.replace("C0A80001,192.168.0.1,3", "00000000,,0").replace("Normal", "Not synchronised")
    assert not parse_chrony_tracking(unsynced).synchronised
    assert parse_chrony_tracking("506 Cannot talk to daemon") == ClockStatus.unknown()


def test_chrony_backend_reads_the_tool(tmp_path, monkeypatch):
    exe = tmp_path / "chronyc"
    exe.write_text("#!/bin/sh\necho 'C0A80001,ntp,2,1760000000.0,-0.5,0,0,0,0,0,0.01,0.01,64,Normal'\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ChronyClock().status() == ClockStatus(True, "chrony", 0.5, pytest.approx(0.515))
    assert detect_clock().status().source == "chrony"


def test_timedatectl_backend_reads_sync_flag_and_timesyncd_offset(tmp_path, monkeypatch):
    exe = tmp_path / "timedatectl"
    exe.write_text("#!/bin/sh\nif [ \"$1\" = show ]; then echo yes; else printf '"
                   "       Server: 192.168.0.1 (pool)\\n       Offset: +1.500ms\\n"
                   "Root distance: 20.5ms (max: 5s)\\n'; fi\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    status = TimedatectlClock().status()
    assert status.synchronised and status.offset_s == pytest.approx(-0.0015)
    assert status.max_error_s == pytest.approx(0.0205)


@pytest.mark.parametrize("text,seconds", [("+1.234ms", 0.001234), ("-26us", -26e-6), ("+1min 2.5s", 62.5),
                                           ("garbage", None)])
def test_systemd_time_spans(text, seconds):
    assert parse_timespan(text) == (None if seconds is None else pytest.approx(seconds))


# --- the twin and the trust logic ------------------------------------------------------------------

def test_untrusted_records_get_the_offset_found_at_synchronisation():
    clock = SimulatedClock(error_s=-3 * H)           # a Pi without RTC boots 3 h behind
    trust = ClockTrust()

    def observe() -> None:
        trust.observe(clock.status(), clock.monotonic(), clock.wall())

    observe()
    assert not trust.trusted_now()
    clock.advance(5.0)
    first = trust.stamp("call-1", clock.monotonic(), clock.wall())
    clock.advance(120.0)
    second = trust.stamp("call-2", clock.monotonic(), clock.wall())
    assert not first.trusted and not second.trusted and trust.pending() == ["call-1", "call-2"]
    assert trust.pop_corrections() == []

    clock.advance(30.0)
    clock.sync()                                     # the time service steps the clock 3 h forward
    clock.advance(1.0)
    observe()
    assert trust.trusted_now() and trust.last_step_s == pytest.approx(3 * H)
    fixes = {c.key: c for c in trust.pop_corrections()}
    assert fixes["call-1"].offset_s == pytest.approx(3 * H) and fixes["call-2"].offset_s == pytest.approx(3 * H)
    assert fixes["call-1"].wall == pytest.approx(clock.true - 151.0)   # true time of the first call start
    assert trust.pop_corrections() == [] and trust.pending() == []

    later = trust.stamp("call-3", clock.monotonic(), clock.wall())
    assert later.trusted and trust.pending() == []


def test_sync_at_a_given_offset_is_the_correction():
    clock = SimulatedClock()
    trust = ClockTrust()
    stamp = trust.stamp("c", clock.monotonic(), clock.wall())
    clock.advance(10.0)
    clock.sync(at_offset_s=42.0)                     # found 42 s fast: stepped back
    trust.observe(clock.status(), clock.monotonic(), clock.wall())
    [fix] = trust.pop_corrections()
    assert fix.key == "c" and fix.offset_s == pytest.approx(-42.0) and fix.stamp == stamp


def test_a_clock_with_a_large_error_bound_is_not_trusted():
    trust = ClockTrust(max_error_s=1.0)
    trust.observe(ClockStatus(True, "chrony", 0.0, 5.0), 0.0, 0.0)
    assert not trust.trusted_now()
    trust.observe(ClockStatus.unknown(), 1.0, 1.0)
    assert not trust.trusted_now()


@pytest.mark.parametrize("step", [H, -H])
def test_a_wall_clock_step_mid_call_leaves_the_duration_unchanged(step):
    clock = SimulatedClock(synchronised=True)
    trust = ClockTrust()
    trust.observe(clock.status(), clock.monotonic(), clock.wall())
    start = trust.stamp("c", clock.monotonic(), clock.wall())
    clock.advance(100.0)
    clock.step(step)
    clock.advance(80.0)
    trust.observe(clock.status(), clock.monotonic(), clock.wall())
    call = span(start, clock.monotonic())
    assert call.duration_s == pytest.approx(180.0)
    assert call.wall_start == start.wall and call.wall_end == pytest.approx(start.wall + 180.0)
    assert trust.last_step_s == pytest.approx(step)
