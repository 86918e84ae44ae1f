"""Classic pcap files of a D-channel: both link types, byte orders and time resolutions; bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from callrec.isdn import CapturedFrame, PcapFormatError, PcapReader, read_pcap, write_pcap
from callrec.isdn.pcap import direction_of_pseudo_header
from callrec.isdn.trace import Trace, inbound_call, layer2_chatter

VARIANTS = [(lt, order, ns) for lt in (177, 203) for order in ("<", ">") for ns in (False, True)]


def _trace() -> Trace:
    tr = Trace()
    layer2_chatter(tr)
    inbound_call(tr)
    return tr


@pytest.mark.parametrize("linktype,order,ns", VARIANTS)
def test_every_variant_reads_back_the_frames_written(tmp_path: Path, linktype: int, order: str, ns: bool) -> None:
    tr = _trace()
    path = tr.write(str(tmp_path / "t.pcap"), linktype, ns, order)
    reader = PcapReader(path)
    got = list(reader)
    assert reader.linktype == linktype
    assert [f.data for f in got] == [f.data for f in tr.frames]
    assert all(abs(a.t - b.t) < 2e-6 for a, b in zip(got, tr.frames, strict=True))
    if linktype == 177:
        assert [f.from_network for f in got] == [f.from_network for f in tr.frames]
    else:
        assert {f.from_network for f in got} == {None}
    assert reader.counts == {}


def test_nanosecond_files_keep_sub_microsecond_times(tmp_path: Path) -> None:
    path = str(tmp_path / "ns.pcap")
    write_pcap(path, [CapturedFrame(1000.000000123, b"\x02\xff\x03", True)], 203, nanosecond=True)
    (frame,) = read_pcap(path)
    assert frame.t == pytest.approx(1000.000000123, abs=1e-9)


@pytest.mark.parametrize("pkttype,addr0,from_network", [
    (0, 0, True),    # received by a TE: from the network
    (4, 0, False),   # sent by the capturing TE
    (3, 0, False),   # another TE's frame on the bus
    (0, 1, False),   # received by the network side: from a user
    (4, 1, True),    # sent by the network side
    (1, 0, True),    # broadcast: treated as received, as Wireshark does
])
def test_linux_lapd_direction_follows_wiresharks_reading_of_the_pseudo_header(pkttype: int, addr0: int,
                                                                              from_network: bool) -> None:
    assert direction_of_pseudo_header(pkttype, addr0) is from_network


def test_writer_as_network_side_round_trips_direction(tmp_path: Path) -> None:
    path = str(tmp_path / "nt.pcap")
    frames = [CapturedFrame(1.0, b"\x02\xff\x03", True), CapturedFrame(2.0, b"\x00\xff\x03", False)]
    write_pcap(path, frames, 177, we_network=True)
    assert [f.from_network for f in read_pcap(path)] == [True, False]


def test_linux_lapd_cannot_store_an_unknown_direction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown direction"):
        write_pcap(str(tmp_path / "x.pcap"), [CapturedFrame(1.0, b"\x02\xff\x03", None)], 177)


@pytest.mark.parametrize("content,offset,words", [
    (b"", 0, "0 bytes"),
    (b"\xd4\xc3\xb2", 3, "3 bytes"),
    (b"GARBAGE!" * 4, 0, "magic"),
    (b"\x0a\x0d\x0d\x0a" + bytes(28), 0, "pcapng"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1), 20, "link type 1"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 9, 4, 0, 0, 65535, 203), 4, "version 9"),
])
def test_a_bad_global_header_names_the_file_and_the_offset(tmp_path: Path, content: bytes, offset: int,
                                                           words: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(PcapFormatError) as caught:
        PcapReader(str(path))
    assert caught.value.offset == offset
    assert str(path) in str(caught.value) and words in str(caught.value)


@pytest.mark.parametrize("cut", [1, 10, 17, 20])
def test_a_truncated_last_record_is_counted_and_logged_not_raised(tmp_path: Path, cut: int,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    tr = _trace()
    path = Path(tr.write(str(tmp_path / "t.pcap"), 177))
    path.write_bytes(path.read_bytes()[:-cut])
    reader = PcapReader(str(path))
    got = list(reader)
    assert len(got) == len(tr.frames) - 1
    assert reader.counts == {"pcap truncated record": 1}
    assert "cut off" in caplog.text


def test_an_impossible_record_length_stops_reading_without_a_crash(tmp_path: Path) -> None:
    tr = _trace()
    path = Path(tr.write(str(tmp_path / "t.pcap"), 203))
    path.write_bytes(path.read_bytes() + struct.pack("<IIII", 1, 0, 0x7FFFFFFF, 0x7FFFFFFF) + b"xx")
    reader = PcapReader(str(path))
    assert len(list(reader)) == len(tr.frames)
    assert reader.counts == {"pcap record length impossible": 1}


def test_a_pseudo_header_that_is_not_lapd_is_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "p.pcap"
    good = struct.pack(">HHH8sH", 0, 0, 1, bytes(8), 0x0030) + b"\x02\xff\x03"
    wrong = struct.pack(">HHH8sH", 0, 0, 1, bytes(8), 0x0800) + b"\x02\xff\x03"
    body = b"".join(struct.pack("<IIII", 1, 0, len(d), len(d)) + d for d in (good, wrong, b"\x00\x01"))
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 177) + body)
    reader = PcapReader(str(path))
    assert [f.data for f in reader] == [b"\x02\xff\x03"]
    assert reader.counts == {"pcap pseudo-header not lapd": 1, "pcap pseudo-header short": 1}
