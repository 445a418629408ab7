"""A marketing manager's flows in a real browser (``streamlit run`` + Debian chromium).

Each test drives one flow of issue 17 end to end: change the economics and see the choice and
figures move; pin a losing threshold and see the warning with its amount; reload the page and
find the cohort and settings again; compare two saved scenarios; download the stakeholder
report and check its sections. Screenshots go to ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from termdeposit.services.report import SECTIONS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHOTS = PROJECT_ROOT / "artifacts" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture()
def page(ops_db, dashboard) -> Iterator:
    """A chromium page on the dashboard, served with a fresh operations database per test
    (``ops_db`` comes first: the server inherits its ``TERMDEPOSIT_DB_URL``)."""
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=90_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        tab.set_default_timeout(90_000)
        tab.base_url = dashboard
        try:
            yield tab
        finally:
            browser.close()


def _idle(page) -> None:
    """Wait for the run an action started to end (the app is back to ``notRunning``)."""
    page.wait_for_timeout(500)
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')
        .getAttribute('data-test-script-state') === 'notRunning'"""
    )


def _open(page, label: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]', has_text=label).first.click()
    _idle(page)


def _metric_value(page, label: str):
    box = page.locator('[data-testid="stMetric"]', has_text=label).first
    return box.locator('[data-testid="stMetricValue"]')


def _metric(page, label: str) -> str:
    return _metric_value(page, label).inner_text()


def _set_number(page, label: str, value: str) -> None:
    field = page.locator(f'input[aria-label="{label}"]').first
    field.fill(value)
    field.press("Enter")
    _idle(page)


def _score_demo_week(page) -> None:
    from playwright.sync_api import expect

    page.goto(page.base_url)
    _idle(page)
    _open(page, "Score cohort")
    page.get_by_role("tab", name="Use a demo week").click()
    page.get_by_role("button", name="Score this week").click()
    expect(
        page.get_by_text("New cohort: the most profitable choice is applied").first
    ).to_be_visible()
    _idle(page)


def _money(text: str) -> int:
    return int(re.sub(r"[^0-9-]", "", text))


def _recommended_percent(model, week_cohort) -> str:
    """The demo week's most profitable threshold at the default economics, as the exact
    threshold field shows it (computed without the dashboard)."""
    from termdeposit.core.config import default_settings
    from termdeposit.data.cohort_file import validate_cohort
    from termdeposit.decisions import economics
    from termdeposit.modeling.predict import cohort_probabilities

    cohort = validate_cohort(week_cohort.astype(str))
    curve = economics.build_curve(cohort_probabilities(model, cohort.frame))
    return f"{100 * economics.recommended_threshold(curve, default_settings()):.2f}"


def test_economics_move_the_choice_and_a_losing_pin_is_warned(page, production_model, week_cohort):
    from playwright.sync_api import expect

    _score_demo_week(page)
    _open(page, "Threshold and profit")
    threshold = page.locator('input[aria-label="Exact threshold (%)"]').first
    recommended = _recommended_percent(production_model, week_cohort)
    expect(threshold).to_have_value(recommended)
    calls_before = _metric(page, "Calls")

    _set_number(page, "Cost per call (€)", "10")
    _set_number(page, "Value of one subscription (€)", "50")
    expect(
        page.get_by_text("Subscription value changed: the most profitable choice").first
    ).to_be_visible()
    expect(threshold).not_to_have_value(recommended)
    assert float(threshold.input_value()) >= 15.0  # break-even is 20%
    assert _metric(page, "Calls") != calls_before
    assert _money(_metric(page, "Expected profit")) >= 0
    page.screenshot(path=SHOTS / "flow_economics_moved.png", full_page=True)

    _set_number(page, "Exact threshold (%)", "5")
    warning = page.get_by_text("Your pinned choice is expected to earn").first
    expect(warning).to_be_visible()
    assert re.search(r"€[0-9,]+ less than calling (nobody|everyone)", warning.inner_text())
    page.screenshot(path=SHOTS / "flow_losing_pin.png", full_page=True)

    page.get_by_role("button", name="Follow the money (most profitable)").click()
    _idle(page)
    expect(page.get_by_text("Your pinned choice is expected to earn")).to_have_count(0)


