"""Money at every threshold, checked on cases small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from termdeposit.core.config import BusinessSettings
from termdeposit.decisions import economics as ec

# Five customers; in rank order (stable for the tie at 0.5): ids 1, 3, 2, 0, 4.
P = np.array([0.1, 0.5, 0.2, 0.5, 0.05])
Y = np.array([0, 1, 0, 0, 1])
MONEY = BusinessSettings(call_cost=5.0, subscription_value=100.0)


@pytest.fixture()
def curve() -> ec.ThresholdCurve:
    return ec.build_curve(P, Y)


def test_curve_is_in_rank_order_with_cumulative_sums(curve):
    assert curve.probabilities.tolist() == [0.5, 0.5, 0.2, 0.1, 0.05]
    assert np.allclose(curve.expected, [0, 0.5, 1.0, 1.2, 1.3, 1.35])
    assert curve.realised.tolist() == [0, 1, 1, 1, 1, 2]
    assert curve.known.tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("threshold", "calls"), [(0.6, 0), (0.5, 2), (0.3, 2), (0.2, 3), (0.051, 4), (0.05, 5), (0, 5)]
)
def test_calls_at_counts_probabilities_at_or_above(curve, threshold, calls):
    assert ec.calls_at(curve, threshold) == calls


def test_summary_at_a_threshold_by_hand(curve):
    s = ec.summary_at(curve, MONEY, 0.2)
    assert s.calls == 3 and s.customers == 5
    assert s.expected_subscriptions == pytest.approx(1.2)
    assert s.cost == 15
    assert s.expected_revenue == pytest.approx(120)
    assert s.expected_profit == pytest.approx(105)
    assert s.profit_calling_everyone == pytest.approx(135 - 25)
    assert s.uplift_vs_everyone == pytest.approx(-5)
    # At random: 3 calls x (mean probability 0.27 x 100 - 5) = 66.
    assert s.profit_calling_at_random == pytest.approx(66)
    assert s.uplift_vs_random == pytest.approx(39)
    assert s.share_called == pytest.approx(0.6)
    # Realised: one subscriber among the three called.
    assert s.realised_subscriptions == 1 and s.realised_revenue == 100
    assert s.realised_profit == pytest.approx(85)
    assert s.realised_profit_calling_everyone == pytest.approx(175)
    assert s.realised_uplift_vs_everyone == pytest.approx(-90)
    # At random with the week's real rate 2/5: 3 x (40 - 5) = 105.
    assert s.realised_profit_calling_at_random == pytest.approx(105)
    assert s.realised_uplift_vs_random == pytest.approx(-20)


def test_capacity_cuts_the_selection(curve):
    assert ec.selected_calls(curve, 0.05, capacity=3) == 3
    assert ec.selected_calls(curve, 0.5, capacity=3) == 2
    capped = ec.summary_at(curve, MONEY, 0.05, capacity=3)
    assert capped.calls == 3 and capped.expected_profit == pytest.approx(105)


def test_without_outcomes_realised_figures_are_none():
    s = ec.summary_at(ec.build_curve(P), MONEY, 0.2)
    assert s.realised_profit is None and s.realised_uplift_vs_random is None


def test_unknown_outcomes_are_left_out_of_realised_figures():
    curve = ec.build_curve(P, np.array([np.nan, 1, 0, np.nan, 1]))
    s = ec.summary_at(curve, MONEY, 0.2)
    # Called: ids 1 (yes), 3 (unknown), 2 (no): two known outcomes among the three.
    assert s.outcomes_known_called == 2 and s.outcomes_known == 3
    assert s.realised_subscriptions == 1
    assert s.realised_profit == pytest.approx(100 - 2 * 5)


def test_cut_points_skip_inside_ties(curve):
    assert ec.cut_points(curve).tolist() == [0, 2, 3, 4, 5]


def test_optimal_threshold_by_hand(curve):
    # Profit by calls: 0 -> 0, 2 -> 90, 3 -> 105, 4 -> 110, 5 -> 110 (the last customer sits at
    # break-even and adds nothing): the fewest calls among equal optima is 4.
    assert ec.optimal_calls(curve, MONEY) == 4
    threshold = ec.optimal_threshold(curve, MONEY)
    assert threshold == 0.1 and ec.calls_at(curve, threshold) == 4


def test_hindsight_threshold_uses_real_outcomes(curve):
    # Realised profit by calls: 0, 90, 85, 80, 175: calling everyone was best.
    assert ec.calls_at(curve, ec.hindsight_threshold(curve, MONEY)) == 5


def test_capacity_threshold_never_exceeds_capacity(curve):
    assert ec.capacity_threshold(curve, None) is None
    assert ec.capacity_calls(curve, 3) == 3 and ec.capacity_threshold(curve, 3) == 0.2
    # One call cannot be reached by a threshold (two customers tie at 0.5): none is selected.
    assert ec.capacity_calls(curve, 1) == 0
    assert ec.calls_at(curve, ec.capacity_threshold(curve, 1)) == 0
    assert ec.calls_at(curve, ec.capacity_threshold(curve, 100)) == 5


def test_curve_table_by_hand(curve):
    table = ec.curve_table(curve, MONEY)
    assert table["calls"].tolist() == [0, 2, 3, 4, 5]
    assert table["threshold"].tolist() == [1.0, 0.5, 0.2, 0.1, 0.05]
    assert np.allclose(table["expected_profit"], [0, 90, 105, 110, 110])
    assert np.allclose(table["cost"], [0, 10, 15, 20, 25])
    assert np.allclose(table["gain"], np.array([0, 1.0, 1.2, 1.3, 1.35]) / 1.35)
    assert np.allclose(table["realised_profit"], [0, 90, 85, 80, 175])
    assert np.allclose(table["realised_gain"], [0, 0.5, 0.5, 0.5, 1.0])
    assert table["lift"].iloc[1] == pytest.approx((1.0 / 1.35) / 0.4)


def test_curve_table_is_thinned_but_keeps_the_optimum():
    rng = np.random.default_rng(1)
    curve = ec.build_curve(rng.beta(1, 8, 20_000))
    table = ec.curve_table(curve, MONEY, max_points=200)
    assert len(table) <= 201
    assert ec.optimal_calls(curve, MONEY) in set(table["calls"])
    assert table["calls"].iloc[0] == 0 and table["calls"].iloc[-1] == curve.size


def test_calibration_table_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.8])
    quantile = ec.calibration_table(y, p, bins=2)
    assert quantile["customers"].tolist() == [2, 2]
    assert np.allclose(quantile["mean_probability"], [0.15, 0.7])
    assert quantile["observed_rate"].tolist() == [0.0, 1.0]
    uniform = ec.calibration_table(y, p, bins=10, strategy="uniform")
    assert np.allclose(uniform["low"], [0.1, 0.2, 0.6, 0.8])
    assert ec.calibration_table(np.array([np.nan]), np.array([0.3])).empty


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (ec.format_money(1234.4), "€1,234"),
        (ec.format_money(-1234.6), "-€1,235"),
        (ec.format_money(5, 2), "€5.00"),
        (ec.format_signed_money(1559.2), "+€1,559"),
        (ec.format_signed_money(-6528), "-€6,528"),
        (ec.describe_difference(-6528.2), "€6,528 less"),
        (ec.describe_difference(12), "€12 more"),
        (ec.describe_difference(0.2), "the same"),
        (ec.format_percent(0.1234), "12.3%"),
        (ec.format_percent(0.05, 2), "5.00%"),
        (ec.format_count(12345), "12,345"),
        (ec.format_count(228.44, 1), "228.4"),
        (ec.format_money(None), "–"),
    ],
)
def test_formatting(value, text):
    assert value == text


def _naive_profit(p: np.ndarray, threshold: float, money: BusinessSettings) -> float:
    called = p >= threshold
    return money.subscription_value * p[called].sum() - money.call_cost * called.sum()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1, allow_nan=False).map(lambda x: round(x, 3)), min_size=1, max_size=60),
    st.floats(0.5, 20),
)
def test_cuts_thresholds_and_optimum_agree_with_a_naive_recompute(values, cost):
    p = np.array(values)
    money = BusinessSettings(call_cost=cost, subscription_value=100.0)
    curve = ec.build_curve(p)
    for calls in ec.cut_points(curve):
        assert ec.calls_at(curve, ec.threshold_for_calls(curve, calls)) == calls
    best = ec.optimal_threshold(curve, money)
    candidates = np.r_[np.unique(p), 1.0]
    naive_best = max(_naive_profit(p, t, money) for t in candidates)
    assert _naive_profit(p, best, money) == pytest.approx(naive_best)
    for t in candidates:
        assert ec.summary_at(curve, money, t).expected_profit == pytest.approx(
            _naive_profit(p, t, money)
        )
