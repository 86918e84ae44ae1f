"""Encryption at rest with age (pyrage): the office holds the identity, the device only recipients.

- A finalized recording is a standard age file, `<call_id>.flac.age`, that the stock `age -d` /
  `rage -d` decrypts with the office identity.
- A call in progress goes to `<call_id>.pcm.age.part` in the *age-frames* format (docs/privacy.md):
  a header line, then frames of at most `FRAME_S` of audio, each a complete age message of raw
  S16_LE behind a clear 8-byte prefix (ciphertext length, sample frames). Whatever instant the
  process dies, every whole frame on the disk decrypts: a crash loses at most the frame being
  filled (≤ FRAME_S) and what the page cache had not written yet.
- Each part's frames are also encrypted to an *ephemeral* X25519 identity made for that call and
  held only in the recorder's memory, so the finisher can turn the part into FLAC without the
  office identity; it is forgotten with the call. After a crash it is gone: the part is registered
  as it is (`<call_id>.pcm.age-frames`) and only the office can decrypt it (`callrec decrypt`).

No primitive here is ours: X25519, ChaCha20-Poly1305 and the age format are pyrage's (the Rust
`age` crate).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyrage
from pyrage import x25519

from callrec.errors import CallrecError

FRAMES_MAGIC = b"callrec-age-frames/1"
AGE_MAGIC = b"age-encryption.org/v1"
FRAME_S = 0.5
_PREFIX = struct.Struct(">II")   # ciphertext bytes, sample frames


class CryptoError(CallrecError, ValueError):
    """A recipient, identity or encrypted file that cannot be used; the message says which."""


def parse_recipient(text: str) -> x25519.Recipient:
    try:
        return x25519.Recipient.from_str(text.strip())
    except Exception as error:   # pyrage raises its own RecipientError (a ValueError subclass in newer releases)
        raise CryptoError(f"{text.strip()[:70]!r} is not an age X25519 recipient (age1…): {error}") from None


@dataclass(frozen=True)
class Recipients:
    """The office's age recipients: everything the device needs to encrypt, nothing to decrypt."""

    texts: tuple[str, ...]
    keys: tuple[x25519.Recipient, ...] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, texts: Sequence[str]) -> Recipients:
        return cls(tuple(t.strip() for t in texts), tuple(parse_recipient(t) for t in texts))


def frames_header(rate: int) -> bytes:
    return FRAMES_MAGIC + f" rate={rate} channels=1 sample=s16le frame_s={FRAME_S}\n".encode("ascii")


class EncryptedPartFile:
    """The in-progress part in the age-frames format (see the module docstring).

    `frames` counts every sample frame accepted, buffered or written. A frame the disk refuses is
    cut off the file again, and its samples are no longer counted: the caller's gap accounting
    (frames before and after a write) then covers them.
    """

    def __init__(self, path: Path, recipients: Recipients, rate: int) -> None:
        self.path = path
        self.rate = rate
        self.identity = x25519.Identity.generate()   # memory only: forgotten with the call
        self._to = [*recipients.keys, self.identity.to_public()]
        self._frame_frames = max(1, int(rate * FRAME_S))
        self._buffer: list[bytes] = []
        self._buffered = 0
        self.frames = 0
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - lives as long as the call
        self._size = 0
        self._append(frames_header(rate))

    @property
    def closed(self) -> bool:
        return self._file.closed

    def fileno(self) -> int:
        return self._file.fileno()

    def write(self, samples: np.ndarray) -> None:
        data = samples.astype("<i2", copy=False).tobytes()
        self._buffer.append(data)
        self._buffered += len(data) // 2
        self.frames += len(data) // 2
        if self._buffered >= self._frame_frames:
            self.flush()

    def flush(self) -> None:
        """Encrypt what is buffered into one frame and append it."""
        if not self._buffered:
            return
        plain, count = b"".join(self._buffer), self._buffered
        self._buffer, self._buffered = [], 0
        sealed = pyrage.encrypt(plain, self._to)
        try:
            self._append(_PREFIX.pack(len(sealed), count) + sealed)
        except OSError:
            self.frames -= count
            raise

    def _append(self, data: bytes) -> None:
        done = 0
        try:
            while done < len(data):
                done += self._file.write(data[done:]) or 0
        except OSError:
            if done:
                os.ftruncate(self._file.fileno(), self._size)
                self._file.seek(self._size)
            raise
        self._size += done

    def sync(self) -> None:
        self.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class FramesInfo:
    rate: int
    frames: int          # sample frames in whole encrypted frames
    whole_bytes: int     # where the last whole frame ends


