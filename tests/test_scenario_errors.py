"""A bad scenario is a clear message naming file, key and what is allowed, and exit 2."""

from __future__ import annotations

import pytest
from conftest import callrec, noise_wav


@pytest.mark.parametrize("body,expected", [
    ('[[line]]\nline = 1\naudio = "missing.wav"\n', "line[0].audio: no such file"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = 1.0, hook = "off" }, { at = 0.5, hook = "on" }]\n',
     "line[0].events[1].at: 0.5 is before the previous event (1.0)"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nvolume = 3\n',
     "line[0].volume: unknown key; allowed here: audio, b_channel, dchannel, dchannel_start_s, events, line"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = 1.0, hook = "up" }]\n',
     "line[0].events[0].hook: Input should be 'off' or 'on' (got 'up')"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = 1.0, hook = "off", ring = "on" }]\n',
     "line[0].events[0]: needs exactly one of `hook` or `ring`"),
    ('[[line]]\nline = 9\naudio = "a.wav"\n', "line[0].line: Input should be less than or equal to 4 (got 9)"),
    ('[[line]]\nline = 1\naudio = "a.wav"\n[[line]]\nline = 1\naudio = "a.wav"\n', "line numbers repeat"),
    ('title = "x"\n', "title: unknown key; allowed here: fault, line"),
    ('[[line]\n', "not valid TOML"),
    ('', "no [[line]] table"),
    # times are finite numbers inside the line audio (2 s here)
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = 1e12, hook = "off" }]\n',
     "line[0].events[0].at: 1e+12 s is after the end of the line audio (2.0 s of a.wav)"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = inf, hook = "off" }]\n',
     "line[0].events[0].at: Input should be a finite number"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = nan, hook = "off" }]\n',
     "line[0].events[0].at: Input should be a finite number"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = -1.0, hook = "off" }]\n',
     "line[0].events[0].at: Input should be greater than or equal to 0"),
    ('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = true, hook = "off" }]\n',
     "line[0].events[0].at: must be a number, not a boolean"),
    ('[[line]]\nline = 1\naudio = "."\n', "line[0].audio: " + "{dir} is a directory, not an audio file"),
    ('[[line]]\nline = 1\naudio = "a.wav"\n[[fault]]\nat = 1.0\nkind = "meteor"\nseconds = 1.0\n',
     "fault[0].kind: Input should be 'capture_gone'"),
])
def test_bad_scenario_is_a_clear_error_and_exit_2(tmp_path, body, expected):
    noise_wav(tmp_path / "a.wav", 2)
    scenario = tmp_path / "bad.toml"
    scenario.write_text(body)
    out = callrec("simulate", str(scenario), "--data", str(tmp_path / "data"))
    assert out.returncode == 2
    assert expected.format(dir=tmp_path) in out.stderr and str(scenario) in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.raw")), "nothing written"


def test_every_problem_of_a_scenario_is_reported_at_once(tmp_path):
    noise_wav(tmp_path / "a.wav", 2)
    scenario = tmp_path / "bad.toml"
    scenario.write_text('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = 9.0, hook = "off" }, '
                        '{ at = 1.0, hook = "on" }]\n[[line]]\nline = 2\naudio = "none.wav"\n')
    out = callrec("simulate", str(scenario), "--data", str(tmp_path / "data"))
    assert out.returncode == 2
    assert "line[0].events[1].at: 1.0 is before the previous event (9.0)" in out.stderr
    # the model problems stop before the files are looked at; fix them and the rest shows
    scenario.write_text('[[line]]\nline = 1\naudio = "a.wav"\nevents = [{ at = 9.0, hook = "off" }]\n'
                        '[[line]]\nline = 2\naudio = "none.wav"\n')
    out = callrec("simulate", str(scenario), "--data", str(tmp_path / "data"))
    assert "2 problem(s)" in out.stderr
    assert "line[0].events[0].at: 9 s is after the end" in out.stderr and "line[1].audio: no such file" in out.stderr


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
