"""Real archive servers for the tests, on 127.0.0.1: OpenSSH's sshd as a plain process (its own
host key, one authorized key, chrooted to a temporary directory) and, in s3_support, Ceph RGW."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, timeout: float) -> bool:
    """Until something listens on 127.0.0.1:`port` (True), or `timeout` passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port):
            return True
        time.sleep(0.05)
    return False


@dataclass
class Sshd:
    """One sshd serving SFTP only, chrooted to `chroot`; the archive is `chroot/archive`."""

    directory: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    chroot: Path = Path()

    @property
    def client_key(self) -> Path:
        return self.directory / "device_key"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def archive(self) -> Path:
        return self.chroot / "archive"

    def url(self, path: str = "/archive") -> str:
        return f"sftp://{os.environ.get('USER', 'root')}@127.0.0.1:{self.port}{path}"

    def config_toml(self, **extra: object) -> str:
        lines = ["[archive]", f'url = "{self.url()}"', f'ssh_key = "{self.client_key}"',
                 f'known_hosts = "{self.known_hosts}"']
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in extra.items()]
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
            pytest.skip("needs OpenSSH's sshd (Debian package openssh-server)")
        if os.geteuid() != 0:
            pytest.skip("a chrooted sshd needs root")
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "device_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.directory / name)],
                           check=True)
        (self.directory / "authorized_keys").write_text((self.directory / "device_key.pub").read_text())
        os.chmod(self.directory / "authorized_keys", 0o600)
        os.chmod(self.directory, 0o755)
        # sshd chroots only into a path whose every component is root's and not writable by others:
        # not below /tmp (1777), so under /var/lib, removed by stop()
        base = Path("/var/lib/callrec-test-sshd")
        base.mkdir(mode=0o755, exist_ok=True)
        self.chroot = Path(tempfile.mkdtemp(dir=base))
        os.chmod(self.chroot, 0o755)
        self.archive.mkdir()
        Path("/run/sshd").mkdir(exist_ok=True)
        self.port = free_port()
        host_pub = (self.directory / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")

    def start(self) -> None:
        if not self.port:
            self.prepare()
        config = self.directory / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.directory / 'host_key'}\n"
            f"PidFile {self.directory / 'sshd.pid'}\nAuthorizedKeysFile {self.directory / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            "Subsystem sftp internal-sftp\nForceCommand internal-sftp\n"
            f"ChrootDirectory {self.chroot}\nLogLevel ERROR\n")
        log = open(self.directory / "sshd.log", "ab")  # noqa: SIM115 - the child's stderr
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if listening(self.port):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd ended: {(self.directory / 'sshd.log').read_text()}")
            time.sleep(0.05)
        raise RuntimeError("sshd did not listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        subprocess.run(["pkill", "-f", f"sshd.*{self.directory}"], check=False, capture_output=True)

    def remove(self) -> None:
        self.stop()
        if self.chroot != Path() and self.chroot.exists():
            shutil.rmtree(self.chroot, ignore_errors=True)


@pytest.fixture
def sshd(tmp_path: Path):
    server = Sshd(tmp_path / "sshd")
    server.start()
    yield server
    server.remove()
