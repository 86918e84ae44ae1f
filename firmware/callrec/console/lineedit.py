"""Line editing for any terminal: echo, backspace, Ctrl-C/Ctrl-U, CR, LF or CR LF; on a VT100-class
terminal also the history (up and down arrows) and Tab completion of command names.

The technician's laptop may run minicom, PuTTY, screen or a bare `cu`; some send CR, some CR LF,
some DEL and some BS for backspace, and arrow keys arrive as escape sequences. The console echoes
itself (the port is raw), so everything a terminal might send is handled here and nothing needs
curses or terminal capabilities: recalling a line erases the shown one with backspace-space-
backspace, which a dumb terminal understands too, and a dumb terminal that sends no arrows simply
never recalls anything. Garbage (binary noise, wrong-baud bytes, a break's NUL) is dropped or shown
as the replacement character, never more than `max_chars` of it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

MAX_LINE_CHARS = 200
MAX_HISTORY = 50
_BACKSPACES = (0x08, 0x7F)
_ERASE = b"\b \b"
_MAX_ESCAPE_BYTES = 16   # a sequence longer than this is noise, not a key


class LineEditor:
    """Feed raw bytes in, get the echo to send back and the lines that were completed."""

    def __init__(self, max_chars: int = MAX_LINE_CHARS, *, complete: Callable[[str], list[str]] | None = None,
                 prompt: str = "") -> None:
        self.max_chars = max_chars
        self.complete = complete
        self.prompt = prompt
        self.secret = False       # a passphrase: nothing echoed, nothing remembered
        self.history: list[str] = []
        self._recall = 0          # how far back in the history the shown line is (0: the line being typed)
        self._typed = ""          # what was being typed before the history was walked
        self._chars: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._after_cr = False
        self._escape = ""   # "" | "esc" | "csi" | "ss3": inside an escape sequence
        self._escape_len = 0

    @property
    def pending(self) -> str:
        return "".join(self._chars)

    def remember(self, line: str) -> None:
        """A command line that was run goes into the history (not a repeat of the last one)."""
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[:-MAX_HISTORY]
        self._recall = 0

    def feed(self, data: bytes) -> tuple[bytes, list[str]]:
        echo = bytearray()
        lines: list[str] = []
        for byte in data:
            after_cr, self._after_cr = self._after_cr, False
            if self._escape:
                echo += self._escape_byte(byte)
            elif byte == 0x1B:
                self._escape, self._escape_len = "esc", 0
            elif byte == 0x0D or (byte == 0x0A and not after_cr):
                self._after_cr = byte == 0x0D
                echo += b"\r\n"
                lines.append(self._take())
            elif byte == 0x0A:
                continue   # the LF of a CR LF pair
            elif byte in _BACKSPACES:
                if self._chars:
                    self._chars.pop()
                    echo += b"" if self.secret else _ERASE
            elif byte == 0x03:   # Ctrl-C: abandon the line
                echo += b"^C\r\n"
                self._take()
                lines.append("")
            elif byte == 0x15:   # Ctrl-U: erase the line
                echo += self._replace("")
            elif byte == 0x09:
                echo += self._tab()
            elif byte < 0x20:
                continue
            else:
                text = self._decoder.decode(bytes([byte]))
                if text and len(self._chars) < self.max_chars:
                    self._chars.append(text)
                    echo += b"" if self.secret else text.encode("utf-8")
        return bytes(echo), lines

    def _take(self) -> str:
        line = "".join(self._chars)
        self._chars.clear()
        self._decoder.reset()
        self._recall = 0
        return line

    def _replace(self, text: str) -> bytes:
        """Show `text` in place of the line as typed so far (only what differs is sent)."""
        shown = self.pending
        if text.startswith(shown) and not self.secret:
            self._chars = list(text[: self.max_chars])
            return "".join(self._chars)[len(shown):].encode("utf-8")
        erase = b"" if self.secret else _ERASE * len(self._chars)
        self._chars = list(text[: self.max_chars])
        return erase + (b"" if self.secret else "".join(self._chars).encode("utf-8"))

    def _escape_byte(self, byte: int) -> bytes:
        self._escape_len += 1
        if self._escape == "esc":   # ESC [ A (CSI) and ESC O A (SS3) are both arrow keys
            self._escape = {ord("["): "csi", ord("O"): "ss3"}.get(byte, "")
            return b""
        if self._escape == "ss3" or 0x40 <= byte <= 0x7E or self._escape_len > _MAX_ESCAPE_BYTES:
            self._escape = ""
            if byte in (ord("A"), ord("B")) and not self.secret:
                return self._walk_history(1 if byte == ord("A") else -1)
        return b""

    def _walk_history(self, step: int) -> bytes:
        target = min(max(self._recall + step, 0), len(self.history))
        if target == self._recall:
            return b"\a" if step > 0 else b""
        if self._recall == 0:
            self._typed = self.pending
        self._recall = target
        return self._replace(self._typed if target == 0 else self.history[-target])

    def _tab(self) -> bytes:
        """Complete the command name being typed: at once when one fits, else list those that do."""
        text = self.pending
        if self.secret or self.complete is None or " " in text:
            return b""
        matches = sorted(name for name in self.complete(text) if name.startswith(text))
        if not matches:
            return b"\a"
        if len(matches) == 1:
            return self._replace(matches[0] + " ")
        common = _common_prefix(matches)
        if len(common) > len(text):
            return self._replace(common)
        listing = "  ".join(matches)
        return f"\r\n{listing}\r\n{self.prompt}{text}".encode()


def _common_prefix(words: list[str]) -> str:
    first, last = min(words), max(words)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]
