"""The evidence chain, `callrec verify`, retention with hold, export and the audit log (issue 11).

One simulated day of three calls is recorded once; each test tampers with its own copy the way
someone with the SD card could, and `verify` must name the call and what was done to it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import callrec, listed_calls, run_simulation


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    done = run_simulation(tmp_path_factory.mktemp("recorded"), [
        {"line": 1, "audio": "line1.wav", "events": [(1.0, "hook", "off"), (6.0, "hook", "on"),
                                                      (10.0, "hook", "off"), (15.0, "hook", "on")]},
        {"line": 2, "audio": "line2.wav", "events": [(2.0, "ring", "on"), (3.0, "ring", "off"),
                                                      (3.5, "hook", "off"), (9.0, "hook", "on")]}])
    assert done.returncode == 0, done.stderr
    return done.data, done.events


@pytest.fixture
def data(recorded: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(recorded[0], copy, ignore=shutil.ignore_patterns("*.lock", "control.sock"))
    return copy


def _verify(data: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = callrec("verify", "--data", str(data), "--json", *extra)
    assert not out.stderr.strip() or "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def _problems(report: dict[str, Any]) -> set[tuple[str | None, str]]:
    return {(p["call_id"], p["kind"]) for p in report["problems"]}


def _audio(data: Path, record: dict[str, Any]) -> Path:
    return data / record["recording"]["path"]


def _sidecar(data: Path, record: dict[str, Any]) -> Path:
    audio = _audio(data, record)
    return audio.with_name(record["call_id"] + ".json")


def test_verify_passes_on_an_untouched_data_dir_and_prints_the_device_key(data):
    out = callrec("verify", "--data", str(data))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK: 3 call(s) checked" in out.stdout
    key = (data / "evidence" / "device.pub").read_text().strip()
    assert key.startswith("ed25519:") and key in out.stdout
    assert (data / "evidence" / "device.key").stat().st_mode & 0o077 == 0, "the device key is owner-only"


def test_each_call_record_carries_its_hashes_and_the_previous_entry(recorded, data):
    _, events = recorded
    records = listed_calls(data)
    heads = [e["chain_head"] for e in events if e["type"] == "recording.saved"]
    assert len(heads) == 3 and all(heads)
    prev = "0" * 64
    for record in sorted(records, key=lambda r: r["chain"]["seq"]):
        assert record["recording"]["sha256"] and record["chain"]["sidecar_sha256"]
        assert record["chain"]["prev"] == prev
        prev = record["chain"]["hash"]
    assert heads[-1] == prev, "the last recording.saved names the chain head"
    assert all(r["announcement"]["purpose"] for r in records if r["announcement"]), "the purpose goes with the proof"


def test_a_flipped_byte_of_audio_is_named_by_call_id(data):
    record = listed_calls(data)[0]
    audio = _audio(data, record)
    raw = bytearray(audio.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    audio.write_bytes(bytes(raw))
    code, report = _verify(data)
    assert code == 1 and _problems(report) == {(record["call_id"], "file altered")}


def test_an_edited_sidecar_field_is_named(data):
    record = listed_calls(data)[1]
    sidecar = _sidecar(data, record)
    body = json.loads(sidecar.read_text())
    body["caller_number"] = "0120999999"
    sidecar.write_text(json.dumps(body, indent=2))
    code, report = _verify(data)
    assert code == 1 and _problems(report) == {(record["call_id"], "sidecar altered")}


def test_a_deleted_file_is_missing_not_deleted(data):
    record = listed_calls(data)[2]
    _audio(data, record).unlink()
    code, report = _verify(data)
    assert code == 1 and (record["call_id"], "file missing") in _problems(report)


def test_a_deleted_index_entry_is_named(data):
    record = listed_calls(data)[0]
    with sqlite3.connect(data / "index.sqlite") as db:
        db.execute("DELETE FROM documents WHERE call_id = ?", (record["call_id"],))
    code, report = _verify(data)
    assert code == 1 and _problems(report) == {(record["call_id"], "index entry missing")}


def test_an_altered_index_entry_is_named_with_the_field(data):
    record = listed_calls(data)[1]
    with sqlite3.connect(data / "index.sqlite") as db:
        (body,) = db.execute("SELECT body FROM documents WHERE call_id = ?", (record["call_id"],)).fetchone()
        changed = {**json.loads(body), "duration_s": 1.0}
        db.execute("UPDATE documents SET body = ? WHERE call_id = ?", (json.dumps(changed), record["call_id"]))
    code, report = _verify(data)
    assert code == 1 and _problems(report) == {(record["call_id"], "index entry altered")}
    assert "duration_s" in report["problems"][0]["detail"]


def test_two_swapped_recordings_are_both_named(data):
    first, second = listed_calls(data)[:2]
    a, b = _audio(data, first), _audio(data, second)
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    code, report = _verify(data)
    assert code == 1
    assert _problems(report) == {(first["call_id"], "file swapped"), (second["call_id"], "file swapped")}


def test_a_truncated_file_is_named(data):
    record = listed_calls(data)[2]
    audio = _audio(data, record)
    audio.write_bytes(audio.read_bytes()[:1000])
    code, report = _verify(data)
    assert code == 1 and _problems(report) == {(record["call_id"], "file truncated")}


def test_a_file_nobody_indexed_is_named(data):
    record = listed_calls(data)[0]
    stranger = _audio(data, record).with_name("20261201T000000000Z-L1-dead.flac")
    shutil.copy(_audio(data, record), stranger)
    code, report = _verify(data)
    assert code == 1 and _problems(report) == {("20261201T000000000Z-L1-dead", "file nobody indexed")}


def test_an_edited_audit_line_breaks_the_audit_chain(data):
    assert callrec("hold", listed_calls(data)[0]["call_id"], "--reason", "dispute", "--data", str(data)).returncode == 0
    audit = data / "evidence" / "audit.jsonl"
    lines = audit.read_text().splitlines()
    lines[-1] = lines[-1].replace("dispute", "routine")
    audit.write_text("\n".join(lines) + "\n")
    code, report = _verify(data)
    assert code == 1 and {kind for _, kind in _problems(report)} == {"audit log broken"}


def test_a_rewritten_chain_entry_with_a_fresh_hash_fails_the_signature(data):
    """An attacker who edits a recording, its hash in the chain and re-hashes the entry still
    cannot sign it: the device key's signature no longer verifies."""
    from callrec.evidence.ledger import entry_hash

    record = listed_calls(data)[0]
    audio = _audio(data, record)
    raw = bytearray(audio.read_bytes())
    raw[-10] ^= 0xFF
    audio.write_bytes(bytes(raw))
    chain = data / "evidence" / "chain.jsonl"
    entries = [json.loads(line) for line in chain.read_text().splitlines()]
    import hashlib

    for entry in entries:   # the whole chain rewritten, links and all
        if entry["call_id"] == record["call_id"]:
            entry["recording_sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
    prev = "0" * 64
    for entry in entries:
        entry["prev"] = prev
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
    chain.write_text("".join(json.dumps(e) + "\n" for e in entries))
    code, report = _verify(data)
    # and the head the service journaled (evidence.head) is not the rewritten one
    assert code == 1 and {kind for _, kind in _problems(report)} == {"signature invalid", "chain rewritten"}


def test_verify_against_a_pinned_key_of_another_device_fails(data, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    from callrec.evidence import DeviceKey

    foreign = DeviceKey.load_or_create(other).public_id
    code, report = _verify(data, "--key", foreign)
    assert code == 1 and "signature invalid" in {kind for _, kind in _problems(report)}
    out = callrec("verify", "--data", str(data), "--key", "ed25519:nonsense")
    assert out.returncode == 1 and "--key" in out.stderr and "Traceback" not in out.stderr


def test_prune_deletes_by_policy_keeps_held_calls_and_verify_tells_deleted_from_missing(data):
    held, *others = listed_calls(data)
    assert callrec("hold", held["call_id"], "--reason", "court case 12", "--data", str(data)).returncode == 0
    dry = callrec("prune", "--dry-run", "--now", "2099-01-01T00:00:00Z", "--data", str(data))
    assert dry.returncode == 0 and dry.stdout.count("would delete") == 2
    assert len(listed_calls(data)) == 3, "a dry run deletes nothing"
    out = callrec("prune", "--now", "2099-01-01T00:00:00Z", "--data", str(data))
    assert out.returncode == 0 and out.stdout.count("deleted 2") == 2 or out.stdout.count("deleted ") == 2, out.stdout
    remaining = listed_calls(data)
    assert [r["call_id"] for r in remaining] == [held["call_id"]]
    assert remaining[0]["hold"]["reason"] == "court case 12"
    for record in others:
        assert not _audio(data, record).exists() and not _sidecar(data, record).exists()
    code, report = _verify(data)
    assert code == 0 and report["deleted"] == 2, report
    assert callrec("release", held["call_id"], "--data", str(data)).returncode == 0
    assert callrec("prune", "--now", "2099-01-01T00:00:00Z", "--data", str(data)).returncode == 0
    assert listed_calls(data) == []
    code, report = _verify(data)
    assert code == 0 and report["deleted"] == 3
    kinds = [json.loads(line)["kind"] for line in (data / "evidence" / "chain.jsonl").read_text().splitlines()]
    assert kinds == ["call", "call", "call", "hold", "deleted", "deleted", "release", "deleted"]


def test_retention_per_direction_on_an_injected_clock(data, tmp_path):
    records = listed_calls(data)
    config = tmp_path / "r.toml"
    config.write_text("[retention]\ndays = 30\ninbound_days = 1\n")
    started = min(r["started_at"] for r in records)
    import datetime as dt

    two_days = (dt.datetime.fromisoformat(started) + dt.timedelta(days=2)).isoformat()
    out = callrec("prune", "--dry-run", "--now", two_days, "--data", str(data), "--config", str(config))
    due = {line.split()[2] for line in out.stdout.splitlines() if line.startswith("would delete")}
    assert due == {r["call_id"] for r in records if r["direction"] == "inbound"}, out.stdout


def test_export_bundle_holds_recordings_records_purpose_manifest_and_chain_proof(data, tmp_path):
    record = listed_calls(data)[1]
    bundle = tmp_path / "bundle.zip"
    out = callrec("export", "--call", record["call_id"], "--out", str(bundle), "--data", str(data))
    assert out.returncode == 0, out.stderr
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("manifest.json"))
        audio = z.read(f"recordings/{_audio(data, record).name}")
        assert audio == _audio(data, record).read_bytes(), "byte for byte"
        import hashlib

        for name, digest in manifest["files"].items():
            assert hashlib.sha256(z.read(name)).hexdigest() == digest, name
        assert "This call is recorded" in z.read("purpose.txt").decode()
        assert record["call_id"] in z.read("summary.html").decode()
        chain = [json.loads(line) for line in z.read("chain.jsonl").decode().splitlines()]
    assert {"manifest.json", "purpose.txt", "summary.html", "chain.jsonl", f"records/{record['call_id']}.json",
            f"sidecars/{record['call_id']}.json"} <= names
    (item,) = manifest["calls"]
    assert item["chain"]["recording_sha256"] == hashlib.sha256(audio).hexdigest()
    assert chain[0]["hash"] == item["chain"]["hash"] and chain[-1]["hash"] == manifest["chain_head"]
    assert manifest["device_public_key"] == (data / "evidence" / "device.pub").read_text().strip()
    again = callrec("export", "--call", record["call_id"], "--out", str(bundle), "--data", str(data))
    assert again.returncode == 1 and "exists" in again.stderr
    nothing = callrec("export", "--number", "0000", "--out", str(tmp_path / "n.zip"), "--data", str(data))
    assert nothing.returncode == 1 and "no calls match" in nothing.stderr


def test_the_audit_log_says_who_held_exported_and_deleted(data, tmp_path):
    record = listed_calls(data)[0]
    callrec("hold", record["call_id"], "--reason", "r", "--data", str(data))
    callrec("export", "--call", record["call_id"], "--out", str(tmp_path / "b.zip"), "--data", str(data))
    callrec("release", record["call_id"], "--data", str(data))
    callrec("prune", "--now", "2099-01-01T00:00:00Z", "--data", str(data))
    out = callrec("audit", "--json", "--data", str(data))
    entries = [json.loads(line) for line in out.stdout.splitlines()]
    actions = [e["action"] for e in entries]
    assert actions[0] == "config.changed"
    assert actions[1:4] == ["hold", "export", "release"] and actions.count("deleted") == 3 and actions[-1] == "prune"
    assert all(e["who"].startswith("cli:") for e in entries[1:])
    assert callrec("audit", "--data", str(data)).stdout.count("\n") == len(entries)


def test_hold_and_release_refuse_unknown_calls_without_a_traceback(data):
    out = callrec("hold", "nope", "--reason", "x", "--data", str(data))
    assert out.returncode == 1 and "no call nope" in out.stderr and "Traceback" not in out.stderr
    out = callrec("hold", "--reason", "x", "--data", str(data))
    assert out.returncode == 1 and "CALL_ID" in out.stderr


def test_a_lost_index_is_rebuilt_with_chain_links_and_holds_and_still_verifies(data):
    held = listed_calls(data)[0]
    assert callrec("hold", held["call_id"], "--reason", "claim 7", "--data", str(data)).returncode == 0
    (data / "index.sqlite").unlink()
    for extra in data.glob("index.sqlite-*"):
        extra.unlink()
    out = callrec("recover", "--data", str(data))
    assert out.returncode == 0, out.stdout + out.stderr
    records = {r["call_id"]: r for r in listed_calls(data)}
    assert len(records) == 3 and all(r["chain"] for r in records.values())
    assert records[held["call_id"]]["hold"]["reason"] == "claim 7", "a legal hold outlives the index"
    code, report = _verify(data)
    assert code == 0, report
