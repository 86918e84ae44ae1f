"""sd_notify against a real AF_UNIX datagram socket, as systemd's PID 1 listens for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from callrec.app import sdnotify


class Listener:
    """What systemd would see: the datagrams sent to $NOTIFY_SOCKET, parsed into dicts."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(2.0)

    def receive(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n"))

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(2.0)
        return False


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        yield Listener(sock)
    finally:
        sock.close()


def test_without_notify_socket_every_call_is_a_harmless_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify(READY=1) is False
    assert sdnotify.ready() is False
    assert sdnotify.status("x") is False
    assert sdnotify.watchdog() is False
    assert sdnotify.stopping() is False


def test_ready_sends_ready_and_status_in_one_datagram(listener: Listener) -> None:
    assert sdnotify.ready("recording 2 lines") is True
    assert listener.receive() == {"READY": "1", "STATUS": "recording 2 lines"}


def test_status_newlines_are_flattened_so_they_cannot_forge_fields(listener: Listener) -> None:
    assert sdnotify.status("line 1 off-hook\nREADY=1")
    assert listener.receive() == {"STATUS": "line 1 off-hook READY=1"}


def test_watchdog_and_stopping_send_their_keys(listener: Listener) -> None:
    sdnotify.watchdog()
    assert listener.receive() == {"WATCHDOG": "1"}
    sdnotify.stopping("flushing recordings")
    assert listener.receive() == {"STOPPING": "1", "STATUS": "flushing recordings"}


def test_abstract_socket_name_with_at_sign_reaches_the_abstract_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"callrec-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        assert sdnotify.notify(READY=1) is True
        sock.settimeout(2.0)
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_unreachable_socket_returns_false_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.ready() is False


def test_notify_from_a_child_process_reaches_the_parents_socket(listener: Listener) -> None:
    # The way systemd really runs us: another process, NOTIFY_SOCKET inherited.
    code = "from callrec.app import sdnotify; raise SystemExit(0 if sdnotify.ready('up') else 1)"
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy(), timeout=30)
    assert listener.receive() == {"READY": "1", "STATUS": "up"}


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("30000000", None, 30.0),
        ("30000000", "self", 30.0),
        ("30000000", "1", None),          # armed for another process (leaked to a child)
        ("0", None, None),
        ("garbage", None, None),
    ],
)
def test_watchdog_interval_follows_watchdog_usec_and_pid(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for key, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, str(os.getpid()) if value == "self" else value)
    assert sdnotify.watchdog_interval() == expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_healthy_beats_ping_at_most_every_half_interval(listener: Listener) -> None:
    clock = FakeClock()
    dog = sdnotify.Watchdog(20.0, clock=clock)
    assert dog.beat(True) is True
    assert listener.receive() == {"WATCHDOG": "1"}
    clock.now += 9.9
    assert dog.beat(True) is False
    assert listener.nothing_pending()
    clock.now += 0.1
    assert dog.beat(True) is True
    assert listener.receive() == {"WATCHDOG": "1"}


def test_unhealthy_beats_withhold_pings_so_systemd_restarts_a_stuck_capture(listener: Listener) -> None:
    clock = FakeClock()
    dog = sdnotify.Watchdog(20.0, clock=clock)
    dog.beat(True)
    listener.receive()
    for _ in range(10):
        clock.now += 5.0
        assert dog.beat(False) is False
    assert listener.nothing_pending()


def test_recovery_after_unhealthy_pings_again_at_once(listener: Listener) -> None:
    clock = FakeClock()
    dog = sdnotify.Watchdog(20.0, clock=clock)
    dog.beat(True)
    listener.receive()
    clock.now += 12.0
    dog.beat(False)
    assert dog.beat(True) is True
    assert listener.receive() == {"WATCHDOG": "1"}


def test_watchdog_reads_its_interval_from_the_environment(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    dog = sdnotify.Watchdog()
    assert dog.enabled and dog.interval_s == 4.0
    assert dog.beat(True) is True
    assert listener.receive() == {"WATCHDOG": "1"}


def test_watchdog_without_systemd_watchdog_never_pings(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    dog = sdnotify.Watchdog()
    assert not dog.enabled
    assert dog.beat(True) is False
    assert listener.nothing_pending()


# The service's children (chronyc, timedatectl, systemctl, whatever a library forks) must not
# inherit systemd's variables: a child that notifies is refused by PID 1 ("reception only permitted
# for main PID") and a child that pings the watchdog would hide the parent's hang.
SERVICE = """
import os, subprocess, sys
from callrec.app import sdnotify
sdnotify.claim_environment()
child_env = subprocess.run(
    [sys.executable, "-c", "import os; print(sorted(k for k in os.environ if k in "
     "('NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID')))"],
    capture_output=True, text=True, check=True).stdout.strip()
child_notify = subprocess.run(
    [sys.executable, "-c", "from callrec.app import sdnotify; raise SystemExit(3 if sdnotify.ready('child') else 0)"]
).returncode
forked = os.fork()
if forked == 0:   # a forked child keeps the module's state, not only the environment
    os._exit(3 if sdnotify.ready("forked") or sdnotify.watchdog_interval() else 0)
forked_status = os.waitstatus_to_exitcode(os.waitpid(forked, 0)[1])
print(child_env, child_notify, forked_status, sdnotify.watchdog_interval())
sdnotify.ready("parent")
"""


def _as_systemd_starts_it(code: str, listener_path: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `code` the way systemd starts the service: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID
    (its own PID: `exec` keeps the shell's) in its environment."""
    env = {**os.environ, "NOTIFY_SOCKET": listener_path, "WATCHDOG_USEC": "4000000", **extra}
    return subprocess.run(["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" -c "$1"', sys.executable, code],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_claimed_notify_socket_is_not_inherited_by_children_yet_the_service_still_notifies(
    listener: Listener,
) -> None:
    done = _as_systemd_starts_it(SERVICE, os.environ["NOTIFY_SOCKET"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "0", "0", "4.0"], "children saw systemd's variables"
    assert listener.receive() == {"READY": "1", "STATUS": "parent"}
    assert listener.nothing_pending(), "only the main process notified"


def test_the_hardware_service_claims_systemds_variables_before_its_first_child(
    listener: Listener, tmp_path: Path
) -> None:
    # hardware_backend() asks the time service (chronyc, timedatectl) first thing: stand-ins on PATH
    # record the environment they were started with.
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("chronyc", "timedatectl"):
        (tools / tool).write_text(f'#!/bin/sh\nenv > "{tmp_path}/{tool}.env"\nexit 1\n')
        (tools / tool).chmod(0o755)
    code = "from callrec.app import hardware_backend, sdnotify; hardware_backend(None); sdnotify.ready('up')"
    done = _as_systemd_starts_it(code, os.environ["NOTIFY_SOCKET"], PATH=f"{tools}:{os.environ['PATH']}")
    assert done.returncode == 0, done.stderr
    seen = (tmp_path / "chronyc.env").read_text()
    assert "NOTIFY_SOCKET" not in seen and "WATCHDOG_" not in seen
    assert listener.receive() == {"READY": "1", "STATUS": "up"}


def test_claim_without_systemd_leaves_every_call_a_harmless_noop() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    code = ("from callrec.app import sdnotify; sdnotify.claim_environment(); "
            "print(sdnotify.ready(), sdnotify.watchdog(), sdnotify.watchdog_interval())")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.split() == ["False", "False", "None"]
