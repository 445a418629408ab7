"""The week's own subscription rate, forecast before any of its outcomes arrive.

Between two retrainings the share of customers who subscribe moves far (5% in 2008, 50% in
2010, and 34-70% in a few tiny weeks of October 2008 right before a week of 3,554 customers
converting 4.7%). Inside a week the model ranks customers only a little better than chance
(an AUC of about 0.55 on the reference weeks), so what decides the money is the week's level.

A :class:`BaseRateModel` predicts a week's rate from what is known when the week is scored:
the number of customers in the cohort and its make-up (shares previously contacted, with a
previous success, reached on a mobile, students or retired; mean age; mean number of calls in
this campaign). It is a ridge-penalised binomial regression over past weeks, each week weighed
by its customers up to a cap (``n / (1 + n / cap)``: a tiny week cannot dominate, a huge one
counts like a few hundred customers) and by recency (half-life in weeks). Its error is measured
out of time: every past week is predicted from the weeks before it, and the week's log-odds
error is taken as normal with a variance of two parts, ``sigma**2 + sigma_small**2 * 100 / n``
for a cohort of ``n`` customers: a part every week has, and a part that averages out as a cohort
grows (a handful of customers called on one day are far less predictable than thousands over a
week). Both are the values that best explain the past weeks' outcomes once binomial chance is
accounted for (maximum likelihood, a binomial-logit-normal model).

A cohort's probabilities are then the model's, shifted on the log-odds scale so that their
mean is the forecast rate, and averaged over the week-level error of a cohort of its size
(Gauss-Hermite quadrature): the probability of subscribing given what is known, uncertainty
about the week included. The ranking never changes. Chosen on weeks 13-60 of the reference
backtest among EM prior adjustment, black-box shift estimation, recalibration windows and
other base-rate models (README, "Weekly backtest").

Every 80% range is the 10th to 90th percentile of the forecast distribution, with the two
percentiles recalibrated out of time (Kuleshov et al. 2018): where the past weeks' subscribers
fell in their own out-of-time forecast distributions says which percentiles held 80% of them.
The error's two parts and the recalibration were chosen on weeks 13-60 among a single error,
a Student-t error, the error's own estimation uncertainty and a fixed widening (README,
"Weekly backtest").

Size: One model (fit, out-of-time error, forecast, probability adjustment, recalibrated
ranges); a third of it is documentation of the method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri
from scipy.stats import binom

from termdeposit.core.errors import TermDepositError

#: The week's make-up that the rate model reads, in order (after log cohort size).
COMPOSITION = (
    "previously_contacted",
    "previous_success",
    "mobile",
    "student_or_retired",
    "age",
    "calls_this_campaign",
)
FEATURES = ("cohort_size", *COMPOSITION)
#: Words for each input, for the model card.
FEATURE_WORDS = {
    "cohort_size": "log of the number of customers in the cohort (at most twice the largest "
    "week fitted)",
    "previously_contacted": "share contacted in an earlier campaign (pdays != 999)",
    "previous_success": "share whose earlier campaign succeeded (poutcome = success)",
    "mobile": "share reached on a mobile (contact = cellular)",
    "student_or_retired": "share of students and retired customers",
    "age": "mean age, in tens of years from 40",
    "calls_this_campaign": "mean log number of calls in this campaign",
}
#: Nodes and weights of the week-level error (probabilists' Gauss-Hermite, weights sum to 1).
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(21)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def normal_bins(count: int) -> np.ndarray:
    """The means of a standard normal within ``count`` slices of equal probability.

    Equal-weight nodes for distributions over the week-level error (money ranges, where a
    week fell in its forecast): Gauss-Hermite nodes integrate smooth functions well but make
    such distributions lumpy, moving a large week's range by up to 3% of its width.
    """
    edges = ndtri(np.linspace(0.0, 1.0, count + 1))
    density = np.exp(-0.5 * edges**2) / np.sqrt(2 * np.pi)
    return count * (density[:-1] - density[1:])


#: Nodes of the week-level error behind the money ranges (equal weights).
_RANGE_NODES = normal_bins(24)
#: Nodes behind where a past week fell in its forecast distribution (equal weights).
_PLACE_NODES = normal_bins(200)
#: Weeks needed before a week is predicted out of time for measuring the error.
MIN_WEEKS_FOR_ERROR = 4
#: Error sd used until enough weeks were predicted out of time (log-odds).
DEFAULT_SIGMA = 0.6
#: Candidate values of the error part every week has (log-odds sd).
SIGMA_GRID = np.linspace(0.0, 2.0, 41)
#: Candidate values of the part that averages out with size (log-odds sd at 100 customers).
SIGMA_SMALL_GRID = np.linspace(0.0, 4.0, 41)
#: The cohort size at which ``sigma_small`` is the second part's sd.
SIZE_UNIT = 100.0
#: The percentiles of an 80% range before recalibration.
NOMINAL_LEVELS = (0.1, 0.9)
#: Weeks predicted out of time needed before the range's percentiles are recalibrated.
MIN_WEEKS_FOR_LEVELS = 8


def logit(p: np.ndarray | float) -> np.ndarray:
    """Log-odds of probabilities (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    """Probability of log-odds."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(z, dtype=float), -35, 35)))


# -- a week's make-up -------------------------------------------------------------------------


#: Resolution of a row's part in :func:`composition_sums` (a power of two: exact sums).
_QUANTUM = 2.0**-20


def _exact_sum(values: np.ndarray) -> float:
    """The sum of ``values`` each rounded to a multiple of :data:`_QUANTUM`: integers times a
    power of two, so any order of adding (whole, or chunk by chunk) gives the same bits."""
    return float(np.rint(values / _QUANTUM).sum() * _QUANTUM)


def composition_sums(frame: pd.DataFrame) -> np.ndarray:
    """Row count then the sums behind :data:`COMPOSITION` of a cohort (or part of one).

    Sums add up across chunks of a large file, so a cohort read in pieces gets the same
    make-up as read whole, to the last bit: each row's part is rounded to a multiple of
    2**-20 first, so every sum is exact in floating point whatever the order it is added in
    (up to about a billion customers).
    """
    n = len(frame)
    if n == 0:
        return np.zeros(1 + len(COMPOSITION))
    pdays = pd.to_numeric(frame["pdays"], errors="coerce").to_numpy(float)
    age = pd.to_numeric(frame["age"], errors="coerce").to_numpy(float)
    campaign = pd.to_numeric(frame["campaign"], errors="coerce").to_numpy(float)
    job = frame["job"].astype(str).to_numpy()
    return np.array(
        [
            n,
            float((pdays != 999).sum()),
            float((frame["poutcome"].astype(str).to_numpy() == "success").sum()),
            float((frame["contact"].astype(str).to_numpy() == "cellular").sum()),
            float(np.isin(job, ("student", "retired")).sum()),
            _exact_sum((age - 40.0) / 10.0),
            _exact_sum(np.log(np.maximum(campaign, 1.0))),
        ]
    )


def week_features(sums: np.ndarray) -> np.ndarray:
    """The rate model's inputs from :func:`composition_sums`: log size then the means."""
    n = float(sums[0])
    if n <= 0:
        raise TermDepositError("A cohort needs at least one customer to forecast its rate.")
    return np.concatenate([[np.log(n)], np.asarray(sums[1:], dtype=float) / n])


def week_table(frame: pd.DataFrame, period: Sequence[Any] | np.ndarray) -> pd.DataFrame:
    """One row per week (in order of first appearance): rows, subscribers, the make-up.

    Args:
        frame: customers with the inputs and ``y`` (1 subscribed).
        period: the week (or cohort) each row belongs to, same length as ``frame``.
    """
    periods = np.asarray(period)
    keys, first = np.unique(periods, return_index=True)
    order = keys[np.argsort(first)]
    rows = []
    for key in order:
        part = frame.loc[periods == key]
        sums = composition_sums(part)
        rows.append(
            {
                "week": key.item() if isinstance(key, np.generic) else key,
                "rows": int(sums[0]),
                "subscribers": int(part["y"].sum()),
                **dict(zip(FEATURES, week_features(sums), strict=True)),
            }
        )
    return pd.DataFrame(rows)


# -- the rate model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RateSettings:
    """How the rate model weighs the past (chosen on weeks 13-60 of the reference backtest).

    Attributes:
        half_life_weeks: a week counts half as much this many weeks later.
        cap: a week of n customers counts like ``n / (1 + n / cap)`` customers.
        ridge: penalty on every coefficient but the intercept (inputs are on unit scales).
    """

    half_life_weeks: float = 26.0
    cap: float = 200.0
    ridge: float = 1.0


def _design(table: pd.DataFrame, size_range: tuple[float, float] | None = None) -> np.ndarray:
    values = table.loc[:, list(FEATURES)].to_numpy(float).copy()
    if size_range is not None:
        values[:, 0] = np.clip(values[:, 0], *size_range)
    values[:, 0] -= 6.0  # log 400: a middle-sized week
    return np.column_stack([np.ones(len(values)), values])


#: A cohort may be up to this many times the largest week fitted before its size stops counting.
SIZE_EXTRAPOLATION = 2.0


def _size_range(table: pd.DataFrame) -> tuple[float, float]:
    """Log sizes the model trusts: from one customer to twice the largest week fitted."""
    largest = float(table["cohort_size"].max())
    return (0.0, largest + float(np.log(SIZE_EXTRAPOLATION)))


def _fit_coefficients(
    table: pd.DataFrame, settings: RateSettings, size_range: tuple[float, float]
) -> np.ndarray:
    """Ridge binomial regression of the weekly rates (Newton), weeks weighed as documented."""
    n = table["rows"].to_numpy(float)
    successes = table["subscribers"].to_numpy(float)
    age = np.arange(len(table))[::-1].astype(float)  # weeks since, the newest 0
    weights = n / (1.0 + n / settings.cap) * 0.5 ** ((age + 1) / settings.half_life_weeks)
    rate = successes / np.maximum(n, 1.0)
    X = _design(table, size_range)
    penalty = np.diag(np.r_[0.0, np.full(X.shape[1] - 1, settings.ridge)])

    def objective(b: np.ndarray) -> float:
        z = X @ b
        loglik = weights * (rate * z - np.logaddexp(0.0, z))
        return float(loglik.sum() - 0.5 * b @ penalty @ b)

    beta = np.zeros(X.shape[1])
    current = objective(beta)
    for _ in range(100):
        p = sigmoid(X @ beta)
        gradient = X.T @ (weights * (rate - p)) - penalty @ beta
        hessian = (X * (weights * p * (1 - p))[:, None]).T @ X + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-6 and objective(beta + scale * step) < current - 1e-12:
            scale /= 2
        beta = beta + scale * step
        current = objective(beta)
        if np.abs(scale * step).max() < 1e-9:
            break
    return beta


def size_sigma(sigma: float, sigma_small: float, customers: float) -> float:
    """The week-level error (log-odds sd) of a cohort of ``customers``: both parts together."""
    return float(np.sqrt(sigma**2 + sigma_small**2 * SIZE_UNIT / max(float(customers), 1.0)))


#: The week-level sds at which each week's likelihood is computed before interpolation.
_SD_POINTS = np.concatenate([[0.0], np.geomspace(1e-3, 64.0, 240)])


def _week_loglik(z: np.ndarray, k: np.ndarray, n: np.ndarray, sds: np.ndarray) -> np.ndarray:
    """Log-likelihood of each week's outcomes at week-level error sds (weeks x sds: each row
    the sds to try for that week), without the binomial constant.

    The binomial likelihood of a large week is far narrower than the error, so fixed nodes
    would miss its peak: the integral over the error is adaptive Gauss-Hermite, the nodes
    centred on the peak of the integrand and scaled by its curvature (as mixed models do).
    """
    z = z[:, None]
    k = k[:, None]
    n = n[:, None]
    sds = np.asarray(sds, dtype=float)
    precision = 1.0 / np.maximum(sds, 1e-12) ** 2
    error = np.zeros_like(sds)
    for _ in range(50):  # Newton on the log integrand (concave in the error)
        p = sigmoid(z + error)
        slope = k - n * p - error * precision
        curvature = n * p * (1 - p) + precision
        step = slope / curvature
        error = error + step
        if np.abs(step).max() < 1e-10:
            break
    p = sigmoid(z + error)
    scale = 1.0 / np.sqrt(n * p * (1 - p) + precision)
    at = error[..., None] + scale[..., None] * _NODES  # weeks x sds x nodes
    shifted = z[..., None] + at
    # log binomial probability without the constant; log(1 - p) = log p - z
    log_terms = (
        n[..., None] * -np.logaddexp(0.0, -shifted)
        - (n - k)[..., None] * shifted
        - 0.5 * at**2 * precision[..., None]
        + 0.5 * _NODES**2
        + np.log(_WEIGHTS)
    )
    top = log_terms.max(axis=-1, keepdims=True)
    adaptive = (
        np.log(scale / np.maximum(sds, 1e-12))
        + top[..., 0]
        + np.log(np.exp(log_terms - top).sum(axis=-1))
    )
    exact = n * -np.logaddexp(0.0, -z) - (n - k) * z  # no error at all
    return np.where(sds > 0, adaptive, np.broadcast_to(exact, sds.shape))


def fit_error(
    predicted: np.ndarray, successes: np.ndarray, rows: np.ndarray
) -> tuple[float, float]:
    """The error's two parts that best explain the outcomes (maximum likelihood).

    Each week's subscribers are binomial given its true rate, whose log-odds are the forecast's
    plus a normal error of sd :func:`size_sigma`; the likelihood is integrated over the error by
    quadrature and maximised over a grid (``sigma`` 0 to 2 by 0.05, ``sigma_small`` 0 to 4 by
    0.1). A week's likelihood depends on the two parts only through its sd, so it is computed
    on a fine grid of sds and interpolated; the points near the best are then computed exactly.
    Returns ``(sigma, sigma_small)``.
    """
    if len(predicted) == 0:
        return DEFAULT_SIGMA, 0.0
    z = logit(predicted)
    k = np.asarray(successes, dtype=float)
    n = np.asarray(rows, dtype=float)
    by_sd = _week_loglik(z, k, n, np.broadcast_to(_SD_POINTS, (len(n), len(_SD_POINTS))))
    sd = np.sqrt(
        SIGMA_GRID[:, None, None] ** 2
        + SIGMA_SMALL_GRID[None, :, None] ** 2 * SIZE_UNIT / np.maximum(n, 1.0)
    )  # sigma x sigma_small x weeks
    approx = sum(np.interp(sd[..., w], _SD_POINTS, by_sd[w]) for w in range(len(n)))
    near = np.argwhere(approx >= approx.max() - 0.5)
    exact = _week_loglik(z, k, n, sd[near[:, 0], near[:, 1]].T).sum(axis=0)
    i, j = near[int(np.argmax(exact))]
    return float(SIGMA_GRID[i]), float(SIGMA_SMALL_GRID[j])


def calibrated_levels(
    predicted: np.ndarray,
    successes: np.ndarray,
    rows: np.ndarray,
    sigma: float,
    sigma_small: float,
) -> tuple[float, float]:
    """The percentiles that held 80% of the past weeks' subscribers (out of time).

    Each week's subscribers get their place in its own forecast distribution (the binomial
    mixed over the week-level error; the middle of the step for a count), and the 10th and 90th
    percentiles of those places become the range's percentiles. Nominal (10th, 90th) until
    :data:`MIN_WEEKS_FOR_LEVELS` weeks were measured.
    """
    if len(predicted) < MIN_WEEKS_FOR_LEVELS:
        return NOMINAL_LEVELS
    places = []
    for rate, k, n in zip(predicted, successes, rows, strict=True):
        nodes = sigmoid(logit(rate) + size_sigma(sigma, sigma_small, n) * _PLACE_NODES)
        below = float(binom.cdf(k, n, nodes).mean())
        at = float(binom.pmf(k, n, nodes).mean())
        places.append(below - at / 2)
    low, high = np.quantile(places, NOMINAL_LEVELS)
    return float(low), float(high)


@dataclass(frozen=True)
class WeekError:
    """How far a cohort's week may be from its forecast, and which percentiles make its range.

    Attributes:
        sigma: the week-level error of a cohort of its size (log-odds sd).
        levels: the percentiles of the 80% range (recalibrated out of time).
    """

    sigma: float
    levels: tuple[float, float] = NOMINAL_LEVELS


@dataclass(frozen=True)
class WeekForecast:
    """A cohort's forecast rate and its 80% range (before any outcome)."""

    rate: float
    low: float
    high: float
    sigma: float
    customers: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain values (rounded) for JSON outputs."""
        return {
            "rate": round(self.rate, 5),
            "low": round(self.low, 5),
            "high": round(self.high, 5),
            "sigma": round(self.sigma, 4),
            "customers": self.customers,
        }


@dataclass(frozen=True)
class BaseRateModel:
    """A fitted weekly rate model (see the module docstring); lives in the model card."""

    coefficients: tuple[float, ...]
    sigma: float
    size_range: tuple[float, float]
    weeks: int
    rows: int
    first_week: str
    last_week: str
    settings: RateSettings = field(default_factory=RateSettings)
    errors_measured_on: int = 0
    sigma_small: float = 0.0
    range_levels: tuple[float, float] = NOMINAL_LEVELS

    @classmethod
    def fit(
        cls,
        table: pd.DataFrame,
        settings: RateSettings | None = None,
        predictions: dict[int, float] | None = None,
    ) -> BaseRateModel:
        """Fit on a :func:`week_table` (weeks in time order) and measure its error out of time.

        Args:
            table: one row per week with outcomes, oldest first.
            settings: how the past is weighed.
            predictions: out-of-time forecasts already made for weeks of this table, by
                position (a replay passes the same dict every week, so no week is predicted
                twice); filled in here.
        """
        settings = settings or RateSettings()
        table = table.reset_index(drop=True)
        if len(table) < 2 or table["subscribers"].sum() == 0:
            raise TermDepositError(
                "The weekly rate model needs at least two weeks with outcomes, some of them "
                "with subscribers.",
                hint="Train on the reference data (it holds 119 weeks).",
            )
        size_range = _size_range(table)
        predictions = {} if predictions is None else predictions
        for position in range(MIN_WEEKS_FOR_ERROR, len(table)):
            if position not in predictions:
                past = table.iloc[:position]
                past_range = _size_range(past)
                beta = _fit_coefficients(past, settings, past_range)
                row = _design(table.iloc[[position]], past_range)
                predictions[position] = float(sigmoid(row @ beta)[0])
        measured = sorted(p for p in predictions if p < len(table))
        forecasts = np.array([predictions[p] for p in measured])
        subscribers = table["subscribers"].to_numpy(float)[measured]
        customers = table["rows"].to_numpy(float)[measured]
        sigma, sigma_small = fit_error(forecasts, subscribers, customers)
        levels = calibrated_levels(forecasts, subscribers, customers, sigma, sigma_small)
        beta = _fit_coefficients(table, settings, size_range)
        return cls(
            coefficients=tuple(float(b) for b in beta),
            sigma=sigma,
            size_range=size_range,
            weeks=len(table),
            rows=int(table["rows"].sum()),
            first_week=str(table["week"].iloc[0]),
            last_week=str(table["week"].iloc[-1]),
            settings=settings,
            errors_measured_on=len(measured),
            sigma_small=sigma_small,
            range_levels=levels,
        )

    def sigma_for(self, customers: float) -> float:
        """The week-level error (log-odds sd) of a cohort of ``customers``."""
        return size_sigma(self.sigma, self.sigma_small, customers)

    def error_for(self, customers: float) -> WeekError:
        """The week-level error of a cohort of ``customers`` and its range's percentiles."""
        return WeekError(self.sigma_for(customers), self.range_levels)

    def predict(self, sums: np.ndarray) -> WeekForecast:
        """The forecast rate of a cohort from its :func:`composition_sums`, with its range."""
        features = week_features(sums)
        row = pd.DataFrame([dict(zip(FEATURES, features, strict=True))])
        z = float((_design(row, self.size_range) @ np.asarray(self.coefficients))[0])
        sigma = self.sigma_for(sums[0])
        rate = float(np.sum(_WEIGHTS * sigmoid(z + sigma * _NODES)))
        low, high = self.range_levels
        return WeekForecast(
            rate=rate,
            low=float(sigmoid(z + ndtri(low) * sigma)),
            high=float(sigmoid(z + ndtri(high) * sigma)),
            sigma=sigma,
            customers=int(sums[0]),
        )

    def central_rate(self, sums: np.ndarray) -> float:
        """The forecast rate before averaging over the error (the median week)."""
        features = week_features(sums)
        row = pd.DataFrame([dict(zip(FEATURES, features, strict=True))])
        return float(sigmoid(_design(row, self.size_range) @ np.asarray(self.coefficients))[0])

    def adjust(self, probabilities: np.ndarray, sums: np.ndarray) -> np.ndarray:
        """The cohort's probabilities following its forecast rate (ranking unchanged)."""
        p = np.asarray(probabilities, dtype=float)
        if len(p) == 0:
            return p
        z = logit(p) + shift_to_mean(p, self.central_rate(sums))
        return posterior_mean(z, self.sigma_for(sums[0]))

    def as_card(self) -> dict[str, Any]:
        """The card section: coefficients by input, error, fitted weeks and rows, rule."""
        names = ("intercept", *FEATURES)
        return {
            "coefficients": dict(zip(names, self.coefficients, strict=True)),
            "sigma": self.sigma,
            "sigma_small": self.sigma_small,
            "range_levels": list(self.range_levels),
            "size_range": list(self.size_range),
            "weeks": self.weeks,
            "rows": self.rows,
            "first_week": self.first_week,
            "last_week": self.last_week,
            "errors_measured_on": self.errors_measured_on,
            "settings": asdict(self.settings),
            "inputs": FEATURE_WORDS,
            "rule": (
                "each scored cohort's probabilities are shifted on the log-odds scale so their "
                "mean is the rate forecast from the cohort's size and make-up, then averaged "
                "over the week-level error (log-odds sd "
                f"sqrt({self.sigma:.2f}^2 + {self.sigma_small:.1f}^2 x 100 / customers): "
                f"{self.sigma_for(50):.2f} for 50 customers, {self.sigma_for(1000):.2f} for "
                f"1,000; measured out of time on {self.errors_measured_on} weeks); every 80% "
                f"range runs from the {100 * self.range_levels[0]:.1f}th to the "
                f"{100 * self.range_levels[1]:.1f}th percentile, the percentiles that held 80% "
                "of those weeks"
            ),
        }

    @classmethod
    def from_card(cls, section: dict[str, Any]) -> BaseRateModel:
        """Rebuild the model from its card section."""
        names = ("intercept", *FEATURES)
        return cls(
            coefficients=tuple(float(section["coefficients"][n]) for n in names),
            sigma=float(section["sigma"]),
            size_range=(float(section["size_range"][0]), float(section["size_range"][1])),
            weeks=int(section["weeks"]),
            rows=int(section["rows"]),
            first_week=str(section["first_week"]),
            last_week=str(section["last_week"]),
            settings=RateSettings(**section.get("settings", {})),
            errors_measured_on=int(section.get("errors_measured_on", 0)),
            sigma_small=float(section.get("sigma_small", 0.0)),
            range_levels=_levels(section.get("range_levels", NOMINAL_LEVELS)),
        )


def _levels(values: Sequence[float]) -> tuple[float, float]:
    low, high = (float(v) for v in values)
    return low, high


def from_card(card: dict[str, Any]) -> BaseRateModel | None:
    """The rate model of a model card, or None (a model saved before it existed)."""
    section = card.get("base_rate")
    return BaseRateModel.from_card(section) if section else None


# -- probabilities ----------------------------------------------------------------------------


def shift_to_mean(probabilities: np.ndarray, target: float) -> float:
    """The log-odds shift that makes the mean probability equal ``target`` (Newton)."""
    z = logit(probabilities)
    target = float(np.clip(target, 1e-6, 1 - 1e-6))
    shift = 0.0
    for _ in range(100):
        p = sigmoid(z + shift)
        step = float(np.clip((target - p.mean()) / max((p * (1 - p)).mean(), 1e-12), -2, 2))
        shift += step
        if abs(step) < 1e-10:
            break
    return shift


def posterior_mean(z: np.ndarray, sigma: float) -> np.ndarray:
    """Mean probability over a normal week-level error of sd ``sigma`` on the log-odds ``z``."""
    z = np.asarray(z, dtype=float)
    if sigma <= 0:
        return sigmoid(z)
    out = np.zeros(len(z))
    for node, weight in zip(_NODES, _WEIGHTS, strict=True):
        out += weight * sigmoid(z + sigma * node)
    return out


def node_probabilities(probabilities: np.ndarray, sigma: float) -> np.ndarray:
    """Each customer's probability at every node of the week-level error (n x nodes), the
    nodes of :func:`normal_bins` (equal weights).

    Inverts :func:`posterior_mean` (monotone) to recover the log-odds, so the money ranges can
    be computed from the issued probabilities alone.
    """
    p = np.asarray(probabilities, dtype=float)
    if sigma <= 0:
        return p[:, None]
    grid = np.linspace(-20.0, 20.0, 4001)
    means = posterior_mean(grid, sigma)
    z = np.interp(p, means, grid)
    return sigmoid(z[:, None] + sigma * _RANGE_NODES[None, :])


def same_week(raw: float, raw_before: float, issued_before: float, sigma: float) -> float:
    """A customer's probability after a change of inputs, in the same week as before.

    The week moved this customer's probability from the model's ``raw_before`` to
    ``issued_before`` (a log-odds shift, then the average over the week's error); the same
    shift is applied to the model's new probability ``raw``.
    """
    if sigma <= 0:
        shift = float(logit(issued_before) - logit(raw_before))
        return float(sigmoid(logit(raw) + shift))
    grid = np.linspace(-20.0, 20.0, 4001)
    z_before = float(np.interp(issued_before, posterior_mean(grid, sigma), grid))
    shift = z_before - float(logit(raw_before))
    return float(posterior_mean(np.array([float(logit(raw)) + shift]), sigma)[0])


def node_weights() -> np.ndarray:
    """The weights of the nodes of :func:`node_probabilities` (equal, sum to 1)."""
    return np.full(len(_RANGE_NODES), 1.0 / len(_RANGE_NODES))


def node_weights_for(sigma: float) -> np.ndarray:
    """Weights matching :func:`node_probabilities` for this sigma (one node when sigma is 0)."""
    return np.ones(1) if sigma <= 0 else node_weights()


def follow_weeks_out_of_time(
    frame: pd.DataFrame, periods: np.ndarray, probabilities: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Probabilities of ``rows`` made to follow their week's forecast rate, week by week.

    Each week's rate model is fitted on the weeks before it only (as production runs), so a
    hold-out scored this way uses no outcome of its own week or later.

    Args:
        frame: every row in time order, with the inputs and ``y``.
        periods: the week of each row of ``frame``.
        probabilities: the model's probabilities of ``rows``.
        rows: positions in ``frame`` of the scored rows.
    """
    periods = np.asarray(periods)
    table = week_table(frame, periods)
    position = {key: i for i, key in enumerate(table["week"])}
    predictions: dict[int, float] = {}
    out = np.asarray(probabilities, dtype=float).copy()
    scored_periods = periods[rows]
    for key in pd.unique(scored_periods):
        selected = scored_periods == key
        key = key.item() if isinstance(key, np.generic) else key
        if position[key] < 2:
            continue
        model = BaseRateModel.fit(table.iloc[: position[key]], predictions=predictions)
        sums = composition_sums(frame.iloc[rows[selected]])
        out[selected] = model.adjust(out[selected], sums)
    return out
