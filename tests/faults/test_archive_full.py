"""The archive's own disk full, or its quota used up (issue 22 item 2), on real servers: a chrooted
OpenSSH sshd whose archive directory is a small tmpfs, a `file://` archive on a small tmpfs, and a
Ceph RGW bucket with a quota.

Regression: SFTP on an 8 MB tmpfs, three 4.95 MB calls, stored one object truncated at 3,432,448
bytes under its final name (paramiko drops the errors of pipelined writes, and the temporary was
renamed into place unverified); every later sync then called it "other content" for good. Now a
put that does not fit is a retryable `ArchiveFull`, nothing lies under a final name but whole
verified objects, and once space returns the same puts complete. A truncated object earlier
firmware left is healed; anything else in the way is still a conflict.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from archive_support import sshd  # noqa: F401 - fixture
from callrec.archive.file import FileArchive
from callrec.archive.port import ArchiveConflict, ArchiveError, ArchiveFull, ArchiveTarget, Stored, sha256_of
from callrec.archive.s3 import PART_BYTES, S3Archive
from callrec.archive.sftp import SftpArchive
from conftest import callrec, noise_wav, scenario_toml
from fault_support import mounted_tmpfs, needs_root
from s3_support import rgw  # noqa: F401 - fixture

CALL_BYTES = 4_950_000            # the calls
TRUNCATED_BYTES = 3_432_448       # what the issue found under the final name
DEVICE = "branch-7"


def _call(seed: int, size: int = CALL_BYTES) -> bytes:
    """A recording's bytes: random, so no layer can compress them away."""
    return random.Random(seed).randbytes(size)


def _key(number: int) -> str:
    return f"{DEVICE}/recordings/2026/12/01/call-{number}.flac"


def _files(root: Path) -> dict[str, int]:
    """Every file below `root` (temporaries included) with its size."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def _resize(mount: Path, size: str) -> None:
    """Space returns: the tmpfs grows in place, its files kept."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True, capture_output=True)


def _try_put(target: ArchiveTarget, key: str, data: bytes) -> Stored | ArchiveError:
    try:
        return target.put(key, data)
    except ArchiveError as error:
        return error


def _sftp(server: Any) -> SftpArchive:
    return SftpArchive(server.url(), server.client_key, server.known_hosts)


def _assert_full_then_complete(target: ArchiveTarget, disk: Path) -> None:
    """The issue's scenario on one backend whose objects lie in `disk` (a tmpfs of 8 MB)."""
    calls = [_call(n) for n in range(3)]
    outcome = [_try_put(target, _key(n), calls[n]) for n in range(3)]
    assert isinstance(outcome[0], Stored), outcome[0]
    for refused in outcome[1:]:
        assert isinstance(refused, ArchiveFull) and not isinstance(refused, ArchiveConflict), refused
        assert "full" in str(refused) and "retried later" in str(refused), refused
        assert f"of {CALL_BYTES:,} bytes" in str(refused), refused
    assert _files(disk) == {_key(0): CALL_BYTES}, "nothing truncated under a final name, no temporary left"
    _resize(disk, "32m")
    for number, data in enumerate(calls):
        stored = target.put(_key(number), data)
        assert (stored.size, stored.sha256) == (CALL_BYTES, sha256_of(data))
    assert _files(disk) == {_key(n): CALL_BYTES for n in range(3)}
    assert all((disk / _key(n)).read_bytes() == calls[n] for n in range(3))


def test_sftp_puts_that_do_not_fit_on_the_servers_disk_fail_cleanly_and_complete_once_space_returns(
        tmp_path, sshd):  # noqa: F811
    with mounted_tmpfs(sshd.archive, "8m"):
        target = _sftp(sshd)
        try:
            _assert_full_then_complete(target, sshd.archive)
        finally:
            target.close()


def test_a_file_archive_on_a_full_disk_fails_cleanly_and_completes_once_space_returns(tmp_path):
    with mounted_tmpfs(tmp_path / "nas", "8m") as disk:
        _assert_full_then_complete(FileArchive(f"file://{disk}", disk), disk)


def test_a_temporary_a_kill_left_on_a_file_archive_is_removed_before_the_next_put_of_that_object(tmp_path):
    with mounted_tmpfs(tmp_path / "nas", "8m") as disk:
        final = disk / _key(0)
        final.parent.mkdir(parents=True)
        stale = final.with_name(f".{final.name}.0123456789abcdef0123456789abcdef.tmp")
        stale.write_bytes(_call(9, 4_000_000))   # a kill mid-put: it would leave no room for the call
        data = _call(0)
        FileArchive(f"file://{disk}", disk).put(_key(0), data)
        assert _files(disk) == {_key(0): CALL_BYTES}


# ---- what earlier firmware left under a final name ------------------------------------------------


