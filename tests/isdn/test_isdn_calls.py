"""BriCalls: the calls of one BRI from its Q.931 messages, as the signals a recorder acts on."""

from __future__ import annotations

from callrec.isdn import (
    BriAlerting,
    BriAnswered,
    BriCalls,
    BriChannelAssigned,
    BriDigits,
    BriEnded,
    BriOffered,
    BriSignal,
    CallId,
    DChannelDecoder,
)
from callrec.isdn.trace import (
    T0,
    Trace,
    bearer_speech,
    called,
    calling,
    cause,
    channel,
    inbound_call,
    outbound_call,
    overlap_call,
    q931,
    rejected_call,
)


def _signals(tr: Trace, calls: BriCalls | None = None) -> list[BriSignal]:
    calls = calls or BriCalls()
    out: list[BriSignal] = []
    for msg in DChannelDecoder().feed(tr.frames):
        out += calls.feed(msg)
    return out


def test_an_inbound_call_rings_is_answered_and_ends_with_its_cause() -> None:
    tr = Trace()
    inbound_call(tr, cr=5, caller="0312345678", callee="0698765432", b=1)
    sig = _signals(tr)
    call = CallId(5, network_side=True)
    assert [type(s) for s in sig] == [BriOffered, BriAlerting, BriAnswered, BriEnded]
    offered, alerting, answered, ended = sig
    assert isinstance(offered, BriOffered) and isinstance(ended, BriEnded)
    assert (offered.call, offered.direction, offered.calling, offered.called, offered.b_channel) == (
        call, "inbound", "0312345678", "0698765432", 1)
    assert all(s.call == call and s.b_channel == 1 for s in sig)
    assert answered.t - offered.t > 4.0 and ended.t - answered.t >= 30.0
    assert (ended.answered, ended.cause, ended.cause_text, ended.cleared_by_network) == (
        True, 16, "Normal call clearing", True)


def test_an_outbound_call_gets_its_b_channel_from_the_networks_first_answer() -> None:
    tr = Trace()
    outbound_call(tr, cr=9, callee="0451234567", b=2)
    sig = _signals(tr)
    assert [type(s) for s in sig] == [BriOffered, BriChannelAssigned, BriAlerting, BriAnswered, BriEnded]
    offered, assigned, *_, ended = sig
    assert isinstance(offered, BriOffered) and isinstance(ended, BriEnded)
    assert (offered.direction, offered.called, offered.b_channel, offered.sending_complete) == (
        "outbound", "0451234567", None, True)
    assert offered.call == CallId(9, network_side=False)
    assert assigned.b_channel == 2 and ended.b_channel == 2
    assert (ended.answered, ended.cause, ended.cleared_by_network) == (True, 16, False)


def test_overlap_dialling_grows_the_called_number_until_call_proceeding() -> None:
    tr = Trace()
    overlap_call(tr, cr=12, parts=("03", "1234", "5678"))
    sig = _signals(tr)
    assert [type(s) for s in sig] == [BriOffered, BriChannelAssigned, BriDigits, BriDigits, BriDigits, BriDigits,
                                      BriAlerting, BriAnswered, BriEnded]
    offered = sig[0]
    assert isinstance(offered, BriOffered) and offered.called is None and not offered.sending_complete
    digits = [s for s in sig if isinstance(s, BriDigits)]
    assert [(d.digits, d.called, d.overlap) for d in digits] == [
        ("03", "03", True), ("1234", "031234", True), ("5678", "0312345678", True), ("9", "03123456789", True)]
    assert {s.b_channel for s in sig[1:]} == {1}
    assert isinstance(sig[-1], BriEnded) and sig[-1].cleared_by_network is True


def test_digits_after_call_proceeding_are_reported_but_do_not_change_the_number() -> None:
    tr = Trace()
    tr.user(q931("SETUP", 3, False, called("0312")))
    tr.net(q931("CALL PROCEEDING", 3, True, channel(1)))
    tr.user(q931("INFORMATION", 3, False, called("77")))
    digits = [s for s in _signals(tr) if isinstance(s, BriDigits)]
    assert [(d.digits, d.called, d.overlap) for d in digits] == [("77", "0312", False)]


def test_two_overlapping_calls_on_b1_and_b2_are_tracked_apart() -> None:
    a, b = Trace(), Trace()
    inbound_call(a, cr=5, caller="0311111111", b=1, talk_s=30.0)
    outbound_call(b, cr=5, callee="0622222222", b=2, talk_s=5.0)   # the same call reference, the other side's
    b.t = a.t = T0
    merged = Trace()
    merged.frames = sorted(a.frames + [f.__class__(f.t + 1.0, f.data, f.from_network) for f in b.frames],
                           key=lambda f: f.t)
    calls = BriCalls()
    sig = _signals(merged, calls)
    inbound, outbound = CallId(5, True), CallId(5, False)
    by_call: dict[CallId, list[BriSignal]] = {inbound: [], outbound: []}
    for s in sig:
        by_call[s.call].append(s)
    assert [type(s) for s in by_call[inbound]] == [BriOffered, BriAlerting, BriAnswered, BriEnded]
    assert [type(s) for s in by_call[outbound]] == [BriOffered, BriChannelAssigned, BriAlerting, BriAnswered,
                                                    BriEnded]
    assert {s.b_channel for s in by_call[inbound]} == {1}
    assert {s.b_channel for s in by_call[outbound][1:]} == {2}
    ends = [s for s in sig if isinstance(s, BriEnded)]
    assert [e.call for e in ends] == [outbound, inbound]     # the short call ends first, the long one goes on
    assert calls.calls == ()


