"""The weekly rate model: it recovers a known rate and error on synthetic shifted weeks, and every
scoring path makes a cohort's probabilities follow its week."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from termdeposit.core.errors import TermDepositError
from termdeposit.modeling import base_rate
from termdeposit.modeling.base_rate import BaseRateModel, RateSettings, composition_sums


def synthetic_weeks(
    seed: int, weeks: int = 90, sigma: float = 0.5, sigma_small: float = 0.0
) -> tuple[pd.DataFrame, dict]:
    """Weeks whose rate follows a known log-odds model of size and make-up, plus a week-level
    normal error of sd ``sqrt(sigma^2 + sigma_small^2 * 100 / n)``; outcomes are binomial
    given the week's rate. The truth also holds each week's true rate."""
    rng = np.random.default_rng(seed)
    truth = {"intercept": -1.0, "cohort_size": -0.6, "previous_success": 3.0, "rates": []}
    rows = []
    for week in range(weeks):
        n = int(np.exp(rng.uniform(np.log(20), np.log(3000))))
        success = rng.uniform(0.0, 0.3)
        z = truth["intercept"] + truth["cohort_size"] * (np.log(n) - 6) + 3.0 * success
        sd = np.sqrt(sigma**2 + sigma_small**2 * 100 / n)
        rate = 1 / (1 + np.exp(-(z + sd * rng.normal())))
        truth["rates"].append(rate)
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
    # the week-level error: 0.5 simulated whatever the size, measured out of time from the
    # binomial outcomes
    for n in (50, 400, 2500):
        assert 0.3 <= model.sigma_for(n) <= 0.75, n
    assert model.errors_measured_on == len(table) - base_rate.MIN_WEEKS_FOR_ERROR
    assert model.weeks == 150 and model.rows == int(table["rows"].sum())
    forecast = model.predict(sums_of(400, 0.1))
    assert forecast.low < forecast.rate < forecast.high


def test_small_weeks_err_more_and_the_error_is_split_by_size():
    """Weeks whose error has a part that averages out with size: the model finds both parts,
    so a small cohort gets a wider error than a large one."""
    table, _ = synthetic_weeks(seed=4, weeks=300, sigma=0.3, sigma_small=1.5)
    model = BaseRateModel.fit(table, RateSettings(half_life_weeks=1000.0, cap=2000.0, ridge=0.01))
    truth = {n: np.sqrt(0.3**2 + 1.5**2 * 100 / n) for n in (20, 200, 3000)}
    for n, sd in truth.items():
        assert model.sigma_for(n) == pytest.approx(sd, rel=0.35), n
    assert model.sigma_for(20) > 2 * model.sigma_for(3000)
    error = model.error_for(20)
    assert error.sigma == model.sigma_for(20) and error.levels == model.range_levels
    # a homoscedastic fit is the special case without the size part
    plain, _ = synthetic_weeks(seed=5, weeks=300, sigma=0.5)
    fitted = BaseRateModel.fit(plain, RateSettings(half_life_weeks=1000.0, cap=2000.0, ridge=0.01))
    assert fitted.sigma_for(20) < 1.5 * fitted.sigma_for(3000)


def test_calibrated_levels_widen_a_range_that_held_too_few_weeks():
    """Where past weeks fell in their forecast distribution sets the range's percentiles: right
    error, about the 10th and 90th; an error assumed too small, wider percentiles."""
    rng = np.random.default_rng(6)
    weeks = 400
    n = rng.integers(50, 2000, weeks).astype(float)
    forecast = rng.uniform(0.05, 0.5, weeks)
    true = base_rate.sigmoid(base_rate.logit(forecast) + 0.8 * rng.normal(size=weeks))
    k = rng.binomial(n.astype(int), true).astype(float)
    right = base_rate.calibrated_levels(forecast, k, n, 0.8, 0.0)
    assert right[0] == pytest.approx(0.1, abs=0.04) and right[1] == pytest.approx(0.9, abs=0.04)
    low, high = base_rate.calibrated_levels(forecast, k, n, 0.3, 0.0)
    assert low < 0.04 and high > 0.96
    few = base_rate.calibrated_levels(forecast[:5], k[:5], n[:5], 0.3, 0.0)
    assert few == base_rate.NOMINAL_LEVELS, "too few weeks measured: nominal percentiles"


def test_the_rate_range_holds_four_new_weeks_in_five():
    """Fitted on past weeks, the 80% range of a new week's rate holds its true rate about 80%
    of the time, for small and large weeks alike."""
    table, truth = synthetic_weeks(seed=7, weeks=500, sigma=0.3, sigma_small=1.2)
    past, new = table.iloc[:250], table.iloc[250:]
    model = BaseRateModel.fit(past, RateSettings(half_life_weeks=1000.0, cap=2000.0, ridge=0.01))
    inside = []
    for (_, week), rate in zip(new.iterrows(), truth["rates"][250:], strict=True):
        forecast = model.predict(sums_of(int(week["rows"]), week["previous_success"]))
        inside.append((forecast.low <= rate <= forecast.high, week["rows"] < 200))
    held = np.array(inside)
    assert 0.7 <= held[:, 0].mean() <= 0.9
    assert 0.65 <= held[held[:, 1], 0].mean() <= 0.95, "small weeks"
    assert 0.65 <= held[~held[:, 1], 0].mean() <= 0.95, "large weeks"


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
    # a card written before the error had a size part reads as a single error, nominal range
    older = {k: v for k, v in model.as_card().items() if k not in ("sigma_small", "range_levels")}
    old = BaseRateModel.from_card(older)
    assert old.sigma_small == 0.0 and old.range_levels == base_rate.NOMINAL_LEVELS
    assert old.sigma_for(10) == old.sigma_for(5000) == model.sigma
    with pytest.raises(TermDepositError, match="at least two weeks"):
        BaseRateModel.fit(table.iloc[:1])
    with pytest.raises(TermDepositError, match="at least one customer"):
        model.predict(np.zeros(7))


def test_ranges_invert_the_issued_probabilities():
    z = np.linspace(-4, 2, 50)
    issued = base_rate.posterior_mean(z, 0.6)
    nodes = base_rate.node_probabilities(issued, 0.6)
    assert np.allclose(nodes @ base_rate.node_weights(), issued, atol=1e-3)
    # the range's nodes are the normal's means over slices of equal probability
    bins = base_rate.normal_bins(24)
    assert abs(bins.mean()) < 1e-12 and 0.95 < (bins**2).mean() < 1.0
    assert np.all(np.diff(bins) > 0)


def test_the_error_likelihood_is_exact_for_large_and_tiny_weeks():
    """The adaptive quadrature matches a brute-force integral, for a week of 3,000 (whose
    binomial likelihood is far narrower than the error) and of one customer."""
    z = np.array([-3.0, 0.2])
    n, k = np.array([3000.0, 1.0]), np.array([160.0, 0.0])
    for sd in (0.05, 0.4, 3.0):
        got = base_rate._week_loglik(z, k, n, np.full((2, 1), sd))[:, 0]
        grid = np.linspace(-12 * sd - 6, 12 * sd + 6, 200_001)
        for i in range(2):
            p = base_rate.sigmoid(z[i] + grid)
            density = np.exp(
                k[i] * np.log(p) + (n[i] - k[i]) * np.log1p(-p) - grid**2 / (2 * sd**2)
            ) / (sd * np.sqrt(2 * np.pi))
            assert got[i] == pytest.approx(np.log(np.trapezoid(density, grid)), abs=1e-4)


def test_composition_adds_up_over_chunks(reference):
    week = reference[reference["week"] == 39]
    whole = composition_sums(week)
    assert whole[0] == len(week)
    rng = np.random.default_rng(3)
    for _ in range(20):  # any cut into chunks, added in any order: the same bits
        cuts = np.sort(
            rng.choice(np.arange(1, len(week)), size=rng.integers(1, 12), replace=False)
        )
        edges = [0, *cuts.tolist(), len(week)]
        parts = [composition_sums(week.iloc[a:b]) for a, b in zip(edges, edges[1:], strict=False)]
        total = np.zeros_like(whole)
        for i in rng.permutation(len(parts)):
            total = total + parts[i]
        assert np.array_equal(total, whole)
