"""A small record rewritten in place, in a file allocated beforehand: it can be updated on a full disk.

A new file, or a temporary one renamed over the old, needs free blocks; bytes rewritten inside
blocks a file already owns do not. So what must still be written when the disk is full (the
journal's `seq` reservation, what the recorder knew of a call when it ended) goes into such a file,
allocated (zeros written, so the blocks are really the file's) while there was room.

The file holds two slots; each is a header line (generation, payload length, CRC-32) and the
payload. A write goes to the slot that does not hold the newest record, so a power cut in the
middle of a write tears at most the record being written, never the last good one; a reader takes
the valid slot with the highest generation.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path

from callrec.errors import CallrecError

_HEADER = "{generation:016x} {length:08x} {crc:08x}\n"
HEADER_BYTES = len(_HEADER.format(generation=0, length=0, crc=0))


class SlotTooSmall(CallrecError, ValueError):
    """The record does not fit the space allocated for it."""


class SlotFile:
    """Two fixed slots of `slot_bytes` each at `path`; see the module docstring."""

    def __init__(self, path: Path, slot_bytes: int) -> None:
        self.path = path
        self.slot_bytes = slot_bytes
        self._generation: int | None = None   # of the newest record, once read or written

    @property
    def capacity(self) -> int:
        """The largest payload a slot takes."""
        return self.slot_bytes - HEADER_BYTES

    def allocated(self) -> bool:
        """The file is there with its full size: writing it needs no new blocks."""
        try:
            return self.path.stat().st_size == 2 * self.slot_bytes
        except OSError:
            return False

    def allocate(self) -> None:
        """Create the file, zeros in both slots (a temporary name renamed into place, so a reader
        never sees a short file); raises OSError when the disk has no room for it."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(b"\0" * (2 * self.slot_bytes))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        fsync_directory(self.path.parent)
        self._generation = 0

    def read(self) -> bytes | None:
        """The newest record that is whole, or None (no file, never written, both slots torn)."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(2 * self.slot_bytes)
        except OSError:
            return None
        newest: tuple[int, bytes] | None = None
        for slot in (0, 1):
            found = _parse(data[slot * self.slot_bytes:(slot + 1) * self.slot_bytes])
            if found is not None and (newest is None or found[0] > newest[0]):
                newest = found
        self._generation = newest[0] if newest is not None else 0
        return newest[1] if newest is not None else None

    def write(self, payload: bytes) -> None:
        """Put `payload` in the older slot, in place, and sync it. Never creates or extends the file:
        raises FileNotFoundError when it was not allocated, SlotTooSmall when the payload does not
        fit, OSError when the disk fails."""
        if len(payload) > self.capacity:
            raise SlotTooSmall(f"{len(payload)} bytes do not fit the {self.capacity} allocated in {self.path}")
        if self._generation is None:
            self.read()
        generation = (self._generation or 0) + 1
        header = _HEADER.format(generation=generation, length=len(payload), crc=zlib.crc32(payload))
        fd = os.open(self.path, os.O_WRONLY)   # no O_CREAT, no O_TRUNC: only blocks the file owns
        try:
            if os.fstat(fd).st_size != 2 * self.slot_bytes:
                raise FileNotFoundError(f"{self.path} is not allocated for in-place records")
            record = header.encode("ascii") + payload
            if os.pwrite(fd, record, (generation % 2) * self.slot_bytes) != len(record):
                raise OSError(f"short write to {self.path}")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._generation = generation


def _parse(slot: bytes) -> tuple[int, bytes] | None:
    try:
        generation_text, length_text, crc_text = slot[:HEADER_BYTES].decode("ascii").split()
        generation, length, crc = int(generation_text, 16), int(length_text, 16), int(crc_text, 16)
    except (UnicodeDecodeError, ValueError):
        return None
    payload = slot[HEADER_BYTES:HEADER_BYTES + length]
    if generation == 0 or len(payload) != length or zlib.crc32(payload) != crc:
        return None
    return generation, payload


def fsync_directory(directory: Path) -> None:
    """A new or renamed file's name is on the disk only once its directory is synced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
