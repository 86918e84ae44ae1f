"""A real S3 server for the tests: a throwaway single-node Ceph RADOS Gateway (Debian's ceph 16),
three plain processes on 127.0.0.1 — a mon, a memstore OSD and radosgw — with auth off inside the
cluster and one S3 user. Settings and their reasons: ../shared/harness.md (S3)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from archive_support import free_port

ACCESS, SECRET = "callrec-test", "callrec-test-secret"


@dataclass
class Rgw:
    directory: Path
    port: int
    procs: list[subprocess.Popen[bytes]]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def credentials(self, path: Path, secret: str = SECRET) -> Path:
        path.write_text(f"[default]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {secret}\n")
        return path

    def client(self):  # noqa: ANN201 - a boto3 client
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=ACCESS,
                            aws_secret_access_key=SECRET)

    def bucket(self, *, lock: bool = False) -> str:
        name = f"b{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        return name

    def admin(self, *args: str) -> str:
        """`radosgw-admin` on this cluster; its output."""
        done = subprocess.run(["radosgw-admin", *args, "-c", str(self.directory / "ceph.conf")], check=True,
                              capture_output=True, text=True, timeout=60)
        return done.stdout

    def bucket_quota(self, bucket: str, max_bytes: int) -> None:
        """Set and enable a size quota on `bucket`. RGW checks a request against the bucket's stats
        before it stores a byte; it caches those stats (rgw_bucket_quota_ttl, 600 s) but counts its own
        writes into the cache at once, so with one gateway a quota, and a raised one, hold from the next
        request: no cache setting is needed."""
        self.admin("quota", "set", "--quota-scope=bucket", f"--bucket={bucket}", f"--max-size={max_bytes}")
        self.admin("quota", "enable", "--quota-scope=bucket", f"--bucket={bucket}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_rgw() -> Rgw:
    for tool in ("ceph-mon", "ceph-osd", "radosgw", "monmaptool", "radosgw-admin", "ceph"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs Ceph's {tool} (Debian packages ceph-mon ceph-osd radosgw ceph-common)")
    d = Path(tempfile.mkdtemp(prefix="callrec-rgw-"))
    for sub in ("run", "log", "mon.a", "osd.0", "rgw", "crash"):
        (d / sub).mkdir()
    port, mon_port = free_port(), free_port()
    fsid = str(uuid.uuid4())
    conf = d / "ceph.conf"
    conf.write_text(f"""[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
run dir = {d}/run
pid file = {d}/run/$name.pid
log file = {d}/log/$name.log
mon cluster log file = {d}/log/cluster.log
crash dir = {d}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
osd crush chooseleaf type = 0
paxos propose interval = 0.05
[mon]
mon data = {d}/mon.$id
[osd]
osd data = {d}/osd.$id
osd objectstore = memstore
[client.rgw.a]
rgw data = {d}/rgw
rgw frontends = beast endpoint=127.0.0.1:{port}
rgw thread pool size = 32
""")
    procs: list[subprocess.Popen[bytes]] = []
    rgw = Rgw(d, port, procs)

    def quiet(*cmd: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*cmd, "-c", str(conf)], capture_output=True, timeout=60, check=True)

    def daemon(name: str, *cmd: str) -> None:
        log = open(d / "log" / f"{name}.out", "ab")  # noqa: SIM115 - the child's output
        procs.append(subprocess.Popen([*cmd, "-c", str(conf), "-f"], stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=log))

    try:
        subprocess.run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v2:127.0.0.1:{mon_port}]",
                        str(d / "monmap")], capture_output=True, check=True)
        quiet("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(d / "monmap"))
        daemon("mon", "ceph-mon", "-i", "a")
        osd_uuid = str(uuid.uuid4())
        osd_id = quiet("ceph", "osd", "new", osd_uuid).stdout.decode().strip()
        quiet("ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        daemon("osd", "ceph-osd", "-i", osd_id)
        daemon("rgw", "radosgw", "-n", "client.rgw.a")
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(urllib.error.URLError, ConnectionError, OSError), \
                    urllib.request.urlopen(rgw.endpoint + "/", timeout=2):
                break
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                raise RuntimeError("radosgw did not start: " + (d / "log" / "rgw.out").read_text()[-500:])
            time.sleep(0.2)
        quiet("radosgw-admin", "user", "create", "--uid=test", "--display-name=test", f"--access-key={ACCESS}",
              f"--secret={SECRET}")
        for _ in range(50):   # the new user becomes usable a moment later
            try:
                rgw.client().list_buckets()
                break
            except Exception:
                time.sleep(0.2)
    except BaseException:
        rgw.stop()
        raise
    return rgw


@pytest.fixture(scope="session")
def rgw() -> Iterator[Rgw]:
    server = start_rgw()
    yield server
    server.stop()
