"""Fixtures of the appliance VM test: the image (built once per run, base root cached), the host's
broker and NTP server the guest reaches through QEMU's user network, and the booted appliance.

Not a conftest.py: tests/ has no packages, so a second module named `conftest` would replace
tests/conftest.py for every test file collected after it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from mqtt_support import Broker, Subscriber  # noqa: E402
from vm import REPO, Appliance  # noqa: E402

GROW_MIB = 512   # the "SD card" is bigger than the image: first boot grows the data partition into it


def skip_reason() -> str | None:
    if os.environ.get("CALLREC_VM_TEST", "1") == "0":
        return "CALLREC_VM_TEST=0: the appliance VM test is skipped"
    if os.geteuid() != 0:
        return "the VM image build needs root (debootstrap, chroot)"
    missing = [t for t in ("qemu-system-x86_64", "debootstrap", "mcopy", "mkfs.vfat", "chronyd", "mosquitto")
               if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (sh .ci/install installs them)"
    return None


@pytest.fixture(scope="session")
def vm_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`image-build/build.sh --vm` into a fresh folder, then a copy as the card with room to grow."""
    out = tmp_path_factory.mktemp("vm-image")
    env = {**os.environ, "CALLREC_VM_OUT": str(out), "WORK": str(out / "work")}
    log = out / "build.log"
    with open(log, "wb") as sink:
        done = subprocess.run([str(REPO / "image-build" / "build.sh"), "--vm"], stdout=sink, stderr=sink,
                              env=env, timeout=1800, check=False)
    if done.returncode != 0:
        pytest.fail(f"image build failed ({done.returncode}):\n{log.read_text(errors='replace')[-4000:]}")
    shutil.rmtree(out / "work", ignore_errors=True)
    card = out / "card.img"
    subprocess.run(["cp", "--sparse=always", str(out / "callrec-vm.img"), str(card)], check=True)
    with open(card, "r+b") as f:
        f.truncate(card.stat().st_size + GROW_MIB * 1024 * 1024)
    return card


@pytest.fixture(scope="session")
def ntp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """chrony serving time on the host's 127.0.0.1:123 (the guest's 10.0.2.2), never setting the host's clock."""
    work = tmp_path_factory.mktemp("ntp")
    conf = work / "chrony.conf"
    conf.write_text("local stratum 8\nallow 127.0.0.1\nbindaddress 127.0.0.1\nport 123\ncmdport 0\n"
                    f"pidfile {work}/chronyd.pid\n")
    with open(work / "chronyd.log", "wb") as log:
        proc = subprocess.Popen(["chronyd", "-x", "-d", "-u", "root", "-f", str(conf)], stdout=log, stderr=log)
    yield
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def vm_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Subscriber]]:
    broker = Broker(tmp_path_factory.mktemp("vm-broker"))
    broker.start()
    subscriber = Subscriber(broker, "callrec/#")
    yield broker, subscriber
    subscriber.close()
    broker.stop()


@pytest.fixture(scope="session")
def appliance(vm_image: Path, vm_broker: tuple[Broker, Subscriber], ntp_server: None,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    """The card powered on for the first time: first boot runs (and reboots, which ends QEMU)."""
    work = tmp_path_factory.mktemp("vm-run")
    box = Appliance(vm_image, work, vm_broker[0].port)
    box.boot()
    try:
        yield box
    finally:
        box.shutdown()
        artifacts = REPO / "tests" / "artifacts" / "appliance"
        artifacts.mkdir(parents=True, exist_ok=True)
        for log in work.glob("*.log"):
            shutil.copy(log, artifacts / log.name)
