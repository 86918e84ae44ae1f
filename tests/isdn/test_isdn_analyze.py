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
