"""The SD-card image build: what can be checked without building a Raspberry Pi image.

Fast checks always run: shell scripts pass shellcheck and are executable, the pi-gen stage has the
shape pi-gen expects, the image's dependency lists cover pyproject.toml, the file-system layout
agrees with the systemd unit and the default configuration, and the data partition really lands
in an image file. The install test (a debootstrapped Debian with the built wheel installed by the
image's own install script, then `callrec --version` and `check-config` run inside it) takes a few
minutes and needs root and the network: it runs only with CALLREC_IMAGE_TEST=1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "image-build"
STAGE = BUILD / "stage-callrec"
LAYER = BUILD / "appliance"
VM = BUILD / "vm"
SCRIPTS = [
    BUILD / "build.sh",
    BUILD / "install-callrec.sh",
    BUILD / "add-data-partition.sh",
    STAGE / "prerun.sh",
    STAGE / "00-install" / "01-run.sh",
    STAGE / "01-appliance" / "01-run.sh",
    LAYER / "apply.sh",
    LAYER / "files" / "callrec-firstboot",
    VM / "build-vm.sh",
    VM / "base-root.sh",
    VM / "apply-vm-base.sh",
    VM / "assemble.sh",
    VM / "run-vm.sh",
    VM / "test-hand" / "apply.sh",
]
DEBIAN_PROVIDES = {  # pyproject dependency -> Debian package that satisfies it in the image
    "numpy": "python3-numpy",
    "soundfile": "python3-soundfile",
    "pyserial": "python3-serial",
    "cryptography": "python3-cryptography",
    "paramiko": "python3-paramiko",
    "boto3": "python3-boto3",
    "tomlkit": "python3-tomlkit",
    "rpi.gpio": "python3-rpi-lgpio",
}


def _package_lists() -> set[str]:
    names: set[str] = set()
    for path in STAGE.glob("*/[0-9][0-9]-packages*"):
        names.update(path.read_text().split())
    return names


def _dist_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(BUILD)))
def test_build_scripts_are_executable_bash(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} lost its exec bit"
    assert script.read_text().startswith("#!/bin/bash")


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)"
)
def test_build_scripts_pass_shellcheck() -> None:
    result = subprocess.run(
        ["shellcheck", "-x", *map(str, SCRIPTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
    # EXPORT_IMAGE is sourced by pi-gen's bash.
    result = subprocess.run(
        ["shellcheck", "-s", "bash", str(STAGE / "EXPORT_IMAGE")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_stage_has_the_shape_pi_gen_runs() -> None:
    assert "copy_previous" in (STAGE / "prerun.sh").read_text()
    assert "IMG_SUFFIX=" in (STAGE / "EXPORT_IMAGE").read_text()
    substages = sorted(p for p in STAGE.iterdir() if p.is_dir())
    assert [p.name for p in substages] == ["00-install", "01-appliance"]
    for sub in substages:
        for entry in sub.iterdir():
            # pi-gen only looks at NN-packages[-nr], NN-debconf, NN-patches, NN-run[-chroot].sh, files/
            assert entry.name == "files" or re.fullmatch(
                r"\d\d-(packages(-nr)?|debconf|patches|run\.sh|run-chroot\.sh)", entry.name
            ), entry


def test_package_lists_hold_only_debian_package_names() -> None:
    for name in _package_lists():
        assert re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name), name


def test_every_firmware_dependency_comes_from_debian_or_the_image_requirements() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    required = {_dist_name(dep) for dep in pyproject["project"]["dependencies"]}
    from_pypi = {
        _dist_name(line)
        for line in (BUILD / "requirements-image.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    debian = _package_lists()
    for dist in sorted(required):
        assert dist in from_pypi or DEBIAN_PROVIDES.get(dist) in debian, f"{dist} is installed by nothing"


def test_data_partition_is_noatime_and_bind_mounted_where_the_service_writes() -> None:
    fstab = (LAYER / "files" / "fstab.callrec").read_text()
    rows = [line.split() for line in fstab.splitlines() if line.strip() and not line.startswith("#")]
    data = next(row for row in rows if row[0] == "LABEL=callrec-data")
    assert data[1] == "/data" and "noatime" in data[3].split(",")
    binds = {row[1]: row[0] for row in rows if "bind" in row[3].split(",")}
    assert binds == {"/var/lib/callrec": "/data/callrec", "/var/log/journal": "/data/journal"}
    unit = (REPO / "systemd" / "callrec.service").read_text()
    assert "RequiresMountsFor=/var/lib/callrec" in unit
    config = tomllib.loads((STAGE / "00-install" / "files" / "callrec.toml").read_text())
    assert config["storage"]["data_dir"] == "/var/lib/callrec"


def test_default_config_in_the_image_is_valid_for_the_firmware() -> None:
    config = pytest.importorskip("callrec.config", reason="callrec.config not written yet")
    config.load(STAGE / "00-install" / "files" / "callrec.toml")


def test_serial_console_goes_to_callrec_on_the_pinmap_uart() -> None:
    uart = tomllib.loads((REPO / "hw" / "pinmap.toml").read_text())["console"]["uart"]
    pi_stage = (STAGE / "01-appliance" / "01-run.sh").read_text()
    assert f"CALLREC_CONSOLE_TTY={uart}" in pi_stage
    assert "image-build/appliance/apply.sh" in pi_stage   # the one layer, applied by the Pi base too
    layer = (LAYER / "apply.sh").read_text()
    assert "callrec-console@$TTY.service" in layer
    assert "serial-getty@$TTY.service" in layer  # masked
    assert "enable_uart=1" in (STAGE / "01-appliance" / "files" / "config.txt.callrec").read_text()
    firstboot = (LAYER / "files" / "callrec-firstboot.service").read_text()
    assert "callrec-console@@CONSOLE_TTY@.service" in firstboot


def test_first_boot_makes_the_root_read_only_without_recursing_into_data() -> None:
    firstboot = (LAYER / "files" / "callrec-firstboot").read_text()
    assert "overlayroot=tmpfs:recurse=0" in firstboot
    assert "overlayroot" in (STAGE / "01-appliance" / "00-packages").read_text().split()
    # The marker is written last, after the keys, so an interrupted first boot runs again.
    assert firstboot.index("mv /etc/callrec/device-id.new") > firstboot.index("openssl genpkey")


@pytest.mark.skipif(
    shutil.which("sfdisk") is None or shutil.which("mkfs.ext4") is None,
    reason="sfdisk (fdisk) and mkfs.ext4 (e2fsprogs) needed",
)
def test_data_partition_is_appended_to_a_pi_gen_style_image(tmp_path: Path) -> None:
    image = tmp_path / "pi.img"
    with image.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    layout = "label: dos\nstart=8192, size=16384, type=c\nstart=24576, type=83\n"
    subprocess.run(["sfdisk", "-q", str(image)], input=layout, text=True, check=True)
    subprocess.run([str(BUILD / "add-data-partition.sh"), str(image), "16"], check=True, capture_output=True)

    table = json.loads(subprocess.run(["sfdisk", "-J", str(image)], capture_output=True, check=True).stdout)
    parts = table["partitiontable"]["partitions"]
    assert len(parts) == 3
    data = parts[2]
    assert data["type"] == "83" and data["size"] == 16 * 2048 and data["start"] % 8192 == 0
    assert data["start"] >= parts[1]["start"] + parts[1]["size"]

    fs = tmp_path / "data.ext4"
    with image.open("rb") as src, fs.open("wb") as dst:
        src.seek(data["start"] * 512)
        dst.write(src.read(data["size"] * 512))
    label = subprocess.run(["e2label", str(fs)], capture_output=True, text=True, check=True).stdout
    assert label.strip() == "callrec-data"
    listing = subprocess.run(
        ["debugfs", "-R", "ls", str(fs)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "callrec" in listing and "journal" in listing  # the bind-mount sources exist at first boot

    again = subprocess.run(
        [str(BUILD / "add-data-partition.sh"), str(image)], capture_output=True, check=False
    )
    assert again.returncode != 0  # never a second data partition


# --- slow: install into a debootstrapped Debian --------------------------------------------------


def _mirror() -> str:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _skip_reason() -> str | None:
    if os.environ.get("CALLREC_IMAGE_TEST") != "1":
        return "slow (a few minutes): set CALLREC_IMAGE_TEST=1 to debootstrap and install into it"
    if os.geteuid() != 0:
        return "debootstrap and chroot need root"
    if shutil.which("debootstrap") is None or shutil.which("curl") is None:
        return "debootstrap and curl needed (apt-get install debootstrap curl)"
    release = f"{_mirror()}/dists/bookworm/Release"
    probe = subprocess.run(["curl", "-fsI", "--max-time", "10", release], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"offline: Debian mirror {_mirror()} unreachable"
    return None


@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
def test_wheel_installs_into_debian_and_callrec_runs_there(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheelhouse), str(REPO)],
        check=True,
        timeout=300,
    )
    # The PyPI part is fetched (and pyalsaaudio built) here, with the host's pip settings and CA
    # certificates, and installed offline in the chroot: same wheels, no TLS setup in the chroot.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(wheelhouse),
         "-r", str(BUILD / "requirements-image.txt")],
        check=True,
        timeout=600,
    )
    root = tmp_path / "root"
    # debootstrap resolves --include poorly: bootstrap plain, then let apt install the stage's list.
    boot = subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(root), _mirror()],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert boot.returncode == 0, boot.stdout[-3000:] + boot.stderr[-3000:]
    packages = (STAGE / "00-install" / "00-packages").read_text().split()
    apt = subprocess.run(
        ["chroot", str(root), "apt-get", "install", "-y", "--no-install-recommends", *packages],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    assert apt.returncode == 0, apt.stdout[-3000:] + apt.stderr[-3000:]
    try:
        install = [str(BUILD / "install-callrec.sh"), str(root), str(wheelhouse)]
        subprocess.run(install, check=True, timeout=1200, env={**os.environ, "CALLREC_PIP_OFFLINE": "1"})

        def in_root(*args: str, user: str = "callrec") -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["chroot", f"--userspec={user}:{user}", str(root), *args],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        version = in_root("/usr/bin/callrec", "--version")
        assert version.returncode == 0, version.stderr
        assert "0." in version.stdout + version.stderr
        check = in_root("/usr/bin/callrec", "check-config")  # the default /etc/callrec/callrec.toml
        assert check.returncode == 0, check.stdout + check.stderr
        assert (root / "usr/lib/systemd/system/callrec.service").is_file()
        assert (root / "etc/systemd/system/multi-user.target.wants/callrec.service").is_symlink()
        assert (root / "etc/callrec/credentials/mqtt_password").stat().st_mode & 0o077 == 0
    finally:
        for fs in ("sys", "dev", "proc"):
            subprocess.run(["umount", "-l", str(root / fs)], capture_output=True, check=False)


def test_the_vm_tests_hand_is_never_part_of_the_raspberry_pi_image() -> None:
    """image-build/vm/test-hand/ (gpio-sim pulls, the line simulator) goes only into the VM test image."""
    for path in [*STAGE.rglob("*"), *(BUILD / "appliance").rglob("*"), BUILD / "install-callrec.sh"]:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "test-hand" not in text and "callrec-vm-hand" not in text, path
