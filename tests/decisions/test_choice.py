"""Choosing whom to call by threshold, number of calls or budget; following the money; the
figures managers compare (shortfall against simple policies, capped curves, deciles,
confusion matrix, scenarios). Checked against brute force on small cohorts."""

from __future__ import annotations

import numpy as np
import pytest

from termdeposit.core.config import BusinessSettings
from termdeposit.decisions import economics as ec
from termdeposit.decisions.forecast import ProfitForecaster

P = np.array([0.9, 0.5, 0.5, 0.3, 0.2, 0.1, 0.04, 0.02])
Y = np.array([1, 0, 1, 0, 1, 0, 0, 0])


@pytest.fixture()
def curve() -> ec.ThresholdCurve:
    return ec.build_curve(P, Y)


def brute_profit(calls: int, settings: BusinessSettings) -> float:
    best = np.sort(P)[::-1][:calls]
    return float(settings.subscription_value * best.sum() - settings.call_cost * calls)


@pytest.mark.parametrize("mode", ec.CHOICE_MODES)
def test_the_three_controls_agree(curve, mode):
    settings = BusinessSettings(call_cost=10, subscription_value=100)
    value = {"threshold": 0.25, "calls": 4, "budget": 45.0}[mode]
    choice = ec.resolve_choice(curve, settings, mode, value)
    # 0.25 selects 0.9, 0.5, 0.5, 0.3; 4 calls is the same; €45 buys 4 calls at €10
    assert choice.calls == 4
    assert choice.budget == 40.0
    assert ec.calls_at(curve, choice.threshold) == 4
    again = ec.resolve_choice(curve, settings, "threshold", choice.threshold)
    assert again.calls == choice.calls


def test_calls_and_budget_never_split_tied_customers(curve):
    settings = BusinessSettings(call_cost=10, subscription_value=100)
    # 2 calls would split the two 0.5 customers: the threshold keeps the one above them
    assert ec.resolve_choice(curve, settings, "calls", 2).calls == 1
    assert ec.resolve_choice(curve, settings, "budget", 25.0).calls == 1
    assert ec.resolve_choice(curve, settings, "budget", 30.0).calls == 3


def test_budget_with_free_calls_calls_everyone(curve):
    settings = BusinessSettings(call_cost=0, subscription_value=100)
    assert ec.resolve_choice(curve, settings, "budget", 0).calls == len(P)


def test_capacity_cuts_every_mode(curve):
    settings = BusinessSettings(call_cost=1, subscription_value=100)
    choice = ec.resolve_choice(curve, settings, "threshold", 0.0, capacity=3)
    assert choice.calls == 3 and choice.capped and choice.budget == 3.0
    with pytest.raises(ValueError, match="Unknown choice mode"):
        ec.resolve_choice(curve, settings, "mood", 1)


@pytest.mark.parametrize("capacity", [None, 1, 3, 5, 100])
@pytest.mark.parametrize("cost,value", [(5, 100), (10, 50), (20, 100), (1, 1000)])
def test_recommendation_is_the_best_within_capacity(curve, capacity, cost, value):
    settings = BusinessSettings(call_cost=cost, subscription_value=value)
    calls = ec.recommended_calls(curve, settings, capacity)
    allowed = [k for k in ec.cut_points(curve) if capacity is None or k <= capacity]
    best = max(brute_profit(k, settings) for k in allowed)
    assert brute_profit(calls, settings) == pytest.approx(best)
    threshold = ec.recommended_threshold(curve, settings, capacity)
    assert ec.calls_at(curve, threshold) == calls


def test_recommendation_moves_with_the_money(curve):
    cheap = ec.recommended_threshold(curve, BusinessSettings(5, 100))
    dear = ec.recommended_threshold(curve, BusinessSettings(10, 40))
    assert ec.calls_at(curve, cheap) == 6  # every p above 5% is worth a call
    assert ec.calls_at(curve, dear) == 4  # only p above 25%


def test_shortfall_names_the_better_simple_policy(curve):
    dear = BusinessSettings(call_cost=10, subscription_value=50)
    low = ec.summary_at(curve, dear, 0.0)  # call all 8: 50 * 2.56 - 80 = 48
    assert ec.shortfall(low) is None or ec.shortfall(low).amount > 0
    losing = ec.summary_at(curve, BusinessSettings(call_cost=40, subscription_value=50), 0.0)
    gap = ec.shortfall(losing)
    assert gap is not None and gap.policy == "nobody"
    assert gap.amount == pytest.approx(-losing.expected_profit)
    assert "less than calling nobody (€0)" in gap.sentence()
    settings = BusinessSettings(call_cost=1, subscription_value=100)
    one = ec.summary_at(curve, settings, 0.8)  # 1 call, while calling all earns more
    gap = ec.shortfall(one)
    assert gap.policy == "everyone"
    assert gap.amount == pytest.approx(brute_profit(8, settings) - brute_profit(1, settings))
    best = ec.summary_at(curve, settings, ec.recommended_threshold(curve, settings))
    assert ec.shortfall(best) is None


