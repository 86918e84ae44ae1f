"""An `sftp://user@host[:port]/path` archive through paramiko, with the host key pinned.

The server's key must be in `known_hosts` (OpenSSH format); an unknown or changed key is refused
(`ArchiveRefused`), never learnt. Uploads go to a temporary name and are renamed into place;
OpenSSH's rename refuses an existing target, so nothing is ever overwritten. Each upload is
verified by reading it back (size and SHA-256) before it counts.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import stat
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paramiko

from callrec.archive.port import ArchiveConflict, ArchiveError, ArchiveRefused, Stored, sha256_of

TIMEOUT_S = 15.0


class SftpArchive:
    def __init__(self, url: str, ssh_key: Path, known_hosts: Path) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or ""
        self.port = parts.port or 22
        self.user = unquote(parts.username or "")
        self.root = parts.path.rstrip("/") or "/"
        self.ssh_key = ssh_key
        self.known_hosts = known_hosts
        self._ssh: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # ---- the connection -------------------------------------------------------------------------

    def _client(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._ssh is not None:
            transport = self._ssh.get_transport()
            if transport is not None and transport.is_active():
                return self._sftp
            self.close()
        ssh = paramiko.SSHClient()
        try:
            ssh.load_host_keys(str(self.known_hosts))
        except OSError as error:
            raise ArchiveRefused(f"archive.known_hosts: cannot read {self.known_hosts}: "
                                 f"{error.strerror or error}") from None
        ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            key = _load_key(self.ssh_key)
            ssh.connect(self.host, self.port, username=self.user, pkey=key, timeout=TIMEOUT_S,
                        banner_timeout=TIMEOUT_S, auth_timeout=TIMEOUT_S, allow_agent=False, look_for_keys=False)
            self._sftp = ssh.open_sftp()
            channel = self._sftp.get_channel()
            if channel is not None:
                channel.settimeout(TIMEOUT_S)
        except paramiko.BadHostKeyException as error:
            ssh.close()
            raise ArchiveRefused(f"{self._where()}: the server's host key has CHANGED ({error.key.get_name()}); "
                                 f"not connecting. If the server was re-installed, update {self.known_hosts}") from None
        except paramiko.SSHException as error:
            ssh.close()
            if "not found in known_hosts" in str(error):
                raise ArchiveRefused(f"{self._where()}: the server's host key is not in {self.known_hosts}; "
                                     "not connecting to an unknown server (add its key: ssh-keyscan, checked "
                                     "against the server)") from None
            if isinstance(error, paramiko.AuthenticationException):
                raise ArchiveRefused(f"{self._where()}: login as {self.user!r} with {self.ssh_key} refused; "
                                     "is the device's public key in the server's authorized_keys?") from None
            raise ArchiveError(f"{self._where()}: SSH failed: {error}") from None
        except (TimeoutError, OSError, EOFError) as error:
            ssh.close()
            reason = getattr(error, "strerror", None) or error
            raise ArchiveError(f"{self._where()}: cannot connect: {reason}") from None
        self._ssh = ssh
        return self._sftp

    def _where(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}"

    def close(self) -> None:
        for closable in (self._sftp, self._ssh):
            with contextlib.suppress(Exception):
                if closable is not None:
                    closable.close()
        self._sftp = self._ssh = None

    def _call(self, what: str, action: Any) -> Any:
        """One operation; a dropped connection is reconnected once."""
        for attempt in (1, 2):
            sftp = self._client()
            try:
                return action(sftp)
            except (ArchiveError, FileNotFoundError):
                raise
            except (OSError, EOFError, paramiko.SSHException) as error:
                self.close()
                if attempt == 2 or isinstance(error, PermissionError):
                    raise ArchiveError(f"{self._where()}: {what} failed: {error}") from None
        raise AssertionError("unreachable")

    # ---- the port --------------------------------------------------------------------------------

    def _remote(self, key: str) -> str:
        clean = posixpath.normpath("/" + key).lstrip("/")
        if clean != key.strip("/") or clean.startswith(".."):
            raise ArchiveError(f"archive key {key!r} is not a plain path")
        return posixpath.join(self.root, clean)

    def put(self, key: str, data: bytes, *, retain_until: float | None = None) -> Stored:
        digest = sha256_of(data)
        remote = self._remote(key)

        def upload(sftp: paramiko.SFTPClient) -> None:
            directory, name = posixpath.split(remote)
            _makedirs(sftp, directory)
            for stale in sftp.listdir(directory):   # an upload of it a kill cut short
                if stale.startswith(name + ".") and stale.endswith(".part"):
                    with contextlib.suppress(OSError):
                        sftp.remove(posixpath.join(directory, stale))
            if _exists(sftp, remote):
                return
            tmp = f"{remote}.{uuid.uuid4().hex}.part"
            try:
                with sftp.open(tmp, "wb") as handle:
                    handle.set_pipelined(True)
                    handle.write(data)
                with contextlib.suppress(OSError):   # the target appeared meanwhile: checked below
                    sftp.rename(tmp, remote)
            finally:
                with contextlib.suppress(OSError):
                    sftp.remove(tmp)

        self._call(f"uploading {key}", upload)
        stored = self.head(key)
        if stored is None:
            raise ArchiveError(f"{self._where()}: {key} is not there after the upload")
        if stored.sha256 != digest:
            raise ArchiveConflict(f"{self._where()}: {key} exists with other content "
                                  f"({stored.size} bytes, SHA-256 {str(stored.sha256)[:16]}…); it is not replaced")
        return stored

    def get(self, key: str) -> bytes:
        remote = self._remote(key)

        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(remote, "rb") as handle:
                handle.prefetch()
                return bytes(handle.read())

        try:
            return bytes(self._call(f"reading {key}", read))
        except FileNotFoundError:
            raise ArchiveError(f"{self._where()}: {key} is not in the archive") from None

    def head(self, key: str) -> Stored | None:
        remote = self._remote(key)

        def reread(sftp: paramiko.SFTPClient) -> Stored | None:
            try:
                size = sftp.stat(remote).st_size or 0
            except FileNotFoundError:
                return None
            digest = hashlib.sha256()
            with sftp.open(remote, "rb") as handle:
                handle.prefetch(size)
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            return Stored(key, int(size), digest.hexdigest())

        result: Stored | None = self._call(f"reading back {key}", reread)
        return result

    def list(self, prefix: str) -> list[str]:
        base = self._remote(prefix) if prefix.strip("/") else self.root

        def walk(sftp: paramiko.SFTPClient) -> list[str]:
            found: list[str] = []
            pending = [base]
            while pending:
                directory = pending.pop()
                try:
                    entries = sftp.listdir_attr(directory)
                except FileNotFoundError:
                    continue
                for entry in entries:
                    path = posixpath.join(directory, entry.filename)
                    if entry.st_mode is not None and stat.S_ISDIR(entry.st_mode):
                        pending.append(path)
                    elif not entry.filename.endswith(".part"):
                        found.append(posixpath.relpath(path, self.root))
            return sorted(found)

        return list(self._call(f"listing {prefix}", walk))

    def delete(self, key: str) -> None:
        remote = self._remote(key)

        def remove(sftp: paramiko.SFTPClient) -> None:
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(remote)

        self._call(f"deleting {key}", remove)


def _load_key(path: Path) -> paramiko.PKey:
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key_file(str(path))
        except (paramiko.SSHException, ValueError) as error:
            errors.append(str(error))
        except OSError as error:
            raise ArchiveRefused(f"archive.ssh_key: cannot read {path}: {error.strerror or error}") from None
    raise ArchiveRefused(f"archive.ssh_key: {path} is not an unencrypted Ed25519, ECDSA or RSA private key")


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def _makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
    missing = []
    while directory not in ("", "/") and not _exists(sftp, directory):
        missing.append(directory)
        directory = posixpath.dirname(directory)
    for path in reversed(missing):
        with contextlib.suppress(OSError):   # made meanwhile by another upload
            sftp.mkdir(path)
