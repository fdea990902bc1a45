"""Headless Chromium for the report tests (Debian's ``chromium`` + ``chromium-driver``, driven by
selenium through chromedriver; nothing is downloaded at test time).

Each page is opened from a file:// URL in a fresh profile, with Chrome's background traffic off,
so that any network request the browser logs was made by the page itself.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

_NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def need_browser() -> None:
    """Skip, loudly, where the browser cannot be had (``make browser`` installs it)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.skip(f"BROWSER TESTS SKIPPED: {', '.join(missing)} not installed; run `make browser` "
                    "(apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="BROWSER TESTS SKIPPED: selenium missing; run `make dev`")


@contextmanager
def chromium() -> Any:
    """A selenium WebDriver on headless Chromium with a throw-away profile."""
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kubehawk-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver: Any, path: Path) -> str:
    url = path.resolve().as_uri()
    driver.get_log("performance")  # forget the blank start page's own traffic
    driver.get(url)
    return url


def js_errors(driver: Any) -> list[str]:
    """Console errors and uncaught exceptions since the last call (SEVERE browser log entries)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def requests_made(driver: Any, page_url: str) -> list[str]:
    """Every URL the page asked for besides itself (and inline data: URLs), and any request to
    the network at all (http, https, ws, ftp), whichever document made it."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            params = msg["params"]
            url = params["request"]["url"]
            if url == page_url or url.startswith("data:"):
                continue
            if params.get("documentURL") == page_url or url.split(":", 1)[0] in _NETWORK_SCHEMES:
                urls.append(url)
    return urls


def visible_rows(driver: Any) -> int:
    return int(driver.execute_script(
        "return document.querySelectorAll('#alert-table tbody.alert:not([hidden])').length"))


def screenshot(driver: Any, png: Path, width: int = 1400, max_height: int = 6000) -> Path:
    """A full-page PNG (up to ``max_height`` pixels): the window grown to the page's height first."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(max(height, 800), max_height))
    png.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(png))
    return png
