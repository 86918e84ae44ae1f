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
