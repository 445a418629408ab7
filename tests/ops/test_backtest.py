"""The weekly backtest on a few weeks (the full 106-week run is benchmarks/bench_backtest.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core.errors import TermDepositError
from termdeposit.ops.backtest import (
    GRID,
    QUICK,
    BacktestConfig,
    previous_product_config,
    profit_threshold,
    recent_rows,
    reference_config,
    run_backtest,
)

FEW = {"first_week": 13, "last_week": 17, "retrain_every": 2}
CELL_KEYS = {
    "cost",
    "value",
    "profit_model",
    "profit_call_all",
    "profit_call_none",
    "profit_rate_rule",
    "profit_hindsight_weekly",
    "expected_profit_model",
    "expected_low",
    "expected_high",
    "coverage",
    "mean_range_width",
    "weekly_abs_error",
    "worst_week_loss",
}


@pytest.fixture(scope="module")
def few_weeks(reference):
    """The product's procedure over weeks 13-17."""
    return run_backtest(reference, BacktestConfig(**FEW))


@pytest.fixture(scope="module")
def previous_method(reference):
    """The method before the weekly rate model (Platt on recent outcomes, break-even)."""
    return run_backtest(reference, replace(previous_product_config(), **FEW))


def test_totals_follow_the_weeks_and_calling_everyone(reference, previous_method):
    weeks = reference[reference["week"].between(13, 17)]
    result = previous_method
    assert result.calls_all == len(weeks)
    assert result.profit_call_all == 100 * weeks["y"].sum() - 5 * len(weeks)
    table = result.weeks
    assert list(table["week"]) == [13, 14, 15, 16, 17]
    assert list(table["model_trained_at_week"]) == [13, 13, 15, 15, 17]
    assert result.profit_model == table["profit_model"].sum()
    assert 0 < result.calls_model < result.calls_all
    assert (table["threshold"] == 0.05).all(), "break-even threshold = cost / value"
    assert table["cumulative_model"].iloc[-1] == result.profit_model
    d = result.as_dict()
    for key in ("profit_model", "profit_call_all", "calls_model", "subscribers_reached", "weeks"):
        assert key in d
    json.dumps(d)


def test_the_product_follows_each_weeks_rate_and_recommends(few_weeks, previous_method):
    table = few_weeks.weeks
    assert (table["expected_low"] <= table["expected_profit"] + 1e-6).all()
    assert (table["expected_profit"] <= table["expected_high"] + 1e-6).all()
    # the probabilities follow the forecast rate: the week's mean is its forecast
    assert np.allclose(table["mean_probability"], table["forecast_rate"], atol=2e-3)
    assert not table["mean_probability"].equals(previous_method.weeks["mean_probability"])
    # never expected to earn less than calling everyone or nobody, on its own estimates
    everyone = [
        100 * m * r - 5 * r for m, r in zip(table["mean_probability"], table["rows"], strict=True)
    ]
    assert (table["expected_profit"] >= np.maximum(everyone, 0) - 1).all()
    # the cell's coverage and range width are those of the weeks with calls
    cell = few_weeks.cells[0]
    called = table[table["calls"] > 0]
    inside = called["profit_model"].between(called["expected_low"], called["expected_high"])
    assert cell["coverage"] == pytest.approx(inside.mean(), abs=1e-4)
    width = (called["expected_high"] - called["expected_low"]).mean()
    assert cell["mean_range_width"] == pytest.approx(width, abs=0.01) and width > 0


def test_only_the_past_is_used(reference, few_weeks):
    """Scrambling every outcome from week 17 on changes no decision up to week 17, and the
    outcomes of later weeks change nothing at all."""
    later = reference["week"] > 17
    scrambled = reference.copy()
    scrambled.loc[later, "y"] = np.random.default_rng(0).integers(0, 2, later.sum())
    again = run_backtest(scrambled, BacktestConfig(**FEW))
    assert again.weeks.equals(few_weeks.weeks)
    own = reference["week"] == 17
    scrambled.loc[own, "y"] = np.random.default_rng(1).integers(0, 2, own.sum())
    again = run_backtest(scrambled, BacktestConfig(**FEW))
    decided = ["calls", "threshold", "mean_probability", "expected_profit", "expected_low"]
    assert again.weeks[decided].equals(few_weeks.weeks[decided])


