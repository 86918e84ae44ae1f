"""Tampering with the evidence the way someone with the SD card (or the office share) could, issue 22
items 3, 4 and 9: a legal hold taken out of the index, the chain's or the audit log's tail cut, an
archived ledger segment deleted, files planted among the recordings, a ledger line built to crash
the parser. Each case is named by `verify` (exit 1) and none gives a traceback.

One simulated day of three calls is recorded once (by the service, whose head watcher journals the
ledgers' heads); each test tampers with its own copy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ONE_LINE_ON_FILE_PCMS, callrec, file_pcms, listed_calls, run_simulation

TESTS = Path(__file__).resolve().parents[1]
LATER = "2099-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = run_simulation(tmp_path_factory.mktemp("tamper"), [
        {"line": 1, "audio": "line1.wav", "seconds": 20, "events": [(1.0, "hook", "off"), (5.0, "hook", "on"),
                                                                     (8.0, "hook", "off"), (12.0, "hook", "on")]},
        {"line": 2, "audio": "line2.wav", "seconds": 20, "events": [(2.0, "ring", "on"), (3.0, "ring", "off"),
                                                                     (3.5, "hook", "off"), (8.0, "hook", "on")]}])
    assert done.returncode == 0, done.stderr
    return done.data


@pytest.fixture
def data(recorded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(recorded, copy, ignore=shutil.ignore_patterns("*.lock", "control.sock", ".lock"))
    return copy


def _verify(data: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = callrec("verify", "--data", str(data), "--json", *extra)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def _problems(report: dict[str, Any]) -> set[tuple[str | None, str]]:
    return {(p["call_id"], p["kind"]) for p in report["problems"]}


def _detail(report: dict[str, Any], kind: str) -> str:
    return " | ".join(p["detail"] for p in report["problems"] if p["kind"] == kind)


def _hold(data: Path, call_id: str, reason: str = "court case 12") -> None:
    out = callrec("hold", call_id, "--reason", reason, "--data", str(data))
    assert out.returncode == 0, out.stderr


def _ledger(data: Path, name: str) -> Path:
    return data / "evidence" / f"{name}.jsonl"


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _edit_index(data: Path, call_id: str, **changes: Any) -> None:
    with sqlite3.connect(data / "index.sqlite") as db:
        (body,) = db.execute("SELECT body FROM documents WHERE call_id = ?", (call_id,)).fetchone()
        db.execute("UPDATE documents SET body = ? WHERE call_id = ?",
                   (json.dumps({**json.loads(body), **changes}), call_id))


def _forget_call(data: Path, record: dict[str, Any]) -> None:
    """The call's index row and files gone, as if it had never been."""
    with sqlite3.connect(data / "index.sqlite") as db:
        db.execute("DELETE FROM documents WHERE call_id = ?", (record["call_id"],))
    audio = data / record["recording"]["path"]
    audio.unlink()
    audio.with_name(record["call_id"] + ".json").unlink()


# ---- item 3: legal holds decided from the signed chain -----------------------------------------------


def test_a_hold_taken_out_of_the_index_keeps_the_call_through_prune_and_verify_names_it(data):
    held = listed_calls(data)[0]
    _hold(data, held["call_id"])
    _edit_index(data, held["call_id"], hold=None)
    code, report = _verify(data)
    assert code == 1 and (held["call_id"], "hold missing from the index") in _problems(report), report
    out = callrec("prune", "--now", LATER, "--data", str(data))
    assert out.returncode == 0, out.stderr
    assert held["call_id"] in {r["call_id"] for r in listed_calls(data)}, "the chain's hold keeps the call"
    assert (data / held["recording"]["path"]).exists()
    assert "hold" in out.stderr and held["call_id"] in out.stderr, "the disagreement is logged"
    code, report = _verify(data)
    assert code == 1 and _problems(report) == {(held["call_id"], "hold missing from the index")}, report


