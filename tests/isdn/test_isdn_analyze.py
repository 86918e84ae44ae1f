"""`analyze` and `run_analyze`: the JSON lines and the table of a capture, and clean failures."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from callrec.isdn import analyze, run_analyze
from callrec.isdn.trace import Trace, inbound_call, layer2_chatter, rejected_call

KEYS = ["type", "message", "call_ref", "from_network", "calling", "called", "channel", "cause", "t"]


def _capture(tmp_path: Path, linktype: int = 177) -> str:
    tr = Trace()
    layer2_chatter(tr)
    inbound_call(tr)
    rejected_call(tr)
    return tr.write(str(tmp_path / "call.pcap"), linktype)


def test_one_dict_per_message_shaped_as_documented(tmp_path: Path) -> None:
    counts: Counter[str] = Counter()
    records = list(analyze(_capture(tmp_path), counts))
    assert [r["message"] for r in records] == ["SETUP", "ALERTING", "CONNECT", "CONNECT ACK", "DISCONNECT",
                                               "RELEASE", "RELEASE COMPLETE", "SETUP", "RELEASE COMPLETE"]
    assert list(records[0])[:9] == KEYS
    assert {k: records[0][k] for k in KEYS} == {
        "type": "q931", "message": "SETUP", "call_ref": 5, "from_network": True, "calling": "0312345678",
        "called": "0698765432", "channel": 1, "cause": None, "t": 0.3}
    assert records[-1]["cause"] == 17 and records[-1]["cause_text"] == "User busy"
    assert records[1]["call_ref_flag"] is True and records[1]["from_network"] is False
    assert counts == {"lapd unnumbered": 2, "lapd supervisory": 4}


def test_out_of_order_records_come_out_in_time_order(tmp_path: Path) -> None:
    tr = Trace()
    inbound_call(tr)
    tr.frames[2], tr.frames[1] = tr.frames[1], tr.frames[2]
    records = list(analyze(tr.write(str(tmp_path / "x.pcap"), 203)))
    assert [r["t"] for r in records] == sorted(r["t"] for r in records)
    assert records[0]["t"] == 0.0


def test_run_analyze_json_lines_and_the_summary_on_the_error_stream(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_analyze(_capture(tmp_path), True, out, err=err) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 9 and all(json.loads(line)["type"] == "q931" for line in lines)
    assert "6 frames skipped" in err.getvalue() and "lapd supervisory: 4" in err.getvalue()


def test_run_analyze_table(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_analyze(_capture(tmp_path, 203), False, out, err=err) == 0
    text = out.getvalue()
    assert "SETUP" in text and "from 0312345678" in text and "cause 17 (User busy)" in text and "B1" in text


@pytest.mark.parametrize("make", ["missing", "garbage", "empty", "directory"])
def test_unreadable_files_give_one_line_and_exit_2(tmp_path: Path, make: str) -> None:
    path = tmp_path / "f.pcap"
    if make == "garbage":
        path.write_bytes(b"this is not a capture file at all")
    elif make == "empty":
        path.write_bytes(b"")
    elif make == "directory":
        path.mkdir()
    out, err = io.StringIO(), io.StringIO()
    assert run_analyze(str(path), True, out, err=err) == 2
    assert out.getvalue() == ""
    assert len(err.getvalue().splitlines()) == 1 and str(path) in err.getvalue()
    assert "Traceback" not in err.getvalue()


# ---- issue 22 item 11: a capture is read, decoded and reported as it goes --------------------------


def _busy_capture(path: Path, frames: int) -> str:
    from callrec.isdn.trace import outbound_call

    tr = Trace()
    cr = 1
    while len(tr.frames) < frames:
        cr = cr % 127 + 1
        layer2_chatter(tr)
        inbound_call(tr, cr=cr, talk_s=1.0)
        outbound_call(tr, cr=cr, talk_s=1.0)
        rejected_call(tr, cr=cr)
    tr.frames = tr.frames[:frames]
    return tr.write(str(path), 177)


def _peak_bytes_while_analyzing(path: str) -> tuple[int, int]:
    import tracemalloc

    tracemalloc.start()
    try:
        n = sum(1 for _ in analyze(path, Counter()))
        return tracemalloc.get_traced_memory()[1], n
    finally:
        tracemalloc.stop()


def test_analyze_memory_does_not_grow_with_the_capture(tmp_path: Path) -> None:
    """Four times the frames, about the same peak: the capture is streamed, not held (a 150 MB pcap
    once took 1.5 GB). Allocation is counted by tracemalloc, not timed."""
    small = _busy_capture(tmp_path / "small.pcap", 20_000)
    large = _busy_capture(tmp_path / "large.pcap", 80_000)
    small_peak, small_n = _peak_bytes_while_analyzing(small)
    large_peak, large_n = _peak_bytes_while_analyzing(large)
    assert large_n > 3.9 * small_n
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)


def test_a_raw_dump_of_the_taps_uart_gives_the_messages_the_pcap_gives(tmp_path: Path) -> None:
    """`cat /dev/ttyAMA2 > d.hdlc`: noise before the first flag, a break, the frames; read in chunks."""
    from callrec.isdn import encode_frame

    tr = Trace()
    layer2_chatter(tr)
    inbound_call(tr)
    rejected_call(tr)
    base = tr.frames[0].t
    encoded = [encode_frame(f.data, bool(f.from_network), round((f.t - base) * 1000) + 7000) for f in tr.frames]
    dump = tmp_path / "d.hdlc"
    dump.write_bytes(b"\x00\xff\x13noise" + encoded[0] + b"\x00" * 3 + b"".join(encoded[1:]))
    counts: Counter[str] = Counter()
    from_dump = list(analyze(str(dump), counts))
    from_pcap = list(analyze(tr.write(str(tmp_path / "d.pcap"), 177)))
    assert [(r["message"], r["calling"], r["t"]) for r in from_dump] == \
        [(r["message"], r["calling"], r["t"]) for r in from_pcap]
    assert counts["lapd supervisory"] == 4


def test_callrec_analyze_reads_a_uart_dump_by_its_name(tmp_path: Path) -> None:
    from callrec.isdn import encode_frame
    from conftest import callrec

    tr = Trace()
    inbound_call(tr)
    dump = tmp_path / "d.hdlc"
    dump.write_bytes(b"".join(encode_frame(f.data, bool(f.from_network), 1000 + 50 * i)
                              for i, f in enumerate(tr.frames)))
    out = callrec("analyze", str(dump), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0])["message"] == "SETUP"
