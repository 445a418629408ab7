"""The forecast on Threshold & profit in a real browser (``streamlit run`` + Debian chromium).

A manager scores the demo week and reads, in words, what the product recommends and the
expected profit with its 80% range; then changes the call cost and the subscription value in
the sidebar and sees both move. The page's recommendation is the product's own (the same text
the services give for the same cohort and economics), its range is the one on the Expected
profit figure, and the expected profit lies inside it. A screenshot of each state goes to
``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from termdeposit.core.config import BusinessSettings
from termdeposit.data.dataset import make_cohort
from termdeposit.decisions.economics import format_percent
from termdeposit.modeling.predict import cohort_probabilities
from termdeposit.services.forecasts import cohort_outlook

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
DEMO_WEEK = 39  # the demo tab's default week
RANGE = re.compile(r"80% range (-?€-?[0-9,]+) to (-?€-?[0-9,]+)")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture()
def page(ops_db, dashboard) -> Iterator:
    """A chromium page on the dashboard, served with a fresh operations database."""
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=90_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(90_000)
        try:
            tab.goto(dashboard)
            yield tab
        finally:
            browser.close()


def _idle(page) -> None:
    """Wait for the run an action started to end."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')
        .getAttribute('data-test-script-state') === 'notRunning'"""
    )


def _euros(text: str) -> int:
    """``€1,234`` or ``-€56`` as a number of euros."""
    return int(re.sub(r"[^0-9-]", "", text))


def _set_number(page, label: str, value: str) -> None:
    field = page.locator(f'input[aria-label="{label}"]').first
    field.fill(value)
    field.press("Enter")
    _idle(page)


def _forecast_on_page(page) -> tuple[str, int, tuple[int, int], tuple[int, int]]:
    """The recommendation's words; the Expected profit figure and the range under it; the
    range inside the recommendation's words."""
    from playwright.sync_api import expect

    advice = page.locator('[data-testid="stAlert"]', has_text="Recommendation.").first
    expect(advice).to_be_visible()
    words = " ".join(advice.inner_text().split())
    figure = page.locator('[data-testid="stMetric"]', has_text="Expected profit").first
    value = figure.locator('[data-testid="stMetricValue"]').inner_text()
    delta = figure.locator('[data-testid="stMetricDelta"]').inner_text()
    shown = RANGE.search(delta)
    said = RANGE.search(words)
    assert shown and said, (delta, words)
    return (
        words,
        _euros(value),
        (_euros(shown.group(1)), _euros(shown.group(2))),
        (_euros(said.group(1)), _euros(said.group(2))),
    )


def _product_advice(reference, production_model, cost: float, value: float) -> str:
    """What the product recommends for the demo week at these economics (its own words)."""
    cohort = make_cohort(reference, DEMO_WEEK)
    p = cohort_probabilities(production_model, cohort)
    return cohort_outlook(production_model, p, BusinessSettings(cost, value)).recommendation.text


def test_the_range_and_the_recommendation_follow_the_economics(page, reference, production_model):
    from playwright.sync_api import expect

    _idle(page)
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Score cohort").first.click()
    _idle(page)
    page.get_by_role("tab", name="Use a demo week").click()
    page.get_by_role("button", name="Score this week").click()
    expect(
        page.get_by_text("New cohort: the most profitable choice is applied").first
    ).to_be_visible()
    _idle(page)
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Threshold and profit").first.click()
    _idle(page)
    expect(page.get_by_text("This week's subscription rate is forecast at").first).to_be_visible()

    words, expected, shown, said = _forecast_on_page(page)
    assert "Recommendation. Call" in words, words
    assert f"break-even is {format_percent(0.05)}" in words or "break-even 5.0%" in words
    assert _product_advice(reference, production_model, 5.0, 100.0) in words
    assert shown == said, "the figure's range is the recommendation's (its choice is applied)"
    low, high = shown
    assert low < expected < high
    page.screenshot(path=SHOTS / "forecast_5_100.png", full_page=True)

    _set_number(page, "Cost per call (€)", "10")
    _set_number(page, "Value of one subscription (€)", "50")
    expect(page.locator('[data-testid="stAlert"]', has_text="20.0%").first).to_be_visible()
    words_after, expected_after, shown_after, said_after = _forecast_on_page(page)
    assert "20.0%" in words_after and words_after != words
    assert _product_advice(reference, production_model, 10.0, 50.0) in words_after
    assert shown_after == said_after
    low_after, high_after = shown_after
    assert low_after < expected_after < high_after
    assert (expected_after, shown_after) != (expected, shown), "the money moved"
    page.screenshot(path=SHOTS / "forecast_10_50.png", full_page=True)
