"""Our decoder and Wireshark's, on the same files: message types, call references, numbers, causes.

Every file variant (177 and 203, both byte orders, micro- and nanosecond) is decoded by both, frame
by frame; the frames that are not Q.931 must be the same ones too. Mutated frames are included:
where tshark still finds a number, ours must be the same number or none at all.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from callrec.isdn import CapturedFrame, DChannelDecoder, Q931Message, read_pcap
from callrec.isdn.trace import (
    Trace,
    called,
    calling,
    channel,
    inbound_call,
    layer2_chatter,
    outbound_call,
    overlap_call,
    q931,
    rejected_call,
)

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
FIELDS = ["frame.number", "lapd.direction", "q931.message_type", "q931.call_ref", "q931.call_ref_flag",
          "q931.calling_party_number.digits", "q931.called_party_number.digits", "q931.cause_value"]
Row = tuple[str, ...]


def tshark(path: str) -> list[Row]:
    cmd = ["tshark", "-r", path, "-T", "fields", "-E", "separator=,", "-E", "occurrence=f"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [tuple(line.split(",")) for line in out.splitlines()]


def ours(m: Q931Message | None) -> Row:
    if m is None:
        return ("", "", "", "", "", "")
    ref = "" if m.call_ref_len == 0 else f"{m.call_ref:0{2 * m.call_ref_len}x}"
    return (f"0x{m.message_type:02x}", ref, str(int(m.call_ref_flag)), m.calling.digits if m.calling else "",
            m.called.digits if m.called else "", str(m.cause.value) if m.cause else "")


def _trace() -> Trace:
    tr = Trace()
    layer2_chatter(tr)
    inbound_call(tr, cr=5)
    outbound_call(tr, cr=9)
    overlap_call(tr, cr=12)
    rejected_call(tr, cr=7, value=17)
    rejected_call(tr, cr=8, value=34)
    tr.net(q931("SETUP", 0x1234, False, channel(2), calling("0312"), called("0698"), cr_len=2), ui=True)
    return tr


@pytest.mark.parametrize("linktype,order,ns", [(lt, o, ns) for lt in (177, 203) for o in "<>" for ns in (False, True)])
def test_we_and_tshark_agree_on_every_frame_of_every_variant(tmp_path: Path, linktype: int, order: str,
                                                             ns: bool) -> None:
    path = _trace().write(str(tmp_path / "t.pcap"), linktype, ns, order)
    decoder = DChannelDecoder()
    mine = [decoder.decode(f) for f in read_pcap(path)]
    theirs = tshark(path)
    assert len(theirs) == len(mine)
    for row, m in zip(theirs, mine, strict=True):
        assert row[2:] == ours(m), f"frame {row[0]}"
        if linktype == 177 and m is not None:
            assert row[1] == ("1" if m.from_network else "0")   # Wireshark: 1 Network->User, 0 User->Network
    assert sum(m is not None for m in mine) == 33


def test_on_mutated_frames_we_never_give_a_number_tshark_does_not(tmp_path: Path) -> None:
    rng = random.Random(11)
    base = _trace().frames
    frames: list[CapturedFrame] = []
    for i in range(600):
        f = base[rng.randrange(len(base))]
        data = bytearray(f.data)
        if rng.random() < 0.5 and len(data) > 4:
            data = data[: rng.randrange(3, len(data))]
        for _ in range(rng.randrange(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        frames.append(CapturedFrame(1.0 + i, bytes(data), f.from_network))
    tr = Trace(frames=frames)
    path = tr.write(str(tmp_path / "m.pcap"), 177)
    decoder = DChannelDecoder()
    mine = [decoder.decode(f) for f in read_pcap(path)]
    compared = 0
    for row, m in zip(tshark(path), mine, strict=True):
        if m is None:
            continue
        if m.calling:
            assert m.calling.digits == row[5], f"frame {row[0]}"
            compared += 1
        if m.called:
            assert m.called.digits == row[6], f"frame {row[0]}"
            compared += 1
        if row[2]:
            assert row[2] == f"0x{m.message_type:02x}", f"frame {row[0]}"
    assert compared > 20
    assert decoder.frames == decoder.messages + sum(decoder.counts.values())