def test_describe_against_a_losing_baseline():
    assert ec.describe_against(104, 100, "calling everyone") == "4.0% more than calling everyone"
    assert ec.describe_against(90, 100, "calling everyone") == "10.0% less than calling everyone"
    text = ec.describe_against(19_890, -44_740, "calling everyone")
    assert text == "€19,890 where calling everyone loses €44,740"
    assert "%" not in text


def test_capped_curve_is_flat_below_the_capacity(curve):
    settings = BusinessSettings(call_cost=5, subscription_value=100)
    table = ec.capped_curve_table(curve, settings, capacity=3)
    assert table["calls"].max() == 3
    assert table.loc[table["capped"], "expected_profit"].nunique() == 1
    assert table.loc[table["capped"], "expected_profit"].iloc[0] == pytest.approx(
        brute_profit(3, settings)
    )
    uncapped = ec.capped_curve_table(curve, settings, None)
    assert uncapped["calls"].max() == len(P) and not uncapped["capped"].any()


def test_decile_table_adds_up(curve):
    table = ec.decile_table(curve, groups=4)
    assert table["customers"].tolist() == [2, 2, 2, 2]
    assert table["subscribers"].sum() == Y.sum()
    assert table["cumulative_gain"].iloc[-1] == pytest.approx(1.0)
    assert table["cumulative_precision"].iloc[0] == pytest.approx(0.5)  # 0.9 yes, 0.5 no
    assert table["cumulative_expected_precision"].iloc[-1] == pytest.approx(P.mean())
    assert table["highest"].iloc[0] == 0.9 and table["lowest"].iloc[-1] == 0.02


def test_confusion_matrix_at_a_cut(curve):
    m = ec.confusion_at(curve, 4)  # 0.9(1) 0.5(0) 0.5(1) 0.3(0)
    assert (m.called_subscribed, m.called_not) == (2, 2)
    assert (m.not_called_subscribed, m.not_called_not) == (1, 3)
    assert m.precision == 0.5 and m.recall == pytest.approx(2 / 3)
    assert m.table().to_numpy().sum() == len(P)
    assert ec.confusion_at(ec.build_curve(P), 4) is None


def test_scenarios_compare_on_the_same_cohort(curve):
    a = ec.Scenario("Cheap calls", 5, 100, None, "recommended", 0)
    b = ec.Scenario("Dear calls", 10, 50, 3, "recommended", 0)
    forecaster = ProfitForecaster(curve, sigma=0.3)

    def ranges(calls, settings):
        money = forecaster.profit(calls, settings)
        return money.low, money.high

    table = ec.compare_scenarios(curve, [a, b], ranges).set_index("scenario")
    cheap = forecaster.profit(6, a.settings)
    assert (table.loc["Cheap calls", "profit_low"], table.loc["Cheap calls", "profit_high"]) == (
        cheap.low,
        cheap.high,
    )
    assert table.loc["Cheap calls", "calls"] == 6
    assert table.loc["Dear calls", "calls"] == 3  # the capacity, before the 0.3 customer
    assert table.loc["Cheap calls", "overlap"] == table.loc["Dear calls", "overlap"] == 3
    assert table.loc["Dear calls", "overlap_share"] == 1.0
    assert table.loc["Cheap calls", "overlap_share"] == 0.5
    assert table.loc["Cheap calls", "expected_profit"] == pytest.approx(
        brute_profit(6, a.settings)
    )
    assert "capacity 3" in b.describe() and "most profitable" in b.describe()


def test_profit_range_matches_simulated_calls():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.4, 2_000)
    curve = ec.build_curve(p)
    settings = BusinessSettings(call_cost=5, subscription_value=100)
    forecaster = ProfitForecaster(curve, sigma=0.0)  # the week's rate known: chance alone
    low, high = forecaster.profit(800, settings).low, forecaster.profit(800, settings).high
    best = np.sort(p)[::-1][:800]
    draws = rng.random((4_000, 800)) < best
    profits = 100 * draws.sum(axis=1) - 5 * 800
    inside = np.mean((profits >= low) & (profits <= high))
    assert 0.77 < inside < 0.83
    nobody = forecaster.profit(0, settings)
    assert (nobody.low, nobody.high) == (0.0, 0.0)


def test_shortfall_under_a_capacity_compares_with_nobody_only(curve):
    settings = BusinessSettings(call_cost=1, subscription_value=100)
    one = ec.summary_at(curve, settings, 0.0, capacity=1)
    assert ec.shortfall(one, everyone_possible=False) is None
    losing = ec.summary_at(curve, BusinessSettings(call_cost=95, subscription_value=100), 0.0, 3)
    assert ec.shortfall(losing, everyone_possible=False).policy == "nobody"
