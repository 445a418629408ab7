"""The weekly rate model: it recovers a known rate and error on synthetic shifted weeks, and every
scoring path makes a cohort's probabilities follow its week."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from termdeposit.core.errors import TermDepositError
from termdeposit.modeling import base_rate
from termdeposit.modeling.base_rate import BaseRateModel, RateSettings, composition_sums


def synthetic_weeks(seed: int, weeks: int = 90, sigma: float = 0.5) -> tuple[pd.DataFrame, dict]:
    """Weeks whose rate follows a known log-odds model of size and make-up, plus a week-level
    normal error of sd ``sigma``; outcomes are binomial given the week's rate."""
    rng = np.random.default_rng(seed)
    truth = {"intercept": -1.0, "cohort_size": -0.6, "previous_success": 3.0}
    rows = []
    for week in range(weeks):
        n = int(np.exp(rng.uniform(np.log(20), np.log(3000))))
        success = rng.uniform(0.0, 0.3)
        z = truth["intercept"] + truth["cohort_size"] * (np.log(n) - 6) + 3.0 * success
        rate = 1 / (1 + np.exp(-(z + sigma * rng.normal())))
        rows.append(
            {
                "week": week,
                "rows": n,
                "subscribers": int(rng.binomial(n, rate)),
                "cohort_size": np.log(n),
                "previously_contacted": success,
                "previous_success": success,
                "mobile": 0.8,
                "student_or_retired": 0.05,
                "age": 0.0,
                "calls_this_campaign": 0.7,
            }
        )
    return pd.DataFrame(rows), truth


def true_rate(truth: dict, n: int, success: float) -> float:
    z = truth["intercept"] + truth["cohort_size"] * (np.log(n) - 6) + 3.0 * success
    return float(1 / (1 + np.exp(-z)))


def sums_of(n: int, success: float) -> np.ndarray:
    """Composition sums of a week of n customers with the synthetic make-up."""
    return np.array([n, success * n, success * n, 0.8 * n, 0.05 * n, 0.0, 0.7 * n])


def test_recovers_a_known_rate_and_error_on_shifted_weeks():
    table, truth = synthetic_weeks(seed=1, weeks=150)
    model = BaseRateModel.fit(table, RateSettings(half_life_weeks=1000.0, cap=2000.0, ridge=0.01))
    for n, success in ((30, 0.25), (400, 0.1), (2500, 0.02)):
        expected = true_rate(truth, n, success)
        got = model.central_rate(sums_of(n, success))
        assert got == pytest.approx(expected, abs=0.05 + 0.2 * expected), (n, success)
    # the week-level error: 0.5 simulated, measured out of time from the binomial outcomes
    assert 0.3 <= model.sigma <= 0.75
    assert model.errors_measured_on == len(table) - base_rate.MIN_WEEKS_FOR_ERROR
    assert model.weeks == 150 and model.rows == int(table["rows"].sum())
    forecast = model.predict(sums_of(400, 0.1))
    assert forecast.low < forecast.rate < forecast.high


def test_a_prior_shift_moves_the_forecast_and_the_probabilities():
    """Same customers, two weeks: a small targeted week and a mass campaign. The forecast and
    the probabilities move with the week; the ranking never changes."""
    table, truth = synthetic_weeks(seed=2)
    model = BaseRateModel.fit(table)
    raw = np.random.default_rng(0).uniform(0.02, 0.4, 500)
    small = model.adjust(raw, sums_of(40, 0.2))
    mass = model.adjust(raw, sums_of(3000, 0.01))
    assert small.mean() > mass.mean() + 0.15
    assert small.mean() == pytest.approx(model.predict(sums_of(40, 0.2)).rate, abs=0.02)
    assert (np.argsort(small, kind="stable") == np.argsort(raw, kind="stable")).all()
    assert (np.argsort(mass, kind="stable") == np.argsort(raw, kind="stable")).all()


def test_card_round_trip_and_refusals():
    table, _ = synthetic_weeks(seed=3, weeks=30)
    model = BaseRateModel.fit(table)
    again = BaseRateModel.from_card(model.as_card())
    assert again == model
    assert base_rate.from_card({"base_rate": model.as_card()}) == model
    assert base_rate.from_card({}) is None
    with pytest.raises(TermDepositError, match="at least two weeks"):
        BaseRateModel.fit(table.iloc[:1])
    with pytest.raises(TermDepositError, match="at least one customer"):
        model.predict(np.zeros(7))


def test_ranges_invert_the_issued_probabilities():
    z = np.linspace(-4, 2, 50)
    issued = base_rate.posterior_mean(z, 0.6)
    nodes = base_rate.node_probabilities(issued, 0.6)
    assert np.allclose(nodes @ base_rate.node_weights(), issued, atol=1e-4)


def test_composition_adds_up_over_chunks(reference):
    week = reference[reference["week"] == 39]
    whole = composition_sums(week)
    parts = composition_sums(week.iloc[:1000]) + composition_sums(week.iloc[1000:])
    assert np.allclose(whole, parts) and whole[0] == len(week)