def _plant(root: Path, key: str, data: bytes) -> Path:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(params=["file", "sftp"])
def archive_dir(request, tmp_path):  # noqa: ANN001, ANN201 - (target, the directory its objects lie in)
    if request.param == "file":
        root = tmp_path / "nas"
        root.mkdir()
        yield FileArchive(f"file://{root}", root), root
        return
    needs_root("a chrooted sshd")
    server = request.getfixturevalue("sshd")
    target = _sftp(server)
    yield target, server.archive
    target.close()


def test_a_truncated_object_earlier_firmware_left_is_replaced_by_the_verified_whole_with_a_warning(
        archive_dir, caplog):
    target, root = archive_dir
    data = _call(1)
    path = _plant(root, _key(1), data[:TRUNCATED_BYTES])
    with caplog.at_level(logging.WARNING, logger="callrec.archive"):
        stored = target.put(_key(1), data)
    assert (stored.size, stored.sha256) == (CALL_BYTES, sha256_of(data))
    assert path.read_bytes() == data
    assert _files(root) == {_key(1): CALL_BYTES}, "no temporary or set-aside copy left"
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "truncated" in warning.getMessage() and f"{TRUNCATED_BYTES:,} of {CALL_BYTES:,}" in warning.getMessage()


@pytest.mark.parametrize("planted", ["one byte changed", "longer", "same length, other bytes"])
def test_an_object_in_the_way_that_is_not_a_prefix_of_ours_is_still_a_conflict(archive_dir, planted):
    target, root = archive_dir
    data = _call(2)
    other = {"one byte changed": data[:1000] + b"\0" + data[1001:TRUNCATED_BYTES],
             "longer": data + b"more",
             "same length, other bytes": _call(3)}[planted]
    path = _plant(root, _key(2), other)
    with pytest.raises(ArchiveConflict, match="other content"):
        target.put(_key(2), data)
    assert path.read_bytes() == other, "never overwritten"
    assert _files(root) == {_key(2): len(other)}, "no temporary left"


# ---- the scenario end to end: the device, its queue, alarms and `verify --archive` ----------


def test_calls_that_do_not_fit_on_a_full_sftp_archive_wait_and_are_archived_whole_once_space_returns(
        tmp_path, sshd):  # noqa: F811
    events, at = [], 0.5
    for _ in range(3):   # 90 s of loud noise: about 1.4 MB of FLAC each, so one fits on the 2 MB disk
        events += [(at, "hook", "off"), (at + 90.0, "hook", "on")]
        at += 91.0
    noise_wav(tmp_path / "line1.wav", at + 1, seed=4, level=0.3)
    scenario = tmp_path / "s.toml"
    scenario.write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": events}]))
    config = tmp_path / "c.toml"
    config.write_text(f'[mqtt]\ndevice_id = "{DEVICE}"\n' + sshd.config_toml(retry_max_s=1.0))
    data = tmp_path / "data"
    with mounted_tmpfs(sshd.archive, "2m"):
        out = callrec("simulate", str(scenario), "--data", str(data), "--config", str(config), timeout=300)
        assert out.returncode == 0, out.stderr
        alarms = [json.loads(line) for line in out.stdout.splitlines() if '"alarm.raised"' in line]
        assert not [a for a in alarms if a["id"].startswith("archive.conflict")], alarms
        listed = callrec("calls", "list", "--json", "--data", str(data)).stdout
        records = [json.loads(line) for line in listed.splitlines()]
        assert len(records) == 3
        sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config))
        assert sync.returncode == 1 and "full" in sync.stderr and "retried later" in sync.stderr, sync.stderr
        local = {f"{DEVICE}/{r['recording']['path']}": (data / r["recording"]["path"]).read_bytes() for r in records}
        for name, size in _files(sshd.archive).items():   # whatever is there is whole
            assert not name.endswith(".part"), name
            if name in local:
                assert (sshd.archive / name).read_bytes() == local[name], f"{name} truncated at {size:,} bytes"
        _resize(sshd.archive, "16m")
        sync = callrec("archive", "sync", "--once", "--data", str(data), "--config", str(config))
        assert sync.returncode == 0, sync.stdout + sync.stderr
        assert all((sshd.archive / name).read_bytes() == audio for name, audio in local.items())
        check = callrec("verify", "--archive", sshd.url(), "--config", str(config))
        assert check.returncode == 0 and f"{DEVICE}: OK: 3 call(s) checked in the archive" in check.stdout, (
            check.stdout + check.stderr)


# ---- S3: a Ceph RGW bucket with a quota (see Rgw.bucket_quota on RGW's caching of it) --------------


def _s3(tmp_path: Path, server: Any, bucket: str) -> S3Archive:
    return S3Archive(f"s3://{bucket}/calls", server.endpoint, "us-east-1", server.credentials(tmp_path / "s3.ini"))


def _objects(server: Any, bucket: str) -> dict[str, int]:
    listing = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"].removeprefix("calls/"): item["Size"] for item in listing}


