"""TLS and password login; a refused login is an alarm, never a crash of the recorder."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from callrec.config import MqttSettings
from mqtt_support import Broker, Rig, Subscriber, make_tls, wait_until

pytest_plugins = ["conftest_mqtt"]


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Broker]:
    server = Broker(tmp_path / "tls-broker", tls=make_tls(tmp_path / "pki"), users={"callrec": "s3cret pass"})
    server.start()
    yield server
    server.stop()


def _alarms(rig: Rig) -> list[dict]:
    return [e.as_dict() for e in rig.journal if e.event.type == "alarm.raised"]


def test_tls_with_a_password_file_connects_and_delivers(rig_factory, tls_broker: Broker, tmp_path: Path) -> None:
    password_file = tmp_path / "mqtt_password"
    password_file.write_text("s3cret pass\n")
    assert tls_broker.tls is not None
    rig: Rig = rig_factory(tls_broker, username="callrec", password_file=password_file, tls_ca=tls_broker.tls.ca)
    sub = Subscriber(tls_broker, f"{rig.root}/event", username="callrec", password="s3cret pass")
    rig.subscribers.append(sub)
    rig.service.start()
    assert wait_until(lambda: rig.service.connected)
    seq = rig.emit("line.ring", 1)
    assert wait_until(lambda: [e["seq"] for e in sub.payloads(f"{rig.root}/event")] == [seq])


def test_password_comes_from_the_systemd_credential_when_no_file_is_set(
    rig_factory, tls_broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt_password").write_text("s3cret pass")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert tls_broker.tls is not None
    rig: Rig = rig_factory(tls_broker, username="callrec", tls_ca=tls_broker.tls.ca)
    rig.service.start()
    assert wait_until(lambda: rig.service.connected)


def test_wrong_password_is_logged_raises_an_mqtt_alarm_and_the_recorder_keeps_going(
    rig_factory, tls_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password_file = tmp_path / "wrong"
    password_file.write_text("guess")
    assert tls_broker.tls is not None
    rig: Rig = rig_factory(tls_broker, username="callrec", password_file=password_file, tls_ca=tls_broker.tls.ca)
    with caplog.at_level(logging.ERROR, logger="callrec.mqtt"):
        rig.service.start()
        assert wait_until(lambda: _alarms(rig))
    alarm = _alarms(rig)[0]
    assert alarm["kind"] == "mqtt" and alarm["id"] == "mqtt.connection"
    assert "refused user 'callrec'" in alarm["message"] and "guess" not in alarm["message"]
    assert any("refused user 'callrec'" in r.getMessage() for r in caplog.records)
    assert all("guess" not in r.getMessage() for r in caplog.records), "the password must never be logged"
    assert len(_alarms(rig)) == 1, "one alarm per outage, not one per retry"
    seqs = [rig.emit("line.ring", 1, n=i) for i in range(10)]  # the recorder goes on
    assert seqs == list(range(seqs[0], seqs[0] + 10))
    assert not rig.service.connected


def test_wrong_password_alarm_clears_when_the_login_works_again(
    rig_factory, tls_broker: Broker, tmp_path: Path
) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("guess")
    assert tls_broker.tls is not None
    rig: Rig = rig_factory(tls_broker, username="callrec", password_file=password_file, tls_ca=tls_broker.tls.ca)
    rig.service.start()
    assert wait_until(lambda: _alarms(rig))
    password_file.write_text("s3cret pass")  # read again at every connect: no restart needed
    assert wait_until(lambda: rig.service.connected)
    assert wait_until(lambda: any(e.event.type == "alarm.cleared" for e in rig.journal))


def test_untrusted_server_certificate_is_a_configuration_alarm(rig_factory, tls_broker: Broker, tmp_path: Path) -> None:
    other = make_tls(tmp_path / "other-pki")
    rig: Rig = rig_factory(tls_broker, username="callrec", tls_ca=other.ca)
    rig.service.start()
    assert wait_until(lambda: _alarms(rig))
    assert "TLS" in _alarms(rig)[0]["message"]


def test_settings_refuse_unknown_keys_and_a_certificate_without_key() -> None:
    with pytest.raises(ValueError, match="password"):
        MqttSettings(host="x", password="inline")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        MqttSettings(host="x", tls_ca=Path("ca"), tls_cert=Path("c"))
    with pytest.raises(ValueError, match="wildcards"):
        MqttSettings(base_topic="callrec/#")
    assert MqttSettings().host is None and not MqttSettings().enabled


def test_default_device_id_is_stable_and_does_not_expose_the_machine_id(tmp_path: Path) -> None:
    from callrec.config import default_device_id

    machine_id = tmp_path / "machine-id"
    machine_id.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    first = default_device_id(machine_id)
    assert first == default_device_id(machine_id) and len(first) == 12
    assert first not in machine_id.read_text()
    assert default_device_id(tmp_path / "missing")  # falls back to the hostname
    for field in MqttSettings.model_fields.values():
        assert field.description, "every setting is documented"
