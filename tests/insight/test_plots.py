"""Charts: the data drawn is the data given, with titles, axis labels, money and percent axes."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from sklearn.metrics import roc_auc_score

from termdeposit.core.config import BusinessSettings
from termdeposit.decisions import economics as ec
from termdeposit.insight import plots

MONEY = BusinessSettings(call_cost=5.0, subscription_value=100.0)


@pytest.fixture(scope="module")
def week():
    rng = np.random.default_rng(7)
    p = rng.beta(1.2, 10, 3000)
    y = (rng.random(3000) < p).astype(float)
    return p, y


@pytest.fixture(scope="module")
def table(week):
    p, y = week
    return ec.curve_table(ec.build_curve(p, y), MONEY)


MARKS = [
    plots.Mark("break-even", 0.05, "Break-even 5.0%"),
    plots.Mark("optimal", 0.05, "Profit-optimal 5.0%"),
    plots.Mark("capacity", 0.12, "Fits capacity 12.0%"),
    plots.Mark("current", 0.2, "Your threshold 20.0%"),
]


def _trace(fig: go.Figure, name: str) -> go.Scatter:
    return next(t for t in fig.data if t.name == name)


def _assert_readable(fig: go.Figure) -> None:
    assert fig.layout.title.text
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_money_curves_draw_the_table_with_euro_axis_and_every_mark(table):
    fig = plots.money_curves(table, MARKS)
    _assert_readable(fig)
    called = table[table["calls"] > 0]
    profit = _trace(fig, "Expected profit")
    assert np.allclose(profit.x, called["threshold"]) and np.allclose(
        profit.y, called["expected_profit"]
    )
    assert np.allclose(_trace(fig, "Call cost").y, called["cost"])
    assert np.allclose(_trace(fig, "Expected revenue").y, called["expected_revenue"])
    assert np.allclose(
        _trace(fig, "Realised profit (known outcomes)").y, called["realised_profit"]
    )
    assert fig.layout.yaxis.tickprefix == "€" and fig.layout.xaxis.tickformat == ".0%"
    assert sorted(s.x0 for s in fig.layout.shapes) == sorted(m.value for m in MARKS)
    legend = {t.name for t in fig.data}
    assert {m.label for m in MARKS} <= legend


def test_calls_curve_and_lift(table):
    calls = plots.calls_curve(table, MARKS[-1:])
    _assert_readable(calls)
    assert np.allclose(_trace(calls, "Calls").y, table.loc[table["calls"] > 0, "calls"])
    lift = plots.lift_chart(table)
    _assert_readable(lift)
    assert np.allclose(lift.data[0].y, table.loc[table["calls"] > 0, "lift"])


def test_gains_chart_has_model_realised_and_random_lines(table):
    fig = plots.gains_chart(table, [plots.Mark("current", 0.3, "Your list 30%")])
    _assert_readable(fig)
    assert np.allclose(_trace(fig, "Model ranking (expected)").y, table["gain"])
    assert np.allclose(_trace(fig, "Model ranking (realised)").y, table["realised_gain"])
    assert list(_trace(fig, "Calling at random").y) == [0, 1]
    assert fig.layout.shapes[0].x0 == 0.3


def test_histogram_counts_every_customer(week):
    p, _ = week
    fig = plots.probability_histogram(p, MARKS[:1])
    _assert_readable(fig)
    assert sum(fig.data[0].y) == len(p)  # every customer in one band
    assert len(fig.data[0].x) <= 52  # bands, not one value per customer
    assert fig.layout.shapes[0].x0 == 0.05


def test_reliability_plot_draws_the_bins(week):
    p, y = week
    bins = ec.calibration_table(y, p)
    fig = plots.reliability_plot(bins, "Calibration of the week")
    _assert_readable(fig)
    model = _trace(fig, "Model (marker size = customers)")
    assert np.allclose(model.x, bins["mean_probability"]) and np.allclose(
        model.y, bins["observed_rate"]
    )


def test_roc_and_precision_recall(week):
    p, y = week
    roc = plots.roc_plot(y, p)
    _assert_readable(roc)
    assert f"AUC {roc_auc_score(y, p):.3f}" in roc.data[0].name
    pr = plots.precision_recall_plot(y, p)
    _assert_readable(pr)
    assert pr.data[1].y[0] == pytest.approx(y.mean())
