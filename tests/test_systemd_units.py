"""The shipped systemd units: valid for systemd, hardened, and saying what the firmware relies on.

`systemd-analyze verify` exits 0 even for unknown keys and unparsable values, so its stderr must
be empty. It does fail when the ExecStart binary is missing, and /usr/bin/callrec exists only on
the device: the units are checked as copies whose /usr/bin/callrec points at the `callrec` the
editable install put next to this interpreter (any executable will do until it exists). The
`callrec` user need not exist for verify or for the offline security score.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "systemd"
INSTALLED_BINARY = "/usr/bin/callrec"
MAX_EXPOSURE = 2.0

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (apt-get install -y systemd; .ci/run installs it)",
)


def unit_lines(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order; keys may repeat (DeviceAllow=)."""
    section = ""
    out = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(path: Path, section: str, key: str) -> list[str]:
    return [v for s, k, v in unit_lines(path) if s == section and k == key]


def test_every_unit_starts_the_installed_callrec_with_the_default_config() -> None:
    for name in ("callrec.service", "callrec-console@.service"):
        (exec_start,) = values(UNITS / name, "Service", "ExecStart")
        assert exec_start.startswith(f"{INSTALLED_BINARY} --config /etc/callrec/callrec.toml "), name


def test_service_is_notify_with_a_watchdog_and_restarts_on_failure() -> None:
    unit = UNITS / "callrec.service"
    assert values(unit, "Service", "Type") == ["notify"]
    assert values(unit, "Service", "NotifyAccess") == ["main"]
    run = f"{INSTALLED_BINARY} --config /etc/callrec/callrec.toml run"
    assert values(unit, "Service", "ExecStart") == [run]
    assert values(unit, "Service", "Restart") == ["on-failure"]
    (watchdog,) = values(unit, "Service", "WatchdogSec")
    assert 10 <= int(watchdog) <= 120


def test_service_reaches_only_sound_and_gpio_devices_as_an_unprivileged_user() -> None:
    unit = UNITS / "callrec.service"
    assert values(unit, "Service", "User") == ["callrec"]
    assert values(unit, "Service", "DevicePolicy") == ["closed"]
    assert sorted(values(unit, "Service", "DeviceAllow")) == ["char-alsa rw", "char-gpiochip rw"]
    assert values(unit, "Service", "SupplementaryGroups") == ["audio gpio"]
    assert values(unit, "Service", "CapabilityBoundingSet") == [""]
    assert values(unit, "Service", "ProtectSystem") == ["strict"]
    assert "@system-service" in values(unit, "Service", "SystemCallFilter")


def test_service_keeps_data_runtime_and_lgpio_files_where_it_may_write() -> None:
    unit = UNITS / "callrec.service"
    assert values(unit, "Service", "StateDirectory") == ["callrec"]
    assert values(unit, "Service", "RuntimeDirectory") == ["callrec"]
    assert "/var/lib/callrec" in " ".join(values(unit, "Service", "ReadWritePaths"))
    assert "LG_WD=/run/callrec" in values(unit, "Service", "Environment")
    assert values(unit, "Unit", "RequiresMountsFor") == ["/var/lib/callrec"]


def test_mqtt_password_arrives_as_a_credential_not_in_the_config() -> None:
    unit = UNITS / "callrec.service"
    assert values(unit, "Service", "LoadCredential") == [
        "mqtt_password:/etc/callrec/credentials/mqtt_password"
    ]


def test_console_template_owns_its_serial_port_instead_of_a_getty() -> None:
    unit = UNITS / "callrec-console@.service"
    assert values(unit, "Unit", "BindsTo") == ["dev-%i.device"]
    assert values(unit, "Unit", "Conflicts") == ["serial-getty@%i.service"]
    assert values(unit, "Service", "Restart") == ["always"]
    (exec_start,) = values(unit, "Service", "ExecStart")
    assert exec_start.endswith(" console --port /dev/%i")
    assert values(unit, "Service", "DeviceAllow") == ["/dev/%i rw"]


def _stand_in_binary() -> str:
    """The venv's `callrec` once cli.py provides it; the interpreter itself until then."""
    candidate = Path(sys.executable).with_name("callrec")
    return str(candidate) if candidate.exists() else sys.executable


@pytest.fixture
def verifiable_units(tmp_path: Path) -> Path:
    """Copies of the units whose ExecStart binary exists on this machine."""
    stand_in = _stand_in_binary()
    for unit in UNITS.glob("*.service"):
        text = unit.read_text().replace(INSTALLED_BINARY, stand_in)
        (tmp_path / unit.name).write_text(text)
    return tmp_path


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@needs_systemd_analyze
@pytest.mark.parametrize("unit", ["callrec.service", "callrec-console@ttyAMA0.service"])
def test_systemd_analyze_verify_accepts_the_unit_without_a_single_warning(
    verifiable_units: Path, unit: str
) -> None:
    result = _analyze("verify", f"./{unit}", cwd=verifiable_units)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@needs_systemd_analyze
def test_verify_would_catch_an_unknown_key_so_the_empty_stderr_check_means_something(
    verifiable_units: Path,
) -> None:
    unit = verifiable_units / "callrec.service"
    unit.write_text(unit.read_text().replace("[Service]\n", "[Service]\nWachdogSec=30\n", 1))
    assert "Unknown key" in _analyze("verify", "./callrec.service", cwd=verifiable_units).stderr


def _exposure(unit: str, cwd: Path) -> float:
    threshold = f"--threshold={int(MAX_EXPOSURE * 10)}"
    result = _analyze("security", "--offline=true", threshold, f"./{unit}", cwd=cwd)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    assert (result.returncode == 0) == (exposure <= MAX_EXPOSURE), result.stdout
    return exposure


@needs_systemd_analyze
def test_recorder_service_exposure_is_at_most_2(verifiable_units: Path) -> None:
    assert _exposure("callrec.service", verifiable_units) <= MAX_EXPOSURE


@needs_systemd_analyze
def test_console_service_exposure_is_at_most_2(verifiable_units: Path) -> None:
    assert _exposure("callrec-console@ttyAMA0.service", verifiable_units) <= MAX_EXPOSURE
