"""Caller ID: Bell 202 SDMF/MDMF, ETSI EN 300 659 (V.23 and DTMF CLIP), NTT Number Display.

Messages are built here too (`*_message`, `signal`), so the tests, the simulator and the bench send
exactly the framing the receiver expects; figures are in ../shared/spec/telephony.md §2.

The rule that matters: a message whose checksum (Bell/ETSI: two's complement of the byte sum) or
CRC (NTT: CRC-16/KERMIT) fails, or that breaks off, is reported with `valid: false` and no number,
name or reason. A wrong number shown to a user is worse than none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .detection import SAMPLE_RATE, Detection
from .fsk import BELL202, V23, FskReceiver, async_bits, modulate

log = logging.getLogger(__name__)

DLE, SOH, STX, ETX = 0x10, 0x01, 0x02, 0x03
CALL_SETUP_TYPES = {0x04: "sdmf", 0x80: "mdmf"}
KNOWN_TYPES = {0x04, 0x06, 0x80, 0x82, 0x86, 0x89}
REASONS = {"O": "unavailable", "P": "private", "C": "payphone", "S": "service_conflict"}
DTMF_CLIP_REASONS = {"00": "unavailable", "10": "private"}


# ---------------------------------------------------------------- building (transmit side)

def checksum(data: bytes) -> int:
    """Bell/ETSI: the byte that makes the mod-256 sum of the whole message zero."""
    return (-sum(data)) & 0xFF


def crc16_kermit(data: bytes) -> int:
    """CRC-16/KERMIT (reflected 0x8408, initial 0), as NTT and spandsp's crc_itu16_calc use."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def sdmf_message(when: str, number: str | None = None, reason: str | None = None) -> bytes:
    """Bell SDMF (0x04): MMDDHHMM then the number, or the reason letter O/P."""
    body = when.encode() + (number.encode() if number is not None else (reason or "O").encode())
    msg = bytes([0x04, len(body)]) + body
    return msg + bytes([checksum(msg)])


def mdmf_message(params: list[tuple[int, bytes]], msg_type: int = 0x80) -> bytes:
    """Bell MDMF / ETSI CLIP: type, length, (param type, length, value)…, checksum."""
    body = b"".join(bytes([t, len(v)]) + v for t, v in params)
    msg = bytes([msg_type, len(body)]) + body
    return msg + bytes([checksum(msg)])


def _even_parity(byte: int) -> int:
    b = byte & 0x7F
    return b | (0x80 if bin(b).count("1") % 2 else 0)


def ntt_message(params: list[tuple[int, bytes]], msg_type: int = 0x40) -> bytes:
    """NTT frame: DLE SOH 07 DLE STX type len params DLE ETX CRC(lo, hi), 7 bits + even parity.

    A DLE inside the data is sent twice. The CRC covers the bytes as sent (parity included) from the
    header byte through ETX, as spandsp's encoder does; the length counts unstuffed bytes [M].
    """
    body = b"".join(bytes([t, len(v)]) + v for t, v in params)
    stuffed = bytearray()
    for b in bytes([msg_type, len(body)]) + body:
        stuffed.append(b)
        if b == DLE:
            stuffed.append(DLE)
    frame = bytes(_even_parity(b) for b in bytes([DLE, SOH, 0x07, DLE, STX]) + bytes(stuffed)
                  + bytes([DLE, ETX]))
    crc = crc16_kermit(frame[2:])
    return frame + bytes([crc & 0xFF, crc >> 8])


def signal(message: bytes, standard: str, level_dbm0: float = -13.5, *, seizure_bits: int | None = None,
           mark_bits: int | None = None) -> np.ndarray:
    """The FSK burst for `message`: channel seizure (Bell/ETSI 300 bits), marks (180, NTT 75), data
    (NTT with 4 stop bits, as spandsp sends it), then a few marks. Float samples at 8 kHz."""
    ntt = standard == "ntt"
    spec = BELL202 if standard == "bell202" else V23
    seizure = (0 if ntt else 300) if seizure_bits is None else seizure_bits
    marks = (75 if ntt else 180) if mark_bits is None else mark_bits
    bits = [i & 1 for i in range(seizure)] + [1] * marks + async_bits(message, 4 if ntt else 1) + [1] * 5
    return modulate(bits, spec, level_dbm0)


def dtmf_clip_string(number: str | None = None, reason: str | None = None) -> str:
    """ETSI DTMF CLIP: `A<number>C`, or `B00C` (unavailable) / `B10C` (private)."""
    if number is not None:
        return f"A{number}C"
    return "B10C" if reason == "private" else "B00C"


