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
    BacktestConfig,
    profit_threshold,
    recent_rows,
    reference_config,
    run_backtest,
)

FEW = {"first_week": 13, "last_week": 17, "retrain_every": 2}


@pytest.fixture(scope="module")
def few_weeks(reference):
    return run_backtest(reference, BacktestConfig(**FEW))


def test_totals_follow_the_weeks_and_calling_everyone(reference, few_weeks):
    weeks = reference[reference["week"].between(13, 17)]
    assert few_weeks.calls_all == len(weeks)
    assert few_weeks.profit_call_all == 100 * weeks["y"].sum() - 5 * len(weeks)
    table = few_weeks.weeks
    assert list(table["week"]) == [13, 14, 15, 16, 17]
    assert list(table["model_trained_at_week"]) == [13, 13, 15, 15, 17]
    assert few_weeks.profit_model == table["profit_model"].sum()
    called = table["calls"].sum()
    assert few_weeks.calls_model == called and few_weeks.calls_model < few_weeks.calls_all
    assert (table["threshold"] == 0.05).all(), "break-even threshold = cost / value"
    assert table["cumulative_model"].iloc[-1] == few_weeks.profit_model
    d = few_weeks.as_dict()
    for key in (
        "profit_model",
        "profit_call_all",
        "calls_model",
        "calls_all",
        "subscribers_reached",
        "weeks",
    ):
        assert key in d
    json.dumps(d)


def test_only_the_past_is_used(reference, few_weeks):
    """Scrambling every outcome after the last scored week changes nothing."""
    future = reference["week"] > 17
    scrambled = reference.copy()
    scrambled.loc[future, "y"] = np.random.default_rng(0).integers(0, 2, future.sum())
    again = run_backtest(scrambled, BacktestConfig(**FEW))
    assert again.weeks.equals(few_weeks.weeks)


def test_reference_method_and_its_past_profit_threshold(reference):
    result = run_backtest(reference, replace(reference_config(10, 50), **FEW))
    table = result.weeks
    assert table["threshold"].iloc[0] == 0.0, "the first scored week calls everyone"
    assert table["calls"].iloc[0] == table["rows"].iloc[0]
    assert result.ece == result.ece_raw, "no recalibration in the reference method"


def test_blend_model_is_trained_on_the_past_and_scores_differently(reference, few_weeks):
    result = run_backtest(reference, BacktestConfig(**FEW, model="blend"))
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
    with pytest.raises(TermDepositError, match="is before the first"):
        BacktestConfig(first_week=20, last_week=10).check()


def test_cli_backtest_json():
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "backtest",
            "--first-week",
            "40",
            "--last-week",
            "43",
            "--cost",
            "10",
            "--value",
            "50",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["first_week"] == 40 and data["last_week"] == 43 and len(data["weeks"]) == 4
    assert data["config"]["call_cost"] == 10
