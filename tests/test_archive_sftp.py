"""Offload to a real OpenSSH sshd (issue 12): a day of calls archived and verified from the
archive alone, an outage of 50 calls, kill -9 mid-upload, a tampered object, an unknown host key,
a refused login — nothing lost, nothing duplicated, nothing deleted locally before it is safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from archive_support import sshd  # noqa: F401 - fixture
from conftest import callrec, noise_wav, scenario_toml

DEVICE = "branch-7"


def _config(tmp_path: Path, server: Any, extra: str = "") -> Path:
    config = tmp_path / "c.toml"
    config.write_text(f'[mqtt]\ndevice_id = "{DEVICE}"\n' + server.config_toml() + extra)
    return config


def _scenario(tmp_path: Path, calls: int, seconds: float = 3.0) -> Path:
    events, at = [], 0.5
    for _ in range(calls):
        events += [(at, "hook", "off"), (at + seconds, "hook", "on")]
        at += seconds + 1.0
    noise_wav(tmp_path / "line1.wav", at + 1, seed=3)
    path = tmp_path / "s.toml"
    path.write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": events}]))
    return path


def _records(data: Path) -> list[dict[str, Any]]:
    out = callrec("calls", "list", "--json", "--limit", "1000", "--data", str(data))
    return sorted((json.loads(line) for line in out.stdout.splitlines()), key=lambda r: r["call_id"])


def _archived_keys(server: Any) -> list[str]:
    return sorted(str(p.relative_to(server.archive)) for p in server.archive.rglob("*") if p.is_file())


def test_a_day_of_calls_is_archived_and_verified_from_the_archive_alone(tmp_path, sshd):  # noqa: F811
    config = _config(tmp_path, sshd)
    data = tmp_path / "data"
    out = callrec("simulate", str(_scenario(tmp_path, 6)), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    archived = [e for e in events if e["type"] == "recording.archived"]
    records = _records(data)
    assert len(records) == 6 and all(r["archived_at"] for r in records)
    assert sorted(e["call_id"] for e in archived) == [r["call_id"] for r in records]
    keys = _archived_keys(sshd)
    for record in records:
        assert f"{DEVICE}/{record['recording']['path']}" in keys
        assert f"{DEVICE}/{record['recording']['path'].rsplit('/', 1)[0]}/{record['call_id']}.json" in keys
    assert any(k.startswith(f"{DEVICE}/chain/chain-") for k in keys) and f"{DEVICE}/chain/device.pub" in keys
    shutil_rmtree(data)   # the office has the archive only
    check = callrec("verify", "--archive", sshd.url(), "--config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{DEVICE}: OK: 6 call(s) checked in the archive" in check.stdout
    listing = callrec("archive", "list", "--config", str(config), "--json")
    assert len(listing.stdout.splitlines()) == 6
    bundle = tmp_path / "b.zip"
    exported = callrec("export", "--archive", sshd.url(), "--device", DEVICE, "--call", records[2]["call_id"],
                       "--out", str(bundle), "--config", str(config))
    assert exported.returncode == 0, exported.stderr
    import zipfile

    with zipfile.ZipFile(bundle) as z:
        assert (sshd.archive / DEVICE / records[2]["recording"]["path"]).read_bytes() == z.read(
            f"recordings/{Path(records[2]['recording']['path']).name}")


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def test_a_tampered_object_in_the_archive_is_named_by_verify(tmp_path, sshd):  # noqa: F811
    config = _config(tmp_path, sshd)
    data = tmp_path / "data"
    out = callrec("simulate", str(_scenario(tmp_path, 3)), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    victim = _records(data)[1]
    path = sshd.archive / DEVICE / victim["recording"]["path"]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0x40
    path.write_bytes(bytes(raw))
    check = callrec("verify", "--archive", sshd.url(), "--config", str(config), "--json")
    assert check.returncode == 1
    (report,) = [json.loads(line) for line in check.stdout.splitlines()]
    assert {(p["call_id"], p["kind"]) for p in report["problems"]} == {(victim["call_id"], "file altered")}


def test_the_server_down_for_50_calls_then_back_gets_everything_once_in_order(tmp_path, sshd):  # noqa: F811
    config = _config(tmp_path, sshd, "retry_max_s = 1.0\n")
    data = tmp_path / "data"
    sshd.stop()
    out = callrec("simulate", str(_scenario(tmp_path, 50, seconds=2.5)), "--data", str(data), "--config",
                  str(config), timeout=300)
    assert out.returncode == 0, out.stderr
    records = _records(data)
    assert len(records) == 50 and not any(r.get("archived_at") for r in records)
    status = json.loads(callrec("archive", "status", "--json", "--data", str(data), "--config", str(config)).stdout)
    assert status["backlog"]["count"] == 50 and status["backlog"]["bytes"] > 0
    sshd.start()
    sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config), timeout=300)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    order = [line.split()[1] for line in sync.stdout.splitlines() if line.startswith("archived ")]
    assert order == [r["call_id"] for r in records], "oldest first"
    keys = _archived_keys(sshd)
    assert len([k for k in keys if k.endswith(".flac")]) == 50 and not [k for k in keys if k.endswith(".part")]
    assert callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config)).returncode == 0
    assert _archived_keys(sshd) == keys, "a second sync uploads nothing again"
    assert callrec("verify", "--archive", sshd.url(), "--config", str(config)).returncode == 0


def test_kill_9_mid_upload_then_restart_loses_nothing_and_duplicates_nothing(tmp_path, sshd):  # noqa: F811
    config = _config(tmp_path, sshd)
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "callrec", "simulate", str(_scenario(tmp_path, 20, 2.0)),
                             "--data", str(data), "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for raw in proc.stdout:
        if json.loads(raw)["type"] == "recording.archived":
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    recover = callrec("recover", "--data", str(data), "--config", str(config))
    assert "Traceback" not in recover.stderr
    sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config))
    assert sync.returncode == 0, sync.stdout + sync.stderr
    records = _records(data)
    flacs = [k for k in _archived_keys(sshd) if k.endswith(".flac")]
    assert len(flacs) == len(records) == len(set(flacs))
    assert not [k for k in _archived_keys(sshd) if k.endswith(".part")]
    check = callrec("verify", "--archive", sshd.url(), "--config", str(config))
    assert check.returncode == 0, check.stdout


def test_an_unknown_host_key_is_refused_with_a_clear_error_and_nothing_is_deleted(tmp_path, sshd):  # noqa: F811
    config = _config(tmp_path, sshd, "keep_local_days = 0.0\n")
    sshd.known_hosts.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 "
                                "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    data = tmp_path / "data"
    out = callrec("simulate", str(_scenario(tmp_path, 2)), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    alarms = [e for e in events if e["type"] == "alarm.raised" and e["id"] == "archive.refused"]
    assert alarms and "host key" in alarms[0]["message"]
    for record in _records(data):
        assert (data / record["recording"]["path"]).exists(), "nothing is deleted locally"
    sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config))
    assert sync.returncode == 1 and "host key" in sync.stderr and "Traceback" not in sync.stderr
    assert _archived_keys(sshd) == []


def test_a_refused_login_is_an_alarm_and_the_local_copies_stay(tmp_path, sshd):  # noqa: F811
    (sshd.directory / "authorized_keys").write_text("")
    config = _config(tmp_path, sshd, "keep_local_days = 0.0\n")
    data = tmp_path / "data"
    out = callrec("simulate", str(_scenario(tmp_path, 2)), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    alarms = [e for e in events if e["type"] == "alarm.raised" and e["id"] == "archive.refused"]
    assert alarms and "refused" in alarms[0]["message"] and "authorized_keys" in alarms[0]["message"]
    assert all((data / r["recording"]["path"]).exists() for r in _records(data))


def test_local_copies_go_only_once_archived_and_old_enough_and_never_while_held(tmp_path, sshd):  # noqa: F811
    config = _config(tmp_path, sshd)   # local copies kept: both calls archived and still here
    data = tmp_path / "data"
    assert callrec("simulate", str(_scenario(tmp_path, 2)), "--data", str(data), "--config",
                   str(config)).returncode == 0
    first, second = _records(data)
    assert first.get("archived_at") and second.get("archived_at")
    assert not first.get("offloaded_at") and not second.get("offloaded_at")
    assert callrec("hold", first["call_id"], "--reason", "claim", "--data", str(data)).returncode == 0
    config = _config(tmp_path, sshd, "keep_local_days = 0.0\n")   # now they are old enough to go
    again = callrec("simulate", str(_scenario(tmp_path, 1)), "--data", str(data), "--config", str(config))
    assert again.returncode == 0, again.stderr
    records = {r["call_id"]: r for r in _records(data)}
    assert records[second["call_id"]]["offloaded_at"] and not (data / second["recording"]["path"]).exists()
    assert not records[first["call_id"]].get("offloaded_at") and (data / first["recording"]["path"]).exists()
    assert callrec("verify", "--data", str(data)).returncode == 0, "an offloaded call is not a missing one"
    assert callrec("verify", "--archive", sshd.url(), "--config", str(config)).returncode == 0



def test_an_object_in_the_way_with_other_content_is_an_alarm_not_a_replacement(tmp_path, sshd):  # noqa: F811
    config = _config(tmp_path, sshd)
    data = tmp_path / "data"
    scenario = _scenario(tmp_path, 1)
    sshd.stop()   # record first, with the archive away, so the planted object is there before the upload
    assert callrec("simulate", str(scenario), "--data", str(data), "--config", str(config)).returncode == 0
    (record,) = _records(data)
    planted = sshd.archive / DEVICE / record["recording"]["path"]
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"somebody else's file")
    sshd.start()
    sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config))
    assert sync.returncode == 1 and "other content" in sync.stderr and "not replaced" in sync.stderr
    assert planted.read_bytes() == b"somebody else's file", "never overwritten"
    assert (data / record["recording"]["path"]).exists(), "the local copy is kept"
