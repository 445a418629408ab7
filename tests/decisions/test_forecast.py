"""Money ranges under the week-level error: they hold what they promise on simulated weeks,
follow their recalibrated percentiles, and a small cohort's week is less certain."""

from __future__ import annotations

import numpy as np
import pytest

from termdeposit.core.config import BusinessSettings
from termdeposit.decisions import economics as ec
from termdeposit.decisions.forecast import (
    FALLBACK_SIGMA,
    ProfitForecaster,
    card_error,
    profit_range,
)
from termdeposit.modeling import base_rate
from termdeposit.modeling.base_rate import BaseRateModel, WeekError

SETTINGS = BusinessSettings(call_cost=5, subscription_value=100)


def simulated_profits(p: np.ndarray, sigma: float, calls: int, draws: int, seed: int):
    """Profits of calling the ``calls`` best of a week whose log-odds move together by a
    normal error of sd ``sigma`` (the issued probabilities are the mean over that error)."""
    rng = np.random.default_rng(seed)
    z = np.interp(
        p, base_rate.posterior_mean(np.linspace(-20, 20, 4001), sigma), np.linspace(-20, 20, 4001)
    )
    best = np.sort(z)[::-1][:calls]
    shifts = sigma * rng.normal(size=(draws, 1))
    subscribed = rng.random((draws, calls)) < base_rate.sigmoid(best + shifts)
    return 100 * subscribed.sum(axis=1) - 5 * calls


@pytest.fixture(scope="module")
def week() -> np.ndarray:
    z = np.random.default_rng(0).normal(-2.0, 0.8, 1_500)
    return base_rate.posterior_mean(z, 0.5)


def test_the_range_holds_the_week_and_chance_as_promised(week):
    """A week of 1,500 with a week-level error of 0.5: 10% of simulated weeks fall below the
    range and 10% above (the week's error dominates; chance among the called adds to it)."""
    forecaster = ProfitForecaster(ec.build_curve(week), sigma=0.5)
    money = forecaster.profit(1_000, SETTINGS)
    profits = simulated_profits(week, 0.5, 1_000, 6_000, seed=1)
    assert np.mean(profits < money.low) == pytest.approx(0.1, abs=0.02)
    assert np.mean(profits > money.high) == pytest.approx(0.1, abs=0.02)
    assert money.low < money.expected < money.high
    called = np.sort(week)[::-1][:1_000]
    again = profit_range(called, 0.5, SETTINGS)
    assert (again.expected, again.low, again.high) == pytest.approx(
        (money.expected, money.low, money.high)
    )


def test_recalibrated_percentiles_move_the_ends(week):
    """Percentiles (0.2, 0.7) instead of (0.1, 0.9): the range's ends are those percentiles
    of the same simulated weeks, so the range is narrower and shifted down."""
    curve = ec.build_curve(week)
    nominal = ProfitForecaster(curve, 0.5).profit(1_000, SETTINGS)
    error = WeekError(0.5, (0.2, 0.7))
    moved = ProfitForecaster.for_error(curve, error).profit(1_000, SETTINGS)
    profits = simulated_profits(week, 0.5, 1_000, 6_000, seed=2)
    assert np.mean(profits < moved.low) == pytest.approx(0.2, abs=0.02)
    assert np.mean(profits > moved.high) == pytest.approx(0.3, abs=0.02)
    assert nominal.low < moved.low and moved.high < nominal.high
    assert moved.expected == nominal.expected, "the expected profit does not depend on them"
    called = np.sort(week)[::-1][:1_000]
    again = profit_range(called, 0.5, SETTINGS, error.levels)
    assert (again.low, again.high) == pytest.approx((moved.low, moved.high))


def test_a_small_cohort_gets_the_wider_error_of_its_card():
    """The error comes from the card's rate model for the cohort's size; a card saved before
    the rate model gets the fallback with the nominal percentiles."""
    model = BaseRateModel(
        coefficients=(0.0,) * 8,
        sigma=0.4,
        size_range=(0.0, 9.0),
        weeks=50,
        rows=10_000,
        first_week="1",
        last_week="50",
        sigma_small=1.0,
        range_levels=(0.12, 0.86),
    )
    card = {"base_rate": model.as_card()}
    small, large = card_error(card, 20), card_error(card, 2_000)
    assert small.sigma == pytest.approx(np.sqrt(0.4**2 + 1.0**2 * 100 / 20))
    assert large.sigma == pytest.approx(np.sqrt(0.4**2 + 1.0**2 * 100 / 2_000))
    assert small.levels == large.levels == (0.12, 0.86)
    assert card_error({}, 20) == WeekError(FALLBACK_SIGMA, base_rate.NOMINAL_LEVELS)
