"""The line monitor's rules, to the millisecond, on injected time (no hardware, no audio)."""

from __future__ import annotations

from callrec.line import (
    CallBegan,
    CallEnded,
    FlashSeen,
    LineMonitor,
    MonitorSettings,
    NumberDisplaySeen,
    RawEdge,
    RingEnded,
    RingingStopped,
    RingStarted,
)


def run(edges: list[tuple[float, str, bool]], until: float, **settings: object) -> list[object]:
    monitor = LineMonitor(1, MonitorSettings(**settings))  # type: ignore[arg-type]
    out: list[object] = []
    for t, signal, active in edges:
        out += monitor.edge(RawEdge(1, signal, active, t))  # type: ignore[arg-type]
    out += monitor.advance(until)
    return out


def of(out: list[object], kind: type) -> list:
    return [s for s in out if isinstance(s, kind)]


def test_offhook_counts_only_after_the_debounce_and_is_dated_at_its_edge():
    monitor = LineMonitor(1, MonitorSettings(debounce_s=0.03))
    assert monitor.edge(RawEdge(1, "hook", True, 5.0)) == []
    assert of(monitor.advance(5.029), CallBegan) == []
    began = of(monitor.advance(5.030), CallBegan)
    assert began == [CallBegan(5.0, "outbound", 0)]


def test_ringing_before_offhook_makes_an_inbound_call_with_its_ring_count():
    out = run([(0, "ring", True), (1, "ring", False), (3, "ring", True), (4, "ring", False),
               (5, "hook", True)], 6)
    assert of(out, CallBegan) == [CallBegan(5, "inbound", 2)]


def test_ringing_outside_the_inbound_window_leaves_the_call_outbound():
    out = run([(0, "ring", True), (1, "ring", False), (20, "hook", True)], 21, inbound_window_s=8.0)
    assert of(out, RingingStopped) == [RingingStopped(9.0, 1)]
    assert of(out, CallBegan) == [CallBegan(20, "outbound", 0)]


def test_answer_during_a_ring_counts_that_ring():
    out = run([(0, "ring", True), (1, "ring", False), (3, "ring", True), (3.4, "hook", True)], 4)
    assert of(out, CallBegan)[0].rings == 2


def test_ring_pulse_train_from_a_bare_opto_is_one_burst_per_ring():
    edges = []
    for burst in (0.0, 3.0):
        t = burst
        while t < burst + 1.0:      # 16 Hz ring: 31 ms on, 31 ms off
            edges += [(round(t, 4), "ring", True), (round(t + 0.031, 4), "ring", False)]
            t += 0.0625
    out = run(edges, 5)
    assert len(of(out, RingStarted)) == 2
    assert [r.count for r in of(out, RingEnded)] == [1, 2]


def test_a_ring_glitch_shorter_than_the_debounce_is_not_a_ring():
    out = run([(1.0, "ring", True), (1.01, "ring", False)], 3)
    assert of(out, RingStarted) == [] and of(out, RingEnded) == []


def test_onhook_shorter_than_flash_max_is_a_flash_not_a_hangup():
    out = run([(1, "hook", True), (5, "hook", False), (5.5, "hook", True)], 10, flash_max_s=1.0)
    assert of(out, FlashSeen) == [FlashSeen(5, 0.5)]
    assert of(out, CallEnded) == []


def test_onhook_longer_than_flash_max_hangs_up_at_the_onhook_edge():
    out = run([(1, "hook", True), (5, "hook", False)], 10, flash_max_s=1.0)
    assert of(out, CallEnded) == [CallEnded(5)]
    assert of(out, FlashSeen) == []


def test_onhook_shorter_than_flash_min_is_a_glitch_not_a_flash():
    out = run([(1, "hook", True), (5, "hook", False), (5.05, "hook", True)], 10, flash_min_s=0.1)
    assert of(out, FlashSeen) == [] and of(out, CallEnded) == []


def test_contact_bounce_at_offhook_gives_one_call():
    edges = [(2.0 + i * 0.004, "hook", i % 2 == 0) for i in range(15)]
    out = run(edges, 5)
    assert len(of(out, CallBegan)) == 1


def test_chatter_shorter_than_the_debounce_never_makes_a_call():
    edges = []
    for i in range(100):
        edges += [(1 + i * 0.05, "hook", True), (1 + i * 0.05 + 0.02, "hook", False)]
    out = run(edges, 10)
    assert of(out, CallBegan) == []


