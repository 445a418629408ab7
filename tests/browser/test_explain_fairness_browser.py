"""End to end in chromium: a stakeholder explains the demo week, checks fairness, and the
call-centre lead downloads the call list with a reason for each call.

Screenshots of both pages go to ``artifacts/screenshots/`` (git-ignored) for a person to look
at.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
WAIT_MS = 240_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _open_page(page, label: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]', has_text=label).first.click()


def _screenshot(page, name: str) -> None:
    """Save the whole page: the viewport is stretched to the app's scrolling height first."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": min(max(height, 800), 6000)})
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
    page.wait_for_timeout(800)  # let plotly finish drawing after the resize
    page.screenshot(path=SHOTS / name)
    page.set_viewport_size(size)


def test_explanations_fairness_and_reasons_in_the_browser(dashboard):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            page.goto(dashboard)
            _open_page(page, "Explanations")
            expect(page.get_by_text("No cohort has been scored yet")).to_be_visible()
            page.get_by_role("button", name="Use the demo week").click()
            expect(page.get_by_text("move the score most")).to_be_visible()
            expect(page.locator(".js-plotly-plot").first).to_be_visible()
            _screenshot(page, "5_explanations_overall.png")

            page.get_by_role("tab", name="One customer").click()
            expect(page.get_by_text("What raises this customer's score")).to_be_visible()
            expect(page.get_by_text("rank 1 of 2,864")).to_be_visible()
            age = page.get_by_label("Age", exact=True)
            age.fill("70")
            page.get_by_role("button", name="Show the new score").click()
            after = page.locator('[data-testid="stMetric"]', has_text="After the change")
            expect(after).to_be_visible()
            expect(page.get_by_text("Changed: Age from ")).to_be_visible()
            _screenshot(page, "5_explanations_customer.png")

            _open_page(page, "Fairness")
            expect(page.get_by_text("Who is called, by age band")).to_be_visible()
            expect(page.get_by_text("95% intervals:")).to_be_visible()
            _screenshot(page, "6_fairness.png")
            page.get_by_role("button", name="Train it and compare").click()
            expect(page.get_by_text("Without age and marital status the model")).to_be_visible()
            _screenshot(page, "6_fairness_without_protected.png")

            _open_page(page, "Call list")
            button = page.locator('[data-testid="stDownloadButton"] button').first
            expect(button).to_be_visible()
            with page.expect_download() as download:
                button.click()
            text = Path(download.value.path()).read_text(encoding="utf-8-sig")
        finally:
            browser.close()
    rows = list(csv.DictReader(io.StringIO(text)))
    reasons = ["Why call (1)", "Why call (2)", "Why call (3)"]
    assert rows and set(reasons) <= set(rows[0])
    with_reason = [r for r in rows if r["Why call (1)"]]
    assert len(with_reason) >= 0.9 * len(rows)
    # a caller's words ("said yes in the previous campaign"), not "Column = value"
    assert not any(" = " in r[c] for r in with_reason for c in reasons)