def test_a_call_rejected_busy_ends_unanswered_with_cause_17() -> None:
    tr = Trace()
    rejected_call(tr, cr=7, value=17)
    sig = _signals(tr)
    assert [type(s) for s in sig] == [BriOffered, BriEnded]
    ended = sig[1]
    assert isinstance(ended, BriEnded)
    assert (ended.answered, ended.cause, ended.cause_text, ended.b_channel, ended.cleared_by_network) == (
        False, 17, "User busy", 2, False)


def test_the_phone_that_answers_keeps_the_call_when_the_others_are_cleared() -> None:
    tr = Trace()
    tr.net(q931("SETUP", 4, False, bearer_speech(), channel(1), calling("0311"), called("0622")), ui=True, tei=127)
    tr.user(q931("ALERTING", 4, True), tei=64)
    tr.user(q931("ALERTING", 4, True), tei=70)
    tr.user(q931("CONNECT", 4, True), tei=70)
    tr.net(q931("CONNECT ACK", 4, False), tei=70)
    tr.net(q931("RELEASE", 4, False, cause(26)), tei=64)          # non-selected user clearing
    tr.user(q931("RELEASE COMPLETE", 4, True), tei=64)
    calls = BriCalls()
    sig = _signals(tr, calls)
    assert [type(s) for s in sig] == [BriOffered, BriAlerting, BriAnswered]
    (call,) = calls.calls
    assert call.tei == 70 and call.answered_at is not None


def test_one_phone_declining_does_not_end_a_call_another_phone_rings_for() -> None:
    tr = Trace()
    tr.net(q931("SETUP", 4, False, channel(1), called("0622")), ui=True, tei=127)
    tr.user(q931("ALERTING", 4, True), tei=64)
    tr.user(q931("RELEASE COMPLETE", 4, True, cause(17)), tei=70)   # a busy second phone
    assert [type(s) for s in _signals(tr)] == [BriOffered, BriAlerting]
    tr.user(q931("RELEASE COMPLETE", 4, True, cause(21)), tei=64)   # the ringing phone rejects too
    ended = _signals(tr)[-1]
    assert isinstance(ended, BriEnded) and ended.cause == 21 and not ended.answered


def test_messages_for_unknown_calls_and_dummy_references_are_ignored_and_counted() -> None:
    tr = Trace()
    tr.net(q931("RELEASE COMPLETE", 40, False, cause(81)))
    tr.net(q931("STATUS", 0, False, cr_len=0))
    calls = BriCalls()
    assert _signals(tr, calls) == []
    assert calls.ignored == {"no such call": 1, "global or dummy call reference": 1}


def test_late_clearing_messages_after_the_end_give_no_second_end() -> None:
    tr = Trace()
    inbound_call(tr)
    tr.net(q931("RELEASE COMPLETE", 5, False))
    ends = [s for s in _signals(tr) if isinstance(s, BriEnded)]
    assert len(ends) == 1


def test_an_unanswered_call_that_goes_quiet_times_out_answered_ones_never_do() -> None:
    calls = BriCalls(unanswered_timeout_s=300.0)
    tr = Trace()
    tr.net(q931("SETUP", 1, False, channel(1), calling("0311")), ui=True, tei=127)
    tr.user(q931("SETUP", 2, False, called("0622")), tei=65)
    tr.net(q931("CALL PROCEEDING", 2, True, channel(2)), tei=65)
    tr.net(q931("CONNECT", 2, True), tei=65)
    _signals(tr, calls)
    due = calls.next_due()
    assert due is not None and due == tr.frames[0].t + 300.0
    assert calls.advance(due - 1) == []
    (ended,) = calls.advance(due)
    assert isinstance(ended, BriEnded) and ended.call == CallId(1, True) and ended.reason == "timeout"
    assert calls.advance(due + 86400) == []
    assert [c.call for c in calls.calls] == [CallId(2, False)]


def test_a_new_setup_reusing_a_call_reference_is_a_new_call() -> None:
    tr = Trace()
    rejected_call(tr, cr=7)
    tr.net(q931("SETUP", 7, False, channel(1), calling("0999")), ui=True, tei=127)
    sig = _signals(tr)
    assert [type(s) for s in sig] == [BriOffered, BriEnded, BriOffered]
    assert isinstance(sig[2], BriOffered) and sig[2].calling == "0999"


def test_a_repeated_setup_is_not_a_second_call() -> None:
    tr = Trace()
    setup = q931("SETUP", 1, False, channel(1), calling("0311"))
    tr.net(setup, ui=True, tei=127)
    tr.net(setup, ui=True, tei=127, dt=4.0)     # T303 expired, the network repeats
    calls = BriCalls()
    assert [type(s) for s in _signals(tr, calls)] == [BriOffered]
    assert calls.ignored == {"setup repeated": 1}


def test_signals_are_frozen() -> None:
    signal = BriAlerting(1.0, CallId(1, True), 1)
    try:
        signal.t = 2.0  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("signal is mutable")