def test_the_chains_last_hold_line_cut_is_named_and_the_index_hold_still_keeps_the_call(data):
    held = listed_calls(data)[1]
    _hold(data, held["call_id"])
    chain = _ledger(data, "chain")
    lines = _lines(chain)
    assert json.loads(lines[-1])["kind"] == "hold"
    chain.write_bytes(b"".join(lines[:-1]))
    code, report = _verify(data)
    assert code == 1 and (held["call_id"], "hold not in the chain") in _problems(report), report
    assert callrec("prune", "--now", LATER, "--data", str(data)).returncode == 0
    assert [r["call_id"] for r in listed_calls(data)] == [held["call_id"]], "either source saying held keeps the call"


def test_a_call_deleted_while_under_hold_is_named(data):
    """The record the old prune left (hold -> deleted, no release), written behind the device's back."""
    from callrec.evidence import Evidence

    held = listed_calls(data)[2]
    _hold(data, held["call_id"])
    _forget_call(data, held)
    Evidence.open(data).chain.note("deleted", held["call_id"], by="cli:someone", reason="retention")
    code, report = _verify(data)
    assert code == 1 and _problems(report) == {(held["call_id"], "deleted while under legal hold")}, report


def test_a_release_then_prune_is_clean(data):
    held = listed_calls(data)[0]
    _hold(data, held["call_id"])
    assert callrec("release", held["call_id"], "--data", str(data)).returncode == 0
    assert callrec("prune", "--now", LATER, "--data", str(data)).returncode == 0
    assert listed_calls(data) == []
    code, report = _verify(data)
    assert code == 0, report


# ---- item 4: the ledgers' heads witnessed --------------------------------------------------------------


def test_the_chains_tail_cut_with_its_call_is_named_by_the_journals_witness(data):
    """The last call erased everywhere on the card but the journal: the chain's tail, its index row,
    its files. Only a witness of the head can tell."""
    chain = _ledger(data, "chain")
    lines = _lines(chain)
    last = json.loads(lines[-1])
    record = next(r for r in listed_calls(data) if r["call_id"] == last["call_id"])
    _forget_call(data, record)
    chain.write_bytes(b"".join(lines[:-1]))
    code, report = _verify(data)
    assert code == 1 and _problems(report) == {(None, "chain tail missing")}, report
    detail = _detail(report, "chain tail missing")
    assert f"seq {last['seq']}" in detail and "event journal" in detail and f"ends at seq {last['seq'] - 1}" in detail


def test_a_rewritten_chain_head_is_named(data):
    """The last entry edited and hashed afresh (only its signature gives it away inside the chain)."""
    from callrec.evidence.ledger import entry_hash

    chain = _ledger(data, "chain")
    lines = _lines(chain)
    entry = json.loads(lines[-1])
    entry["status"] = "discarded"
    entry["hash"] = entry_hash(entry)
    lines[-1] = (json.dumps(entry) + "\n").encode()
    chain.write_bytes(b"".join(lines))
    code, report = _verify(data)
    assert code == 1 and (None, "chain rewritten") in _problems(report), report
    assert f"entry seq {entry['seq']}" in _detail(report, "chain rewritten")


