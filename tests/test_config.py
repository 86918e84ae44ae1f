"""The configuration: defaults, contract key names, and errors that name the key path."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from callrec import config
from callrec.config import ConfigError
from conftest import callrec
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "callrec.example.toml"


def test_empty_file_gives_the_documented_defaults():
    c = config.parse({})
    assert c.region == "JP"
    assert c.storage.data_dir == Path("/var/lib/callrec")
    assert c.storage.format == "flac" and c.storage.min_call_seconds == 2
    assert c.audio.preroll_seconds == 1.0 and c.audio.sample_rate == 8000 and c.audio.period_ms == 20
    assert c.hook.debounce_ms == 30
    assert len(c.lines) == 2 and c.announcement_file().name == "announcement_ja.wav"


def test_contract_key_names_are_accepted():
    c = config.parse(tomllib.loads(
        'region = "US"\n[storage]\ndata_dir = "/data"\nformat = "wav"\nmin_call_seconds = 5\n'
        '[audio]\npreroll_seconds = 2.5\n[announcement]\nfile = "/x.wav"\n'))
    assert (c.region, c.storage.format, c.storage.min_call_seconds, c.audio.preroll_seconds) == ("US", "wav", 5, 2.5)
    assert c.announcement_file() == Path("/x.wav")


@pytest.mark.parametrize("region,flash_min,flash_max", [("JP", 100, 1000), ("US", 300, 1100), ("EU", 90, 500)])
def test_region_profiles_set_the_flash_window_and_the_tones(region, flash_min, flash_max):
    profile = config.parse({"region": region}).profile()
    assert (profile.flash_min_ms, profile.flash_max_ms) == (flash_min, flash_max)
    assert set(profile.tones) == {"dial", "ringback", "busy", "reorder"}


def test_each_region_value_can_be_overridden():
    profile = config.parse({"region": "US", "telephony": {"flash_max_ms": 700,
                                                          "tones": {"busy": {"freqs": [425.0], "cadence": [0.5, 0.5]}}}}
                           ).profile()
    assert profile.flash_max_ms == 700 and profile.tones["busy"].freqs == (425.0,)
    assert profile.flash_min_ms == 300


@pytest.mark.parametrize("text,expected", [
    ('regoin = "JP"', "regoin: unknown key; allowed here: announcement, archive, audio"),
    ('storage.format = "mp3"', "storage.format: Input should be 'flac' or 'wav'"),
    ('audio.preroll_seconds = "long"', "audio.preroll_seconds: must be a number, not a string"),
    ('audio.preroll_seconds = true', "audio.preroll_seconds: must be a number, not a boolean"),
    ('announcement.enabled = 1', "announcement.enabled: must be true or false, not an integer"),
    ('hook.debounce_ms = "30"', "hook.debounce_ms: must be an integer, not a string"),
    ('[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 18\ncapture_channel = true',
     "lines[0].capture_channel: must be an integer, not a boolean"),
    ('mqtt.port = true', "mqtt.port: must be an integer, not a boolean"),
    ('telephony.tones.busy = { freqs = [true] }', "telephony.tones.busy.freqs: item 0: must be a number"),
    ('audio.sample_rate = 44100', "audio.sample_rate: Input should be 8000 or 16000"),
    ('storage.min_call_seconds = -1', "storage.min_call_seconds: Input should be greater than or equal to 0"),
    ('[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 17', "lines[0].ring_gpio: GPIO 17 is already used"),
    ('[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 18\nbogus = 1', "lines[0].bogus: unknown key"),
    ('telephony.flash_min_ms = 2000', "telephony.flash_min_ms: must be smaller than flash_max_ms"),
])
def test_bad_values_are_errors_that_name_the_key_path(text, expected):
    with pytest.raises(ConfigError) as error:
        config.parse(tomllib.loads(text), "bad.toml")
    assert expected in str(error.value)
    assert str(error.value).startswith("bad.toml:")


def test_five_lines_are_too_many():
    lines = [{"id": i % 4 + 1, "hook_gpio": 2 + i, "ring_gpio": 10 + i} for i in range(5)]
    with pytest.raises(ConfigError, match="lines: Tuple should have at most 4 items"):
        config.parse({"lines": lines})


def test_two_lines_on_one_capture_channel_are_an_error():
    lines = [{"id": 1, "hook_gpio": 2, "ring_gpio": 3}, {"id": 2, "hook_gpio": 4, "ring_gpio": 5}]
    with pytest.raises(ConfigError, match=r"lines\[1\].capture_channel: capture channel 0"):
        config.parse({"lines": lines})


def test_example_config_is_valid_and_documents_every_key():
    text = EXAMPLE.read_text()
    config.parse(tomllib.loads(text.replace("# ", "", 0)), str(EXAMPLE))

    def keys(model: type, prefix: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            inner = getattr(field.annotation, "__args__", (field.annotation,))
            sub = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
            if sub is not None and name != "lines":
                out += keys(sub, f"{prefix}{name}.")
            else:
                out.append(f"{prefix}{name}")
        return out

    missing = [key for key in keys(config.Config, "") if key.rsplit(".", 1)[-1] not in text]
    assert missing == []


def test_check_config_exits_0_for_a_good_file_and_1_with_messages_for_a_bad_one(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('region = "EU"\n')
    out = callrec("check-config", str(good))
    assert out.returncode == 0 and "OK" in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('region = "XX"\n[storage]\nformat = "ogg"\n')
    out = callrec("check-config", str(bad))
    assert out.returncode == 1
    assert "region: Input should be 'JP', 'US' or 'EU'" in out.stderr
    assert "storage.format" in out.stderr


def test_an_unreadable_announcement_is_a_config_error_at_start(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[announcement]\nfile = "{broken}"\n')
    out = callrec("check-config", str(cfg))
    assert out.returncode == 1 and "announcement.file" in out.stderr and "broken.wav" in out.stderr


def test_a_config_that_is_not_toml_names_the_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("region = \n")
    out = callrec("check-config", str(cfg))
    assert out.returncode == 1 and "not valid TOML" in out.stderr


def test_user_announcement_of_any_rate_and_width_is_converted(tmp_path, simulate):
    import numpy as np
    import soundfile

    wav = tmp_path / "mine.wav"
    t = np.arange(44100 * 2) / 44100
    soundfile.write(str(wav), np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.5, 44100, subtype="PCM_24")
    result = simulate([{"line": 1, "audio": "line1.wav", "events": [(1.0, "hook", "off"), (8.0, "hook", "on")]}],
                      config=f'[announcement]\nfile = "{wav}"\n')
    played = result.of_type("announcement.played")[0]
    assert played["file"] == str(wav) and abs(played["ended_s"] - played["started_s"] - 2.0) < 0.01


def test_device_id_comes_from_the_first_boot_file_when_present(tmp_path):
    from callrec.config import default_device_id

    machine = tmp_path / "machine-id"
    machine.write_text("0123456789abcdef0123456789abcdef\n")
    device = tmp_path / "device-id"
    derived = default_device_id(machine, device)
    assert derived == default_device_id(machine, device) and "0123456789abcdef" not in derived
    device.write_text("callrec-1a2b3c4d5e6f\n")
    assert default_device_id(machine, device) == "callrec-1a2b3c4d5e6f"
    device.write_text("not/a valid id\n")
    assert default_device_id(machine, device) == derived


def test_every_configuration_key_says_what_it_is_for():
    from callrec.config.toml import _model_in

    missing, models = [], [config.Config]
    seen: set[type] = set()
    while models:
        model = models.pop()
        seen.add(model)
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            inner = _model_in(field.annotation)
            if inner is not None and inner not in seen:
                models.append(inner)
    assert missing == []


def test_keys_that_nothing_read_are_gone():
    for text in ("telephony.ring_on_s = 1.0", "telephony.ring_off_s = 2.0"):
        with pytest.raises(ConfigError, match="unknown key"):
            config.parse(tomllib.loads(text))


# ---- issue 22 item 10: `config set` goes through the same checks as the file ------------------------


@pytest.mark.parametrize("raw", ['"/"', '""', "recordings", "/dev/null", '"/proc/1"'])
def test_config_set_refuses_a_data_dir_that_is_no_usable_directory_and_leaves_the_file(tmp_path, raw):
    from callrec.console.maintenance import config_set

    path = tmp_path / "callrec.toml"
    path.write_text('device_name = "closet"\n')
    answer, changed = config_set(path, "storage.data_dir", raw)
    assert changed is None and "not changed" in answer and "storage.data_dir: " in answer, answer
    assert path.read_text() == 'device_name = "closet"\n'


def test_config_set_refuses_control_characters_in_the_device_name(tmp_path):
    from callrec.console.maintenance import config_set

    path = tmp_path / "callrec.toml"
    path.write_text('device_name = "closet"\n')
    answer, changed = config_set(path, "device_name", '"front\\u0000desk"')
    assert changed is None and "device_name: control character U+0000" in answer, answer
    assert path.read_text() == 'device_name = "closet"\n'


def test_config_set_works_on_a_file_with_a_byte_order_mark_and_keeps_it(tmp_path):
    path = tmp_path / "callrec.toml"
    path.write_bytes(b'\xef\xbb\xbfregion = "US"\n')
    edit = config.set_key(path, "device_name", "closet")
    assert edit.config.device_name == "closet" and edit.config.region == "US"
    assert path.read_bytes().startswith(b'\xef\xbb\xbfregion = "US"\n')
    assert config.load(path).device_name == "closet"


def test_a_value_typed_at_the_console_that_tomllib_cannot_hold_is_taken_as_text():
    assert config.parse_value("9" * 5000) == "9" * 5000
    assert config.parse_value("[" * 2000) == "[" * 2000


def test_an_unknown_key_with_control_characters_is_shown_escaped():
    with pytest.raises(ConfigError) as error:
        config.parse({"\x1b[2Jbogus": 1}, "c.toml")
    assert "\x1b" not in str(error.value) and '"\\x1b[2Jbogus": unknown key' in str(error.value)


def test_a_scenario_with_a_byte_order_mark_or_deep_nesting_is_read_or_refused_by_name(tmp_path):
    from callrec.sim.scenario import ScenarioError, load_scenario

    path = tmp_path / "s.toml"
    path.write_text("x = " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(ScenarioError, match="nested too deeply"):
        load_scenario(path)
    path.write_bytes(b"\xef\xbb\xbf[[line]]\nline = 1\n")
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert "Invalid statement" not in str(error.value) and "line[0].audio: Field required" in str(error.value)
