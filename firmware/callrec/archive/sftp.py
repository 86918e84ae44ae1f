"""An `sftp://user@host[:port]/path` archive through paramiko, with the host key pinned.

The server's key must be in `known_hosts` (OpenSSH format); an unknown or changed key is refused
(`ArchiveRefused`), never learnt. A put writes a temporary `<name>.<uuid>.part`, reads it back
(size and SHA-256), and only then renames it into place; OpenSSH's rename refuses an existing
target, so nothing is ever overwritten. paramiko drops the replies of pipelined writes (a full disk
went unnoticed: issue 22), so the last chunk of every put is written unpipelined, which makes
paramiko wait for every reply still outstanding and raise the first refusal; the read-back catches
whatever might slip through even so. A truncated copy under the final name (earlier firmware's
unverified upload) is replaced atomically with `posix-rename@openssh.com`, once it is seen unchanged
since it was hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import posixpath
import stat
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paramiko

from callrec.archive import port
from callrec.archive.port import ArchiveConflict, ArchiveError, ArchiveRefused, Held, Standing, Stored

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0
_GONE = (OSError, EOFError, paramiko.SSHException)   # what a request on a dropped connection raises


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
        remote = self._remote(key)

        def upload(sftp: paramiko.SFTPClient) -> Stored:
            directory, name = posixpath.split(remote)
            _makedirs(sftp, directory)
            _remove_temporaries(sftp, directory, name)
            found = _held(sftp, remote)
            if found is not None and (held := found.standing(data)) is not Standing.PREFIX:   # a prefix is healed
                if held is Standing.SAME:
                    return Stored(key, found.size, found.sha256)
                raise port.conflict(self._where(), key, found.size, found.sha256)
            tmp = f"{remote}.{uuid.uuid4().hex}.part"
            try:
                self._write(sftp, key, tmp, data)
                copy = _held(sftp, tmp)
                port.check_copy(self._where(), key, data, copy.size if copy else 0, copy.sha256 if copy else None)
                if found is None:
                    self._rename(sftp, key, tmp, remote, data)
                else:
                    self._heal(sftp, key, tmp, remote, found, len(data))
            finally:
                with contextlib.suppress(*_GONE):   # gone already once renamed
                    sftp.remove(tmp)
            return Stored(key, len(data), port.sha256_of(data))

        try:
            stored: Stored = self._call(f"uploading {key}", upload)
        except FileNotFoundError as error:   # a directory it could not make, a file gone meanwhile
            raise ArchiveError(f"{self._where()}: uploading {key} failed: {error}; retried later") from None
        return stored

    def _write(self, sftp: paramiko.SFTPClient, key: str, tmp: str, data: bytes) -> None:
        """`data` into `tmp`, pipelined; a write the server refused is `ArchiveFull` saying how far
        it got (OpenSSH reports ENOSPC and EDQUOT alike as "Failure")."""
        try:
            handle = sftp.open(tmp, "wb")   # unbuffered: nothing is left to be written again at close
        except (TimeoutError, ConnectionError, PermissionError):
            raise
        except OSError as error:   # also the directory _makedirs could not make
            raise ArchiveError(f"{self._where()}: cannot create a temporary copy of {key} ({error}; is the "
                               "archive's disk full?); retried later") from None
        try:
            handle.set_pipelined(True)
            handle.write(data[:-1])
            handle.set_pipelined(False)   # this write waits for the replies of all the ones before it
            handle.write(data[-1:])
        except (TimeoutError, ConnectionError):
            raise
        except OSError as error:
            refusal = error
        else:
            return
        finally:
            with contextlib.suppress(*_GONE):
                handle.close()   # paramiko swallows a refused close: the read-back is what counts
        try:
            written = int(sftp.stat(tmp).st_size or 0)
        except OSError:
            written = 0
        raise port.full(self._where(), key, written, len(data),
                        f"disk or quota is full (the server refused a write: {refusal})")

    def _rename(self, sftp: paramiko.SFTPClient, key: str, tmp: str, remote: str, data: bytes) -> None:
        """The verified copy takes its final name, which OpenSSH's rename refuses to take from another."""
        try:
            sftp.rename(tmp, remote)
        except (TimeoutError, ConnectionError):
            raise
        except OSError as error:
            now = _held(sftp, remote)
            if now is None:
                raise ArchiveError(f"{self._where()}: cannot move the verified copy of {key} into place "
                                   f"({error}); retried later") from None
            if now.standing(data) is not Standing.SAME:   # not another put of it
                raise port.conflict(self._where(), key, now.size, now.sha256) from None

    def _heal(self, sftp: paramiko.SFTPClient, key: str, tmp: str, remote: str, truncated: Held,
              total: int) -> None:
        """Replace the truncated copy, atomically, and only if it is still the one that was checked."""
        now = sftp.stat(remote)
        if (now.st_size, now.st_mtime) != truncated.identity:
            raise ArchiveError(f"{self._where()}: {key} changed while it was checked; not replaced, retried later")
        try:
            sftp.posix_rename(tmp, remote)
        except (TimeoutError, ConnectionError):
            raise
        except OSError as error:
            raise ArchiveConflict(
                f"{self._where()}: {key} is a truncated copy ({truncated.size:,} of {total:,} bytes) and this "
                f"server cannot replace it atomically (posix-rename@openssh.com: {error}); remove it on the "
                "server and the next sync puts the whole object") from None
        log.warning("%s", port.healing(self._where(), key, truncated.size, total))

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
            found = _held(sftp, remote)
            return None if found is None else Stored(key, found.size, found.sha256)

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


def _held(sftp: paramiko.SFTPClient, path: str) -> Held | None:
    """Size and SHA-256 of what the server holds at `path`, read back; None when there is nothing."""
    try:
        attributes = sftp.stat(path)
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    size = 0
    with sftp.open(path, "rb") as handle:
        handle.prefetch(attributes.st_size)
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return Held(size, digest.hexdigest(), (attributes.st_size, attributes.st_mtime))   # all SFTP v3 tells


def _remove_temporaries(sftp: paramiko.SFTPClient, directory: str, name: str) -> None:
    """Temporaries of this object a kill left: on a full disk they take the room the next put needs."""
    for stale in sftp.listdir(directory):
        if stale.startswith(name + ".") and stale.endswith(".part"):
            with contextlib.suppress(OSError):
                sftp.remove(posixpath.join(directory, stale))


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