def _unfinished(server: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_s3_puts_over_the_bucket_quota_fail_cleanly_and_complete_once_the_quota_is_raised(tmp_path, rgw):  # noqa: F811
    single, parts = rgw.bucket(), rgw.bucket()
    rgw.bucket_quota(single, 8 * 1024 * 1024)
    rgw.bucket_quota(parts, 12 * 1024 * 1024)   # a multipart upload's first part fits, its second not
    calls = [_call(n) for n in range(3)]
    big = _call(7, 20_000_000)
    into_single, into_parts = _s3(tmp_path, rgw, single), _s3(tmp_path, rgw, parts)
    outcome = [_try_put(into_single, _key(n), calls[n]) for n in range(3)]
    assert isinstance(outcome[0], Stored), outcome[0]
    for refused in outcome[1:]:
        assert isinstance(refused, ArchiveFull), refused
        assert "quota" in str(refused) and "retried later" in str(refused) and f"0 of {CALL_BYTES:,}" in str(refused)
    refused = _try_put(into_parts, _key(7), big)
    assert isinstance(refused, ArchiveFull) and f"{PART_BYTES:,} of 20,000,000 bytes" in str(refused), refused
    assert _objects(rgw, single) == {_key(0): CALL_BYTES} and _objects(rgw, parts) == {}
    assert _unfinished(rgw, single) == _unfinished(rgw, parts) == [], "no parts left counting against the quota"
    rgw.bucket_quota(single, 64 * 1024 * 1024)
    rgw.bucket_quota(parts, 64 * 1024 * 1024)
    for number, data in enumerate(calls):
        assert into_single.put(_key(number), data).sha256 == sha256_of(data)
    assert into_parts.put(_key(7), big).size == len(big)
    assert [into_single.get(_key(n)) for n in range(3)] == calls and into_parts.get(_key(7)) == big
    assert _unfinished(rgw, parts) == []


def test_s3_a_truncated_object_claiming_our_sha256_is_superseded_by_the_verified_whole(tmp_path, rgw, caplog):  # noqa: F811
    bucket = rgw.bucket()
    data = _call(1)
    rgw.client().put_object(Bucket=bucket, Key=f"calls/{_key(1)}", Body=data[:TRUNCATED_BYTES],
                            Metadata={"sha256": sha256_of(data)})   # what an unverified upload would leave
    with caplog.at_level(logging.WARNING, logger="callrec.archive"):
        stored = _s3(tmp_path, rgw, bucket).put(_key(1), data)
    assert (stored.size, stored.sha256) == (CALL_BYTES, sha256_of(data))
    assert _s3(tmp_path, rgw, bucket).get(_key(1)) == data
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{TRUNCATED_BYTES:,} of {CALL_BYTES:,}" in warning.getMessage()


@pytest.mark.parametrize("planted", ["one byte changed", "longer", "same length, other bytes"])
def test_s3_an_object_in_the_way_that_is_not_a_prefix_of_ours_is_a_conflict_even_if_it_claims_our_sha256(
        tmp_path, rgw, planted):  # noqa: F811
    bucket = rgw.bucket()
    data = _call(2)
    other = {"one byte changed": data[:1000] + b"\0" + data[1001:TRUNCATED_BYTES],
             "longer": data + b"more",
             "same length, other bytes": _call(3)}[planted]
    rgw.client().put_object(Bucket=bucket, Key=f"calls/{_key(2)}", Body=other, Metadata={"sha256": sha256_of(data)})
    with pytest.raises(ArchiveConflict, match="other content"):
        _s3(tmp_path, rgw, bucket).put(_key(2), data)
    assert rgw.client().get_object(Bucket=bucket, Key=f"calls/{_key(2)}")["Body"].read() == other


def test_s3_a_truncated_object_under_object_lock_is_superseded_and_its_locked_version_named(
        tmp_path, rgw, caplog):  # noqa: F811
    bucket = rgw.bucket(lock=True)
    data = _call(4)
    s3 = rgw.client()
    planted = s3.put_object(Bucket=bucket, Key=f"calls/{_key(4)}", Body=data[:TRUNCATED_BYTES],
                            ObjectLockMode="COMPLIANCE",
                            ObjectLockRetainUntilDate=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                            ContentMD5=base64.b64encode(hashlib.md5(data[:TRUNCATED_BYTES]).digest()).decode())
    with caplog.at_level(logging.WARNING, logger="callrec.archive"):
        stored = _s3(tmp_path, rgw, bucket).put(_key(4), data, retain_until=time.time() + 30 * 86400)
    assert stored.size == CALL_BYTES and stored.retain_until is not None
    assert _s3(tmp_path, rgw, bucket).get(_key(4)) == data
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert {(v["VersionId"], v["Size"], v["IsLatest"]) for v in versions if v["VersionId"] == planted["VersionId"]} == {
        (planted["VersionId"], TRUNCATED_BYTES, False)}, "the locked truncated version stays, as the lock demands"
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert planted["VersionId"] in warning.getMessage() and "Object Lock" in warning.getMessage()
