"""The command line as a person uses it: version, demo, calls list/show, --data everywhere."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import soundfile
from callrec import __version__
from conftest import callrec

ROOT = Path(__file__).resolve().parents[1]


def test_version_prints_the_package_version():
    out = callrec("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"callrec {__version__}"


def test_demo_records_four_announced_calls_two_analog_and_two_on_the_isdn_bri(tmp_path):
    out = callrec("demo", "--data", str(tmp_path / "demo"))
    assert out.returncode == 0, out.stderr
    assert "4 call(s) recorded" in out.stdout
    assert "Line 1: inbound call, 2 ring(s)" in out.stdout
    assert "Line 2: outbound call" in out.stdout
    assert out.stdout.count("announcement  announcement_en.wav sha256") == 4
    assert "Line 3: inbound call" in out.stdout and "Line 4: outbound call" in out.stdout
    assert "isdn          B1, call reference 5, ended with cause 16 (Normal call clearing)" in out.stdout
    assert "caller        0312345678" in out.stdout
    assert "caller        2125551234 SMITH JOHN" in out.stdout
    assert "dialled       5550123, far end answered" in out.stdout
    flacs = sorted((tmp_path / "demo" / "recordings").rglob("*.flac"))
    assert len(flacs) == 4 and all(str(f) in out.stdout for f in flacs)


def test_the_demos_closing_hint_works_as_printed_after_the_readmes_set_up(tmp_path):
    root = Path(__file__).resolve().parents[1]
    demo = subprocess.run([".venv/bin/callrec", "demo", "--data", str(tmp_path / "demo")], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    hint = next(line for line in demo.stdout.splitlines() if line.startswith("Inspect them with:"))
    command = hint.removeprefix("Inspect them with:").strip()
    assert command.startswith(".venv/bin/callrec calls list")
    listing = subprocess.run(command, shell=True, cwd=root, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and listing.stdout.count("complete") == 4, listing.stderr


def test_calls_list_and_show_read_the_index_of_the_given_data_dir(simulate):
    result = simulate([{"line": 1, "audio": "line1.wav", "events": [(1.0, "hook", "off"), (6.0, "hook", "on")]}])
    call_id = result.of_type("call.ended")[0]["call_id"]
    listed = callrec("calls", "list", "--data", str(result.data))
    assert listed.returncode == 0 and call_id in listed.stdout and "complete" in listed.stdout
    as_json = callrec("calls", "list", "--json", "--limit", "1", "--data", str(result.data))
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(records) == 1 and records[0]["call_id"] == call_id
    assert records[0]["recording"]["sha256"] and records[0]["caller_number"] is None
    shown = callrec("calls", "show", call_id, "--data", str(result.data))
    assert json.loads(shown.stdout)["call_id"] == call_id
    missing = callrec("calls", "show", "nope", "--data", str(result.data))
    assert missing.returncode == 1 and "no call 'nope'" in missing.stderr


def test_calls_list_on_an_empty_data_dir_says_there_is_no_index(tmp_path):
    out = callrec("calls", "list", "--data", str(tmp_path))
    assert out.returncode == 1 and "no call index" in out.stderr


def test_recover_with_nothing_to_do_says_so(tmp_path):
    out = callrec("recover", "--data", str(tmp_path / "d"))
    assert out.returncode == 0 and "nothing to recover" in out.stdout


def test_16_khz_capture_is_selectable(simulate):
    result = simulate([{"line": 1, "audio": "line1.wav", "events": [(1.0, "hook", "off"), (6.0, "hook", "on")]}],
                      config="[audio]\nsample_rate = 16000\n")
    assert result.returncode == 0, result.stderr
    saved = result.of_type("recording.saved")[0]
    info = soundfile.info(str(result.data / saved["path"]))
    assert info.samplerate == 16000 and abs(info.duration - 6.0) < 0.001


def test_packaged_pin_map_is_the_one_in_hw():
    shipped = (ROOT / "firmware" / "callrec" / "assets" / "pinmap.toml").read_text()
    assert shipped == (ROOT / "hw" / "pinmap.toml").read_text()
    pins = tomllib.loads(shipped)["line"]
    from callrec.config import parse

    lines = parse({}).lines
    assert [(line.hook_gpio, line.ring_gpio, line.led_gpio) for line in lines] == [
        (pins[str(n)]["hook_gpio"], pins[str(n)]["ring_gpio"], pins[str(n)]["led_gpio"]) for n in (1, 2)]


def test_journal_stays_bounded_without_mqtt(simulate):
    import sqlite3

    config = "[mqtt]\njournal_max_events = 5\n"
    events = [(1.0, "hook", "off"), (6.0, "hook", "on")]
    first = simulate([{"line": 1, "audio": "line1.wav", "events": events}], config=config)
    second = simulate([{"line": 1, "audio": "line1.wav", "events": events}], config=config, data=first.data)
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(first.data / "journal.sqlite") as db:
        oldest = db.execute("SELECT MIN(seq) FROM events").fetchone()[0]
    assert oldest > first.events[-1]["seq"] - 5, "the first run's old events were pruned"
    assert second.events[0]["seq"] == first.events[-1]["seq"] + 1, "pruning never reuses a seq"
