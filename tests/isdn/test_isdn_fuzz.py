"""Fuzzing: random bytes, bit flips and truncations never raise, counts add up, numbers stay true."""

from __future__ import annotations

from pathlib import Path

from callrec.isdn import (
    BriCalls,
    CapturedFrame,
    DChannelDecoder,
    FrameError,
    HdlcDeframer,
    PcapFormatError,
    PcapReader,
    decode_q931,
)
from callrec.isdn.q931 import DIAL_CHARS
from callrec.isdn.trace import Trace, bearer_speech, called, calling, cause, channel, i_frame, inbound_call, q931
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETUP = q931("SETUP", 5, False, bearer_speech(), channel(1), calling("0312345678", presentation=0),
             called("0698765432"), cause(16))
FRAMES = [f.data for f in (lambda tr: (inbound_call(tr), tr)[1])(Trace()).frames] + [i_frame(SETUP, True)]
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_all(frames: list[bytes]) -> DChannelDecoder:
    decoder = DChannelDecoder()
    calls = BriCalls()
    for i, data in enumerate(frames):
        message = decoder.decode(CapturedFrame(float(i), data, None))
        if message is not None:
            calls.feed(message)
            for number in (message.calling, message.called):
                assert number is None or DIAL_CHARS.issuperset(number.digits.encode())
    calls.advance(1e9)
    return decoder


@FAST
@given(st.lists(st.binary(max_size=80), max_size=30))
def test_random_frames_never_raise_and_every_frame_is_counted(frames: list[bytes]) -> None:
    decoder = _decode_all(frames)
    assert decoder.frames == len(frames) == decoder.messages + sum(decoder.counts.values())


@FAST
@given(st.sampled_from(FRAMES), st.lists(st.integers(0, 10_000), min_size=1, max_size=4))
def test_bit_flipped_valid_frames_never_raise(frame: bytes, flips: list[int]) -> None:
    data = bytearray(frame)
    for flip in flips:
        data[flip // 8 % len(data)] ^= 1 << (flip % 8)
    decoder = _decode_all([bytes(data)])
    assert decoder.frames == decoder.messages + sum(decoder.counts.values()) == 1


@FAST
@given(st.integers(0, len(SETUP)))
def test_a_truncated_setup_gives_the_true_numbers_or_none_never_part_of_one(cut: int) -> None:
    try:
        msg = decode_q931(SETUP[:cut])
    except FrameError:
        return
    assert msg.calling is None or msg.calling.digits == "0312345678"
    assert msg.called is None or msg.called.digits == "0698765432"


@FAST
@given(st.binary(max_size=2000))
def test_random_uart_bytes_never_raise(data: bytes) -> None:
    deframer = HdlcDeframer(clock=lambda: 0.0)
    for i in range(0, len(data), 37):
        deframer.feed(data[i:i + 37])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_files_are_refused_or_read_never_crash(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "r.pcap"
    header = bytes.fromhex("d4c3b2a1020004000000000000000000ffff0000b1000000")
    for content in (data, header + data):
        path.write_bytes(content)
        try:
            reader = PcapReader(str(path))
        except PcapFormatError:
            continue
        frames = list(reader)
        _decode_all([f.data for f in frames])
