"""Line editing for a dumb terminal: echo, backspace, Ctrl-C/Ctrl-U, CR, LF or CR LF.

The technician's laptop may run minicom, PuTTY, screen or a bare `cu`; some send CR, some CR LF,
some DEL and some BS for backspace, and arrow keys arrive as escape sequences. The console echoes
itself (the port is raw), so everything a terminal might send is handled here and nothing needs
curses or terminal capabilities.
"""

from __future__ import annotations

import codecs

MAX_LINE_CHARS = 200
_BACKSPACES = (0x08, 0x7F)
_ERASE = b"\b \b"


class LineEditor:
    """Feed raw bytes in, get the echo to send back and the lines that were completed."""

    def __init__(self, max_chars: int = MAX_LINE_CHARS) -> None:
        self.max_chars = max_chars
        self._chars: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._after_cr = False
        self._escape = ""   # "" | "esc" | "csi" | "ss3": inside an escape sequence being skipped

    @property
    def pending(self) -> str:
        return "".join(self._chars)

    def feed(self, data: bytes) -> tuple[bytes, list[str]]:
        echo = bytearray()
        lines: list[str] = []
        for byte in data:
            after_cr, self._after_cr = self._after_cr, False
            if self._escape:
                self._skip_escape(byte)
            elif byte == 0x1B:
                self._escape = "esc"
            elif byte == 0x0D or (byte == 0x0A and not after_cr):
                self._after_cr = byte == 0x0D
                echo += b"\r\n"
                lines.append(self._take())
            elif byte == 0x0A:
                continue   # the LF of a CR LF pair
            elif byte in _BACKSPACES:
                if self._chars:
                    self._chars.pop()
                    echo += _ERASE
            elif byte == 0x03:   # Ctrl-C: abandon the line
                echo += b"^C\r\n"
                self._take()
                lines.append("")
            elif byte == 0x15:   # Ctrl-U: erase the line
                echo += _ERASE * len(self._chars)
                self._chars.clear()
            elif byte < 0x20:
                continue
            else:
                text = self._decoder.decode(bytes([byte]))
                if text and len(self._chars) < self.max_chars:
                    self._chars.append(text)
                    echo += text.encode("utf-8")
        return bytes(echo), lines

    def _take(self) -> str:
        line = "".join(self._chars)
        self._chars.clear()
        self._decoder.reset()
        return line

    def _skip_escape(self, byte: int) -> None:
        if self._escape == "esc":   # ESC [ A (CSI) and ESC O A (SS3) are both arrow keys
            self._escape = {ord("["): "csi", ord("O"): "ss3"}.get(byte, "")
        elif self._escape == "ss3" or 0x40 <= byte <= 0x7E:   # the final byte
            self._escape = ""
