"""Benchmark: the full weekly backtest (weeks 13-118) at both cost settings, with an ablation.

Replays the reference data week by week (see :mod:`termdeposit.ops.backtest`) at cost 5 / value
100 and at cost 10 / value 50, for the data README's reference method, the product's method,
and the steps between them, so each step's contribution shows:

- ``reference``: plain logistic regression, all five macro inputs, the threshold that earned
  most over the previous 8 weeks, no recalibration (the figures quoted in the issue);
- ``+ break-even threshold``: call when probability >= cost / value instead;
- ``+ employment only``: the macro inputs reduced to ``nr.employed``;
- ``+ Platt on recent outcomes``: the product's method (recalibration on the latest weeks
  holding >= 1,000 outcomes);
- variants of the product's method: intercept or isotonic recalibration, recency weighting
  (half-life 26 weeks), weekly retraining and the regression averaged with a random forest
  (a ``blend`` without XGBoost, fixed forest settings; both skipped with ``--quick``).

For each it prints profit, calls, subscribers reached and calibration error, the ratio to
calling everyone and to the reference figure, and the hindsight bound: what the best weekly
threshold chosen after seeing the outcomes would have earned with the same probabilities.
Last, the targets: >= 5% above calling everyone at 5 / 100; >= 2x the reference at 10 / 50.

Run: ``python benchmarks/bench_backtest.py [--quick]`` (about 3 minutes on 2 idle cores;
``termdeposit backtest`` runs one configuration).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from termdeposit.core.schema import INPUT_COLUMNS
from termdeposit.data.dataset import load_reference
from termdeposit.modeling.train import build_pipeline
from termdeposit.ops.backtest import BacktestConfig, reference_config, run_backtest

#: Figures of the data README's reference run (weeks 13-118).
REFERENCE_FIGURES = {(5.0, 100.0): 257_870.0, (10.0, 50.0): 19_890.0}
CALL_ALL_FIGURES = {(5.0, 100.0): 268_555.0, (10.0, 50.0): -44_740.0}
SETTINGS = ((5.0, 100.0), (10.0, 50.0))


def variants(quick: bool) -> dict[str, BacktestConfig]:
    """The methods compared, from the reference to the product's and its variants."""
    product = BacktestConfig()
    reference = reference_config()
    chosen = {
        "reference method": reference,
        "+ break-even threshold": replace(reference, threshold_rule="break-even"),
        "+ employment only": replace(reference, threshold_rule="break-even", macro="nr.employed"),
        "+ Platt on recent outcomes (product)": product,
        "  intercept recalibration": replace(product, recalibration="intercept"),
        "  isotonic recalibration": replace(product, recalibration="isotonic"),
        "  recency weighting (26 weeks)": replace(product, half_life_weeks=26.0),
        "  past-profit threshold": replace(product, threshold_rule="past-profit"),
    }
    if not quick:
        chosen["  retrained every week"] = replace(product, retrain_every=1)
        chosen["  regression + random forest average"] = replace(product, model="blend")
    return chosen


def hindsight_with_future_model(frame: pd.DataFrame, cost: float, value: float) -> float:
    """Best weekly thresholds on a model fitted on every week, future included (unreachable)."""
    with threadpool_limits(1):
        model = build_pipeline("logreg").fit(frame.loc[:, list(INPUT_COLUMNS)], frame["y"])
        scores = model.predict_proba(frame.loc[:, list(INPUT_COLUMNS)])[:, 1]
    total = 0.0
    for week in range(13, int(frame["week"].max()) + 1):
        mask = (frame["week"] == week).to_numpy()
        order = np.argsort(-scores[mask], kind="stable")
        gains = np.cumsum(value * frame["y"].to_numpy()[mask][order] - cost)
        total += max(0.0, float(gains.max()))
    return total


def main() -> None:
    """Run every variant at both settings and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip weekly retraining")
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    frame = load_reference()
    cache: dict[tuple, np.ndarray] = {}
    started = time.perf_counter()
    for cost, value in SETTINGS:
        print(f"\n== cost {cost:g} / value {value:g}, weeks 13-118 ==")
        rows = []
        for name, base in variants(args.quick).items():
            config = replace(base, call_cost=cost, subscription_value=value)
            result = run_backtest(frame, config, cache=cache)
            d = result.as_dict()
            rows.append(
                {
                    "method": name,
                    "profit": d["profit_model"],
                    "vs call-all": d["uplift_pct_of_call_all"],
                    "x reference": d["profit_model"] / REFERENCE_FIGURES[(cost, value)],
                    "calls": d["calls_model"],
                    "reached": d["subscribers_reached_share"],
                    "ECE": d["ece"],
                    "hindsight": d["profit_hindsight"],
                    "seconds": d["seconds"],
                }
            )
        table = pd.DataFrame(rows)
        call_all = result.profit_call_all
        assert call_all == CALL_ALL_FIGURES[(cost, value)], call_all
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(
                table.to_string(
                    index=False,
                    formatters={
                        "profit": "{:,.0f}".format,
                        "vs call-all": "{:+.1f}%".format,
                        "x reference": "{:.2f}".format,
                        "reached": "{:.1%}".format,
                        "ECE": "{:.3f}".format,
                        "hindsight": "{:,.0f}".format,
                    },
                )
            )
        product = table[table["method"].str.contains("product")].iloc[0]
        print(
            f"calling everyone: {call_all:,.0f}; reference figure "
            f"{REFERENCE_FIGURES[(cost, value)]:,.0f}; best weekly thresholds on a model fitted "
            f"on every week (future included, unreachable): "
            f"{hindsight_with_future_model(frame, cost, value):,.0f}"
        )
        if (cost, value) == (5.0, 100.0):
            target = 1.05 * call_all
            verdict = "MET" if product["profit"] >= target else "NOT MET"
            print(
                f"target >= 5% above calling everyone ({target:,.0f}): {verdict} "
                f"({product['profit']:,.0f})"
            )
        else:
            target = 2 * REFERENCE_FIGURES[(cost, value)]
            verdict = "MET" if product["profit"] >= target else "NOT MET"
            print(
                f"target >= 2x the reference ({target:,.0f}): {verdict} "
                f"({product['profit']:,.0f}, {product['x reference']:.2f}x)"
            )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