def test_reload_keeps_the_cohort_and_settings(page):
    from playwright.sync_api import expect

    _score_demo_week(page)
    _open(page, "Threshold and profit")
    _set_number(page, "Cost per call (€)", "7")
    _set_number(page, "Number of calls", "400")
    expect(_metric_value(page, "Calls")).to_have_text(re.compile(r"^(3[89]\d|400)$"))
    calls = _metric(page, "Calls")
    expect(page).to_have_url(re.compile(r"cost=7.*pick=calls(%3A|:)400.*cohort=\d+"))

    page.reload()
    _idle(page)
    expect(page.get_by_text("Expected with this choice")).to_be_visible()
    expect(page.locator('input[aria-label="Cost per call (€)"]').first).to_have_value("7.00")
    expect(_metric_value(page, "Calls")).to_have_text(calls)
    expect(page.get_by_text("Cohort 2009-05 wk2").first).to_be_visible()
    expect(
        page.get_by_text("Reopened with the settings in the page's address").first
    ).to_be_visible()

    _open(page, "Score cohort")
    page.get_by_role("tab", name="Reopen a recent cohort").click()
    picker = page.locator('input[aria-label="Cohort"]').first
    expect(picker).to_have_value(re.compile(r"^2009-05 wk2 · 2,864 customers · scored "))
    page.screenshot(path=SHOTS / "flow_recent_cohorts.png", full_page=True)


def test_compare_two_scenarios(page):
    from playwright.sync_api import expect

    _score_demo_week(page)
    _open(page, "Threshold and profit")
    for name, cost, value in (("Cheap calls", "5", "100"), ("Dear calls", "10", "50")):
        _set_number(page, "Cost per call (€)", cost)
        _set_number(page, "Value of one subscription (€)", value)
        field = page.locator('input[aria-label="Scenario name"]')
        if not field.is_visible():
            page.get_by_text("Save these settings as a scenario").click()
        field.fill(name)
        page.get_by_role("button", name="Save the scenario").click()
        expect(page.get_by_text(f"Saved {name}")).to_be_visible()
    _open(page, "Threshold scenarios")
    for key, name in (("Scenario A", "Cheap calls"), ("Scenario B", "Dear calls")):
        page.get_by_label(key).click()
        page.get_by_role("option", name=name).click()
        _idle(page)
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    text = page.locator('[data-testid="stMarkdown"]', has_text="is expected to earn").first
    expect(text).to_contain_text(re.compile(r"calls [0-9,]+ fewer customers than A"))
    expect(text).to_contain_text(re.compile(r"earn €[0-9,]+ (more|less)"))
    page.screenshot(path=SHOTS / "flow_scenarios.png", full_page=True)


def test_download_the_stakeholder_report(page, tmp_path):
    _score_demo_week(page)
    _open(page, "streamlit app")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the report (HTML)").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    html = saved.read_text(encoding="utf-8")
    for title in SECTIONS:
        assert title.replace("'", "&#x27;") in html
    assert "2009-05 wk2" in html and "80% range" in html
    assert "<script" not in html
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the report (PDF)").click()
    pdf = tmp_path / download.value.suggested_filename
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")


def test_no_empty_settings_after_clicks_during_the_first_load(page):
    """Clicking Home while the first page still loads once left 0.00 / 0.01 in the sidebar."""
    from playwright.sync_api import expect

    for _ in range(3):
        page.goto(page.base_url)
        home = page.locator('[data-testid="stSidebarNavLink"]').first
        home.wait_for()
        home.click()
        page.wait_for_timeout(150)
        home.click()
        _idle(page)
        expect(page.locator('input[aria-label="Cost per call (€)"]').first).to_have_value("5.00")
        expect(
            page.locator('input[aria-label="Value of one subscription (€)"]').first
        ).to_have_value("100.00")
