"""Finalizing under callrec.service's `MemoryDenyWriteExecute=yes` (issue 23).

systemd enforces that setting with a seccomp filter; the kernel's own PR_SET_MDWE
(PR_MDWE_REFUSE_EXEC_GAIN) refuses the same thing — a mapping that is writable and executable — and
a process can turn it on for itself. Handing libsndfile a Python file object makes soundfile build
its virtual I/O from cffi `ffi.callback()`, which needs such a mapping, so every call ended with
"finalize failed: Cannot allocate write+execute memory for ffi.callback()" on the appliance. The
child here turns the protection on, then finalizes a real part through the real `finalize()`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyrage
import pytest
import soundfile
from callrec.privacy import new_identity
from pyrage import x25519

RATE = 8000
REFUSED = 77   # the child's exit status when the kernel refuses PR_SET_MDWE

CHILD = textwrap.dedent("""
    import ctypes, mmap, sys
    from pathlib import Path

    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(77)
    try:   # the protection bites: a writable and executable mapping is refused from here on
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        pass
    else:
        sys.exit("PR_SET_MDWE is on but a write+execute mapping was granted")

    import numpy as np
    from callrec.privacy import Recipients
    from callrec.recording.files import PartWriter, finalize

    directory, recipient = Path(sys.argv[1]), sys.argv[2]
    samples = np.load(directory / "samples.npy")
    recipients = Recipients.parse([recipient]) if recipient else None
    writer = PartWriter(directory, "c", {"sample_rate": 8000}, recipients)
    writer.write(samples)
    writer.close()
    out = directory / ("c.flac.age" if recipients else "c.flac")
    finalize(writer.part_path, out, "flac", 8000, identity=writer.identity, recipients=recipients)
""")


def _finalize_in_a_hardened_child(directory: Path, samples: np.ndarray, recipient: str = "") -> None:
    directory.mkdir()
    np.save(directory / "samples.npy", samples)
    child = subprocess.run([sys.executable, "-c", CHILD, str(directory), recipient],
                           capture_output=True, text=True, timeout=120)
    if child.returncode == REFUSED:
        pytest.skip("this kernel refuses prctl(PR_SET_MDWE) (Linux < 6.3): the protection cannot be turned on")
    assert child.returncode == 0, child.stderr


def _line_samples() -> np.ndarray:
    rng = np.random.default_rng(23)
    return (rng.standard_normal(RATE * 3) * 3000).clip(-32768, 32767).astype(np.int16)


def test_finalize_needs_no_writable_executable_memory(tmp_path):
    samples = _line_samples()
    _finalize_in_a_hardened_child(tmp_path / "plain", samples)
    decoded, rate = soundfile.read(str(tmp_path / "plain" / "c.flac"), dtype="int16")
    assert rate == RATE and np.array_equal(decoded, samples)
    assert not list((tmp_path / "plain").glob("*.tmp")), "no temporary file left behind"


def test_finalize_to_an_age_recipient_needs_no_writable_executable_memory(tmp_path):
    identity, recipient = new_identity()
    samples = _line_samples()
    _finalize_in_a_hardened_child(tmp_path / "sealed", samples, recipient)
    plain = tmp_path / "decrypted.flac"
    plain.write_bytes(pyrage.decrypt((tmp_path / "sealed" / "c.flac.age").read_bytes(),
                                     [x25519.Identity.from_str(identity)]))
    decoded, rate = soundfile.read(str(plain), dtype="int16")
    assert rate == RATE and np.array_equal(decoded, samples)
    assert not list((tmp_path / "sealed").glob("*.tmp")), "no temporary file left behind"
