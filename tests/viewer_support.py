"""A recorded, encrypted data directory and viewer accounts for the viewer's tests."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import callrec, noise_wav, scenario_toml

PASSWORDS = {"lena": "listen-pass-1", "sam": "super-pass-2", "olga": "officer-pass-3"}
ROLES = {"lena": "listener", "sam": "supervisor", "olga": "officer"}
CALLER = "0312345678"


@dataclass
class Recorded:
    data: Path
    key: Path
    users: Path
    config: Path


def record_calls(work: Path) -> Recorded:
    work.mkdir(parents=True, exist_ok=True)
    key = work / "office.key"
    recipient = callrec("keygen", "--out", str(key)).stdout.strip()
    config = work / "c.toml"
    config.write_text(f'region = "US"\n[privacy]\nrecipient = "{recipient}"\n')
    for line in (1, 2):
        noise_wav(work / f"line{line}.wav", 30, seed=line, level=0.001 if line == 1 else 0.05)
    import numpy as np
    import soundfile
    from callrec.dsp import callerid

    audio, _ = soundfile.read(str(work / "line1.wav"), dtype="float64")
    burst = callerid.signal(callerid.sdmf_message("12021200", CALLER), "bell202") / 32768.0
    audio[int(2.2 * 8000):int(2.2 * 8000) + len(burst)] += burst
    soundfile.write(str(work / "line1.wav"), np.clip(audio, -1, 1), 8000, subtype="PCM_16")
    (work / "s.toml").write_text(scenario_toml([
        {"line": 1, "audio": "line1.wav", "events": [(0.5, "ring", "on"), (2.0, "ring", "off"), (4.0, "ring", "on"),
                                                     (4.5, "hook", "off"), (16.0, "hook", "on")]},
        {"line": 2, "audio": "line2.wav", "events": [(1.0, "hook", "off"), (9.0, "hook", "on"),
                                                     (12.0, "hook", "off"), (20.0, "hook", "on")]}]))
    data = work / "data"
    out = callrec("simulate", str(work / "s.toml"), "--data", str(data), "--config", str(config))
    assert out.returncode == 0, out.stderr
    users = work / "users.json"
    from callrec.viewer.users import Users

    for name, role in ROLES.items():
        Users(users).add(name, role, PASSWORDS[name])
    return Recorded(data, key, users, config)


def viewer_for(recorded: Recorded, **sessions: object):  # noqa: ANN201 - a Viewer
    from callrec.config import load
    from callrec.viewer.commands import make_viewer
    from callrec.viewer.sessions import Sessions

    args = argparse.Namespace(data=recorded.data, archive=None, identity=recorded.key, users=recorded.users,
                              annotations=None, device=None, tls_cert=None)
    viewer = make_viewer(args, load(recorded.config))
    if sessions:
        viewer.sessions = Sessions(**sessions)
    return viewer


# ---- a real server and a real browser (Debian's chromium and chromedriver, nothing downloaded) ---------------

CHROMEDRIVER = Path("/usr/bin/chromedriver")


def have_chromium() -> bool:
    import shutil

    return CHROMEDRIVER.exists() and shutil.which("chromium") is not None


@contextmanager
def serving(app: object, options: Callable[[int], dict[str, Any]] | None = None) -> Iterator[str]:
    """The ASGI app under uvicorn on a free loopback port, in a thread: yields its base URL.
    `options`: uvicorn's settings for that port (default: loopback, warnings only)."""
    import threading
    import time

    import uvicorn
    from archive_support import free_port

    port = free_port()
    settings = options(port) if options is not None else {"host": "127.0.0.1", "port": port, "log_level": "warning"}
    web = uvicorn.Server(uvicorn.Config(app, **settings))  # type: ignore[arg-type]
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not web.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        web.should_exit = True
        thread.join(20)


@contextmanager
def chromedriver() -> Iterator[str]:
    """Debian's chromedriver on a loopback port of our choosing, reached by address: Selenium's
    own service launcher insists on the name `localhost`, which a bare chroot cannot resolve."""
    import subprocess

    from archive_support import free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen([str(CHROMEDRIVER), f"--port={port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 15)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def chromium(driver_url: str, profile: Path) -> Iterator[Any]:
    """Chromium started by us with its DevTools on a loopback port, and chromedriver attached to it
    by address (chromedriver's own launch reaches the browser as `localhost` too)."""
    import shutil
    import subprocess

    from archive_support import free_port, wait_for_port
    from selenium import webdriver

    port = free_port()
    browser = subprocess.Popen(
        [shutil.which("chromium") or "/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
         "--disable-gpu", "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
         "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",   # no name leaves the machine
         f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 20)
        options = webdriver.ChromeOptions()
        options.debugger_address = f"127.0.0.1:{port}"
        driver = webdriver.Remote(command_executor=driver_url, options=options)
        driver.implicitly_wait(5)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()


def log_in(browser: Any, base: str, name: str, then: str = "/calls") -> None:
    """Log in through the login page, as a person would, and wait to land on `then`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{base}/login?next={then}")
    browser.find_element(By.ID, "user").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 10).until(lambda d: "/login" not in d.current_url and then in d.current_url)


def wait_for(browser: Any, script: str, timeout: float = 15.0) -> Any:
    """Until the JavaScript expression is truthy in the page (its value)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(lambda d: d.execute_script(f"return {script}"))
