"""Speed a person feels: the dashboard with a 100,000-row cohort, in a real browser.

Starts ``streamlit run`` on a free port (a private database), drives Debian's chromium with
Playwright, and times what a manager waits for, from the click to the end of the page's run
(Streamlit's ``stApp`` goes from ``running`` back to ``notRunning``):

- the first Home load of a new browser session (target 3 s);
- opening each page by its sidebar link, with the cohort scored (target 1.5 s);
- a control change: the cost per call, the exact threshold, the number of calls (target 1 s).

Each figure is the median of ``--runs`` runs; the load average of the machine is printed
before and after (the machine is shared: a high load slows every figure). The cohort is
made from the reference data (rows drawn with replacement, new ids) and scored once before
timing starts (scoring is measured by ``bench_score.py``).

Usage: python benchmarks/bench_dashboard.py [--rows 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PAGES = (
    "Score cohort",
    "Threshold and profit",
    "Threshold scenarios",
    "Call list",
    "Models",
    "Explanations",
    "Fairness",
    "Outcomes",
    "Monitoring",
    "Backtest",
    "streamlit app",
)
TARGETS = {"first_home": 3.0, "page": 1.5, "control": 1.0}

_WATCH = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  window.__runs = 0;
  new MutationObserver(() => {
    if (app.getAttribute('data-test-script-state') === 'running') window.__runs += 1;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
_DONE = """(before) => window.__runs > before && document.querySelector(
  '[data-testid="stApp"]').getAttribute('data-test-script-state') === 'notRunning'"""


def make_cohort(rows: int, path: Path) -> None:
    """A cohort of ``rows`` customers drawn from the reference data, as marketing sends it."""
    from termdeposit.core.schema import INPUT_COLUMNS
    from termdeposit.data.dataset import load_reference

    reference = load_reference()
    sample = reference.sample(rows, replace=True, random_state=0).loc[:, list(INPUT_COLUMNS)]
    sample.insert(0, "customer_id", [f"B{i:07d}" for i in range(rows)])
    sample.to_csv(path, sep=";", index=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start the dashboard; return the process and its URL once it answers."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_app.py",
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
            "--server.maxUploadSize",
            "400",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as answer:
                if answer.read() == b"ok":
                    return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("the dashboard did not start")


def timed(page, action) -> float:
    """Seconds from ``action()`` to the end of the script run it starts."""
    before = page.evaluate("() => window.__runs")
    start = time.perf_counter()
    action()
    page.wait_for_function(_DONE, arg=before, timeout=300_000)
    return time.perf_counter() - start


def first_home(browser, url: str) -> float:
    """A new session opening Home: from the request to the end of the first run."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_function(
        """() => { const app = document.querySelector('[data-testid="stApp"]');
        return app && app.getAttribute('data-test-script-state') === 'notRunning'
        && document.querySelector('h1') !== null; }""",
        timeout=300_000,
    )
    elapsed = time.perf_counter() - start
    page.close()
    return elapsed


def set_number(page, label: str, value: str):
    field = page.locator(f'input[aria-label="{label}"]').first

    def action() -> None:
        field.fill(value)
        field.press("Enter")

    return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    cohort = work / f"cohort_{args.rows}.csv"
    make_cohort(args.rows, cohort)
    env = os.environ.copy()
    env.setdefault("TERMDEPOSIT_DB_URL", f"sqlite:///{work / 'ops.db'}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"cohort: {args.rows:,} rows, {cohort.stat().st_size / 1e6:.1f} MB; runs: {args.runs}")
    process, url = serve(env)
    results: dict[str, list[float]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
            results["first Home load"] = [first_home(browser, url) for _ in range(args.runs)]
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector('[data-testid="stSidebarNavLink"]')
            page.evaluate(_WATCH)
            nav = page.locator('[data-testid="stSidebarNavLink"]')
            timed(page, lambda: nav.filter(has_text="Score cohort").first.click())
            uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]').first
            uploader.wait_for(state="attached")
            start = time.perf_counter()
            uploader.set_input_files(cohort)
            page.get_by_text(f"Cohort: {cohort.name}").wait_for(timeout=600_000)
            page.wait_for_function(_DONE, arg=0, timeout=600_000)
            print(
                f"upload, check and score {args.rows:,} rows: {time.perf_counter() - start:.1f} s"
            )
            # one warm-up visit of every page (first visits build caches: SHAP, fairness)
            for label in PAGES:
                timed(page, lambda label=label: nav.filter(has_text=label).first.click())
            for _ in range(args.runs):
                for label in PAGES:
                    seconds = timed(
                        page, lambda label=label: nav.filter(has_text=label).first.click()
                    )
                    results.setdefault(f"open {label}", []).append(seconds)
            timed(page, lambda: nav.filter(has_text="Threshold and profit").first.click())
            costs = ["6", "5"] * args.runs
            thresholds = ["7", "9"] * args.runs
            calls = ["20000", "30000"] * args.runs
            for i in range(args.runs):
                for name, label, values in (
                    ("change the cost per call", "Cost per call (€)", costs),
                    ("change the exact threshold", "Exact threshold (%)", thresholds),
                    ("change the number of calls", "Number of calls", calls),
                ):
                    results.setdefault(name, []).append(
                        timed(page, set_number(page, label, values[i]))
                    )
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'what':45s} {'median s':>9s} {'max s':>7s} {'target':>7s}")
    for name, values in results.items():
        target = (
            TARGETS["first_home"]
            if name.startswith("first")
            else TARGETS["page"]
            if name.startswith("open")
            else TARGETS["control"]
        )
        median = statistics.median(values)
        flag = "" if median <= target else "  over"
        print(f"{name:45s} {median:9.2f} {max(values):7.2f} {target:7.1f}{flag}")


if __name__ == "__main__":
    main()
