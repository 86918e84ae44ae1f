"""Bad configuration files: every problem of a file named in one run, and no entry point crashes.

Regression tests for the defects of issue 9 item 5 (a file that is not UTF-8 crashed every entry
point; booleans passed as numbers; problems across keys reported only once the others were fixed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import callrec, noise_wav, scenario_toml

NOT_UTF8 = b'region = "JP"\n[storage]\nformat = "fl\xe9c"\n'


@pytest.fixture
def latin1_config(tmp_path: Path) -> Path:
    path = tmp_path / "callrec.toml"
    path.write_bytes(NOT_UTF8)
    return path


def test_check_config_names_a_file_that_is_not_utf8_and_the_line_of_the_bad_byte(latin1_config):
    out = callrec("check-config", str(latin1_config))
    assert out.returncode == 1
    assert f"{latin1_config}: not UTF-8 text (byte 0xe9 on line 3)" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", [["run"], ["calls", "list"], ["recover"]])
def test_every_entry_point_turns_a_non_utf8_config_into_a_clear_error(latin1_config, tmp_path, command):
    out = callrec("--config", str(latin1_config), *command, "--data", str(tmp_path / "data"))
    assert out.returncode == 2, out.stderr
    assert "not UTF-8 text" in out.stderr and "Traceback" not in out.stderr


def test_simulate_with_a_non_utf8_config_is_a_clear_error(latin1_config, tmp_path):
    noise_wav(tmp_path / "a.wav", 2)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "a.wav", "events": []}]))
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(tmp_path / "data"),
                  "--config", str(latin1_config))
    assert out.returncode == 2 and "not UTF-8 text" in out.stderr and "Traceback" not in out.stderr


def test_a_directory_given_as_the_config_file_is_named_as_such(tmp_path):
    out = callrec("check-config", str(tmp_path))
    assert out.returncode == 1 and "is a directory, not a configuration file" in out.stderr


def test_every_problem_of_one_file_is_reported_in_one_run(tmp_path):
    path = tmp_path / "callrec.toml"
    path.write_text('[audio]\npreroll_seconds = true\n[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 17\n'
                    'capture_channel = "left"\n[[lines]]\nid = 1\nhook_gpio = 22\nring_gpio = 23\n'
                    'capture_channel = 1\nplayback_channel = 1\n')
    out = callrec("check-config", str(path))
    assert out.returncode == 1
    for expected in ("audio.preroll_seconds: must be a number, not a boolean",
                     "lines[0].capture_channel: must be an integer, not a string",
                     "lines[0].ring_gpio: GPIO 17 is already used by lines[0].hook_gpio",
                     "lines[1].id: line 1 is configured twice"):
        assert expected in out.stderr, out.stderr
    assert "4 problem(s)" in out.stderr


@pytest.mark.parametrize("text,expected", [
    ("[audio]\npreroll_seconds = true\n", "audio.preroll_seconds: must be a number, not a boolean"),
    ("[storage]\nsync_interval_s = false\n", "storage.sync_interval_s: must be a number, not a boolean"),
    ('[hook]\nnumber_display = "yes"\n', "hook.number_display: must be true or false, not a string"),
    ("[signals]\nenabled = 0\n", "signals.enabled: must be true or false, not an integer"),
])
def test_booleans_are_not_numbers_and_numbers_are_not_booleans(tmp_path, text, expected):
    path = tmp_path / "callrec.toml"
    path.write_text(text)
    out = callrec("check-config", str(path))
    assert out.returncode == 1 and expected in out.stderr, out.stderr


def test_a_channel_the_simulated_stereo_card_does_not_have_is_a_config_error(tmp_path):
    noise_wav(tmp_path / "a.wav", 3)
    (tmp_path / "s.toml").write_text(scenario_toml([{"line": 1, "audio": "a.wav", "events": []}]))
    config = tmp_path / "c.toml"
    config.write_text("[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 27\ncapture_channel = 5\n")
    out = callrec("simulate", str(tmp_path / "s.toml"), "--data", str(tmp_path / "data"), "--config", str(config))
    assert out.returncode == 2, out.stderr
    assert "lines[0].capture_channel: channel 5 does not exist" in out.stderr, out.stderr


def test_the_console_survives_a_config_that_is_not_utf8_and_says_what_is_wrong(latin1_config, tmp_path):
    """Unreadable, the file cannot say whether a passphrase is needed: the console stays closed
    (a corrupted file must not open it) and says why; a readable [console] table would open it."""
    from console_support import PtyPair, Terminal, start_console, stop

    ptys = PtyPair(tmp_path).start()
    proc = start_console(ptys.console, tmp_path / "data", tmp_path / "nobody.sock", tmp_path / "console.log",
                         "--config", str(latin1_config))
    terminal = Terminal(ptys.technician)
    try:
        terminal.type("\r")
        shown = terminal.read_until("save the file as UTF-8", timeout=15)
        assert "console is CLOSED" in shown and "The configuration file is not usable" in shown
        assert "not UTF-8 text" in shown
        assert proc.poll() is None, "the console keeps running"
    finally:
        terminal.close()
        stop(proc)
        ptys.stop()


# ---- issue 22 item 10: hostile files, paths that are no data directory, control characters ----------

DEEP = {"array": "x = " + "[" * 2000 + "]" * 2000 + "\n",
        "inline table": "x = " + "{ a = " * 2000 + "1" + " }" * 2000 + "\n"}


@pytest.fixture(params=sorted(DEEP))
def deep_config(request, tmp_path: Path) -> Path:
    path = tmp_path / "deep.toml"
    path.write_text(DEEP[request.param])
    return path


def test_check_config_names_a_2000_deep_nesting_instead_of_a_traceback(deep_config):
    out = callrec("check-config", str(deep_config))
    assert out.returncode == 1, out.stderr
    assert f"{deep_config}: not valid TOML: arrays or inline tables nested too deeply" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "RecursionError" not in out.stderr


@pytest.mark.parametrize("command", [["calls", "list"], ["run"], ["recover"]])
def test_every_entry_point_turns_a_2000_deep_nesting_into_a_config_error(deep_config, tmp_path, command):
    out = callrec("--config", str(deep_config), *command, "--data", str(tmp_path / "data"))
    assert out.returncode == 2, out.stderr
    assert "configuration error" in out.stderr and "nested too deeply" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_number_with_thousands_of_digits_is_a_config_error_not_a_traceback(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("[mqtt]\nport = " + "9" * 5000 + "\n")
    out = callrec("check-config", str(path))
    assert out.returncode == 1, out.stderr
    assert f"{path}: not valid TOML" in out.stderr and "Traceback" not in out.stderr


def _console_session(tmp_path: Path, data: Path, keys: list[tuple[str, str]], *extra: str) -> str:
    """Start `callrec console` on a pty pair, type each text and read up to its marker; returns all
    it showed, after checking it kept running and logged no traceback."""
    from console_support import PtyPair, Terminal, start_console, stop

    ptys = PtyPair(tmp_path).start()
    proc = start_console(ptys.console, data, tmp_path / "nobody.sock", tmp_path / "console.log", *extra)
    terminal = Terminal(ptys.technician)
    try:
        shown = ""
        for text, marker in keys:
            terminal.type(text)
            shown += terminal.read_until(marker, timeout=15)
        assert proc.poll() is None, "the console keeps running"
    finally:
        terminal.close()
        stop(proc)
        ptys.stop()
    assert "Traceback" not in (tmp_path / "console.log").read_text(errors="replace")
    return shown


def test_the_console_stays_up_and_closed_showing_a_2000_deep_nesting(tmp_path):
    """Under Restart=always an exit at start is a restart loop; docs/console.md: it stays closed."""
    config = tmp_path / "deep.toml"
    config.write_text('[console]\nopen = true\n[mqtt]\nx = ' + "[" * 2000 + "]" * 2000 + "\n")
    shown = _console_session(tmp_path, tmp_path / "data", [("\r", "nested too deeply")], "--config", str(config))
    assert "console is CLOSED" in shown and "The configuration file is not usable" in shown


def test_the_console_stays_up_when_its_data_option_itself_is_refused(tmp_path):
    """`--data /dev/null` is refused by the configuration: the console shows why, and keeps running."""
    shown = _console_session(tmp_path, Path("/dev/null"), [("\r", "callrec> "), ("config\r", "callrec> ")])
    assert "NOT USABLE" in shown and "--data /dev/null" in shown


def test_a_leading_utf8_bom_as_windows_editors_write_it_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbfregion = "US"\n')
    out = callrec("check-config", str(path))
    assert out.returncode == 0, out.stderr
    assert "region US" in out.stdout


@pytest.mark.parametrize("data_dir,expected", [
    ("/", "the root directory"),
    ("", "an absolute path"),
    ("recordings", "an absolute path"),
    ("/dev/null", "under /dev"),
    ("/proc/self", "under /proc"),
    ("/sys/kernel", "under /sys"),
    ("/var/lib/../../dev/shm/x", "under /dev"),
    ("FILE", "exists and is not a directory"),
])
def test_storage_data_dir_must_be_a_usable_directory(tmp_path, data_dir, expected):
    existing = tmp_path / "a-file"
    existing.write_text("not a directory\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[storage]\ndata_dir = "{str(existing) if data_dir == "FILE" else data_dir}"\n')
    out = callrec("check-config", str(path))
    assert out.returncode == 1, out.stdout
    assert "storage.data_dir: " in out.stderr and expected in out.stderr, out.stderr


def test_data_given_on_the_command_line_is_checked_the_same_way(tmp_path):
    out = callrec("calls", "list", "--data", "/")
    assert out.returncode == 2 and "--data /: " in out.stderr and "the root directory" in out.stderr, out.stderr


@pytest.mark.parametrize("text,key", [
    ('device_name = "front\\u0000desk"', "device_name"),
    ('device_name = "front\\ndesk"', "device_name"),
    ('device_name = "a\\u001b[2Jb"', "device_name"),
    ('[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 27\nname = "Sales\\u0000"', "lines[0].name"),
    ('[mqtt]\nbase_topic = "callrec\\nx"', "mqtt.base_topic"),
    ('[mqtt]\nusername = "u\\u0000"', "mqtt.username"),
    ('[signals]\nmark_tag = "tag\\r"', "signals.mark_tag"),
    ('[storage]\ndata_dir = "/var/lib/call\\u0000rec"', "storage.data_dir"),
    ('[privacy]\npurpose = "ok\\u0000"', "privacy.purpose"),
    ('[archive]\nurl = "file:///srv/a\\u007f"', "archive.url"),
])
def test_control_characters_in_names_and_strings_are_refused_naming_the_key(tmp_path, text, key):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    out = callrec("check-config", str(path))
    assert out.returncode == 1, out.stdout
    assert f"  {key}: " in out.stderr and "control character" in out.stderr, out.stderr


def test_the_purpose_of_use_may_still_run_over_several_lines(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[privacy]\npurpose = """We record calls.\n\tTo settle disputes."""\n')
    out = callrec("check-config", str(path))
    assert out.returncode == 0, out.stderr
