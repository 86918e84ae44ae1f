"""The in-place slot file (store/slots.py): what must still be written when the disk is full.

Real small disk (a tmpfs; needs root). The journal's seq reservation and a call's part metadata
both rely on these three properties.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from callrec.store import SlotFile, SlotTooSmall
from disk_support import fill_disk
from fault_support import small_disk  # noqa: F401 - fixture


def test_a_record_rewritten_in_place_needs_no_free_block(small_disk):  # noqa: F811
    disk = small_disk("1m")
    slots = SlotFile(disk / "record", 512)
    slots.allocate()
    fill_disk(disk)
    with pytest.raises(OSError):
        (disk / "new").write_bytes(b"x" * 4096)   # the disk is really full
    for number in range(5):
        slots.write(f"reserved {number}".encode())
    assert SlotFile(disk / "record", 512).read() == b"reserved 4"


def test_a_torn_write_leaves_the_last_whole_record(tmp_path: Path):
    slots = SlotFile(tmp_path / "record", 512)
    slots.allocate()
    slots.write(b"first")
    slots.write(b"second")                      # generation 2: the first slot of the file
    with open(tmp_path / "record", "r+b") as handle:
        handle.seek(40)
        handle.write(b"\xff")                   # a power cut in the middle of that write
    assert SlotFile(tmp_path / "record", 512).read() == b"first"


def test_a_record_too_big_for_its_slot_is_refused_and_nothing_is_created(tmp_path: Path):
    slots = SlotFile(tmp_path / "record", 512)
    with pytest.raises(FileNotFoundError):
        slots.write(b"never allocated")         # writing never creates: it would need new blocks
    assert not (tmp_path / "record").exists()
    slots.allocate()
    slots.write(b"kept")
    with pytest.raises(SlotTooSmall):
        slots.write(b"x" * 600)
    assert slots.read() == b"kept" and (tmp_path / "record").stat().st_size == 1024
