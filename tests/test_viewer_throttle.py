"""The viewer's login bookkeeping on injected time (issue 22): who is locked out, and which failed
logins the audit log gets one by one. Pure: no server, no clock but the one passed in."""

from __future__ import annotations

from callrec.viewer.throttle import (
    ADDRESS_MAX_FAILURES,
    AUDIT_OVERALL,
    AUDIT_PER_KEY,
    MAX_KEYS,
    PAIR_MAX_FAILURES,
    WINDOW_S,
    FailureLog,
    Lockout,
)


def test_a_name_is_locked_only_from_the_address_that_failed_and_only_for_the_window():
    lockout = Lockout()
    for i in range(PAIR_MAX_FAILURES):
        assert not lockout.locked("anna", "10.0.0.9", float(i))
        lockout.failed("anna", "10.0.0.9", float(i))
    assert lockout.locked("anna", "10.0.0.9", 10.0)
    assert not lockout.locked("anna", "10.0.0.2", 10.0), "her own desk is not locked"
    assert not lockout.locked("anna", "10.0.0.9", PAIR_MAX_FAILURES - 1 + WINDOW_S)


def test_an_address_guessing_many_names_is_locked_for_every_name_and_a_good_login_does_not_reset_it():
    lockout = Lockout()
    for i in range(ADDRESS_MAX_FAILURES):
        lockout.failed(f"name{i}", "10.0.0.9", 1.0)
    lockout.succeeded("bob", "10.0.0.9")
    assert lockout.locked("bob", "10.0.0.9", 2.0)
    assert not lockout.locked("bob", "10.0.0.3", 2.0)


def test_a_good_login_clears_its_pair():
    lockout = Lockout()
    for _ in range(PAIR_MAX_FAILURES - 1):
        lockout.failed("anna", "10.0.0.9", 1.0)
    lockout.succeeded("anna", "10.0.0.9")
    lockout.failed("anna", "10.0.0.9", 2.0)
    assert not lockout.locked("anna", "10.0.0.9", 2.0)


def test_the_lockout_forgets_stale_keys_instead_of_growing_without_bound():
    lockout = Lockout()
    for i in range(MAX_KEYS + 50):
        lockout.failed(f"n{i}", f"a{i}", float(i) * WINDOW_S)   # each one stale before the next
    assert len(lockout._pairs) < MAX_KEYS and len(lockout._addresses) < MAX_KEYS


def test_failures_are_audited_per_address_and_per_name_then_summed_up_once_the_window_passes():
    now = [0.0]
    log = FailureLog(clock=lambda: now[0])
    verdicts = [log.failed(f"name{i}", "10.0.0.9") for i in range(40)]
    assert [audit for audit, _ in verdicts].count(True) == AUDIT_PER_KEY
    assert all(summary is None for _, summary in verdicts) and log.due() is None
    now[0] = WINDOW_S
    summary = log.due()
    assert summary is not None and summary["suppressed"] == 40 - AUDIT_PER_KEY and summary["addresses"] == 1
    assert log.due() is None and log.flush() is None, "one summary per window"


def test_a_flood_from_everywhere_is_audited_at_most_overall_per_window():
    log = FailureLog(clock=lambda: 0.0)
    audited = sum(log.failed(f"name{i}", f"10.{i // 250}.{i % 250}.1")[0] for i in range(1000))
    assert audited == AUDIT_OVERALL
    summary = log.flush()
    assert summary is not None and summary["suppressed"] == 1000 - AUDIT_OVERALL
    assert "900 more failures suppressed" in summary["message"]
