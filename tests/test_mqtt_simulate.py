"""`callrec simulate` publishes the whole MQTT contract when its config names a broker."""

from __future__ import annotations

import json

from conftest import callrec, noise_wav, scenario_toml
from mqtt_support import Subscriber, wait_until

pytest_plugins = ["conftest_mqtt"]


def test_simulated_call_is_published_event_for_event_with_state_and_status(tmp_path, broker):
    noise_wav(tmp_path / "line1.wav", 20)
    scenario = tmp_path / "s.toml"
    scenario.write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (0.5, "ring", "on"), (1.5, "ring", "off"), (2.0, "hook", "off"), (9.0, "hook", "on")]}]))
    config = tmp_path / "c.toml"
    config.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ndevice_id = "sim1"\n'
                      f'stats_interval_s = 1\n[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 27\n')
    subscriber = Subscriber(broker, "callrec/sim1/#")
    try:
        out = callrec("simulate", str(scenario), "--data", str(tmp_path / "data"), "--config", str(config))
        assert out.returncode == 0, out.stderr
        printed = [json.loads(line) for line in out.stdout.splitlines()]
        assert wait_until(lambda: len(subscriber.events("callrec/sim1/event")) >= len(printed), timeout=10)
        published = subscriber.events("callrec/sim1/event")
        assert [e["seq"] for e in published] == [e["seq"] for e in printed]
        assert published == printed, "MQTT carries the event stream unchanged"
        assert subscriber.texts("callrec/sim1/status")[-1] == "offline"
        assert "online" in subscriber.texts("callrec/sim1/status")
        states = [p["state"] for p in subscriber.payloads("callrec/sim1/line/1/state")]
        assert "recording" in states and states[-1] == "idle"
    finally:
        subscriber.close()


def test_stats_follow_each_call_and_go_out_before_offline_and_the_caller_stays_retained(tmp_path, broker):
    """What a real Home Assistant showed (issue 10): calls_today a call behind; the last caller lost."""
    from callrec.dsp import callerid

    noise_wav(tmp_path / "line1.wav", 24, level=0.001)
    import numpy as np
    import soundfile

    audio, _ = soundfile.read(str(tmp_path / "line1.wav"), dtype="float64")
    burst = callerid.signal(callerid.sdmf_message("12011230", "0312345678"), "bell202") / 32768.0
    audio[int(1.6 * 8000):int(1.6 * 8000) + len(burst)] += burst
    soundfile.write(str(tmp_path / "line1.wav"), np.clip(audio, -1, 1), 8000, subtype="PCM_16")
    scenario = tmp_path / "s.toml"
    scenario.write_text(scenario_toml([{"line": 1, "audio": "line1.wav", "events": [
        (0.5, "ring", "on"), (1.5, "ring", "off"), (3.5, "ring", "on"), (4.0, "hook", "off"), (9.0, "hook", "on"),
        (12.0, "hook", "off"), (17.0, "hook", "on")]}]))
    config = tmp_path / "c.toml"
    config.write_text(f'region = "US"\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ndevice_id = "sim2"\n'
                      'stats_interval_s = 3600\n[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 27\n')
    subscriber = Subscriber(broker, "callrec/sim2/#")
    try:
        out = callrec("simulate", str(scenario), "--data", str(tmp_path / "data"), "--config", str(config))
        assert out.returncode == 0, out.stderr
        assert wait_until(lambda: subscriber.texts("callrec/sim2/status")[-1:] == ["offline"], timeout=10)
        order = [m.topic.rsplit("/", 1)[-1] for m in subscriber.messages if m.topic.endswith(("/stats", "/status"))]
        assert order[-2:] == ["stats", "status"], "the last figures go out before offline"
        assert subscriber.last("callrec/sim2/stats")["calls_today"] == 2
        assert len(subscriber.payloads("callrec/sim2/stats")) >= 3, "after each call, not only on the timer"
        last = subscriber.last("callrec/sim2/line/1/state")
        assert last["state"] == "idle" and last["caller_number"] is None
        assert last["last_caller_number"] == "0312345678", "the last caller stays in the retained state"
    finally:
        subscriber.close()
