"""`callrec run`, the service itself, off a Pi: sd_notify READY, STATUS, WATCHDOG and STOPPING.

The GPIO pins are the only stand-in (tests/fake_pi: the RPi.GPIO module API at the hardware seam);
audio is real alsa-lib through the file plugin and systemd's notify socket is a real AF_UNIX socket.
"""

from __future__ import annotations

import os
import signal
import time

from conftest import start_service


def test_run_reports_ready_after_audio_then_pings_the_watchdog_and_stops_cleanly(tmp_path):
    proc, notify = start_service(tmp_path, {"WATCHDOG_USEC": "1000000"}, 15)
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 2:
            messages.append(notify.recv(4096).decode())
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
        notify.settimeout(1)
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    joined = "\n".join(messages)
    ready = next(i for i, m in enumerate(messages) if "READY=1" in m)
    waiting = next(i for i, m in enumerate(messages) if "STATUS=waiting for the first audio period" in m)
    assert waiting < ready, "READY only after the first audio period"
    assert "STATUS=recording 1 line(s)" in messages[ready]
    assert any("WATCHDOG=1" in m for m in messages[ready:])
    assert "STOPPING=1" in joined and joined.rindex("STOPPING=1") > joined.rindex("READY=1")
    assert (tmp_path / "data" / "journal.sqlite").exists()