def _run_service(tmp_path: Path, data: Path) -> subprocess.Popen[str]:
    """`callrec run` on the data directory (the GPIO pins are tests/fake_pi; audio is alsa-lib's file
    plugin), so its head watcher sees what CLI tools append beside it."""
    config = tmp_path / "callrec.toml"
    config.write_text(ONE_LINE_ON_FILE_PCMS)
    env = {**os.environ, **file_pcms(tmp_path), "PYTHONPATH": f"{TESTS / 'fake_pi'}:{TESTS}"}
    return subprocess.Popen([sys.executable, "-m", "callrec", "--config", str(config), "run", "--data", str(data),
                             "--control-socket", str(tmp_path / "control.sock")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _witnessed_audit_seq(data: Path) -> int:
    from callrec.evidence import latest_head
    from callrec.store import Journal

    journal = Journal(data / "journal.sqlite", readonly=True)
    try:
        heads = latest_head(journal)
    finally:
        journal.close()
    return heads.audit.seq if heads is not None and heads.audit is not None else 0


def _wait_for(predicate: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.parametrize("action", ["export", "hold", "prune"])
def test_the_audit_tail_dropped_after_a_cli_action_is_named_by_the_running_services_witness(data, tmp_path,
                                                                                            action):
    call_id = listed_calls(data)[0]["call_id"]
    service = _run_service(tmp_path, data)
    try:
        _wait_for(lambda: (data / "control.sock").exists() or (tmp_path / "control.sock").exists(),
                  "the service listening")
        args = {"export": ["export", "--call", call_id, "--out", str(tmp_path / "b.zip")],
                "hold": ["hold", call_id, "--reason", "claim"],
                "prune": ["prune", "--now", LATER]}[action]
        out = callrec(*args, "--data", str(data))
        assert out.returncode == 0, out.stderr
        audit = _ledger(data, "audit")
        last = json.loads(_lines(audit)[-1])
        assert last["action"] == action
        _wait_for(lambda: _witnessed_audit_seq(data) == last["seq"], "the service witnessing the audit head")
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=60) == 0, service.stderr.read() if service.stderr else ""
    lines = _lines(audit)
    first_dropped = json.loads(lines[-1])["seq"]
    audit.write_bytes(b"".join(lines[:-1]))
    code, report = _verify(data)
    assert code == 1 and (None, "audit log tail missing") in _problems(report), report
    detail = _detail(report, "audit log tail missing")
    assert f"seq {first_dropped}" in detail and f"ends at seq {first_dropped - 1}" in detail, detail


def test_verify_says_which_witnesses_it_compared_the_heads_with(data):
    code, report = _verify(data)
    assert code == 0 and any("event journal" in note for note in report["notes"]), report


# ---- the archive's witnesses -------------------------------------------------------------------------


def _archived(tmp_path: Path, data: Path) -> tuple[Path, Path]:
    archive = tmp_path / "archive"
    config = tmp_path / "archive.toml"
    config.write_text(f'[mqtt]\ndevice_id = "d1"\n[archive]\nurl = "file://{archive}"\n')
    sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config))
    assert sync.returncode == 0, sync.stdout + sync.stderr
    return archive, config


def test_every_archived_ledger_segment_comes_with_a_signed_witness_of_both_heads(data, tmp_path):
    archive, config = _archived(tmp_path, data)
    witnesses = sorted((archive / "d1" / "witness").iterdir())
    assert len(witnesses) == 1
    document = json.loads(witnesses[-1].read_text())
    chain_last = json.loads(_lines(_ledger(data, "chain"))[-1])
    audit_last = json.loads(_lines(_ledger(data, "audit"))[-1])
    assert document["chain"]["seq"] == chain_last["seq"] and document["chain"]["hash"] == chain_last["hash"]
    assert document["audit"]["seq"] == audit_last["seq"] and document["audit"]["hash"] == audit_last["hash"]
    assert document["sig"] and document["device_key"] == (data / "evidence" / "device.pub").read_text().strip()
    check = callrec("verify", "--archive", f"file://{archive}", "--config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_audit_tail_dropped_after_an_archived_export_is_named_by_the_archives_witness(data, tmp_path):
    call_id = listed_calls(data)[0]["call_id"]
    assert callrec("export", "--call", call_id, "--out", str(tmp_path / "b.zip"), "--data", str(data)).returncode == 0
    archive, config = _archived(tmp_path, data)
    for journal in data.glob("journal.sqlite*"):   # the local witness gone too
        journal.unlink()
    audit = _ledger(data, "audit")
    lines = _lines(audit)
    export_seq = json.loads(lines[-1])["seq"]
    audit.write_bytes(b"".join(lines[:-1]))
    code, report = _verify(data, "--config", str(config))
    assert code == 1 and _problems(report) == {(None, "audit log tail missing")}, report
    detail = _detail(report, "audit log tail missing")
    assert f"seq {export_seq}" in detail and "archive" in detail, detail


def test_a_deleted_archived_audit_segment_is_named_by_verify_archive(data, tmp_path):
    call_id = listed_calls(data)[0]["call_id"]
    archive, config = _archived(tmp_path, data)
    _hold(data, call_id)   # a second audit segment (and chain segment) follows
    assert callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config)).returncode == 0
    chain_dir = archive / "d1" / "chain"
    audits = sorted(p for p in chain_dir.iterdir() if p.name.startswith("audit-"))
    assert len(audits) == 2
    tail = audits[-1]
    saved = tail.read_bytes()
    tail.unlink()
    check = callrec("verify", "--archive", f"file://{archive}", "--config", str(config), "--json")
    assert check.returncode == 1, check.stdout
    report = json.loads(check.stdout)
    assert (None, "audit log tail missing") in _problems(report), report
    assert tail.name.split("-")[1].lstrip("0") in _detail(report, "audit log tail missing")
    tail.write_bytes(saved)
    audits[0].unlink()   # now a gap at the start
    check = callrec("verify", "--archive", f"file://{archive}", "--config", str(config), "--json")
    report = json.loads(check.stdout)
    assert check.returncode == 1 and (None, "audit segment missing") in _problems(report), report
    assert audits[0].name in _detail(report, "audit segment missing") or "seq 1" in _detail(report,
                                                                                           "audit segment missing")


