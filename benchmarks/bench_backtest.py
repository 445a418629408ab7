"""Benchmark: the product's weekly backtest over weeks 13-118, every money cell, with the targets.

Replays the reference data week by week as the product runs it (``termdeposit backtest``: the
model refitted every 4 weeks on all earlier weeks, the weekly rate model refitted every week,
each week's probabilities following its forecast rate, the recommendation deciding whom to
call) for every cell of cost {2, 5, 10, 20} x value {20, 50, 100, 200}, and the product's method
before the weekly rate model (Platt recalibration on the latest >= 1,000 outcomes, break-even
threshold: the "now" figures of the forecasts issue) at cost 5 / value 100 and 10 / 50.

Prints, for each method: profit against calling everyone, calling nobody, the rate rule and
the hindsight bound; expected profit against realised with its 80% range, how often the
range held the week's profit and its mean width; the weekly error; the worst week. Then the
issue's targets beside the "now" figures, with MET / NOT MET, on the whole window and on its
two halves (weeks 13-60, on which the method was chosen, and weeks 61-118, the untouched
check).

Run: ``python benchmarks/bench_backtest.py`` (about 3 minutes on 2 idle cores; ``--quick``
replays weeks 13-40 only).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import pandas as pd

from termdeposit.data.dataset import load_reference
from termdeposit.ops.backtest import (
    GRID,
    QUICK,
    BacktestConfig,
    cell_summary,
    previous_product_config,
    run_backtest,
)

#: The "now" figures of the forecasts issue (weeks 13-118), and the data README's reference.
NOW = {
    (5.0, 100.0): {"profit": 268_170, "expected": 352_755, "weekly_abs_error": 1_626},
    (10.0, 50.0): {"profit": 42_580, "expected": 80_685, "weekly_abs_error": 582},
}
REFERENCE = {(5.0, 100.0): 257_870, (10.0, 50.0): 19_890}
MAIN = ((5.0, 100.0), (10.0, 50.0))
PARTS = {"13-60 (chosen on)": (13, 60), "61-118 (untouched check)": (61, 118)}


def cells_table(result, cells, first: int | None = None, last: int | None = None) -> pd.DataFrame:
    """One row per money cell over weeks ``first``-``last`` (default: the whole replay)."""
    rows = []
    for cost, value in cells:
        weeks = result.cell_weeks[(cost, value)]
        if first is not None:
            weeks = weeks[weeks["week"].between(first, last)]
        rows.append(cell_summary(cost, value, weeks))
    table = pd.DataFrame(rows)
    table["best_simple"] = table[["profit_call_all", "profit_call_none", "profit_rate_rule"]].max(
        axis=1
    )
    table["expected_vs_realised"] = table["expected_profit_model"] / table["profit_model"] - 1
    return table


def show(table: pd.DataFrame) -> None:
    """Print a cells table with readable numbers."""
    columns = [
        "cost",
        "value",
        "profit_model",
        "profit_call_all",
        "profit_rate_rule",
        "profit_hindsight_weekly",
        "expected_profit_model",
        "expected_low",
        "expected_high",
        "expected_vs_realised",
        "coverage",
        "mean_range_width",
        "weekly_abs_error",
        "worst_week_loss",
    ]
    money = "{:,.0f}".format
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        print(
            table[columns].to_string(
                index=False,
                formatters={
                    **{c: money for c in columns[2:9]},
                    "expected_vs_realised": "{:+.1%}".format,
                    "coverage": lambda v: "–" if pd.isna(v) else f"{v:.0%}",
                    "mean_range_width": lambda v: "–" if pd.isna(v) else f"{v:,.0f}",
                    "weekly_abs_error": money,
                    "worst_week_loss": money,
                },
            )
        )


def targets(table: pd.DataFrame, gap: float, ece: float) -> list[tuple[str, str, str, str, bool]]:
    """The issue's targets: (measure, now, target, measured, met)."""
    cell = {(r.cost, r.value): r for r in table.itertuples()}
    a, b = cell[(5.0, 100.0)], cell[(10.0, 50.0)]
    below = [
        f"{r.cost:g}/{r.value:g}"
        for r in table.itertuples()
        if r.profit_model < r.best_simple - 0.01 * abs(r.best_simple)
    ]
    coverages = [c for c in table["coverage"] if c is not None and not pd.isna(c)]
    return [
        (
            "profit at 5 / 100",
            "268,170",
            f">= calling everyone ({a.profit_call_all:,.0f}); stretch +1%",
            f"{a.profit_model:,.0f}",
            a.profit_model >= a.profit_call_all,
        ),
        (
            "  stretch: +1% over calling everyone",
            "",
            f">= {1.01 * a.profit_call_all:,.0f}",
            f"{a.profit_model:,.0f}",
            a.profit_model >= 1.01 * a.profit_call_all,
        ),
        (
            "profit at 10 / 50",
            "42,580",
            f">= 60,000 (hindsight {b.profit_hindsight_weekly:,.0f})",
            f"{b.profit_model:,.0f}",
            b.profit_model >= 60_000,
        ),
        (
            "every grid cell >= best simple policy - 1%",
            "3 cells below",
            "0 cells below",
            f"{len(below)} below {', '.join(below)}".strip(),
            not below,
        ),
        (
            "worst week at 10 / 50",
            "-16,790",
            ">= -2,000",
            f"{b.worst_week_loss:,.0f}",
            b.worst_week_loss >= -2000,
        ),
        (
            "expected vs realised (5/100, 10/50)",
            "+31.5%, +89.5%",
            "within +-10% at both",
            f"{a.expected_vs_realised:+.1%}, {b.expected_vs_realised:+.1%}",
            abs(a.expected_vs_realised) <= 0.1 and abs(b.expected_vs_realised) <= 0.1,
        ),
        (
            "weekly abs error (5/100, 10/50)",
            "1,626 / 582",
            "<= 1,000 / <= 250",
            f"{a.weekly_abs_error:,.0f} / {b.weekly_abs_error:,.0f}",
            a.weekly_abs_error <= 1000 and b.weekly_abs_error <= 250,
        ),
        (
            "80% range holds the weekly profit",
            "–",
            "70-90% of weeks",
            f"{a.coverage:.0%} / {b.coverage:.0%} (cells {min(coverages):.0%}-"
            f"{max(coverages):.0%})",
            0.7 <= a.coverage <= 0.9 and 0.7 <= b.coverage <= 0.9,
        ),
        ("weekly rate gap (row-weighted)", "0.074", "<= 0.05", f"{gap:.3f}", gap <= 0.05),
        ("calibration error (all scored rows)", "0.037", "–", f"{ece:.3f}", True),
    ]