# ---------------------------------------------------------------- parsing

def parse_bell_etsi(msg: bytes) -> dict[str, object] | None:
    """Fields of a checksum-valid call set-up message, or None for other message types (and for
    anything too short to be a message: type, length and checksum are three bytes)."""
    if len(msg) < 3:
        return None
    kind = CALL_SETUP_TYPES.get(msg[0])
    body = msg[2:-1]
    out: dict[str, object] = {"number": None, "name": None, "reason": None, "message_type": f"0x{msg[0]:02X}"}
    if kind == "sdmf":
        text = body.decode("latin-1")
        out["datetime"] = text[:8]
        rest = text[8:]
        if rest in ("O", "P"):
            out["reason"] = REASONS[rest]
        else:
            out["number"] = rest
        return out
    if kind != "mdmf":
        return None
    i = 0
    while i + 2 <= len(body):
        ptype, plen = body[i], body[i + 1]
        value = body[i + 2: i + 2 + plen].decode("latin-1")
        i += 2 + plen
        if ptype == 0x01:
            out["datetime"] = value
        elif ptype in (0x02, 0x03) and ptype == 0x02:
            out["number"] = value
        elif ptype == 0x03:
            out["called_number"] = value
        elif ptype == 0x04:
            out["reason"] = REASONS.get(value[:1], value)
        elif ptype == 0x07:
            out["name"] = value
        elif ptype == 0x08:
            out["name_reason"] = REASONS.get(value[:1], value)
        elif ptype == 0x1A:
            out["redirecting_number"] = value
    return out


def ntt_end(raw: bytes) -> int | None:
    """Index just past the ETX of an NTT frame (parity stripped for framing), or None if not yet."""
    i = 5
    while i + 1 < len(raw):
        if raw[i] & 0x7F == DLE:
            nxt = raw[i + 1] & 0x7F
            if nxt == ETX:
                return i + 2
            i += 2
            continue
        i += 1
    return None


def parse_ntt(raw: bytes) -> tuple[bool, dict[str, object]]:
    """(CRC and parity good, fields) of a complete NTT frame."""
    etx = ntt_end(raw)
    out: dict[str, object] = {"number": None, "name": None, "reason": None}
    if etx is None or len(raw) < etx + 2:
        return False, out
    frame = raw[:etx]
    crc_ok = crc16_kermit(frame[2:] + raw[etx:etx + 2]) == 0
    parity_ok = all(_even_parity(b) == b for b in frame)
    data = bytearray()
    i = 5
    while i < etx - 2:
        b = frame[i] & 0x7F
        data.append(b)
        i += 2 if b == DLE else 1
    if not (crc_ok and parity_ok) or len(data) < 2:
        return False, out
    out["message_type"] = f"0x{data[0]:02X}"
    body = bytes(data[2:])
    j = 0
    while j + 2 <= len(body):
        ptype, plen = body[j], body[j + 1]
        value = body[j + 2: j + 2 + plen].decode("ascii", "replace")
        j += 2 + plen
        if ptype == 0x02:
            out["number"] = value
        elif ptype == 0x04:
            out["reason"] = REASONS.get(value[:1], value)
        elif ptype == 0x09:
            out["called_number"] = value
    return True, out


def parse_dtmf_clip(digits: str) -> dict[str, object] | None:
    """Fields of a DTMF CLIP string (`A…C`, `A…#`, `D…C`, `B00C`, `D1#`…), or None if not one.

    Letters open fields: A (or a leading D) number, D redirecting number, B reason code; C or #
    ends. `D1#` is private and `D2#`/`D3#` unavailable (Danish form, as in Asterisk) [M].
    """
    if len(digits) < 2 or digits[0] not in "ABD" or digits[-1] not in "C#":
        return None
    out: dict[str, object] = {"number": None, "name": None, "reason": None}
    if digits[0] == "D" and len(digits) == 3 and digits[1] in "123":
        out["reason"] = "private" if digits[1] == "1" else "unavailable"
        return out
    fields: list[tuple[str, str]] = []
    for ch in digits[:-1]:
        if ch in "ABD":
            fields.append((ch, ""))
        elif ch.isdigit() and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + ch)
        else:
            return None
    for i, (tag, value) in enumerate(fields):
        if tag == "A" or (tag == "D" and i == 0):
            out["number"] = value
        elif tag == "D":
            out["redirecting_number"] = value
        elif tag == "B":
            out["reason"] = DTMF_CLIP_REASONS.get(value, value)
    return out


# ---------------------------------------------------------------- streaming detectors

