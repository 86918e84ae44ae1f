"""ISDN BRI lines end to end: the D-channel's calls become the core's calls on their B-channel lines.

A trace built by callrec.isdn.trace (cross-checked against tshark in test_isdn_tshark.py) drives
`callrec simulate`: two overlapping calls on B1 and B2 are two calls with their own recordings and
records (numbers, call reference, B-channel, cause), and a call rejected with a cause is an event.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile
from callrec.isdn.trace import Trace, inbound_call, outbound_call, overlap_call, rejected_call, two_calls_on_a_bri
from callrec.line import BriLines, IsdnInfo, RawEdge, trace_inputs


def _edges(inputs: list[object]) -> list[tuple[str, bool, float]]:
    return [(i.signal, i.active, round(i.t - inputs[0].t, 2)) for i in inputs if isinstance(i, RawEdge)]  # type: ignore[attr-defined]


def test_an_inbound_call_rings_its_b_channel_line_then_goes_off_hook_at_connect() -> None:
    tr = Trace()
    inbound_call(tr, b=1, talk_s=10)
    inputs = trace_inputs(tr.frames, {1: 3, 2: 4}, start=0.0)
    assert {i.line for i in inputs} == {3}
    assert _edges(inputs) == [("ring", True, 0.0), ("ring", False, 4.05), ("hook", True, 4.05), ("hook", False, 14.1)]
    infos = [i for i in inputs if isinstance(i, IsdnInfo)]
    assert [i.kind for i in infos] == ["offered", "alerting", "answered", "ended"]
    assert infos[0].fields["calling"] == "0312345678" and infos[0].fields["direction"] == "inbound"
    assert infos[-1].fields["cause"] == {"value": 16, "text": "Normal call clearing"}


def test_an_outbound_call_goes_off_hook_when_the_network_gives_its_b_channel() -> None:
    tr = Trace()
    outbound_call(tr, b=2, talk_s=5)
    inputs = trace_inputs(tr.frames, {1: 3, 2: 4}, start=0.0)
    assert {i.line for i in inputs} == {4}
    assert [e[:2] for e in _edges(inputs)] == [("hook", True), ("hook", False)]
    offered = next(i for i in inputs if isinstance(i, IsdnInfo))
    assert offered.fields["called"] == "0451234567" and offered.fields["b_channel"] == 2


def test_overlap_dialling_grows_the_called_number_digit_group_by_group() -> None:
    tr = Trace()
    overlap_call(tr, parts=("03", "1234", "5678"))
    infos = [i for i in trace_inputs(tr.frames, {1: 3, 2: 4}) if isinstance(i, IsdnInfo)]
    called = [i.fields["called"] for i in infos if i.kind == "digits"]
    assert called[:3] == ["03", "031234", "0312345678"]
    assert infos[-1].kind == "ended" and infos[-1].fields["called"].startswith("0312345678")


def test_a_call_on_a_b_channel_no_line_records_is_counted_not_invented() -> None:
    tr = Trace()
    inbound_call(tr, b=2)
    bri = BriLines({1: 3})
    from callrec.isdn import BriCalls, DChannelDecoder

    decoder, calls = DChannelDecoder(), BriCalls()
    out = [i for f in tr.frames if (m := decoder.decode(f)) for s in calls.feed(m) for i in bri.feed(s)]
    assert out == [] and bri.unmapped == 1


def _simulate(tmp_path: Path, trace: Trace, seconds: float) -> tuple[list[dict], subprocess.CompletedProcess[str]]:
    trace.write(str(tmp_path / "bri.pcap"))
    rng = np.random.default_rng(3)
    for name in ("b1.wav", "b2.wav"):
        soundfile.write(str(tmp_path / name), (rng.standard_normal(int(seconds * 8000)) * 3000).astype(np.int16),
                        8000, subtype="PCM_16")
    (tmp_path / "s.toml").write_text(
        '[[line]]\nline = 3\naudio = "b1.wav"\ndchannel = "bri.pcap"\nb_channel = 1\ndchannel_start_s = 1.0\n\n'
        '[[line]]\nline = 4\naudio = "b2.wav"\ndchannel = "bri.pcap"\nb_channel = 2\ndchannel_start_s = 1.0\n')
    done = subprocess.run([sys.executable, "-m", "callrec", "simulate", str(tmp_path / "s.toml"), "--data",
                           str(tmp_path / "data")], capture_output=True, text=True, timeout=180, check=False)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")], done


def test_two_overlapping_calls_on_b1_and_b2_are_two_recorded_calls_and_a_rejection_is_an_event(
        tmp_path: Path) -> None:
    events, done = _simulate(tmp_path, two_calls_on_a_bri(inbound_talk_s=12, outbound_talk_s=8), 40)
    assert done.returncode == 0, done.stderr
    saved = {e["line"]: e for e in events if e["type"] == "recording.saved"}
    assert set(saved) == {3, 4}, [e["type"] for e in events]
    listing = subprocess.run([sys.executable, "-m", "callrec", "calls", "list", "--json", "--data",
                              str(tmp_path / "data")], capture_output=True, text=True, check=True)
    records = {r["line"]: r for r in map(json.loads, listing.stdout.splitlines())}
    inbound, outbound = records[3], records[4]
    assert inbound["direction"] == "inbound" and inbound["caller_number"] == "0312345678"
    assert inbound["isdn"] == {"call_ref": 5, "b_channel": 1, "direction": "inbound", "calling": "0312345678",
                               "called": "0698765432", "cause": {"value": 16, "text": "Normal call clearing"}}
    assert outbound["direction"] == "outbound" and outbound["dialed_number"] == "0451234567"
    assert outbound["isdn"]["b_channel"] == 2 and outbound["isdn"]["call_ref"] == 9
    assert abs(inbound["duration_s"] - 12.1) < 0.2 and abs(outbound["duration_s"] - 14.6) < 0.3
    started = {e["line"]: e["ts"] for e in events if e["type"] == "call.started"}
    ended = {e["line"]: e["ts"] for e in events if e["type"] == "call.ended"}
    assert started[4] < ended[3] and started[3] < ended[4], "the two calls overlap"
    announced = {e["line"] for e in events if e["type"] == "announcement.played"}
    assert announced == {3, 4}, "each call gets its announcement on its own B-channel line"
    rejections = [e for e in events if e["type"] == "line.isdn" and e["event"] == "ended"
                  and (e["cause"] or {}).get("value") == 17]
    assert len(rejections) == 1 and rejections[0]["line"] == 4 and rejections[0]["call_id"] is None
    assert rejections[0]["calling"] == "0120000000"


def test_a_scenario_trace_that_is_not_a_pcap_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bri.pcap").write_bytes(b"not a capture at all")
    soundfile.write(str(tmp_path / "b1.wav"), np.zeros(8000, dtype=np.int16), 8000, subtype="PCM_16")
    (tmp_path / "s.toml").write_text('[[line]]\nline = 3\naudio = "b1.wav"\ndchannel = "bri.pcap"\nb_channel = 1\n')
    done = subprocess.run([sys.executable, "-m", "callrec", "simulate", str(tmp_path / "s.toml"), "--data",
                           str(tmp_path / "data")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "line[0].dchannel:" in done.stderr and "Traceback" not in done.stderr


def test_rejected_call_alone_has_no_recording(tmp_path: Path) -> None:
    tr = Trace()
    rejected_call(tr, value=21)
    inputs = trace_inputs(tr.frames, {1: 3, 2: 4})
    assert [e[:2] for e in _edges(inputs)] == [("ring", True), ("ring", False)]
    assert [i.fields["cause"] for i in inputs if isinstance(i, IsdnInfo) and i.kind == "ended"] == [
        {"value": 21, "text": "Call rejected"}]


def _check(tmp_path: Path, lines: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "c.toml"
    config.write_text(lines)
    return subprocess.run([sys.executable, "-m", "callrec", "check-config", str(config)], capture_output=True,
                          text=True, check=False)


BRI = ('[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 27\n\n'
       '[[lines]]\nid = 3\nkind = "isdn_bri"\ndchannel = "/dev/ttyAMA2"\nb_channel = 1\ncapture_channel = 0\n'
       'capture_pcm = "isdn"\nplayback_pcm = "isdn"\n\n'
       '[[lines]]\nid = 4\nkind = "isdn_bri"\ndchannel = "/dev/ttyAMA2"\nb_channel = {b}\ncapture_channel = 1\n'
       'capture_pcm = "isdn"\nplayback_pcm = "isdn"\nplayback_channel = 1\n')


def test_check_config_accepts_a_bri_as_two_b_channel_lines_beside_an_analog_one(tmp_path: Path) -> None:
    done = _check(tmp_path, BRI.format(b=2))
    assert done.returncode == 0, done.stderr


def test_check_config_names_a_b_channel_recorded_twice_and_missing_isdn_keys(tmp_path: Path) -> None:
    done = _check(tmp_path, BRI.format(b=1))
    assert done.returncode == 1
    assert "lines[2].b_channel: B-channel 1 of /dev/ttyAMA2 is already recorded by lines[1]" in done.stderr
    done = _check(tmp_path, '[[lines]]\nid = 3\nkind = "isdn_bri"\ndchannel = "/dev/ttyAMA2"\n')
    assert done.returncode == 1 and "an isdn_bri line needs b_channel" in done.stderr
    done = _check(tmp_path, '[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 27\nb_channel = 1\n')
    assert done.returncode == 1 and "dchannel and b_channel are for kind" in done.stderr
    done = _check(tmp_path, '[[lines]]\nid = 1\nring_gpio = 27\n')
    assert done.returncode == 1 and "an analog line needs hook_gpio" in done.stderr


def test_a_preferred_channel_the_answer_changes_moves_the_ringing_to_that_line() -> None:
    from callrec.isdn.trace import bearer_speech, called, calling, cause, channel, q931

    tr = Trace()
    tr.net(q931("SETUP", 5, False, bearer_speech(), channel(1, exclusive=False), calling("0311112222"),
                called("0698765432")), ui=True, tei=127)
    tr.user(q931("ALERTING", 5, True, channel(2)), tei=64)
    tr.user(q931("CONNECT", 5, True), tei=64, dt=2.0)
    tr.net(q931("DISCONNECT", 5, False, cause(16)), tei=64, dt=5.0)
    inputs = trace_inputs(tr.frames, {1: 3, 2: 4}, start=0.0)
    edges = [(i.line, i.signal, i.active) for i in inputs if isinstance(i, RawEdge)]
    assert edges == [(3, "ring", True), (3, "ring", False), (4, "ring", True), (4, "ring", False), (4, "hook", True),
                     (4, "hook", False)]
    assert [i.fields["b_channel"] for i in inputs if isinstance(i, IsdnInfo) and i.kind == "ended"] == [2]


def test_the_live_tap_over_a_real_pty_gives_the_core_its_edges_and_facts() -> None:
    """IsdnLine end to end: the tap's UART framing on a pty, decoded, tracked, delivered in order."""
    import os
    import threading
    import time

    from callrec.isdn import encode_frame
    from callrec.line import IsdnLine

    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    got: list[object] = []
    done = threading.Event()

    def sink(item: object) -> None:
        got.append(item)
        if isinstance(item, RawEdge) and item.signal == "hook" and not item.active and len(got) > 4:
            done.set()

    line = IsdnLine(name, {1: 3, 2: 4})
    line.start(sink)
    try:
        tr = Trace()
        inbound_call(tr, b=1, talk_s=1.0)
        time.sleep(0.5)
        for n, frame in enumerate(tr.frames):
            os.write(master, encode_frame(frame.data, bool(frame.from_network), 1000 + 10 * n))
        assert done.wait(10), got
    finally:
        line.stop()
        os.close(master)
    edges = [(i.line, i.signal, i.active) for i in got if isinstance(i, RawEdge)]
    assert edges[-4:] == [(3, "ring", True), (3, "ring", False), (3, "hook", True), (3, "hook", False)]
    offered = next(i for i in got if isinstance(i, IsdnInfo))
    assert offered.fields["calling"] == "0312345678"
