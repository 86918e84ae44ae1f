"""Upload throughput and CPU per archived hour of audio, next to the same bytes sent with the plain
tools, in one run: our SFTP target against OpenSSH's `sftp` client, our S3 target against boto3's
own `upload_file`. Real servers on 127.0.0.1 (the tests' sshd and Ceph RGW fixtures).

Run from the repository root (root: the sshd is chrooted):

    .venv/bin/python bench/bench_archive.py                # one hour of 8 kHz FLAC-sized data
    .venv/bin/python bench/bench_archive.py --hours 3 --only sftp

What one archived hour is: a FLAC of an hour of a line at 8 kHz (about 42 MB, measured by
bench_encryption.py) plus its sidecar; the data here is random bytes of that size (FLAC does not
compress further, so neither does SSH). Each figure is wall seconds, MB/s and the CPU seconds this
process used (time.process_time: the client's side, which is what runs on the Pi).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

log = logging.getLogger("bench_archive")
HOUR_BYTES = 42_000_000


def measure(what: str, action: Callable[[], None], size: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.monotonic()
    action()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    log.info("  %-34s %6.2f s  %7.1f MB/s  %6.2f CPU s", what, wall, size / wall / 1e6, cpu)
    return wall, cpu


def bench_sftp(data: bytes, work: Path) -> None:
    from archive_support import Sshd
    from callrec.archive.sftp import SftpArchive

    server = Sshd(work / "sshd")
    server.start()
    try:
        target = SftpArchive(server.url(), server.client_key, server.known_hosts)
        source = work / "hour.bin"
        source.write_bytes(data)
        log.info("SFTP (OpenSSH sshd on 127.0.0.1), %d MB:", len(data) // 1_000_000)
        ours = measure("callrec SftpArchive.put (verified)", lambda: target.put("dev/a.bin", data), len(data))
        batch = work / "batch"
        batch.write_text(f"put {source} /archive/plain.bin\n")

        def plain() -> None:
            subprocess.run(["sftp", "-q", "-b", str(batch), "-i", str(server.client_key), "-P", str(server.port),
                            "-o", f"UserKnownHostsFile={server.known_hosts}", "root@127.0.0.1"],
                           check=True, capture_output=True)

        cpu_before = os.times()
        reference = measure("OpenSSH sftp put (no verify)", plain, len(data))
        child = os.times()
        child_cpu = (child.children_user + child.children_system) - (cpu_before.children_user
                                                                     + cpu_before.children_system)
        log.info("  (the sftp child used %.2f CPU s)", child_cpu)
        log.info("  ratio wall %.2f, CPU ours %.2f vs sftp child %.2f", ours[0] / reference[0], ours[1], child_cpu)
        target.close()
    finally:
        server.remove()


def bench_s3(data: bytes, work: Path) -> None:
    from callrec.archive.s3 import S3Archive
    from s3_support import start_rgw

    server = start_rgw()
    try:
        bucket = server.bucket()
        target = S3Archive(f"s3://{bucket}/bench", server.endpoint, "us-east-1", server.credentials(work / "s3.ini"))
        source = work / "hour.bin"
        source.write_bytes(data)
        log.info("S3 (Ceph RGW on 127.0.0.1), %d MB:", len(data) // 1_000_000)
        ours = measure("callrec S3Archive.put (verified)", lambda: target.put("dev/a.bin", data), len(data))
        client = server.client()
        reference = measure("boto3 upload_file (no verify)", lambda: client.upload_file(str(source), bucket, "p.bin"),
                            len(data))
        log.info("  ratio wall %.2f, CPU %.2f", ours[0] / reference[0], ours[1] / reference[1] if reference[1] else 0)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0, help="archived hours of audio (default 1)")
    parser.add_argument("--only", choices=("sftp", "s3"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    data = os.urandom(int(HOUR_BYTES * args.hours))
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sftp"):
            bench_sftp(data, Path(tmp))
        if args.only in (None, "s3"):
            bench_s3(data, Path(tmp))


if __name__ == "__main__":
    main()