def test_a_deleted_archived_chain_tail_segment_is_named_by_verify_archive(data, tmp_path):
    call_id = listed_calls(data)[0]["call_id"]
    archive, config = _archived(tmp_path, data)
    _hold(data, call_id)
    assert callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config)).returncode == 0
    chains = sorted(p for p in (archive / "d1" / "chain").iterdir() if p.name.startswith("chain-"))
    chains[-1].unlink()
    check = callrec("verify", "--archive", f"file://{archive}", "--config", str(config), "--json")
    report = json.loads(check.stdout)
    assert check.returncode == 1 and (None, "chain tail missing") in _problems(report), report


# ---- item 9: planted files and hostile ledger lines ----------------------------------------------------


def _plant_copy_in_another_day(data: Path, record: dict[str, Any]) -> Path:
    audio = data / record["recording"]["path"]
    other = data / "recordings" / "2020" / "01" / "01" / audio.name
    other.parent.mkdir(parents=True)
    shutil.copy(audio, other)
    return other


def _plant_wav_beside(data: Path, record: dict[str, Any]) -> Path:
    audio = data / record["recording"]["path"]
    planted = audio.with_name(record["call_id"] + ".wav")
    planted.write_bytes(b"RIFF....WAVEfmt ")
    return planted


def _plant_mp3(data: Path, record: dict[str, Any]) -> Path:
    planted = (data / record["recording"]["path"]).with_name("music.mp3")
    planted.write_bytes(b"ID3\x03")
    return planted


def _plant_orphan_sidecar(data: Path, record: dict[str, Any]) -> Path:
    sidecar = (data / record["recording"]["path"]).with_name(record["call_id"] + ".json")
    planted = sidecar.with_name("20200101T000000000Z-L1-beef.json")
    shutil.copy(sidecar, planted)
    return planted


def _plant_stray_part(data: Path, record: dict[str, Any]) -> Path:
    planted = (data / record["recording"]["path"]).with_name("20200101T000000000Z-L1-cafe.pcm.part")
    planted.write_bytes(b"\0" * 1600)
    return planted


def _plant_part_of_a_finished_call(data: Path, record: dict[str, Any]) -> Path:
    planted = (data / record["recording"]["path"]).with_name(record["call_id"] + ".pcm.part")
    planted.write_bytes(b"\0" * 1600)
    return planted


@pytest.mark.parametrize("plant", [_plant_copy_in_another_day, _plant_wav_beside, _plant_mp3,
                                   _plant_orphan_sidecar, _plant_stray_part, _plant_part_of_a_finished_call])
