"""What the D-channel says about a line's call, in the core: numbers, answer, cause.

The BRI line source (line/isdn.py) gives the edges the line monitor turns into calls, and beside
them `IsdnInfo`: here those facts go where the analog line's caller ID and tones go (the caller's
number, the dialled number, the far end's answer, why the call ended), and into the record's `isdn`.
A call the network refused before it began (busy, rejected) has no recording; its `line.isdn`
event with the cause is what says it happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callrec.core.calls import Calls, isdn_record
from callrec.core.state import LineState
from callrec.line import IsdnInfo

USER_BUSY = 17


class IsdnFacts:
    def __init__(self, calls: Calls, emit: Callable[..., None]) -> None:
        self.calls = calls
        self.emit = emit

    def info(self, line: LineState, item: IsdnInfo) -> None:
        facts = dict(item.fields)
        line.isdn = facts
        if item.kind == "offered" and facts.get("direction") == "inbound" and facts.get("calling"):
            line.caller = {"standard": "isdn", "valid": True, "number": facts["calling"], "name": None,
                           "reason": None}
        call = line.call
        if call is not None and call.isdn is not None and call.isdn.get("call_ref") != facts.get("call_ref"):
            call = None   # the next call on the B-channel, while the last one's hang-up is being confirmed
        if call is not None:
            call.isdn = isdn_record(facts)
            if call.direction == "outbound" and facts.get("called"):
                call.dialed = str(facts["called"])
            if item.kind == "answered" and call.answer_pending:
                self.calls.answer(line, call, item.t, "isdn_connect")
                call.far_end_answered_t = item.t
            if item.kind == "ended":
                call.end_reason = _end_reason(facts, bool(facts.get("answered")))   # CONNECT seen
        if item.kind in ("offered", "ended"):
            fields: dict[str, Any] = {"event": item.kind, **isdn_record(facts)}
            self.emit("line.isdn", line.id, call.call_id if call else None, item.t, **fields)
        if item.kind == "ended" and call is None:
            line.isdn = None   # a call that never began (rejected, missed): its facts end here
            line.caller = None if facts.get("direction") == "inbound" and not facts.get("answered") else line.caller


def _end_reason(facts: dict[str, Any], answered: bool) -> str:
    cause = (facts.get("cause") or {}).get("value")
    if cause == USER_BUSY:
        return "busy"
    if not answered:
        return "unanswered"
    return "far_end_hangup" if facts.get("cleared_by_network") else "hangup"
