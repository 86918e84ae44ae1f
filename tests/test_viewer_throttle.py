"""The viewer's login bookkeeping on injected time (issue 22): who is locked out, and which failed
logins the audit log gets one by one. Pure: no server, no clock but the one passed in — except the
concurrent logins, which are real threads calling `Users.login` with real scrypt."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from callrec.viewer import users as users_module
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
from callrec.viewer.users import Users


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


def test_failures_from_more_addresses_than_the_bound_within_one_window_keep_the_lockout_bounded_and_shut():
    lockout = Lockout()
    for i in range(MAX_KEYS + 50):   # a flood from an IPv6 /64: a new address for every guess, all in one window
        lockout.failed("anna", f"2001:db8::{i:x}", 1.0)
    assert len(lockout._pairs) <= MAX_KEYS and len(lockout._addresses) <= MAX_KEYS
    assert lockout.locked("anna", "2001:db8::ffff:1", 2.0), "a failure that cannot be counted is not let through"
    assert not lockout.begin("bob", "2001:db8::ffff:2", 2.0)
    assert not lockout.locked("anna", "2001:db8::0", 2.0)
    for _ in range(PAIR_MAX_FAILURES - 1):
        lockout.failed("anna", "2001:db8::0", 2.0)
    assert lockout.locked("anna", "2001:db8::0", 2.0), "the pairs already counted go on counting, none evicted"
    assert not lockout.locked("anna", "2001:db8::ffff:1", 1.0 + WINDOW_S), "room again once the window passes"


def test_a_try_in_progress_counts_toward_the_limits_until_it_ends():
    lockout = Lockout()
    for _ in range(PAIR_MAX_FAILURES):
        assert lockout.begin("anna", "10.0.0.9", 1.0)
    assert not lockout.begin("anna", "10.0.0.9", 1.0), "five tries in flight: the sixth is not even tried"
    assert lockout.begin("anna", "10.0.0.2", 1.0), "her own desk is another pair"
    lockout.end("anna", "10.0.0.2", 1.0, ok=True)
    lockout.end("anna", "10.0.0.9", 1.0, ok=None)   # no verdict (an error): the try is simply gone
    assert lockout.begin("anna", "10.0.0.9", 1.0)
    for _ in range(PAIR_MAX_FAILURES):
        lockout.end("anna", "10.0.0.9", 1.0, ok=False)
    assert lockout.locked("anna", "10.0.0.9", 2.0) and not lockout._pending
    assert not lockout.locked("anna", "10.0.0.9", 1.0 + WINDOW_S)


def test_a_good_login_in_progress_leaves_only_its_success():
    lockout = Lockout()
    for _ in range(ADDRESS_MAX_FAILURES - 1):
        lockout.failed("guess", "10.0.0.9", 1.0)
    assert lockout.begin("bob", "10.0.0.9", 1.0)
    assert lockout.locked("bob", "10.0.0.9", 1.0), "the try in flight fills the address's last place"
    lockout.end("bob", "10.0.0.9", 1.0, ok=True)
    assert not lockout.locked("bob", "10.0.0.9", 1.0), "a success is no failure"


def _users_with_anna(tmp_path: Path) -> Users:
    users = Users(tmp_path / "users.json")
    users.add("anna", "officer", "the-right-password")
    return users


@pytest.mark.parametrize(("same_name", "limit"), [(True, PAIR_MAX_FAILURES), (False, ADDRESS_MAX_FAILURES)],
                         ids=["one-name", "many-names"])
def test_a_hundred_wrong_passwords_at_once_from_one_address_get_no_more_password_checks_than_the_limit(
        tmp_path, monkeypatch, same_name, limit):
    users = _users_with_anna(tmp_path)
    checked: list[str] = []
    refused: list[bool] = []
    release = threading.Event()
    real = users_module.check_password

    def held(password: str, stored: str) -> bool:   # every check waits until all 100 tries are under way
        checked.append(password)
        release.wait(60)
        return bool(real(password, stored))

    monkeypatch.setattr(users_module, "check_password", held)

    def guess(i: int) -> None:
        user = users.login("anna" if same_name else f"guess{i}", "wrong-password", "192.0.2.9")
        refused.append(user is None)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(100)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60   # a guard against a hang, not a timed assertion
    while len(checked) + len(refused) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(60)
    assert len(checked) <= limit, f"{len(checked)} passwords checked at once, the limit is {limit}"
    assert refused == [True] * 100
    assert users.locked("anna" if same_name else "anyone", "192.0.2.9")
    assert not users.locked("anna", "192.0.2.10"), "another address is not affected"


def test_a_login_that_ends_in_an_error_does_not_leave_its_try_counted(tmp_path, monkeypatch):
    users = _users_with_anna(tmp_path)

    def broken(password: str, stored: str) -> bool:
        raise OSError("the users file went away mid-check")

    monkeypatch.setattr(users_module, "check_password", broken)
    for _ in range(PAIR_MAX_FAILURES):
        with pytest.raises(OSError):
            users.login("anna", "the-right-password", "192.0.2.9")
    monkeypatch.undo()
    assert users.login("anna", "the-right-password", "192.0.2.9") is not None


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


def test_a_users_file_nested_too_deeply_is_a_users_error_not_a_traceback(tmp_path):
    import pytest
    from callrec.viewer.users import Users, UsersError

    path = tmp_path / "users.json"
    path.write_text("[" * 100_000)
    with pytest.raises(UsersError, match="not a callrec users file"):
        Users(path).names()