def test_a_planted_file_is_named_with_its_path(data, plant):
    planted = plant(data, listed_calls(data)[0])
    code, report = _verify(data)
    relative = str(planted.relative_to(data))
    named = [p for p in report["problems"] if relative in p["detail"]]
    assert code == 1 and named, report
    assert {p["kind"] for p in named} <= {"file planted", "file nobody indexed"}, named


@pytest.mark.parametrize("ledger", ["chain", "audit"])
@pytest.mark.parametrize("line", [b"[" * 100_000, b"1" * 5000, b"[1, 2]", b"\xff\xfe{\"seq\": 1}",
                                  b'{"seq": 1e999, "hash": []}', b'{"seq": "x", "hash": "y", "prev": 7}'])
def test_a_hostile_ledger_line_is_a_reported_problem_never_a_traceback(data, ledger, line):
    path = _ledger(data, ledger)
    with open(path, "ab") as handle:
        handle.write(line + b"\n")
    code, report = _verify(data)
    assert code == 1 and report["problems"], report
    out = callrec("hold", listed_calls(data)[0]["call_id"], "--reason", "after the bad line", "--data", str(data))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    last = json.loads(_lines(path)[-1])
    assert isinstance(last["seq"], int) and last["seq"] > 1, "appends go on after the last readable entry"
    out = callrec("verify", "--data", str(data))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr


def test_the_service_starts_over_a_hostile_chain_line(data, tmp_path):
    with open(_ledger(data, "chain"), "ab") as handle:
        handle.write(b"[" * 100_000 + b"\n")
    out = run_simulation(tmp_path, [{"line": 1, "audio": "line1.wav", "seconds": 6, "events": [
        (0.5, "hook", "off"), (3.5, "hook", "on")]}], data=data)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr


# ---- a cut tail re-grown by the device must not be vouched for (review of issue 22) ------------------


def test_a_chain_cut_after_it_was_archived_is_not_shipped_or_witnessed_and_verify_names_it(data, tmp_path):
    """Cut the chain's last hold (index hold out too), let the device append as if nothing happened:
    the uploader must not write a witness vouching for the new last entry, and verify must name it."""
    call_id = listed_calls(data)[0]["call_id"]
    _hold(data, call_id)
    archive, config = _archived(tmp_path, data)
    witnesses_before = sorted((archive / "d1" / "witness").iterdir())
    for journal in data.glob("journal.sqlite*"):   # only the archive witnesses now
        journal.unlink()
    chain = _ledger(data, "chain")
    chain.write_bytes(b"".join(_lines(chain)[:-1]))
    _edit_index(data, call_id, hold=None)
    out = callrec("prune", "--now", LATER, "--data", str(data))   # the call is deleted: nothing local remembers
    assert out.returncode == 0, out.stderr
    sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config))
    assert "rewritten" in sync.stdout + sync.stderr
    assert sorted((archive / "d1" / "witness").iterdir()) == witnesses_before, "no witness of the rewritten chain"
    code, report = _verify(data, "--config", str(config))
    assert code == 1 and (None, "chain rewritten") in _problems(report), report


def test_prune_on_the_command_line_refuses_while_the_chain_lacks_the_head_the_service_witnessed(data):
    """With the device's own witness in the event journal, `callrec prune` deletes nothing from a chain
    that lost its witnessed head (a cut hold and an edited index), and says why."""
    from callrec.events import Event, EventBus
    from callrec.evidence import read_heads
    from callrec.store import Journal

    call_id = listed_calls(data)[0]["call_id"]
    _hold(data, call_id)
    journal = Journal(data / "journal.sqlite")
    EventBus(journal).emit(Event("evidence.head", None, None, time.time(), read_heads(data).fields()))
    journal.close()
    chain = _ledger(data, "chain")
    chain.write_bytes(b"".join(_lines(chain)[:-1]))
    _edit_index(data, call_id, hold=None)
    before = {c["call_id"] for c in listed_calls(data)}
    out = callrec("prune", "--now", LATER, "--data", str(data))
    assert out.returncode == 1 and "nothing was deleted" in out.stderr, out.stdout + out.stderr
    assert {c["call_id"] for c in listed_calls(data)} == before
