"""Commands over MQTT: validated before the Device sees them, one result each, no ghost actions."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_support import Rig, Subscriber, wait_until

pytest_plugins = ["conftest_mqtt"]

_ids = itertools.count()


@pytest.fixture
def live(rig: Rig) -> tuple[Rig, Subscriber]:
    results = rig.subscribe(f"{rig.root}/cmd/result", f"{rig.root}/status")
    rig.service.start()
    # `online` follows the SUBSCRIBE on the same connection, so the broker has the subscription now.
    assert wait_until(lambda: results.texts(f"{rig.root}/status")[-1:] == ["online"])
    return rig, results


def _call(rig: Rig, results: Subscriber, name: str, body: dict[str, Any]) -> dict[str, Any]:
    command_id = f"t{next(_ids)}"
    results.publish(f"{rig.root}/cmd/{name}", json.dumps({"id": command_id, **body}))
    assert wait_until(lambda: any(r["id"] == command_id for r in results.payloads(f"{rig.root}/cmd/result")))
    return next(r for r in results.payloads(f"{rig.root}/cmd/result") if r["id"] == command_id)


def test_ping_answers_ok_on_cmd_result_not_retained(live: tuple[Rig, Subscriber]) -> None:
    rig, results = live
    reply = _call(rig, results, "ping", {})
    assert reply == {"id": reply["id"], "command": "ping", "ok": True, "error": None, "pong": True}
    message = results.on(f"{rig.root}/cmd/result")[-1]
    assert not message.retain and message.qos == 1


def test_recording_pause_and_resume_reach_the_device_with_validated_args(live: tuple[Rig, Subscriber]) -> None:
    rig, results = live
    assert _call(rig, results, "recording.pause", {"line": 2})["ok"]
    assert rig.device.paused == {2}
    assert _call(rig, results, "recording.resume", {"line": 2})["ok"]
    assert rig.device.paused == set()
    assert _call(rig, results, "call.mark", {"call_id": "c-9", "tag": "important"})["ok"]
    assert rig.device.accepted[-1] == ("call.mark", {"call_id": "c-9", "tag": "important"})


def test_announcement_test_on_a_busy_line_is_refused_with_the_device_message(live: tuple[Rig, Subscriber]) -> None:
    rig, results = live
    rig.device.set_state(1, "offhook")
    reply = _call(rig, results, "announcement.test", {"line": 1})
    assert reply["ok"] is False and "busy" in reply["error"]
    assert _call(rig, results, "announcement.test", {"line": 2})["ok"]


@pytest.mark.parametrize(
    ("name", "body", "fragment"),
    [
        ("recording.pause", {}, "line: Field required"),
        ("recording.pause", {"line": "1"}, "line: Input should be a valid integer"),
        ("recording.pause", {"line": True}, "line: Input should be a valid integer"),
        ("recording.pause", {"line": 1.0}, "line: Input should be a valid integer"),
        ("recording.pause", {"line": 0}, "greater than or equal to 1"),
        ("recording.pause", {"line": 1, "force": True}, "force: Extra inputs are not permitted"),
        ("call.mark", {"call_id": "c"}, "tag: Field required"),
        ("recording.delete", {"line": 1}, "unknown command"),
        ("export", {}, "unknown command"),
        ("call.mark", {"call_id": "c-9", "tag": "vip\u0000"}, "tag: control character U+0000"),
        ("call.mark", {"call_id": "c-9", "tag": "a\nFORGED"}, "tag: control character U+000A"),
        ("call.mark", {"call_id": "c\u001b[2J", "tag": "ok"}, "call_id: control character U+001B"),
    ],
)
def test_wrong_arguments_and_unknown_commands_get_an_error_and_change_nothing(
    live: tuple[Rig, Subscriber], name: str, body: dict[str, Any], fragment: str
) -> None:
    rig, results = live
    reply = _call(rig, results, name, body)
    assert reply["ok"] is False and fragment in reply["error"], reply
    assert rig.device.accepted == [] and rig.device.violations == []


def test_malformed_payload_gets_an_error_result_with_null_id(live: tuple[Rig, Subscriber]) -> None:
    rig, results = live
    for payload in (b"not json", b"[1,2]", b'{"line": 1}', b'{"id": true}', b"\xff\xfe", b'{"id": NaN}'):
        before = len(results.on(f"{rig.root}/cmd/result"))
        results.publish(f"{rig.root}/cmd/recording.pause", payload)
        assert wait_until(lambda b=before: len(results.on(f"{rig.root}/cmd/result")) > b)
        reply = results.payloads(f"{rig.root}/cmd/result")[-1]
        assert reply["ok"] is False and reply["id"] is None and reply["error"]
    assert rig.device.accepted == []


def test_retained_command_is_ignored_even_after_a_reconnect(rig: Rig) -> None:
    results = rig.subscribe(f"{rig.root}/cmd/result", f"{rig.root}/status")
    results.publish(f"{rig.root}/cmd/recording.pause", json.dumps({"id": "ghost", "line": 1}), retain=True)
    rig.service.start()
    assert wait_until(lambda: results.texts(f"{rig.root}/status")[-1:] == ["online"])
    assert _call(rig, results, "ping", {})["ok"]  # commands are handled in order: the ghost came first
    assert rig.device.paused == set()
    assert all(r["id"] != "ghost" for r in results.payloads(f"{rig.root}/cmd/result"))
    results.publish(f"{rig.root}/cmd/recording.pause", b"", retain=True)  # clear it for the broker


def test_retained_command_published_while_connected_is_ignored_too(rig: Rig) -> None:
    results = rig.subscribe(f"{rig.root}/cmd/result", f"{rig.root}/status")
    rig.service.start()
    assert wait_until(lambda: results.texts(f"{rig.root}/status")[-1:] == ["online"])
    results.publish(f"{rig.root}/cmd/recording.pause", json.dumps({"id": "live-ghost", "line": 1}), retain=True)
    assert _call(rig, results, "ping", {})["ok"]  # handled in order: the retained one came first
    assert rig.device.paused == set()
    assert all(r["id"] != "live-ghost" for r in results.payloads(f"{rig.root}/cmd/result"))
    results.publish(f"{rig.root}/cmd/recording.pause", b"", retain=True)


# -- fuzzing: every payload here is wrong by construction, so nothing may reach the Device ----------

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json_values = st.recursive(
    _json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
_bad_line = st.one_of(
    st.text(max_size=5), st.floats(allow_nan=False), st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
    st.integers(max_value=0), st.integers(min_value=65),
)  # fmt: skip
_state_changing = st.sampled_from(["recording.pause", "recording.resume", "announcement.test"])


@st.composite
def _malformed(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["bytes", "non_object", "no_id", "bad_line", "extra_key", "bad_mark", "unknown"]))
    cid = draw(st.text(max_size=10) | st.integers(min_value=-(2**40), max_value=2**40))
    if kind == "bytes":
        return draw(_state_changing), draw(st.binary(max_size=64))
    if kind == "non_object":
        value = draw(_json_values.filter(lambda v: not isinstance(v, dict)))
        return draw(_state_changing), json.dumps(value).encode()
    if kind == "no_id":
        return draw(_state_changing), json.dumps({"line": draw(st.integers(1, 2))}).encode()
    if kind == "bad_line":
        return draw(_state_changing), json.dumps({"id": cid, "line": draw(_bad_line)}).encode()
    if kind == "extra_key":
        extra = draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in ("id", "line")))
        body = {"id": cid, "line": 1, extra: draw(_json_values)}
        return draw(_state_changing), json.dumps(body).encode()
    if kind == "bad_mark":
        body = draw(st.dictionaries(st.sampled_from(["call_id", "tag", "x"]), _json_values, max_size=3))
        if isinstance(body.get("call_id"), str) and isinstance(body.get("tag"), str) and "x" not in body:
            body["tag"] = 7  # would be valid: break it
        return "call.mark", json.dumps({"id": cid, **body}).encode()
    name = draw(st.text(alphabet=st.characters(exclude_characters="+#/", categories=["L", "N", "P", "S"]),
                        min_size=1, max_size=16).filter(lambda n: n not in {"ping", "call.mark", "result",
                        "recording.pause", "recording.resume", "announcement.test"}))  # fmt: skip
    return name, json.dumps({"id": cid, "line": 1}).encode()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=_malformed())
def test_fuzzed_command_payloads_never_crash_and_never_change_state(
    live: tuple[Rig, Subscriber], message: tuple[str, bytes]
) -> None:
    rig, results = live
    name, payload = message
    results.publish(f"{rig.root}/cmd/{name}", payload)
    pong = _call(rig, results, "ping", {})  # commands run in order: the fuzzed one is done now
    assert pong["ok"]
    assert rig.device.violations == []
    assert {command for command, _ in rig.device.accepted} == {"ping"}
    assert rig.device.paused == set()
    replies = results.payloads(f"{rig.root}/cmd/result")
    assert all(r["ok"] is False for r in replies if r["command"] != "ping")
