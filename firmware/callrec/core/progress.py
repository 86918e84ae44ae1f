"""Line intelligence in the core: what DTMF, caller ID and call-progress tones mean for a call.

Caller ID heard while ringing labels the call that follows; digits before the far end answers are
the dialled number, after it they are kept with their offsets (and may be control codes); ringback
stopping, or a voice in its silence, is the far end answering; busy or reorder after the answer is
the far end hanging up. A collaborator of the engine: it runs on the core thread, keeps no state of
its own (the line's and the call's are theirs) and acts on calls through `Calls`.
"""

from __future__ import annotations

import numpy as np

from callrec.audio import AudioPeriod
from callrec.config import Config
from callrec.core.alarms import Emit
from callrec.core.call import Call
from callrec.core.calls import Calls
from callrec.core.display import LineDisplay
from callrec.core.state import VOICE_DBFS, VOICE_MIN_S, LineState
from callrec.dsp import Detection


class CallProgress:
    def __init__(self, config: Config, emit: Emit, calls: Calls, display: LineDisplay) -> None:
        self.config = config
        self._emit = emit
        self.calls = calls
        self.display = display

    def detection(self, line: LineState, d: Detection) -> None:
        call = line.call
        call_id = call.call_id if call else None
        if d.type == "dtmf":
            digit = d.fields["digit"]
            end = d.end if d.end is not None else d.start
            self._emit("line.dtmf", line.id, call_id, d.start, digit=digit, duration_s=round(end - d.start, 3))
            if call is None:
                return
            if call.answer_pending:
                call.dialed += digit
                call.answer_fallback_t = end + self.config.signals.answer_fallback_s
            else:
                call.digits.append({"digit": digit, "at_s": round(d.start - call.started_t, 3)})
                self._control_code(line, call, d.start)
        elif d.type == "caller_id":
            caller = {key: d.fields.get(key) for key in ("standard", "valid", "number", "name", "reason")}
            self._emit("call.caller_id", line.id, call_id, d.start, **caller)
            if caller["valid"]:
                if call is not None and call.caller is None:
                    call.caller = caller   # e.g. type 2 (call waiting) caller ID during the call
                elif call is None:
                    line.caller = caller
                    self.display.refresh(line, d.start)   # dashboards show who is calling while it rings
        elif d.type == "tone":
            kind, state = d.fields["kind"], d.fields.get("state")
            at = d.start if d.end is None else d.end
            self._emit("line.tone", line.id, call_id, at, kind=kind, state=state,
                       start_s=round(d.start, 3) if call is None else round(d.start - call.started_t, 3))
            if kind == "ringback":
                line.ringback = state == "on"
                line.voice_since = None
                if call is not None:
                    call.ringback_heard = True
                    if state == "off" and call.answer_pending:
                        call.far_end_answered_t = at
                        self._emit("call.far_end_answered", line.id, call.call_id, at,
                                   at_s=round(at - call.started_t, 3), by="ringback_stopped")
                        self.calls.answer(line, call, at, "far_end_answer")
            elif kind in ("busy", "reorder") and state == "on" and call is not None:
                if call.answer_pending:
                    call.end_reason = "busy"   # the far end never answered; the office hangs up
                elif self.config.signals.far_end_hangup:
                    call.end_reason = "far_end_hangup"
                    self._emit("call.far_end_hangup", line.id, call.call_id, d.start, tone=kind,
                               at_s=round(d.start - call.started_t, 3))
                    self.calls.end(line, d.start)

    def voice_after_ringback(self, line: LineState, call: Call, period: AudioPeriod, t0: float) -> None:
        """A voice in the ringback's silence is the far end answering: seconds before the tone
        detector could be sure the next ring is not coming (a whole off period, 4 s in the US)."""
        samples = period.samples.astype(np.float64)
        rms_dbfs = 10 * np.log10(max(float(np.mean(samples * samples)), 1e-9) / 32768.0**2)
        if rms_dbfs < VOICE_DBFS:
            line.voice_since = None
            return
        if line.voice_since is None:
            line.voice_since = t0
        detectors = line.detectors
        assert detectors is not None
        since = line.voice_since
        # Sound for VOICE_MIN_S that the tone detector has analysed and found no tone in: a voice.
        # (The detector works in batches and lags the audio; what it has not seen yet may be the
        # ringback itself.)
        if detectors.analysed_until < since + VOICE_MIN_S:
            return
        if detectors.last_tone_t is not None and detectors.last_tone_t >= since:
            line.voice_since = None   # it was the tone (or tone under speech): wait
            return
        t0 = since
        call.far_end_answered_t = t0
        line.ringback = False
        self._emit("call.far_end_answered", line.id, call.call_id, t0, at_s=round(t0 - call.started_t, 3),
                   by="voice")
        self.calls.answer(line, call, t0, "far_end_answer")

    def _control_code(self, line: LineState, call: Call, t: float) -> None:
        """`**1` pauses or resumes, `**2` marks: codes keyed on the office phone, logged in the record."""
        signals = self.config.signals
        if not signals.dtmf_control:
            return
        call.code_keys = (call.code_keys + call.digits[-1]["digit"])[-8:]
        for code, action in ((signals.pause_code, "pause"), (signals.mark_code, "mark")):
            if not call.code_keys.endswith(code):
                continue
            call.code_keys = ""   # a code is consumed: "**1**1" is two presses, not an overlap
            if action == "mark":
                if signals.mark_tag not in call.tags:
                    call.tags.append(signals.mark_tag)
                at = round(line.t_end - call.started_t, 3)
                self.calls.note(call)
            else:
                action = "resume" if call.paused else "pause"
                at = self.calls.set_paused(line, call, action == "pause", by="dtmf")
            call.control_codes.append({"code": code, "action": action, "at_s": at})

