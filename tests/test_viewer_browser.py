"""The viewer in a real browser (issue 13): Debian's headless Chromium driven by Selenium through
Debian's chromedriver (nothing downloaded). Log in, search a number, open the call, play it, seek
by clicking the waveform, add a note at a moment and see its marker, export as an officer, be
refused as a listener. Screenshots of the search and call pages are saved as artifacts
(`$CALLREC_ARTIFACTS`, default tests/artifacts/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("selenium")
pytest.importorskip("uvicorn")
from viewer_support import (  # noqa: E402
    CALLER,
    chromedriver,
    chromium,
    have_chromium,
    log_in,
    record_calls,
    serving,
    viewer_for,
    wait_for,
)

ARTIFACTS = Path(os.environ.get("CALLREC_ARTIFACTS", Path(__file__).parent / "artifacts"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from callrec.viewer.app import build_app

    if not have_chromium():
        pytest.skip("needs Debian's chromium and chromium-driver")
    recorded = record_calls(tmp_path_factory.mktemp("browser"))
    with serving(build_app(viewer_for(recorded))) as base:
        yield base


@pytest.fixture(scope="module")
def driver_url():
    with chromedriver() as url:
        yield url


@pytest.fixture
def browser(driver_url, tmp_path):
    with chromium(driver_url, tmp_path / "chromium") as driver:
        yield driver


def test_a_supervisor_finds_plays_seeks_and_annotates_a_call(server, browser):
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_in(browser, server, "sam")
    box = browser.find_element(By.ID, "q-number")
    box.send_keys(CALLER[:5])
    browser.find_element(By.ID, "search").click()
    wait_for(browser, "location.search.includes('number=')")
    wait_for(browser, "document.readyState === 'complete'")
    assert browser.find_element(By.ID, "total").text == "1 call(s)"
    assert browser.find_element(By.ID, "chart")
    browser.save_screenshot(str(ARTIFACTS / "viewer-search.png"))
    browser.find_element(By.CSS_SELECTOR, "#results a").click()
    wait_for(browser, "location.pathname.startsWith('/calls/') && document.readyState === 'complete'")
    assert "Verified" in browser.find_element(By.ID, "verified").text
    wait_for(browser, "document.getElementById('player').readyState >= 1")
    browser.execute_script("document.getElementById('player').play()")
    wait_for(browser, "document.getElementById('player').currentTime > 1")
    browser.execute_script("document.getElementById('player').pause()")
    wave = browser.find_element(By.ID, "wave")
    duration = browser.execute_script("return document.getElementById('player').duration")
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element_with_offset(wave, int(wave.size["width"] * 0.25), 0).click().perform()
    at = browser.execute_script("return document.getElementById('player').currentTime")
    assert abs(at - duration * 0.75) < duration * 0.05, (at, duration)   # offset from the centre: 3/4 in
    browser.find_element(By.ID, "note-text").send_keys("caller asks for a refund")
    browser.find_element(By.ID, "add-note").click()
    wait_for(browser, "document.readyState === 'complete' && "
                   "document.querySelector('#markers span[data-kind=note]') !== null")
    assert "caller asks for a refund" in browser.find_element(By.ID, "notes").text
    browser.get(browser.current_url.split("#")[0] + "#t=2.5")
    browser.refresh()
    wait_for(browser, "Math.abs(document.getElementById('player').currentTime - 2.5) < 0.2")
    browser.save_screenshot(str(ARTIFACTS / "viewer-call.png"))


def test_an_officer_exports_a_number_and_a_listener_is_refused(server, browser):
    from selenium.webdriver.common.by import By

    log_in(browser, server, "olga")
    browser.get(f"{server}/export?number={CALLER}")
    assert browser.find_element(By.ID, "bundle-count").text.startswith("1 call(s)"), browser.page_source[-1500:]
    browser.find_element(By.ID, "download-bundle").click()
    wait_for(browser, "document.getElementById('bundle-link') !== null")
    browser.find_element(By.ID, "logout").click()
    wait_for(browser, "location.pathname === '/login'")
    log_in(browser, server, "lena")
    browser.get(f"{server}/export")
    assert "may not do this" in browser.find_element(By.ID, "refused").text
