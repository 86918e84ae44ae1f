"""Offload to a real S3 server, a single-node Ceph RADOS Gateway (issue 12): archived, verified from
the archive alone, write-once under Object Lock (COMPLIANCE), refused credentials as an alarm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from conftest import callrec, noise_wav, scenario_toml
from s3_support import rgw  # noqa: F401 - fixture

DEVICE = "hq-1"


def _config(tmp_path: Path, server: Any, bucket: str, extra: str = "", secret: str | None = None) -> Path:
    creds = server.credentials(tmp_path / "s3.ini", **({"secret": secret} if secret else {}))
    config = tmp_path / "c.toml"
    config.write_text(f'[mqtt]\ndevice_id = "{DEVICE}"\n[archive]\nurl = "s3://{bucket}/calls"\n'
                      f'endpoint = "{server.endpoint}"\nregion = "us-east-1"\ncredentials_file = "{creds}"\n{extra}')
    return config


def _run(tmp_path: Path, config: Path, calls: int = 3) -> tuple[Path, list[dict[str, Any]]]:
    events, at = [], 0.5
    for _ in range(calls):
        events += [(at, "hook", "off"), (at + 3.0, "hook", "on")]
        at += 4.0
    noise_wav(tmp_path / "line1.wav", at + 1, seed=5)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": events}]))
    data = tmp_path / "data"
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    return data, [json.loads(line) for line in out.stdout.splitlines()]


def _report(config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = callrec("verify", "--json", "--archive", _url(config), "--config", str(config), *extra)
    (report,) = [json.loads(line) for line in out.stdout.splitlines()]
    return out.returncode, report


def _url(config: Path) -> str:
    return next(line.split('"')[1] for line in config.read_text().splitlines() if line.startswith("url"))


def test_calls_are_archived_under_object_lock_and_verified_from_the_archive_alone(tmp_path, rgw):  # noqa: F811
    bucket = rgw.bucket(lock=True)
    config = _config(tmp_path, rgw, bucket, "object_lock_days = 30\n")
    _data, events = _run(tmp_path, config)
    archived = [e for e in events if e["type"] == "recording.archived"]
    assert len(archived) == 3 and all(e["key"].startswith(f"{DEVICE}/recordings/") for e in archived)
    code, report = _report(config)
    assert code == 0 and report["calls"] == 3, report
    s3 = rgw.client()
    key = f"calls/{archived[0]['key']}"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["Metadata"]["sha256"] == archived[0]["sha256"]
    version = head.get("VersionId")
    with pytest.raises(botocore.exceptions.ClientError):   # not even the archive's owner deletes it early
        s3.delete_object(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == head["ContentLength"]


def test_verify_names_objects_whose_lock_is_missing_or_too_short(tmp_path, rgw):  # noqa: F811
    bucket = rgw.bucket(lock=True)
    config = _config(tmp_path, rgw, bucket, "object_lock_days = 1\n")
    _run(tmp_path, config, calls=2)
    stricter = tmp_path / "strict.toml"
    stricter.write_text(config.read_text().replace("object_lock_days = 1", "object_lock_days = 30"))
    code, report = _report(stricter)
    assert code == 1 and {p["kind"] for p in report["problems"]} == {"object lock too short"}
    assert len(report["problems"]) == 2
    (tmp_path / "p").mkdir()
    plain = _config(tmp_path / "p", rgw, rgw.bucket())
    _run(tmp_path / "p", plain, calls=1)
    locked_view = tmp_path / "p" / "locked.toml"
    locked_view.write_text(plain.read_text() + "object_lock_days = 30\n")
    code, report = _report(locked_view)
    assert code == 1 and {p["kind"] for p in report["problems"]} == {"object lock missing"}


def test_a_tampered_object_is_named_and_wrong_credentials_are_an_alarm(tmp_path, rgw):  # noqa: F811
    bucket = rgw.bucket()
    config = _config(tmp_path, rgw, bucket)
    _data, events = _run(tmp_path, config, calls=2)
    (first, _second) = [e for e in events if e["type"] == "recording.archived"]
    rgw.client().put_object(Bucket=bucket, Key=f"calls/{first['key']}", Body=b"not the recording")
    code, report = _report(config)
    assert code == 1 and {(p["call_id"], p["kind"]) for p in report["problems"]} == {
        (first["call_id"], "file truncated")}
    (tmp_path / "w").mkdir()
    wrong = _config(tmp_path / "w", rgw, bucket, "keep_local_days = 0.0\n", secret="wrong-secret")
    data, events = _run(tmp_path / "w", wrong, calls=1)
    alarms = [e for e in events if e["type"] == "alarm.raised" and e["id"] == "archive.refused"]
    assert alarms and "credentials_file" in alarms[0]["message"]
    listed = callrec("calls", "list", "--json", "--data", str(data)).stdout
    records = [json.loads(line) for line in listed.splitlines()]
    assert records and all((data / r["recording"]["path"]).exists() and not r.get("archived_at") for r in records)
