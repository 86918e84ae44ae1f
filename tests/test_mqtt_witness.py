"""The ledgers' heads retained on the broker (`B/evidence/head`, issue 22 item 4): a witness off the
device that `callrec verify` reads back, so a tail cut on the card is named even when the card's own
event journal was cut with it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from conftest import callrec, noise_wav, scenario_toml
from mqtt_support import Rig, Subscriber, free_port, wait_until

pytest_plugins = ["conftest_mqtt"]


def _simulated(tmp_path: Path, broker_port: int) -> tuple[Path, Path]:
    noise_wav(tmp_path / "line1.wav", 12, seed=4)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (0.5, "hook", "off"), (3.5, "hook", "on"), (5.0, "hook", "off"), (8.0, "hook", "on")]}]))
    config = tmp_path / "c.toml"
    config.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\ndevice_id = "wit1"\n')
    data = tmp_path / "data"
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    return data, config


def _last(path: Path) -> dict[str, Any]:
    return json.loads(path.read_bytes().splitlines()[-1])


def test_the_heads_are_retained_on_the_broker_as_the_ledgers_end(tmp_path, broker):
    data, _config = _simulated(tmp_path, broker.port)
    subscriber = Subscriber(broker, "callrec/wit1/evidence/head")
    try:
        assert wait_until(lambda: bool(subscriber.on("callrec/wit1/evidence/head")))
        message = subscriber.on("callrec/wit1/evidence/head")[-1]
        head = json.loads(message.payload)
    finally:
        subscriber.close()
    assert message.retain
    chain, audit = _last(data / "evidence" / "chain.jsonl"), _last(data / "evidence" / "audit.jsonl")
    assert head["chain"] == {"seq": chain["seq"], "hash": chain["hash"]}
    assert head["audit"] == {"seq": audit["seq"], "hash": audit["hash"]}


def test_a_tail_cut_with_the_journal_gone_is_named_by_the_brokers_witness(tmp_path, broker):
    data, config = _simulated(tmp_path, broker.port)
    chain = data / "evidence" / "chain.jsonl"
    lines = chain.read_bytes().splitlines(keepends=True)
    last = json.loads(lines[-1])
    with sqlite3.connect(data / "index.sqlite") as db:   # the call gone from the card entirely
        (body,) = db.execute("SELECT body FROM documents WHERE call_id = ?", (last["call_id"],)).fetchone()
        db.execute("DELETE FROM documents WHERE call_id = ?", (last["call_id"],))
    audio = data / json.loads(body)["recording"]["path"]
    audio.unlink()
    audio.with_name(last["call_id"] + ".json").unlink()
    chain.write_bytes(b"".join(lines[:-1]))
    for journal in data.glob("journal.sqlite*"):
        journal.unlink()
    out = callrec("verify", "--data", str(data), "--config", str(config), "--json")
    assert "Traceback" not in out.stderr, out.stderr
    report = json.loads(out.stdout)
    assert out.returncode == 1, report
    (problem,) = report["problems"]
    assert problem["kind"] == "chain tail missing" and "MQTT broker" in problem["detail"], problem
    assert f"seq {last['seq']}" in problem["detail"]


def test_an_unreachable_broker_is_a_note_not_a_problem(tmp_path, broker):
    data, _config = _simulated(tmp_path, broker.port)
    config = tmp_path / "away.toml"
    config.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\ndevice_id = "wit1"\n')
    out = callrec("verify", "--data", str(data), "--config", str(config), "--json")
    report = json.loads(out.stdout)
    assert out.returncode == 0 and not report["problems"], report
    assert any("MQTT broker" in note and "could not be asked" in note for note in report["notes"]), report


def test_after_a_restart_the_journaled_heads_are_retained_again_without_a_new_event(rig_factory, broker):
    rig: Rig = rig_factory(broker)
    rig.emit("evidence.head", None, chain={"seq": 9, "hash": "ab" * 32}, audit={"seq": 4, "hash": "cd" * 32})
    subscriber = rig.subscribe(f"{rig.root}/evidence/head")
    rig.service.start()   # subscribed to the bus after the event: the journal is where it comes from
    assert wait_until(lambda: bool(subscriber.on(f"{rig.root}/evidence/head")))
    head = json.loads(subscriber.on(f"{rig.root}/evidence/head")[-1].payload)
    assert head["chain"] == {"seq": 9, "hash": "ab" * 32} and head["audit"] == {"seq": 4, "hash": "cd" * 32}
    assert head["at"].endswith("Z")