def read_frames_header(handle: IO[bytes]) -> int:
    line = handle.readline(256)
    if not line.startswith(FRAMES_MAGIC):
        raise CryptoError("not an age-frames file (callrec's encrypted part format)")
    fields = dict(part.split("=", 1) for part in line.decode("ascii", "replace").split()[1:] if "=" in part)
    try:
        return int(fields["rate"])
    except (KeyError, ValueError):
        raise CryptoError(f"age-frames header without a sample rate: {line[:80]!r}") from None


def scan_frames(path: Path) -> FramesInfo:
    """What an age-frames file holds, read without any key: rate, sample frames, whole bytes."""
    with open(path, "rb") as handle:
        rate = read_frames_header(handle)
        end, frames = handle.tell(), 0
        for _sealed, count, after in _frames(handle, decrypt=None):
            frames += count
            end = after
    return FramesInfo(rate, frames, end)


def _frames(handle: IO[bytes], decrypt: Any) -> Iterator[tuple[bytes, int, int]]:
    while True:
        prefix = handle.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            return
        length, count = _PREFIX.unpack(prefix)
        sealed = handle.read(length)
        if len(sealed) < length:
            return   # torn by a crash: the frame being written when the process died
        yield (decrypt(sealed) if decrypt is not None else sealed), count, handle.tell()


def decrypt_frames(path: Path, identities: Sequence[Any]) -> Iterator[np.ndarray]:
    """The audio of an age-frames file, frame by frame, as int16 samples."""
    with open(path, "rb") as handle:
        read_frames_header(handle)
        for plain, _count, _end in _frames(handle, lambda sealed: _decrypt(sealed, identities, path)):
            yield np.frombuffer(plain[: len(plain) // 2 * 2], dtype="<i2")


def _decrypt(sealed: bytes, identities: Sequence[Any], where: Path) -> bytes:
    try:
        return bytes(pyrage.decrypt(sealed, list(identities)))
    except Exception as error:   # pyrage.DecryptError: the identity is not one of the recipients
        raise CryptoError(f"{where}: cannot decrypt with the given identity ({error}); is it the office "
                          "identity this device encrypts to?") from None


def encrypt_stream(source: io.BytesIO, out: IO[bytes], recipients: Recipients) -> None:
    """A standard age file of `source` (the finalized FLAC, built in memory) into `out`."""
    source.seek(0)
    pyrage.encrypt_io(source, out, list(recipients.keys))


def load_identities(path: Path) -> list[x25519.Identity]:
    """An age identity file (as `age-keygen` and `callrec keygen` write it): one or more
    AGE-SECRET-KEY-1… lines, `#` comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CryptoError(f"{path}: cannot read the identity file ({error})") from None
    identities = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except Exception:
            raise CryptoError(f"{path}:{number}: not an age identity (AGE-SECRET-KEY-1…)") from None
    if not identities:
        raise CryptoError(f"{path}: holds no age identity (AGE-SECRET-KEY-1… line)")
    return identities


def new_identity() -> tuple[str, str]:
    """(identity text, recipient text) of a fresh office key."""
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def decrypt_age(data_in: IO[bytes], data_out: IO[bytes], identities: Sequence[Any], where: str) -> None:
    try:
        pyrage.decrypt_io(data_in, data_out, list(identities))
    except Exception as error:
        raise CryptoError(f"{where}: cannot decrypt with the given identity ({error}); is it the office "
                          "identity this device encrypts to?") from None
