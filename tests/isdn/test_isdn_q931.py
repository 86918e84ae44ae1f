"""Q.931 messages and elements: what is decoded, what is stepped over, and what is refused."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from callrec.isdn import MESSAGE_NAMES, Q850_CAUSES, FrameError, FrameSkipped, cause_text, decode_q931
from callrec.isdn.trace import (
    SENDING_COMPLETE,
    bearer_speech,
    called,
    calling,
    cause,
    channel,
    display,
    ie,
    keypad,
    progress,
    q931,
)


def test_setup_gives_numbers_plan_presentation_channel_and_bearer() -> None:
    msg = decode_q931(q931("SETUP", 5, False, bearer_speech(), channel(1), calling("0312345678", presentation=1),
                           called("0698765432", ton=2), display("Alice"), SENDING_COMPLETE))
    assert (msg.message, msg.call_ref, msg.call_ref_flag, msg.call_ref_len) == ("SETUP", 5, False, 1)
    assert msg.calling is not None and msg.called is not None and msg.channel is not None
    assert (msg.calling.digits, msg.calling.type_of_number, msg.calling.numbering_plan) == ("0312345678", 2, 1)
    assert (msg.calling.presentation, msg.calling.screening) == (1, 3)
    assert (msg.called.digits, msg.called.type_of_number, msg.called.presentation) == ("0698765432", 2, None)
    assert (msg.channel.selection, msg.channel.b_channel, msg.channel.exclusive) == ("B1", 1, True)
    assert msg.bearer_capability == 0 and msg.display == "Alice" and msg.sending_complete
    assert msg.unknown_ies == ()


@pytest.mark.parametrize("b,selection,number", [(1, "B1", 1), (2, "B2", 2), ("any", "any", None),
                                                ("none", "none", None)])
def test_bri_channel_identification(b: int | str, selection: str, number: int | None) -> None:
    msg = decode_q931(q931("CALL PROCEEDING", 1, True, channel(b, exclusive=False)))
    assert msg.channel is not None
    assert (msg.channel.selection, msg.channel.b_channel, msg.channel.exclusive) == (selection, number, False)


def test_cause_progress_and_keypad() -> None:
    msg = decode_q931(q931("DISCONNECT", 3, True, cause(17, location=4), progress(8, location=2), keypad("*21#")))
    assert msg.cause is not None
    assert (msg.cause.value, msg.cause.location, msg.cause.coding_standard) == (17, 4, 0)
    assert msg.cause.text == "User busy"
    assert [(p.location, p.description) for p in msg.progress] == [(2, 8)]
    assert msg.keypad == "*21#"


def test_cause_with_octet_3a_reads_the_value_after_it() -> None:
    msg = decode_q931(q931("RELEASE", 3, True, ie(0x08, b"\x02\x80\x90")))
    assert msg.cause is not None and msg.cause.value == 16


def test_two_octet_and_dummy_call_references() -> None:
    msg = decode_q931(q931("SETUP", 0x1234, True, cr_len=2))
    assert (msg.call_ref, msg.call_ref_flag, msg.call_ref_len) == (0x1234, True, 2)
    msg = decode_q931(q931("STATUS", 0, False, cr_len=0))
    assert (msg.call_ref, msg.call_ref_len) == (0, 0)


def test_every_twelve_message_names_decode() -> None:
    assert sorted(MESSAGE_NAMES.values()) == sorted([
        "SETUP", "SETUP ACK", "CALL PROCEEDING", "ALERTING", "PROGRESS", "CONNECT", "CONNECT ACK", "INFORMATION",
        "DISCONNECT", "RELEASE", "RELEASE COMPLETE", "STATUS"])
    for mtype, name in MESSAGE_NAMES.items():
        assert decode_q931(q931(mtype, 1, False)).message == name


def test_unknown_elements_are_stepped_over_by_length_and_noted() -> None:
    msg = decode_q931(q931("SETUP", 5, False, ie(0x5F, b"\x01\x02\x03"), called("123"), ie(0x7E, b"\x04uu")))
    assert msg.unknown_ies == (0x5F,)
    assert msg.called is not None and msg.called.digits == "123"


def test_a_locking_shift_moves_following_elements_out_of_codeset_0() -> None:
    # 0x96: locking shift to codeset 6; an element numbered like the called number there is not one.
    msg = decode_q931(q931("SETUP", 5, False, calling("111"), b"\x96", called("999"), ie(0x01, b"x")))
    assert msg.calling is not None and msg.calling.digits == "111"
    assert msg.called is None and msg.other_codeset_ies == 2


def test_a_non_locking_shift_covers_only_the_next_element() -> None:
    msg = decode_q931(q931("SETUP", 5, False, b"\x9e", called("999"), called("123")))
    assert msg.called is not None and msg.called.digits == "123"
    assert msg.other_codeset_ies == 1


@pytest.mark.parametrize("data,reason", [
    (q931("SETUP", 5, False) + b"\x70\x09\x80\x31\x32", "q931 ie runs past message end"),
    (q931("SETUP", 5, False) + b"\x70", "q931 ie length missing"),
    (q931("SETUP", 5, False, ie(0x70, b"\x80\x31\xb2")), "q931 number has a character that is not an IA5 digit"),
    (q931("SETUP", 5, False, ie(0x70, b"")), "q931 number ie empty"),
    (q931("SETUP", 5, False, ie(0x70, b"\x01\x81\x31")), "q931 number octet 3 extension wrong"),
    (q931("DISCONNECT", 5, False, ie(0x08, b"\x82")), "q931 cause ie too short"),
    (q931("PROGRESS", 5, False, ie(0x1E, b"\x82")), "q931 progress indicator too short"),
    (q931("SETUP", 5, False, ie(0x18, b"\x01")), "q931 channel identification malformed"),
    (q931("INFORMATION", 5, False, ie(0x2C, b"1\x002")),
     "q931 keypad facility has a character that is not an IA5 digit"),
    (b"\x08\x03\x01\x02\x03\x05", "q931 call reference longer than 2 octets"),
    (b"\x08\x11\x01\x05", "q931 call reference length octet malformed"),
    (b"\x08\x01\x05", "q931 message truncated"),
    (b"\x08", "q931 message truncated"),
    (b"\x08\x01\x05\x85", "q931 message type bit 8 set"),
])
def test_impossible_lengths_and_bad_contents_raise_a_frame_error_never_a_number(data: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode_q931(data)
    assert caught.value.reason == reason and not isinstance(caught.value, FrameSkipped)


@pytest.mark.parametrize("data,reason", [
    (b"\x09\x01\x05\x05", "q931 other protocol discriminator"),
    (b"\x40\x01\x05\x05", "q931 other protocol discriminator"),
    (q931(0x6E, 5, False), "q931 message type not decoded"),
    (q931(0x33, 5, False), "q931 unknown message type"),
    (q931(0x00, 5, False), "q931 national message type"),
])
def test_other_protocols_and_message_types_are_skipped(data: bytes, reason: str) -> None:
    with pytest.raises(FrameSkipped) as caught:
        decode_q931(data)
    assert caught.value.reason == reason


def test_cause_texts_cover_q850_and_leave_other_codings_unnamed() -> None:
    assert cause_text(16) == "Normal call clearing" and cause_text(31) == "Normal, unspecified"
    assert cause_text(17, coding_standard=2) == "cause 17 (national coding, not in Q.850)"
    assert "not in Q.850" in cause_text(13)
    assert len(Q850_CAUSES) >= 70


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_every_q850_cause_value_is_one_wireshark_knows() -> None:
    out = subprocess.run(["tshark", "-G", "values"], capture_output=True, text=True, check=True).stdout
    known = {int(line.split("\t")[2]) for line in out.splitlines() if line.startswith("V\tq931.cause_value\t")}
    assert set(Q850_CAUSES) <= known
