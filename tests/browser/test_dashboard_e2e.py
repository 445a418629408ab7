"""End to end: a real ``streamlit run`` driven by Debian's chromium through Playwright.

A call-centre lead's path: upload a cohort made by ``termdeposit make-cohort``, move the
threshold, open the call list and download the CSV; the file must hold as many customers as
the page said, best first, with the uploaded ids. A screenshot of every page is saved to
``artifacts/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHOTS = PROJECT_ROOT / "artifacts" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture()
def cohort_file(tmp_path) -> Path:
    """Week 39 as marketing receives it, written by the ``make-cohort`` command."""
    out = tmp_path / "cohort_week39.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "termdeposit.apps.cli",
            "make-cohort",
            "--week",
            "39",
            "--out",
            out,
        ],
        check=True,
        env=os.environ.copy(),
        capture_output=True,
        timeout=120,
    )
    return out


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
    page.screenshot(path=SHOTS / name)
    page.set_viewport_size(size)


def _wait_for_run(page) -> None:
    """Wait for the page's script run to end (no stale copies of elements left on screen)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')
        .getAttribute('data-test-script-state') === 'notRunning'"""
    )


def _number(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text))


def test_upload_threshold_download(dashboard, cohort_file, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(60_000)
        try:
            health = page.request.get(f"{dashboard}/_stcore/health")
            assert health.ok and health.text() == "ok"

            page.goto(dashboard)
            expect(page.get_by_role("heading", name="Term-deposit call planner")).to_be_visible()
            expect(page.get_by_text("Ranking quality (AUC)")).to_be_visible()
            _screenshot(page, "0_home.png")

            _open_page(page, "Score cohort")
            uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]').first
            uploader.wait_for(state="attached")
            uploader.set_input_files(cohort_file)
            expect(page.get_by_text(f"Cohort: {cohort_file.name}")).to_be_visible()
            expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
            _screenshot(page, "1_score_cohort.png")

            _open_page(page, "Threshold and profit")
            calls = page.locator('[data-testid="stMetric"]', has_text="Calls").first
            expect(calls).to_be_visible()
            before = calls.locator('[data-testid="stMetricValue"]').inner_text()
            slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
            start = float(slider.input_value())  # the week's recommended threshold
            moved = f"{min(start + 10, 100) - 0.1:.1f}".removesuffix(".0")
            slider.focus()
            slider.press("PageUp")  # a tenth of the range
            slider.press("ArrowLeft")
            expect(slider).to_have_value(moved)
            expect(calls.locator('[data-testid="stMetricValue"]')).not_to_have_text(before)
            _wait_for_run(page)
            expect(slider).to_have_value(moved)
            threshold = float(slider.input_value()) / 100
            number = page.get_by_role("spinbutton", name="Exact threshold (%)")
            expect(number).to_have_value(f"{100 * threshold:.2f}")
            expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
            _screenshot(page, "2_threshold_and_profit.png")

            _open_page(page, "Call list")
            button = page.locator('[data-testid="stDownloadButton"] button').first
            expect(button).to_contain_text("Download CSV")
            expected_rows = _number(button.inner_text())
            expect(
                page.get_by_text(f"{expected_rows:,} customers to call, all chosen by the model.")
            ).to_be_visible()
            page.get_by_role("button", name=re.compile("Issue this call list")).click()
            expect(page.get_by_text(re.compile(r"Call list \d+ recorded"))).to_be_visible()
            _wait_for_run(page)
            _screenshot(page, "3_call_list.png")
            with page.expect_download() as download:
                button.click()
            saved = tmp_path / download.value.suggested_filename
            download.value.save_as(saved)
            expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
            dialler = page.locator(
                '[data-testid="stDownloadButton"] button', has_text="dialler"
            ).first
            with page.expect_download() as download:
                dialler.click()
            saved_dialler = tmp_path / download.value.suggested_filename
            download.value.save_as(saved_dialler)

            _open_page(page, "Models")
            expect(page.get_by_text("All versions")).to_be_visible()
            expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(3)
            _screenshot(page, "4_models.png")
        finally:
            browser.close()

    assert saved.name.startswith("call_list_cohort_week39_v") and saved.suffix == ".csv"
    raw = saved.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert 0 < len(rows) == expected_rows
    assert list(rows[0])[:5] == ["Rank", "Customer id", "Priority", "Chance of subscribing"] + [
        "Why call (1)"
    ]
    assert all(r["Why call (1)"] for r in rows), "the reasons survive issuing the list"
    machine = list(csv.DictReader(io.StringIO(saved_dialler.read_text(encoding="utf-8-sig"))))
    probabilities = [float(r["probability"]) for r in machine]
    assert probabilities == sorted(probabilities, reverse=True)
    assert min(probabilities) >= threshold - 1e-4
    uploaded_ids = {r["customer_id"] for r in csv.DictReader(cohort_file.open())}
    assert [r["customer_id"] for r in machine] == [r["Customer id"] for r in rows]
    assert {r["customer_id"] for r in machine} <= uploaded_ids
    assert [int(r["rank"]) for r in machine] == sorted(int(r["rank"]) for r in machine)

    # The command line issues the same list from the prediction log: the same file, byte for
    # byte, and no second record of it. (The cohort is named by its file's sha256: another
    # test may have scored the same bytes under another name.)
    cohort_sha = hashlib.sha256(cohort_file.read_bytes()).hexdigest()
    for fmt, downloaded in (("csv", saved), ("dialler", saved_dialler)):
        out = tmp_path / f"cli_{fmt}.csv"
        done = subprocess.run(
            [sys.executable, "-m", "termdeposit.apps.cli", "issue"]
            + ["--cohort", cohort_sha[:16], "--threshold", repr(threshold)]
            + ["--format", fmt, "--out", str(out)],
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == downloaded.read_bytes()
