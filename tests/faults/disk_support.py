"""Filling a real small disk (a tmpfs from fault_support) to the last byte, and making room again."""

from __future__ import annotations

import subprocess
from pathlib import Path


def fill_disk(disk: Path, leave: int = 0, name: str = "filler") -> Path:
    """Fill the disk up to `leave` free bytes with a file that can be deleted later."""
    filler = disk / name
    with open(filler, "ab", buffering=0) as handle:
        for size in (65536, 4096, 1):   # to the last byte: a few KB left would take a call's first seconds
            block = b"\1" * size
            try:
                while True:
                    handle.write(block)
            except OSError:
                pass
    if leave:
        size = filler.stat().st_size
        with open(filler, "r+b") as handle:
            handle.truncate(max(0, size - leave))
    return filler


def grow_disk(disk: Path, size: str) -> None:
    """Space comes back: the tmpfs at `disk` is resized to `size` (its files stay)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)