def main() -> None:
    """Replay both methods and print the figures and the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="weeks 13-40 only")
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    frame = load_reference()
    window = QUICK if args.quick else {}
    cache: dict[tuple, object] = {}
    started = time.perf_counter()
    before = run_backtest(
        frame, replace(previous_product_config(), **window), cache=cache, cells=MAIN
    )
    after = run_backtest(frame, replace(BacktestConfig(), **window), cache=cache, cells=GRID)
    seconds = time.perf_counter() - started
    first, last = int(after.weeks["week"].min()), int(after.weeks["week"].max())
    rows = int(after.weeks["rows"].sum())
    print(f"\nweeks {first}-{last}, {rows:,} customers; replayed in {seconds:.0f} s")

    print("\n== before: Platt on the latest >= 1,000 outcomes, break-even threshold ==")
    show(cells_table(before, MAIN))
    print(f"calibration error {before.ece:.3f}; weekly rate gap {before.weekly_rate_gap:.3f}")

    print("\n== the product: weekly rate model, ranges, recommendation (every cell) ==")
    table = cells_table(after, GRID)
    show(table)
    print(f"calibration error {after.ece:.3f}; weekly rate gap {after.weekly_rate_gap:.3f}")

    if not args.quick:
        for name, (lo, hi) in PARTS.items():
            print(f"\n-- weeks {name} --")
            part = after.weeks[after.weeks["week"].between(lo, hi)]
            gap = float(
                (part["rows"] * (part["mean_probability"] - part["rate"]).abs()).sum()
                / part["rows"].sum()
            )
            show(cells_table(after, MAIN, lo, hi))
            print(f"weekly rate gap {gap:.3f}")

    print("\n== targets (issue: decisions you can bank on) ==")
    print(f"{'measure':<44} {'now':>16} {'target':>40} {'measured':>26}  verdict")
    for measure, now, target, measured, met in targets(table, after.weekly_rate_gap, after.ece):
        verdict = "MET" if met else "NOT MET"
        print(f"{measure:<44} {now:>16} {target:>40} {measured:>26}  {verdict}")
    print(
        "reference method of the data README: "
        + ", ".join(f"{c:g}/{v:g} {p:,.0f}" for (c, v), p in REFERENCE.items())
    )


if __name__ == "__main__":
    main()
