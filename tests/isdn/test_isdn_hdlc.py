"""The tap's UART framing: FCS, escaping, resynchronisation on garbage and breaks, over a real pty."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest
from callrec.isdn import CapturedFrame, HdlcDeframer, SerialDChannel, crc16_x25, encode_frame
from callrec.isdn.hdlc import HDR_BUS_ABORT, HDR_BUS_FCS_BAD, HDR_OVERRUN
from callrec.isdn.trace import called, i_frame, q931

SETUP = i_frame(q931("SETUP", 5, False, called("0312")), True)
ESCAPY = i_frame(b"\x08\x01\x7e\x05\x70\x03\x80\x7d\x31", False)   # flag and escape bytes inside the frame


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_crc16_x25_check_value() -> None:
    assert crc16_x25(b"123456789") == 0x906E


def test_frames_round_trip_with_direction_time_and_escaped_bytes() -> None:
    clock = Clock()
    d = HdlcDeframer(clock=clock)
    stream = encode_frame(SETUP, True, 5000) + encode_frame(ESCAPY, False, 5250)
    assert b"\x7e" not in stream[1:-1].replace(b"\x7e\x7e", b"")
    frames = d.feed(stream)
    assert [(f.data, f.from_network) for f in frames] == [(SETUP, True), (ESCAPY, False)]
    assert frames[1].t - frames[0].t == pytest.approx(0.25)
    assert frames[0].t == 1000.0


def test_byte_by_byte_feeding_gives_the_same_frames() -> None:
    stream = encode_frame(SETUP, True, 1) + encode_frame(ESCAPY, False, 2)
    d = HdlcDeframer(clock=Clock())
    got = [f for b in stream for f in d.feed(bytes([b]))]
    assert [f.data for f in got] == [SETUP, ESCAPY]


def test_garbage_breaks_and_cut_frames_are_counted_and_good_frames_survive() -> None:
    rng = random.Random(7)
    good = encode_frame(SETUP, True, 10)
    stream = bytes(rng.randrange(256) for _ in range(500))        # noise before the first flag
    stream += good + good[: len(good) // 2]                       # a frame cut by a board reset
    stream += bytes(64)                                           # a break reads as zeros
    stream += good + b"\x7e\x7d\x7e" + good                       # an escape followed by a flag: an abort
    stream += encode_frame(SETUP, True, 11)[:-3] + b"\x00\x7e"   # FCS damaged
    stream += b"\x7e" + b"\x55" * 400 + good                      # runaway frame
    d = HdlcDeframer(clock=Clock())
    frames = d.feed(stream)
    assert [f.data for f in frames] == [SETUP] * 4
    assert d.counts["uart fcs bad"] >= 2
    assert d.counts["uart escape before flag"] == 1 and d.counts["uart frame too long"] == 1


@pytest.mark.parametrize("status,reason", [(HDR_BUS_FCS_BAD, "s0 frame fcs bad"), (HDR_BUS_ABORT, "s0 frame aborted"),
                                           (HDR_OVERRUN, "s0 receiver overrun"), (0x40, "uart header unknown")])
def test_frames_the_receiver_marked_bad_are_dropped(status: int, reason: str) -> None:
    d = HdlcDeframer(clock=Clock())
    assert d.feed(encode_frame(SETUP, True, 1, status)) == []
    assert d.counts == {reason: 1}


def test_random_bytes_never_raise() -> None:
    rng = random.Random(1)
    d = HdlcDeframer(clock=Clock())
    for _ in range(200):
        d.feed(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
    assert d.frames == 0 or d.frames < 5


def test_the_tap_clock_wrapping_and_a_board_reset_keep_times_sane() -> None:
    clock = Clock()
    d = HdlcDeframer(clock=clock)
    (a,) = d.feed(encode_frame(SETUP, True, 0xFFFFFF00))
    clock.now += 0.5
    (b,) = d.feed(encode_frame(SETUP, True, 0x000000F4))          # wrapped: 500 ms later
    assert b.t - a.t == pytest.approx(0.5)
    clock.now += 10
    (c,) = d.feed(encode_frame(SETUP, True, 3))                   # reset: counter restarted
    assert c.t == clock.now


def _pty() -> tuple[int, str]:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    return master, name


def _collect(source: SerialDChannel) -> tuple[list[CapturedFrame], threading.Event]:
    got: list[CapturedFrame] = []
    seen = threading.Event()

    def sink(frame: CapturedFrame) -> None:
        got.append(frame)
        seen.set()
    source.start(sink)
    return got, seen


def _wait_for(pred: object, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_serial_source_reads_frames_over_a_real_pty_with_garbage_and_breaks() -> None:
    master, name = _pty()
    source = SerialDChannel(name, reconnect_s=0.05)
    got, _ = _collect(source)
    try:
        assert source.connected.wait(5)
        rng = random.Random(3)
        os.write(master, bytes(rng.randrange(256) for _ in range(300)))
        for i in range(20):
            os.write(master, encode_frame(SETUP if i % 2 else ESCAPY, bool(i % 2), 1000 + i * 10))
            if i % 5 == 0:
                os.write(master, bytes(16) + b"\x7e\x12\x34")       # a break and a torn frame
        assert _wait_for(lambda: len(got) == 20)
        assert [f.from_network for f in got] == [bool(i % 2) for i in range(20)]
        assert source.deframer.counts["uart frame too short"] + source.deframer.counts["uart fcs bad"] >= 4
    finally:
        source.stop()
        os.close(master)


def test_serial_source_reopens_the_device_after_it_vanished(tmp_path: Path) -> None:
    link = tmp_path / "ttyISDN"
    master, name = _pty()
    link.symlink_to(name)
    source = SerialDChannel(str(link), reconnect_s=0.05)
    got, _ = _collect(source)
    try:
        assert source.connected.wait(5)
        os.write(master, encode_frame(SETUP, True, 1))
        assert _wait_for(lambda: len(got) == 1)
        link.unlink()
        os.close(master)                                           # the adapter is unplugged
        assert _wait_for(lambda: not source.connected.is_set())
        time.sleep(0.2)                                            # retries while the device is absent
        master, name = _pty()
        link.symlink_to(name)                                      # plugged in again
        assert _wait_for(lambda: source.connected.is_set())
        os.write(master, encode_frame(ESCAPY, False, 2))
        assert _wait_for(lambda: len(got) == 2)
        assert got[1].data == ESCAPY and source.reconnects >= 1
    finally:
        source.stop()
        os.close(master)


def test_a_failing_sink_does_not_stop_the_source() -> None:
    master, name = _pty()
    calls: list[CapturedFrame] = []

    def sink(frame: CapturedFrame) -> None:
        calls.append(frame)
        raise RuntimeError("core is busy")
    source = SerialDChannel(name, reconnect_s=0.05)
    source.start(sink)
    try:
        assert source.connected.wait(5)
        os.write(master, encode_frame(SETUP, True, 1) + encode_frame(SETUP, True, 2))
        assert _wait_for(lambda: len(calls) == 2)
    finally:
        source.stop()
        os.close(master)
