"""Benchmark: what moving the threshold slider costs at 100k customers, and scoring 100k rows.

Slider: the threshold page recomputes its figures (summary at the threshold, profit-optimal,
capacity and hindsight thresholds, the curve table) from the precomputed sorted cumulative
sums (``decisions.economics``). The baseline, timed in the same run on the same data,
recomputes the same figures naively from the unsorted probabilities (a mask and sums per
threshold). Building the cumulative sums (once per scored cohort) and the four charts are
timed too.

Scoring: a 100k-row CSV upload read and validated (``load_cohort``) and scored through the
dashboard's path (``score_with_progress``) with the production model (``TERMDEPOSIT_MODELS``).

Usage:
    .venv/bin/python benchmarks/bench_threshold.py [--rows 100000] [--moves 30] [--no-scoring]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from termdeposit.core.config import BusinessSettings
from termdeposit.decisions import economics
from termdeposit.insight import plots

SETTINGS = BusinessSettings(call_cost=5.0, subscription_value=100.0, capacity=20_000)


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _ms(times: list[float]) -> str:
    return f"median {1000 * statistics.median(times):8.2f} ms   max {1000 * max(times):8.2f} ms"


def fast_move(curve: economics.ThresholdCurve, threshold: float) -> None:
    """Everything the threshold page computes when the slider moves (cumulative sums)."""
    economics.summary_at(curve, SETTINGS, threshold, SETTINGS.capacity)
    economics.optimal_threshold(curve, SETTINGS)
    economics.capacity_threshold(curve, SETTINGS.capacity)
    economics.hindsight_threshold(curve, SETTINGS)
    economics.curve_table(curve, SETTINGS)


def naive_move(p: np.ndarray, y: np.ndarray, threshold: float, grid: np.ndarray) -> None:
    """The same figures from the unsorted probabilities: a mask and sums per threshold."""
    value, cost = SETTINGS.subscription_value, SETTINGS.call_cost
    called = p >= threshold
    calls = int(called.sum())
    expected = p[called].sum()
    _ = (value * expected - cost * calls, value * y[called].sum() - cost * calls)
    _ = calls * (value * p.mean() - cost), value * p.sum() - cost * len(p)
    profits = []
    realised = []
    counts = []
    for t in grid:
        mask = p >= t
        n = int(mask.sum())
        counts.append(n)
        profits.append(value * p[mask].sum() - cost * n)
        realised.append(value * y[mask].sum() - cost * n)
    _ = grid[int(np.argmax(profits))], grid[int(np.argmax(realised))]
    fitting = [t for t, n in zip(grid, counts, strict=True) if n <= SETTINGS.capacity]
    _ = min(fitting) if fitting else None


def bench_slider(rows: int, moves: int) -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1.2, 9.0, rows)
    y = (rng.random(rows) < p).astype(float)
    thresholds = rng.uniform(0.0, 0.4, moves)

    build = _timed(lambda: economics.build_curve(p, y), 5)
    curve = economics.build_curve(p, y)
    grid = economics.curve_table(curve, SETTINGS)["threshold"].to_numpy()
    fast = [_timed(lambda t=t: fast_move(curve, t), 1)[0] for t in thresholds]
    naive = [_timed(lambda t=t: naive_move(p, y, t, grid), 1)[0] for t in thresholds]

    table = economics.curve_table(curve, SETTINGS)
    marks = [plots.Mark("current", 0.1, "Your threshold 10%")]

    def charts() -> None:
        plots.money_curves(table, marks)
        plots.calls_curve(table, marks)
        plots.gains_chart(table, marks)
        plots.lift_chart(table, marks)

    figures = _timed(charts, 5)
    print(f"Slider at {rows:,} customers ({moves} threshold moves, {len(grid)} curve points)")
    print(f"  build sorted cumulative sums (once per cohort): {_ms(build)}")
    print(f"  recompute from cumulative sums (per move):     {_ms(fast)}")
    print(f"  naive recompute from raw scores (per move):    {_ms(naive)}")
    ratio = statistics.median(naive) / statistics.median(fast)
    print(f"  ratio naive / cumulative sums:                 {ratio:8.1f}x")
    print(f"  build the four threshold charts (per move):    {_ms(figures)}")


def bench_scoring(rows: int) -> None:
    import pandas as pd

    from termdeposit.apps.dashboard.scoring import score_with_progress
    from termdeposit.core.errors import TermDepositError
    from termdeposit.core.schema import INPUT_COLUMNS
    from termdeposit.data.cohort_file import load_cohort
    from termdeposit.data.dataset import load_reference
    from termdeposit.modeling import registry
    from termdeposit.modeling.predict import score_frame

    try:
        model = registry.load_model()
        reference = load_reference()
    except TermDepositError as exc:
        print(f"Scoring benchmark skipped: {exc}")
        return
    repeats = -(-rows // len(reference))
    frame = pd.concat([reference] * repeats, ignore_index=True).iloc[:rows]
    frame = frame.loc[:, ["customer_id", *INPUT_COLUMNS]].copy()
    frame["customer_id"] = [f"K{i:07d}" for i in range(rows)]
    data = frame.to_csv(index=False, sep=";").encode()

    start = time.perf_counter()
    cohort = load_cohort(data, "bench.csv")
    read = time.perf_counter() - start
    score_frame(model, cohort.frame.iloc[:1000])  # warm-up: first call sets up the model
    start = time.perf_counter()
    scored = score_with_progress(model, cohort.frame)
    score = time.perf_counter() - start
    start = time.perf_counter()
    plain = score_frame(model, cohort.frame)
    plain_s = time.perf_counter() - start
    assert (scored["rank"].to_numpy() == plain["rank"].to_numpy()).all()
    print(f"Scoring a {rows:,}-row upload ({len(data) / 1e6:.1f} MB CSV), model {model.version}")
    print(f"  read and validate (load_cohort):           {read:6.2f} s")
    print(f"  score in chunks with progress (dashboard): {score:6.2f} s")
    print(f"  upload to scored, total:                   {read + score:6.2f} s")
    print(f"  score_frame in one piece, for comparison:  {plain_s:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--no-scoring", action="store_true", help="Skip the scoring benchmark.")
    args = parser.parse_args()
    bench_slider(args.rows, args.moves)
    if not args.no_scoring:
        bench_scoring(args.rows)


if __name__ == "__main__":
    main()
