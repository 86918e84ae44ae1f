"""The errors the ISDN decoders raise on purpose.

A D-channel carries whatever the wire gave us: a decoder that meets a frame it cannot trust says
so with a `FrameError` whose `reason` is one short, fixed phrase (it becomes a key of the skip
counts, so it must never contain frame data), instead of guessing and handing a wrong number on.
"""

from __future__ import annotations

from callrec.errors import CallrecError


class FrameError(CallrecError, ValueError):
    """A frame or message that cannot be decoded as it claims to be; `reason` is a fixed phrase."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class FrameSkipped(FrameError):
    """A well-formed frame that carries no Q.931 call control (RR, SABME, another SAPI, ...).

    Counted like a bad frame, but expected on any live D-channel, so it is not worth a warning.
    """


class PcapFormatError(CallrecError, ValueError):
    """A capture file that is not a pcap this reader understands; the message names file and offset."""

    def __init__(self, path: str, offset: int, what: str) -> None:
        super().__init__(f"{path}: {what} (at byte offset {offset})")
        self.path = path
        self.offset = offset
