"""The viewer in a real browser (issue 13): Debian's headless Chromium driven by Selenium through
Debian's chromedriver (nothing downloaded). Log in, search a number, open the call, play it, seek
by clicking the waveform, add a note at a moment and see its marker, export as an officer, be
refused as a listener. Screenshots of the search and call pages are saved as artifacts
(`$CALLREC_ARTIFACTS`, default tests/artifacts/)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("selenium")
pytest.importorskip("uvicorn")
from archive_support import free_port, wait_for_port  # noqa: E402
from viewer_support import CALLER, PASSWORDS, record_calls, viewer_for  # noqa: E402

CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("CALLREC_ARTIFACTS", Path(__file__).parent / "artifacts"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn
    from callrec.viewer.app import build_app

    if not CHROMEDRIVER.exists() or shutil.which("chromium") is None:
        pytest.skip("needs Debian's chromium and chromium-driver")
    recorded = record_calls(tmp_path_factory.mktemp("browser"))
    port = free_port()
    config = uvicorn.Config(build_app(viewer_for(recorded)), host="127.0.0.1", port=port, log_level="warning")
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not web.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    web.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def chromedriver():
    """Debian's chromedriver on a loopback port of our choosing, reached by address: Selenium's
    own service launcher insists on the name `localhost`, which a bare chroot cannot resolve."""
    import subprocess

    port = free_port()
    proc = subprocess.Popen([str(CHROMEDRIVER), f"--port={port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for_port(port, 15)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def browser(chromedriver, tmp_path):
    """Chromium started by us with its DevTools on a loopback port, and chromedriver attached to it
    by address (chromedriver's own launch reaches the browser as `localhost` too)."""
    import subprocess

    from selenium import webdriver

    port = free_port()
    chromium = subprocess.Popen(
        [shutil.which("chromium") or "/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
         "--disable-gpu", "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
         "--no-first-run", f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={tmp_path / 'chromium'}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 20)
    options = webdriver.ChromeOptions()
    options.debugger_address = f"127.0.0.1:{port}"
    driver = webdriver.Remote(command_executor=chromedriver, options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()
    chromium.terminate()
    try:
        chromium.wait(10)
    except subprocess.TimeoutExpired:
        chromium.kill()


def _login(browser, base: str, name: str, then: str = "/calls") -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{base}/login?next={then}")
    browser.find_element(By.ID, "user").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 10).until(lambda d: "/login" not in d.current_url and then in d.current_url)


def _wait(browser, script: str, timeout: float = 15.0):  # noqa: ANN202
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(lambda d: d.execute_script(f"return {script}"))


def test_a_supervisor_finds_plays_seeks_and_annotates_a_call(server, browser):
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _login(browser, server, "sam")
    box = browser.find_element(By.ID, "q-number")
    box.send_keys(CALLER[:5])
    browser.find_element(By.ID, "search").click()
    _wait(browser, "location.search.includes('number=')")
    _wait(browser, "document.readyState === 'complete'")
    assert browser.find_element(By.ID, "total").text == "1 call(s)"
    assert browser.find_element(By.ID, "chart")
    browser.save_screenshot(str(ARTIFACTS / "viewer-search.png"))
    browser.find_element(By.CSS_SELECTOR, "#results a").click()
    _wait(browser, "location.pathname.startsWith('/calls/') && document.readyState === 'complete'")
    assert "Verified" in browser.find_element(By.ID, "verified").text
    _wait(browser, "document.getElementById('player').readyState >= 1")
    browser.execute_script("document.getElementById('player').play()")
    _wait(browser, "document.getElementById('player').currentTime > 1")
    browser.execute_script("document.getElementById('player').pause()")
    wave = browser.find_element(By.ID, "wave")
    duration = browser.execute_script("return document.getElementById('player').duration")
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element_with_offset(wave, int(wave.size["width"] * 0.25), 0).click().perform()
    at = browser.execute_script("return document.getElementById('player').currentTime")
    assert abs(at - duration * 0.75) < duration * 0.05, (at, duration)   # offset from the centre: 3/4 in
    browser.find_element(By.ID, "note-text").send_keys("caller asks for a refund")
    browser.find_element(By.ID, "add-note").click()
    _wait(browser, "document.readyState === 'complete' && "
                   "document.querySelector('#markers span[data-kind=note]') !== null")
    assert "caller asks for a refund" in browser.find_element(By.ID, "notes").text
    browser.get(browser.current_url.split("#")[0] + "#t=2.5")
    browser.refresh()
    _wait(browser, "Math.abs(document.getElementById('player').currentTime - 2.5) < 0.2")
    browser.save_screenshot(str(ARTIFACTS / "viewer-call.png"))


def test_an_officer_exports_a_number_and_a_listener_is_refused(server, browser):
    from selenium.webdriver.common.by import By

    _login(browser, server, "olga")
    browser.get(f"{server}/export?number={CALLER}")
    assert browser.find_element(By.ID, "bundle-count").text.startswith("1 call(s)"), browser.page_source[-1500:]
    browser.find_element(By.ID, "download-bundle").click()
    _wait(browser, "document.getElementById('bundle-link') !== null")
    browser.find_element(By.ID, "logout").click()
    _wait(browser, "location.pathname === '/login'")
    _login(browser, server, "lena")
    browser.get(f"{server}/export")
    assert "may not do this" in browser.find_element(By.ID, "refused").text
