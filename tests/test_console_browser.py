"""The console page in a real headless Chromium against a real daemon (Mosquitto, ZeroMQ cameras, tiny models).

``CONSOLE_SCREENSHOT=docs/console.png`` makes the overview test also write the README's screenshot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from inspectd.bench.subscriber import Subscriber
from inspectd.config import load_settings
from tests.plugins.console import OPERATOR, PASSWORD, PREFIX, Camera, password_file
from tests.plugins.daemon import running
from tests.plugins.parts import wait_until

pytestmark = pytest.mark.slow

VERDICT_TIMEOUT = 120


def page(browser, daemon) -> WebDriverWait:
    browser.get(f"http://127.0.0.1:{daemon.console.port}/")
    return WebDriverWait(browser, VERDICT_TIMEOUT, poll_frequency=0.1)


def tile_text(browser, camera: str, cls: str) -> str:
    """A field of a camera's tile, read in one step (the page replaces tiles as verdicts arrive)."""
    return browser.execute_script(
        "const e = document.querySelector(`.tile[data-camera='${arguments[0]}'] .${arguments[1]}`);"
        "return e ? e.textContent : '';",
        camera,
        cls,
    )


def test_overview_shows_every_camera_and_new_verdicts_arrive_without_reload(console_line, browser, tmp_path):
    daemon, _, ports = console_line(["press", "lathe", "paint"], image_threshold=0.5, pixel_threshold=0.9)
    with running(daemon):
        cams = {name: Camera(port) for name, port in ports.items()}
        for i, (name, cam) in enumerate(cams.items()):
            cam.send(f"{name}-1", i, "scratch" if name == "lathe" else None)
        wait = page(browser, daemon)
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".tile")) == 3)
        for name in cams:
            wait.until(lambda b, n=name: tile_text(b, n, "part") == f"{n}-1")
        assert browser.find_element(By.ID, "random-banner").is_displayed(), "tiny models have random weights"
        browser.execute_script("window.__loadedOnce = 'yes'")
        cams["press"].send("press-2", 7, "spot")
        wait.until(lambda b: tile_text(b, "press", "part") == "press-2")
        still_same_page = browser.execute_script("return window.__loadedOnce")
        verdict = tile_text(browser, "press", "verdict")
        heat = browser.find_element(By.CSS_SELECTOR, '.tile[data-camera="press"] img')
        wait.until(
            lambda b: b.execute_script("return arguments[0].complete && arguments[0].naturalWidth", heat)
        )
        shot = os.environ.get("CONSOLE_SCREENSHOT")
        if shot:
            browser.set_window_size(1400, 640)
            browser.execute_script("window.scrollTo(0, 0)")
            Path(shot).parent.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(shot)
        for cam in cams.values():
            cam.close()
    assert still_same_page == "yes", "the new verdict came by server push, not by reloading"
    assert verdict.split()[0].lower() in ("pass", "fail")
    if shot:
        assert Path(shot).read_bytes()[:4] == b"\x89PNG"


def test_preview_names_the_flips_apply_changes_the_config_and_refuses_without_password(
    console_line, browser, tmp_path, mosquitto
):
    pw = password_file(tmp_path)
    daemon, path, ports = console_line(["cam"], {"password_file": str(pw), "reference_frames": 2})
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/cam/verdict"])
    with running(daemon):
        cam = Camera(ports["cam"])
        for i in range(4):
            cam.send(f"B-{i}", 20 + i, "scratch" if i % 2 else None)
        got = [json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/cam/verdict", 4, VERDICT_TIMEOUT)]
        wait_until(lambda: daemon.console.renderer.rendered >= 4, 30, "4 parts in the console")
        scores = sorted(v["score"] for v in got)
        t = round((scores[1] + scores[2]) / 2, 6)
        flips = {v["part_id"] for v in got if v["score"] >= t}
        wait = page(browser, daemon)
        wait.until(lambda b: tile_text(b, "cam", "part") == "B-3")
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#history-rows tr")) == 4)
        ticks = [
            (t.get_property("disabled"), t.get_attribute("title"))
            for t in browser.find_elements(By.CSS_SELECTOR, "#history-rows input[type=checkbox]")
        ]
        browser.find_element(By.CSS_SELECTOR, "#history-rows tr").click()  # newest part: B-3
        wait.until(
            lambda b: b.execute_script(
                "return ['detail-frame', 'detail-heatmap'].every("
                "id => document.getElementById(id).complete && document.getElementById(id).naturalWidth > 0)"
            )
        )
        detail_title = browser.find_element(By.ID, "detail-title").text
        detail_json = browser.find_element(By.ID, "detail-json").text
        wait.until(lambda b: b.find_element(By.ID, "tune-image").get_attribute("value") == "1")
        field = browser.find_element(By.ID, "tune-image")
        field.clear()
        field.send_keys(str(t))
        browser.find_element(By.ID, "preview-btn").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#flips li")) == len(flips))
        listed = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#flips li")]
        summary = browser.find_element(By.ID, "preview").text

        before = path.read_text()
        browser.find_element(By.ID, "apply-btn").click()  # no name, no password
        wait.until(ec.text_to_be_present_in_element((By.ID, "change-result"), "refused"))
        refused = browser.find_element(By.ID, "change-result").text
        unchanged = path.read_text() == before

        browser.find_element(By.ID, "auth-name").send_keys(OPERATOR)
        browser.find_element(By.ID, "auth-password").send_keys(PASSWORD)
        browser.find_element(By.ID, "apply-btn").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "change-result"), "applied"))
        cam.send("B-next", 20)
        nxt = [json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/cam/verdict", 5, VERDICT_TIMEOUT)][-1]
        wait.until(lambda b: tile_text(b, "cam", "part") == "B-next")
        tile_score = tile_text(browser, "cam", "score")
        cam.close()
    assert len(flips) == 2
    assert [disabled for disabled, _ in ticks] == [False, False, True, True], ticks
    assert "console.reference_frames" in ticks[-1][1], "an older part says why it cannot be added"
    assert detail_title.startswith("cam #4 B-3") and '"defects"' in detail_json, (detail_title, detail_json)
    assert {line.split(":")[0] for line in listed} == flips, listed
    assert all("pass → fail" in line for line in listed)
    assert "fail rate 0.0 % now, 50.0 % at the proposal" in summary and "2 would change verdict" in summary
    assert "refused: 401" in refused and unchanged, refused
    assert load_settings(path).cameras["cam"].image_threshold == t
    assert nxt["part_id"] == "B-next" and nxt["threshold"] == t, "the next verdict uses the new threshold"
    assert tile_score.endswith(f"/ {t:.3f}")
    sub.close()
