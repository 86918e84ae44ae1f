"""A bad scenario is a clear message naming file, key and what is allowed, and exit 2."""

from __future__ import annotations

import pytest
from conftest import callrec, noise_wav


@pytest.mark.parametrize("body,expected", [
    ('[[line]]\nline = 1\naudio = "missing.wav"\n', "line[0].audio: no such file"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = 5.0, hook = "off" }, { at = 2.0, hook = "on" }]\n',
     "line[0].events[1].at: 2.0 is before the previous event (5.0)"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nvolume = 3\n', "line[0]: unknown key(s) ['volume']"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = 1.0, hook = "up" }]\n',
     "line[0].events[0].hook: must be 'off' or 'on'"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = 1.0, hook = "off", ring = "on" }]\n',
     "needs exactly one of `hook` or `ring`"),
    ('[[line]]\nline = 9\naudio = "a.wav"\n', "line[0].line: must be a line number 1-4"),
    ('[[line]]\nline = 1\naudio = "a.wav"\n[[line]]\nline = 1\naudio = "a.wav"\n', "line numbers repeat"),
    ('title = "x"\n', "unknown key(s) ['title']"),
    ('[[line]\n', "not valid TOML"),
])
def test_bad_scenario_is_a_clear_error_and_exit_2(tmp_path, body, expected):
    noise_wav(tmp_path / "a.wav", 2)
    scenario = tmp_path / "bad.toml"
    scenario.write_text(body)
    out = callrec("simulate", str(scenario), "--data", str(tmp_path / "data"))
    assert out.returncode == 2
    assert expected in out.stderr and str(scenario) in out.stderr


def test_missing_scenario_file_is_exit_2(tmp_path):
    out = callrec("simulate", str(tmp_path / "nope.toml"), "--data", str(tmp_path / "data"))
    assert out.returncode == 2 and "no such scenario file" in out.stderr


def test_unreadable_line_audio_is_exit_2(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"not a wav at all")
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[line]]\nline = 1\naudio = "a.wav"\n')
    out = callrec("simulate", str(scenario), "--data", str(tmp_path / "data"))
    assert out.returncode == 2 and "not a readable audio file" in out.stderr


def test_scenario_line_not_in_an_explicit_config_is_exit_2(tmp_path):
    noise_wav(tmp_path / "a.wav", 2)
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[line]]\nline = 3\naudio = "a.wav"\n')
    config = tmp_path / "c.toml"
    config.write_text("")
    out = callrec("simulate", str(scenario), "--data", str(tmp_path / "data"), "--config", str(config))
    assert out.returncode == 2 and "scenario line 3 is not among the configured lines [1, 2]" in out.stderr
