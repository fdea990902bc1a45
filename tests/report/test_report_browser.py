"""The report in a real browser (headless Chromium): it renders with no JavaScript error and no
network request, its filters, sorting, row details and theme switch work, and it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser import chromium, js_errors, open_page, requests_made, screenshot, visible_rows

from helpers import CORPUS, REPO, need

KUBEHAWK = [str(Path(sys.executable).with_name("kubehawk"))]


def _report(tmp_path: Path, *args: str, name: str = "report.html") -> Path:
    out = tmp_path / name
    subprocess.run([*KUBEHAWK, "report", "-o", str(out), *args], check=True, capture_output=True, text=True,
                   timeout=240, cwd=REPO)
    return out


def _alerts(*args: str) -> list[dict]:
    res = subprocess.run([*KUBEHAWK, "detect", "--format", "json", *args], check=True, capture_output=True,
                         text=True, timeout=240, cwd=REPO)
    return [json.loads(x) for x in res.stdout.splitlines() if x.strip()]


def test_sample_report_renders_filters_and_fetches_nothing(tmp_path: Path) -> None:
    sample = ["--config", "examples/kubehawk.yaml", "examples/sample-audit.log"]  # relative: as a user types it
    html = _report(tmp_path, *sample)
    alerts = _alerts(*sample)
    high = sum(1 for a in alerts if a["rule"]["level"] == "high")
    mallory = sum(1 for a in alerts if a["user"] == "mallory")
    assert high and mallory
    with chromium() as driver:
        url = open_page(driver, html)
        png = screenshot(driver, tmp_path / "report.png")
        assert png.stat().st_size > 50_000
        target = os.environ.get("KUBEHAWK_SCREENSHOT_TO")
        if target:  # `make screenshot`: the README's picture (summary to matrix), made by this very test
            screenshot(driver, REPO / target, width=1280, max_height=2300)
        assert visible_rows(driver) == len(alerts)
        # a level chip in the summary filters the table
        driver.find_element("css selector", "[data-level-chip=high]").click()
        assert visible_rows(driver) == high
        assert driver.find_element("id", "shown-count").text == f"{high} of {len(alerts)} shown"
        driver.find_element("id", "f-clear").click()
        assert visible_rows(driver) == len(alerts)
        # the identity select, then the text box on top of it
        from selenium.webdriver.support.ui import Select

        Select(driver.find_element("id", "f-user")).select_by_visible_text("mallory")
        assert visible_rows(driver) == mallory
        driver.find_element("id", "f-text").send_keys("networkpolicies")
        assert visible_rows(driver) == 1
        driver.find_element("id", "f-clear").click()
        # sort by level: the first row is the critical alert
        driver.find_element("css selector", "th[data-sort=level]").click()
        first = driver.find_element("css selector", "#alert-table tbody.alert")
        assert first.get_attribute("data-level") == "critical"
        # a row opens its message, triage advice and raw event
        detail = first.find_element("css selector", "tr.detail")
        assert not detail.is_displayed()
        first.find_element("css selector", "tr.row").click()
        assert detail.is_displayed()
        assert "Triage" in detail.text and '"auditID"' in detail.text
        # dark theme changes the page colours; print media hides the controls
        light_bg = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        driver.find_element("id", "theme-dark").click()
        assert driver.execute_script("return getComputedStyle(document.body).backgroundColor") != light_bg
        screenshot(driver, tmp_path / "report-dark.png")
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        assert not driver.find_element("css selector", ".filters").is_displayed()
        pdf = driver.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})
        assert len(pdf["data"]) > 10_000
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        assert js_errors(driver) == []
        assert requests_made(driver, url) == []


def test_network_check_sees_a_page_that_fetches(tmp_path: Path) -> None:
    """The no-request check is not vacuous: a page that loads a remote image is caught."""
    page = tmp_path / "fetches.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
                    '<script>undefinedFunction()</script></body></html>')
    with chromium() as driver:
        url = open_page(driver, page)
        assert "http://127.0.0.1:9/x.png" in requests_made(driver, url)
        assert any("undefinedFunction" in e for e in js_errors(driver))


def test_falco_fixture_report_in_the_browser(tmp_path: Path) -> None:
    folder = need(CORPUS / "falco" / "k8s_audit")
    html = _report(tmp_path, "--quiet", str(folder), name="falco.html")
    alerts = _alerts("--quiet", str(folder))
    assert alerts
    with chromium() as driver:
        url = open_page(driver, html)
        screenshot(driver, tmp_path / "falco.png")
        assert visible_rows(driver) == len(alerts)
        from selenium.webdriver.support.ui import Select

        ns = next(a["namespace"] for a in alerts if a["namespace"])
        Select(driver.find_element("id", "f-ns")).select_by_visible_text(ns)
        assert visible_rows(driver) == sum(1 for a in alerts if a["namespace"] == ns)
        assert js_errors(driver) == []
        assert requests_made(driver, url) == []


def test_capped_report_aggregates_the_rest(tmp_path: Path) -> None:
    sample = ["--config", str(REPO / "examples/kubehawk.yaml"), str(REPO / "examples/sample-audit.log")]
    html = _report(tmp_path, "--max-rows", "10", *sample)
    total = len(_alerts(*sample))
    with chromium() as driver:
        url = open_page(driver, html)
        assert visible_rows(driver) == 10
        assert f"shows 10 of {total} alerts" in driver.find_element("id", "capped").text
        counts = driver.execute_script(
            "return Array.from(document.querySelectorAll('#aggregate-table tbody tr'))"
            ".map(r => Number(r.cells[4].textContent))")
        assert sum(counts) == total - 10
        assert js_errors(driver) == []
        assert requests_made(driver, url) == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_investigation_page_in_the_browser(tmp_path: Path, theme: str) -> None:
    page = tmp_path / "story.html"
    subprocess.run([*KUBEHAWK, "investigate", "--user", "mallory", "--config", str(REPO / "examples/kubehawk.yaml"),
                    "--html", str(page), str(REPO / "examples/sample-audit.log")], check=True, capture_output=True,
                   timeout=240)
    with chromium() as driver:
        url = open_page(driver, page)
        driver.execute_script(f"document.documentElement.setAttribute('data-theme', '{theme}')")
        assert driver.find_element("id", "step-count").text == "6"
        assert len(driver.find_elements("css selector", "tr.alert-mark")) == 14
        screenshot(driver, tmp_path / f"story-{theme}.png")
        assert js_errors(driver) == []
        assert requests_made(driver, url) == []


def test_empty_report_in_the_browser(tmp_path: Path) -> None:
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    html = _report(tmp_path, "--alerts", str(empty), name="empty.html")
    with chromium() as driver:
        url = open_page(driver, html)
        assert visible_rows(driver) == 0
        assert driver.find_element("id", "no-rows").is_displayed()
        assert js_errors(driver) == []
        assert requests_made(driver, url) == []
