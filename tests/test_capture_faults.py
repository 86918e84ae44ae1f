"""Capture trouble is recovered by reopening and reported; start-up trouble is a clear error.

Real alsa-lib through the `file` plugin; the capture runs in a subprocess because alsa-lib reads
its configuration once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from conftest import ONE_LINE_ON_FILE_PCMS, callrec, file_pcms

SCRIPT = textwrap.dedent("""
    import json, os, signal, socket, subprocess, sys, time
    from pathlib import Path
    from callrec.audio import AlsaBackend, AudioPeriod, CaptureFault, CaptureGroup, PcmSpec
    workdir = Path(sys.argv[1])
    env = dict(os.environ, HOME=str(workdir), XDG_RUNTIME_DIR=str(workdir / "pulse"))

    def pulse():  # the sound card: a private PulseAudio with a null sink
        proc = subprocess.Popen(["pulseaudio", "-n", "-F", str(workdir / "t.pa"), "--daemonize=no",
                                 "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=no",
                                 "--system=false", "--log-target=file:" + str(workdir / "pa.log")],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(workdir / "pulse" / "native"))
                return proc
            except OSError:
                time.sleep(0.05)
        raise SystemExit("pulseaudio did not start")

    def wait(pred):
        deadline = time.monotonic() + 15
        while not pred() and time.monotonic() < deadline:
            time.sleep(0.01)

    server = pulse()
    items = []
    source = AlsaBackend().source(PcmSpec("callrec_test_in", "capture", 1, 8000, 160))
    group = CaptureGroup(source, {1: 0}, items.append, lambda f: f / 8000, backoff_s=0.1)
    group.open()
    group.start()
    wait(lambda: sum(isinstance(i, AudioPeriod) for i in items) > 10)
    server.send_signal(signal.SIGKILL)               # the card is unplugged under the running reader
    server.wait()
    wait(lambda: any(isinstance(i, CaptureFault) for i in items))
    time.sleep(0.5)                                  # several reopen attempts fail meanwhile
    server = pulse()                                 # it comes back
    wait(lambda: any(isinstance(i, CaptureFault) and i.kind == "recovered" for i in items))
    n = len(items)
    wait(lambda: len(items) > n + 10)
    group.stop()
    server.terminate()
    faults = [(i.kind, i.lines) for i in items if isinstance(i, CaptureFault)]
    print(json.dumps({"faults": faults, "reopens": group.reopens,
                      "periods_after": sum(isinstance(i, AudioPeriod) for i in items[n:])}))
""")


def test_capture_device_failure_is_reported_reopened_and_capture_goes_on(tmp_path):
    (tmp_path / "pulse").mkdir()
    (tmp_path / "t.pa").write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={tmp_path}/pulse/native\n"
        "load-module module-null-sink sink_name=tap rate=8000 channels=1 format=s16le\n")
    infile = tmp_path / "in.raw"
    infile.write_bytes(np.zeros(8000 * 60, dtype="<i2").tobytes())
    conf = tmp_path / "asound.conf"
    conf.write_text(f'pcm.callrec_test_in {{ type file; slave.pcm {{ type pulse; server "unix:{tmp_path}/pulse/native";'
                    f' device "tap.monitor" }}; file "/dev/null"; infile "{infile}"; format "raw" }}\n')
    env = {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{conf}"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                         timeout=90, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    kinds = [kind for kind, _ in result["faults"]]
    assert "device" in kinds and kinds[-1] == "recovered", result
    assert all(lines == [1] for _, lines in result["faults"])
    assert result["reopens"] == 1 and result["periods_after"] > 10


def test_run_with_a_pcm_that_cannot_be_opened_is_a_clear_start_error_not_a_crash(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[[lines]]\nid = 1\nhook_gpio = 17\nring_gpio = 27\ncapture_pcm = "no_such_pcm"\n'
                      'playback_pcm = "no_such_out"\n')
    out = callrec("--config", str(config), "run", "--data", str(tmp_path / "data"), timeout=30)
    assert out.returncode == 1
    assert "cannot open playback PCM 'no_such_out'" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_without_gpio_is_a_clear_start_error(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(ONE_LINE_ON_FILE_PCMS)
    out = callrec("--config", str(config), "run", "--data", str(tmp_path / "data"), timeout=30,
                  env=file_pcms(tmp_path, seconds=1))
    assert out.returncode == 1
    assert "line inputs: RPi.GPIO is not usable on this machine" in out.stderr
    assert "Traceback" not in out.stderr
