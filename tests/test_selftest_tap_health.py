"""`selftest` says what the tap-health watch holds against each line: a line recorded wrongly fails,
a suspect last call warns, a clean line passes (the console and the control API show the same)."""

from __future__ import annotations

from typing import Any

from callrec.app.selftest import SelfTest
from callrec.config import parse


def _tap_checks(alarms: list[dict[str, Any]], health: bool = True) -> dict[str, tuple[str, str]]:
    config = parse({"health": {"enabled": health}})

    def refused(name: str, args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("no service in this test")

    report = SelfTest(config, refused, lambda: alarms, lambda: [], lambda: None, lambda: None).run()
    return {c["name"]: (c["verdict"], c["detail"]) for c in report["checks"] if c["name"].startswith("tap health")}


def test_a_clean_line_passes_and_each_line_has_its_own_check() -> None:
    checks = _tap_checks([])
    assert set(checks) == {"tap health line 1", "tap health line 2"}
    assert {verdict for verdict, _ in checks.values()} == {"PASS"}


def test_zero_audio_fails_its_line_and_a_one_sided_call_warns_the_other() -> None:
    checks = _tap_checks([
        {"id": "tap_zero:1", "line": 1, "kind": "tap_zero", "message": "line 1: the idle line's audio is digital zero"},
        {"id": "tap_one_sided:2", "line": 2, "kind": "tap_one_sided", "message": "line 2: only one party was heard"},
        {"id": "storage", "line": None, "kind": "storage", "message": "not a tap problem"},
    ])
    assert checks["tap health line 1"] == ("FAIL", "line 1: the idle line's audio is digital zero")
    assert checks["tap health line 2"] == ("WARN", "line 2: only one party was heard")


def test_a_stuck_hook_fails_its_line_even_beside_a_warning_and_is_named() -> None:
    checks = _tap_checks([
        {"id": "tap_hum:1", "line": 1, "kind": "tap_hum", "message": "hum"},
        {"id": "hook_stuck:1", "line": 1, "kind": "hook_stuck", "message": "off-hook for 12 h"},
    ])
    assert checks["tap health line 1"] == ("FAIL", "off-hook for 12 h")


def test_with_the_watch_off_each_line_warns_that_nothing_is_watched() -> None:
    checks = _tap_checks([], health=False)
    assert all(verdict == "WARN" and "[health] enabled = false" in detail for verdict, detail in checks.values())