def test_reference_method_and_its_past_profit_threshold(reference):
    result = run_backtest(reference, replace(reference_config(10, 50), **FEW))
    table = result.weeks
    assert table["threshold"].iloc[0] == 0.0, "the first scored week calls everyone"
    assert table["calls"].iloc[0] == table["rows"].iloc[0]
    assert result.ece == result.ece_raw, "no recalibration in the reference method"


def test_blend_model_is_trained_on_the_past_and_scores_differently(reference, few_weeks):
    result = run_backtest(reference, BacktestConfig(**FEW, model="blend", follow_week=False))
    assert list(result.weeks["week"]) == [13, 14, 15, 16, 17]
    assert result.calls_all == few_weeks.calls_all
    assert result.profit_call_all == few_weeks.profit_call_all
    assert not result.weeks["mean_probability"].equals(few_weeks.weeks["mean_probability"])
    with pytest.raises(TermDepositError, match="Unknown backtest model"):
        BacktestConfig(model="svm").check()


def test_helpers():
    p = np.array([0.9, 0.6, 0.3, 0.1])
    y = np.array([1, 1, 0, 0])
    assert profit_threshold(p, y, cost=10, value=50) == 0.6
    assert profit_threshold(p, np.zeros(4), cost=10, value=50) > 1
    weeks = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    assert list(recent_rows(weeks, before=3, min_rows=2)) == [3, 4, 5]
    assert list(recent_rows(weeks, before=3, min_rows=1)) == [5]
    with pytest.raises(TermDepositError, match="Unknown recalibration"):
        BacktestConfig(recalibration="magic").check()
    with pytest.raises(TermDepositError, match="Unknown threshold rule"):
        BacktestConfig(threshold_rule="magic").check()
    with pytest.raises(TermDepositError, match="is before the first"):
        BacktestConfig(first_week=20, last_week=10).check()


def test_cli_backtest_quick_grid_json_checks_its_own_invariants(reference):
    """``backtest --quick --grid --json``: the window, the keys, and the simple policies equal a
    direct computation from the data."""
    runner = CliRunner()
    result = runner.invoke(app, ["backtest", "--quick", "--grid", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"window", "cells", "ece", "weekly_rate_gap"}
    weeks = reference[reference["week"].between(QUICK["first_week"], QUICK["last_week"])]
    assert data["window"] == {
        "first_week": QUICK["first_week"],
        "last_week": QUICK["last_week"],
        "rows": len(weeks),
    }
    assert [(c["cost"], c["value"]) for c in data["cells"]] == list(GRID)
    rate_rule_weeks = 0
    for cell in data["cells"]:
        assert set(cell) == CELL_KEYS
        cost, value = cell["cost"], cell["value"]
        assert cell["profit_call_all"] == pytest.approx(
            value * weeks["y"].sum() - cost * len(weeks)
        )
        assert cell["profit_call_none"] == 0
        best_weekly = sum(
            max(0.0, float(np.cumsum(value * np.sort(g["y"].to_numpy())[::-1] - cost).max()))
            for _, g in weeks.groupby("week")
        )
        assert cell["profit_hindsight_weekly"] <= best_weekly + 1e-6
        assert cell["profit_model"] <= cell["profit_hindsight_weekly"] + 1e-6
        assert cell["expected_low"] <= cell["expected_profit_model"] <= cell["expected_high"]
        assert cell["coverage"] is None or 0.0 <= cell["coverage"] <= 1.0
        assert cell["worst_week_loss"] <= 0 and cell["weekly_abs_error"] >= 0
        rate_rule_weeks += cell["profit_rate_rule"] != 0
    assert 0 < data["ece"] < 0.2 and 0 < data["weekly_rate_gap"] < 0.2
    assert rate_rule_weeks > 0


def test_cli_backtest_one_cell(reference):
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["backtest", "--first-week", "40", "--last-week", "43", "--cost", "10", "--value", "50"]
        + ["--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["window"]["first_week"] == 40 and data["window"]["last_week"] == 43
    assert [(c["cost"], c["value"]) for c in data["cells"]] == [(10.0, 50.0)]
    weeks = reference[reference["week"].between(40, 43)]
    assert data["cells"][0]["profit_call_all"] == 50 * weeks["y"].sum() - 10 * len(weeks)
    text = runner.invoke(app, ["backtest", "--first-week", "40", "--last-week", "41"])
    assert text.exit_code == 0 and "rate rule" in text.stdout
