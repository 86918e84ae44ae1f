"""Changing the configuration file from the console and `callrec passwd`: validated, atomic, kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from callrec.config import EditError, load, parse_value, set_key
from callrec.evidence import check_password

FILE = '# the closet\'s settings\nregion = "JP"   # Japan\n\n[mqtt]\nhost = "broker.lan"  # office broker\n'


def _passwd(config: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callrec", "passwd", "--config", str(config)], input=stdin,
                          text=True, capture_output=True, check=False)


def test_passwd_stores_only_a_slow_hash_and_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text(FILE)
    done = _passwd(config, "a long passphrase\n")
    assert done.returncode == 0, done.stderr
    text = config.read_text()
    assert text.startswith(FILE) and "a long passphrase" not in text
    stored = load(config).console.passphrase_hash
    assert stored is not None and stored.startswith("scrypt$")
    assert check_password("a long passphrase", stored) and not check_password("a long passphras", stored)


def test_passwd_refuses_a_short_passphrase_and_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text(FILE)
    done = _passwd(config, "short\n")
    assert done.returncode == 1 and "at least 8 characters" in done.stderr and "Traceback" not in done.stderr
    assert config.read_text() == FILE


def test_a_bad_value_is_refused_with_the_check_config_message_and_the_file_is_untouched(tmp_path: Path) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text(FILE)
    with pytest.raises(EditError) as error:
        set_key(config, "mqtt.port", parse_value("eighty"))
    bad = tmp_path / "bad.toml"
    bad.write_text(FILE + 'port = "eighty"\n')
    checked = subprocess.run([sys.executable, "-m", "callrec", "check-config", str(bad)],
                             capture_output=True, text=True, check=False)
    message = "mqtt.port: must be an integer, not a string (got 'eighty')"
    assert message in checked.stderr and message in str(error.value)
    assert config.read_text() == FILE and not (tmp_path / "callrec.toml.bak").exists()


def test_a_good_value_is_written_with_a_backup_and_comments_kept(tmp_path: Path) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text(FILE)
    edit = set_key(config, "mqtt.port", parse_value("8883"))
    assert edit.restart_needed and edit.old is None and edit.new == 8883
    assert config.read_text() == FILE + "port = 8883\n"
    assert (tmp_path / "callrec.toml.bak").read_text() == FILE
    assert not set_key(config, "console.open", parse_value("true")).restart_needed
    assert set_key(config, "device_name", parse_value("Front desk")).config.device_name == "Front desk"


def test_a_linked_settings_file_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "data" / "callrec.toml"
    real.parent.mkdir()
    real.write_text(FILE)
    link = tmp_path / "callrec.toml"
    link.symlink_to(real)
    set_key(link, "retention.days", 30)
    assert link.is_symlink() and "[retention]\ndays = 30" in real.read_text()


def test_entries_that_exist_only_as_defaults_are_named(tmp_path: Path) -> None:
    config = tmp_path / "callrec.toml"
    config.write_text(FILE)
    with pytest.raises(EditError, match=r"lines\[0\]\.name: the file has no lines entries"):
        set_key(config, "lines[0].name", "Sales")
    with pytest.raises(EditError, match="is not a key path"):
        set_key(config, "mqtt..host", "x")
    assert os.path.getsize(config) == len(FILE.encode())
