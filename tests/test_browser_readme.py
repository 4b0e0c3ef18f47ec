"""The README's screenshot: the app as `python app.py` opens it (the shipped policy on the embedded
SmolLM2), a prompt answered at one weight vector, in Debian's chromium (skipped without it).

Writes docs/images/steer-tab.png, the image on the README's first screen; commit it when the app's
look changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_ui_fixtures import free_port
from ui.settings import SHIPPED_POLICY

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "images" / "steer-tab.png"
PROMPT = "How can I keep cut flowers fresh for longer?"


def test_the_readme_screenshot_of_the_steer_tab(tmp_path):
    from ui import AppConfig, build_demo, launch

    demo = build_demo(AppConfig(runs_dir=ROOT / "runs", configs_dir=ROOT / "configs", data_dir=tmp_path,
                                policy=SHIPPED_POLICY, max_new_tokens=64))
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#steer-generate", timeout=120_000)
            page.locator("#steer-prompt textarea").fill(PROMPT)
            page.locator("#steer-generate").click()
            page.wait_for_function(
                "/Conciseness\\s+[0-9.]+\\s+[0-9.]+/.test(document.querySelector('#steer-scores').innerText)",
                timeout=300_000)
            assert page.locator("#steer-response textarea").input_value().strip()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))   # the first screen, as a visitor sees it
            browser.close()
    finally:
        demo.trainer.shutdown()
        demo.close()
    assert SCREENSHOT.stat().st_size > 10_000