@dataclass
class _Message:
    start: int
    modem: str
    raw: bytearray = field(default_factory=bytearray)
    mode: str | None = None
    corrupt: bool = False


class CallerIdDetector:
    """FSK caller ID on a line: Bell 202, ETSI V.23 and NTT, told apart by carrier and framing."""

    def __init__(self, *, gate: bool = True) -> None:
        self._rx = FskReceiver(gate=gate)
        self._n_in = 0
        self._t_base = 0.0
        self._msg: _Message | None = None

    def feed(self, samples: np.ndarray, t0: float) -> list[Detection]:
        self._t_base = t0 - self._n_in / SAMPLE_RATE
        self._n_in += len(samples)
        out: list[Detection] = []
        for ev in self._rx.feed(samples):
            if ev[0] == "sync":
                self._msg = _Message(ev[1], ev[2])
            elif ev[0] == "byte" and self._msg is not None:
                self._byte(ev[1], ev[2], ev[3], out)
            elif ev[0] == "lost" and self._msg is not None:
                if self._msg.mode is not None:
                    self._report(False, {}, ev[1], out)
                self._msg = None
        return out

    @property
    def receiving(self) -> bool:
        """A message is under way (its carrier was found and framed)."""
        return self._msg is not None

    def flush(self) -> list[Detection]:
        out: list[Detection] = []
        if self._msg is not None and self._msg.mode is not None:
            self._report(False, {}, self._n_in, out)
        self._msg = None
        return out

    def _byte(self, index: int, value: int, framing_ok: bool, out: list[Detection]) -> None:
        msg = self._msg
        assert msg is not None
        if msg.mode is None:
            if value in KNOWN_TYPES and framing_ok:
                msg.mode = "etsi" if msg.modem == "v23" else "bell202"
            elif value == _even_parity(DLE) and framing_ok:
                msg.mode = "ntt"
            else:
                log.debug("FSK burst with unknown first byte 0x%02X ignored", value)
                self._msg = None
                return
        msg.corrupt |= not framing_ok
        msg.raw.append(value)
        end = index + int(10 * SAMPLE_RATE / 1200)
        raw = bytes(msg.raw)
        if msg.mode == "ntt":
            if len(raw) == 2 and raw[1] != _even_parity(SOH):
                msg.corrupt = True
            etx = ntt_end(raw)
            if etx is not None and len(raw) >= etx + 2:
                valid, fields = parse_ntt(raw)
                self._report(valid and not msg.corrupt, fields, end, out)
            elif len(raw) > 300:
                self._report(False, {}, end, out)
            return
        if len(raw) >= 2 and len(raw) == raw[1] + 3:
            valid = not msg.corrupt and sum(raw) & 0xFF == 0
            parsed = parse_bell_etsi(raw) if valid else {}
            if valid and parsed is None:
                log.info("valid caller-ID message of type 0x%02X (not call set-up) ignored", raw[0])
                self._msg = None
                return
            self._report(valid, parsed or {}, end, out)

    def _report(self, valid: bool, fields: dict[str, object], end_index: int, out: list[Detection]) -> None:
        msg = self._msg
        assert msg is not None and msg.mode is not None
        data: dict[str, object] = {"standard": msg.mode, "valid": valid, "number": None, "name": None,
                                   "reason": None}
        if valid:
            data.update(fields)
        else:
            log.warning("caller ID (%s) failed its check; reported as invalid", msg.mode)
        out.append(Detection("caller_id", self._t_base + msg.start / SAMPLE_RATE,
                             self._t_base + end_index / SAMPLE_RATE, data))
        self._msg = None


class DtmfClipParser:
    """Turns DTMF digits into DTMF CLIP caller ID (sent before the first ring in some countries)."""

    def __init__(self, max_gap: float = 1.5) -> None:
        self.max_gap = max_gap
        self._digits = ""
        self._start = 0.0
        self._last = -1e9

    def push(self, det: Detection) -> Detection | None:
        digit = str(det.fields["digit"])
        if self._digits and det.start - self._last > self.max_gap:
            self._digits = ""
        if not self._digits:
            if digit not in "ABD":
                return None
            self._start = det.start
        self._digits += digit
        self._last = det.end if det.end is not None else det.start
        if digit in "C#":
            text, self._digits = self._digits, ""
            fields = parse_dtmf_clip(text)
            if fields is None:
                return None
            data: dict[str, object] = {"standard": "dtmf", "valid": True}
            data.update(fields)
            data["digits"] = text
            return Detection("caller_id", self._start, self._last, data)
        if len(self._digits) > 40:
            self._digits = ""
        return None
