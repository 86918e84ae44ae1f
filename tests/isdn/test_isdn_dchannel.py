"""LAPD framing around Q.931, direction from C/R, and the decoder's counts and throttled warnings."""

from __future__ import annotations

import logging

import pytest
from callrec.isdn import CapturedFrame, DChannelDecoder, FrameError, parse_lapd
from callrec.isdn.trace import (
    Trace,
    address,
    called,
    i_frame,
    inbound_call,
    layer2_chatter,
    q931,
    s_frame,
    u_frame,
    ui_frame,
)


def test_address_and_control_fields_of_an_i_frame() -> None:
    frame = parse_lapd(i_frame(b"\x08\x01\x05\x05", True, tei=64, ns=3, nr=7))
    assert (frame.sapi, frame.cr, frame.tei, frame.kind, frame.ns, frame.nr) == (0, True, 64, "I", 3, 7)
    assert frame.info == b"\x08\x01\x05\x05"


@pytest.mark.parametrize("data,kind,name,from_network", [
    (i_frame(b"x", True), "I", "I", True),
    (i_frame(b"x", False), "I", "I", False),
    (ui_frame(b"x", True), "U", "UI", True),
    (u_frame("SABME", False), "U", "SABME", False),     # a command from the user: C/R 0
    (u_frame("UA", False), "U", "UA", True),            # a response with C/R 0 comes from the network
    (u_frame("UA", True), "U", "UA", False),
    (u_frame("DISC", True), "U", "DISC", True),
    (s_frame("RR", True), "S", "RR", None),              # RR may be command or response: direction open
    (s_frame("RNR", False), "S", "RNR", None),
    (s_frame("REJ", True), "S", "REJ", None),
])
def test_frame_types_and_the_direction_their_cr_bit_gives(data: bytes, kind: str, name: str,
                                                          from_network: bool | None) -> None:
    frame = parse_lapd(data)
    assert (frame.kind, frame.name, frame.from_network) == (kind, name, from_network)


@pytest.mark.parametrize("data,reason", [
    (b"\x02", "lapd frame too short"),
    (b"\x03\x81\x00\x00", "lapd address extension bits wrong"),
    (b"\x02\x80\x00\x00", "lapd address extension bits wrong"),
    (b"\x02\x81\x0d\x01", "lapd supervisory function unknown"),
    (b"\x02\x81\x0b", "lapd unnumbered function unknown"),
])
def test_broken_lapd_is_a_frame_error(data: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_lapd(data)
    assert caught.value.reason == reason


def test_supervisory_unnumbered_and_other_sapi_frames_are_counted_and_skipped() -> None:
    tr = Trace()
    layer2_chatter(tr)
    tr.raw(ui_frame(b"\x0f\x00\x01\x01\xff", True, tei=127, sapi=63), True)     # TEI management
    tr.raw(address(16, False, 64) + b"\x00\x00" + b"x25", False)
    tr.raw(ui_frame(b"", True), True)
    decoder = DChannelDecoder()
    assert list(decoder.feed(tr.frames)) == []
    assert dict(decoder.counts) == {"lapd unnumbered": 2, "lapd supervisory": 4, "lapd sapi 63 management": 1,
                                    "lapd sapi not call control": 1, "lapd empty information field": 1}


def test_direction_comes_from_the_capture_when_known_else_from_cr() -> None:
    data = i_frame(q931("SETUP", 1, False, called("1")), from_network=True)
    decoder = DChannelDecoder()
    assert decoder.decode(CapturedFrame(1.0, data, None)).from_network is True    # type: ignore[union-attr]
    assert decoder.decode(CapturedFrame(1.0, data, False)).from_network is False  # type: ignore[union-attr]


def test_messages_carry_time_direction_and_tei_and_counts_add_up() -> None:
    tr = Trace()
    layer2_chatter(tr)
    inbound_call(tr)
    tr.raw(b"\xff", True)
    decoder = DChannelDecoder()
    messages = list(decoder.feed(tr.frames))
    assert [m.message for m in messages][:2] == ["SETUP", "ALERTING"]
    assert (messages[0].tei, messages[1].tei, messages[1].t) == (127, 64, tr.frames[7].t)
    assert decoder.frames == len(tr.frames) == decoder.messages + sum(decoder.counts.values())
    assert decoder.counts["lapd frame too short"] == 1


def test_a_flood_of_garbage_logs_once_per_reason_and_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    decoder = DChannelDecoder(log_interval_s=60.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    for i in range(10_000):
        now[0] = i * 0.001
        decoder.decode(CapturedFrame(now[0], b"\xff\xff\xff", True))
        decoder.decode(CapturedFrame(now[0], b"\x01", True))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert decoder.counts == {"lapd address extension bits wrong": 10_000, "lapd frame too short": 10_000}
    now[0] = 100.0
    decoder.decode(CapturedFrame(now[0], b"\x01", True))
    assert "9999 more since the last report" in caplog.records[-1].getMessage()


def test_expected_layer2_traffic_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    tr = Trace()
    layer2_chatter(tr)
    list(DChannelDecoder().feed(tr.frames))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
