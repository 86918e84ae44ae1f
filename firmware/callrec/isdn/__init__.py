"""ISDN BRI: the D-channel read from a capture file or the tap's UART, Q.931 decoded, calls followed.

Layers, each usable alone: `pcap` (capture files) and `hdlc`/`live` (the tap board) give
`CapturedFrame`s; `DChannelDecoder` (LAPD, then Q.931) turns them into `Q931Message`s and counts
what it skipped; `BriCalls` follows the calls and emits the signals a recorder acts on;
`run_analyze` is the `callrec analyze` command.
"""

from callrec.isdn.analyze import analyze, message_dict, open_capture, run_analyze
from callrec.isdn.calls import (
    BriAlerting,
    BriAnswered,
    BriCall,
    BriCalls,
    BriChannelAssigned,
    BriDigits,
    BriEnded,
    BriOffered,
    BriSignal,
    CallId,
)
from callrec.isdn.dchannel import DChannelDecoder
from callrec.isdn.errors import FrameError, FrameSkipped, PcapFormatError
from callrec.isdn.hdlc import HdlcCapture, HdlcDeframer, crc16_x25, encode_frame
from callrec.isdn.lapd import LapdFrame, parse_lapd
from callrec.isdn.live import FrameSink, SerialDChannel
from callrec.isdn.pcap import (
    LINKTYPE_LAPD,
    LINKTYPE_LINUX_LAPD,
    CapturedFrame,
    PcapReader,
    read_pcap,
    write_pcap,
)
from callrec.isdn.q850 import Q850_CAUSES, cause_text
from callrec.isdn.q931 import (
    MESSAGE_NAMES,
    MESSAGE_TYPES,
    Cause,
    ChannelId,
    PartyNumber,
    Progress,
    Q931Message,
    decode_q931,
)
from callrec.isdn.trace import Trace, two_calls_on_a_bri

__all__ = [
    "LINKTYPE_LAPD", "LINKTYPE_LINUX_LAPD", "MESSAGE_NAMES", "MESSAGE_TYPES", "Q850_CAUSES", "BriAlerting",
    "BriAnswered", "BriCall", "BriCalls", "BriChannelAssigned", "BriDigits", "BriEnded", "BriOffered", "BriSignal",
    "CallId", "CapturedFrame", "Cause", "ChannelId", "DChannelDecoder", "FrameError", "FrameSink", "FrameSkipped",
    "HdlcCapture", "HdlcDeframer", "LapdFrame", "PartyNumber", "PcapFormatError", "PcapReader", "Progress",
    "Q931Message", "SerialDChannel", "analyze", "cause_text", "crc16_x25", "decode_q931", "encode_frame",
    "message_dict", "open_capture", "parse_lapd", "read_pcap", "run_analyze", "write_pcap", "Trace",
    "two_calls_on_a_bri"
]