def test_number_display_blip_after_car_is_not_a_call():
    out = run([(0.5, "ring", True), (1.0, "ring", False), (1.3, "hook", True), (2.5, "hook", False),
               (3.5, "ring", True), (4.5, "ring", False), (6.5, "ring", True), (7.0, "hook", True)], 9,
              nd_enabled=True)
    assert of(out, NumberDisplaySeen) == [NumberDisplaySeen(1.3, 2.5)]
    assert of(out, CallBegan) == [CallBegan(7.0, "inbound", 2)]


def test_offhook_after_car_that_stays_is_a_call_dated_from_its_edge():
    out = run([(0.5, "ring", True), (1.0, "ring", False), (1.3, "hook", True)], 10,
              nd_enabled=True, nd_max_offhook_s=3.0)
    assert of(out, CallBegan) == [CallBegan(1.3, "inbound", 0)]


def test_without_number_display_a_short_first_burst_is_a_ring():
    out = run([(0.5, "ring", True), (1.0, "ring", False), (1.3, "hook", True)], 3, nd_enabled=False)
    assert of(out, CallBegan) == [CallBegan(1.3, "inbound", 1)]


def test_flash_just_under_flash_max_settles_as_a_flash_not_a_hangup():
    out = run([(1, "hook", True), (5, "hook", False), (5.98, "hook", True)], 10, flash_max_s=1.0)
    assert [(f.t, round(f.duration_s, 6)) for f in of(out, FlashSeen)] == [(5, 0.98)]
    assert of(out, CallEnded) == [] and len(of(out, CallBegan)) == 1


def test_bounce_after_the_flash_window_still_hangs_up_at_the_onhook_edge():
    out = run([(1, "hook", True), (5, "hook", False), (5.99, "hook", True), (6.0, "hook", False)], 10,
              flash_max_s=1.0)
    assert of(out, CallEnded) == [CallEnded(5)] and of(out, FlashSeen) == []


# ---- the levels the line port reports once at start --------------------------------------------

def test_offhook_found_at_the_start_report_is_a_call_already_in_progress():
    """The service (re)started during a call: the hook reads off-hook from the first report on."""
    monitor = LineMonitor(1, MonitorSettings(debounce_s=0.03))
    assert monitor.report(RawEdge(1, "hook", True, 5.0)) == []
    assert monitor.report(RawEdge(1, "ring", False, 5.0)) == []
    assert of(monitor.advance(5.029), CallBegan) == []
    assert of(monitor.advance(5.030), CallBegan) == [CallBegan(5.0, "outbound", 0, in_progress=True)]


def test_offhook_after_an_onhook_start_report_is_a_new_call_not_one_in_progress():
    monitor = LineMonitor(1, MonitorSettings())
    monitor.report(RawEdge(1, "hook", False, 0.0))
    monitor.report(RawEdge(1, "ring", False, 0.0))
    out = monitor.edge(RawEdge(1, "hook", True, 5.0)) + monitor.advance(6.0)
    assert of(out, CallBegan) == [CallBegan(5.0, "outbound", 0)]
    assert not of(out, CallBegan)[0].in_progress


def test_an_offhook_start_report_that_goes_onhook_within_the_debounce_is_no_call():
    monitor = LineMonitor(1, MonitorSettings(debounce_s=0.03))
    monitor.report(RawEdge(1, "hook", True, 0.0))
    out = monitor.edge(RawEdge(1, "hook", False, 0.01)) + monitor.advance(5.0)
    assert of(out, CallBegan) == []
    out = monitor.edge(RawEdge(1, "hook", True, 6.0)) + monitor.advance(7.0)
    assert of(out, CallBegan) == [CallBegan(6.0, "outbound", 0)]   # lifted later: a new call


def test_ringing_found_at_the_start_report_is_ringing_not_a_call_and_its_answer_is_inbound():
    monitor = LineMonitor(1, MonitorSettings())
    out = monitor.report(RawEdge(1, "hook", False, 0.0)) + monitor.report(RawEdge(1, "ring", True, 0.0))
    out += monitor.advance(0.9)
    assert of(out, RingStarted) == [RingStarted(0.0)] and of(out, CallBegan) == []
    out = monitor.edge(RawEdge(1, "ring", False, 1.0)) + monitor.advance(2.0)
    assert [r.count for r in of(out, RingEnded)] == [1]
    out = monitor.edge(RawEdge(1, "hook", True, 3.0)) + monitor.advance(4.0)
    assert of(out, CallBegan) == [CallBegan(3.0, "inbound", 1)]
