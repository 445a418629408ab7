"""Money at every threshold: calls, cost, expected revenue and profit, uplift, calibration.

Everything is computed once from the probabilities sorted in rank order (highest first):
cumulative sums then give the figures for any threshold in constant time, so moving the
dashboard's slider never re-scores anything. A threshold ``t`` means "call everyone whose
probability is at least ``t``"; with a call capacity the list is cut to the best ``capacity``
customers (ties broken by input order, as in :func:`termdeposit.modeling.predict.ranks_of`).

Expected figures use the model's probabilities (a calibrated model's probabilities are
expected conversion rates); realised figures use the outcomes ``y`` when a cohort carries them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings


@dataclass(frozen=True)
class ThresholdCurve:
    """A cohort's probabilities in rank order with their cumulative sums (built once).

    Attributes:
        probabilities: probabilities sorted from highest to lowest (rank order).
        expected: ``expected[k]`` = sum of the ``k`` highest probabilities (length n + 1).
        realised: ``realised[k]`` = known subscribers among the ``k`` best (None without y).
        known: ``known[k]`` = customers with a known outcome among the ``k`` best.
    """

    probabilities: np.ndarray
    expected: np.ndarray
    realised: np.ndarray | None = None
    known: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of customers in the cohort."""
        return len(self.probabilities)

    @property
    def has_outcomes(self) -> bool:
        """True when at least one customer's outcome is known."""
        return self.known is not None and self.known[-1] > 0


def build_curve(
    probabilities: np.ndarray | pd.Series, outcomes: np.ndarray | pd.Series | None = None
) -> ThresholdCurve:
    """Sort probabilities into rank order and take the cumulative sums.

    Args:
        probabilities: one probability per customer, in any order.
        outcomes: 1 subscribed, 0 did not, NaN unknown (same order), or None.
    """
    p = np.asarray(probabilities, dtype=float)
    order = np.argsort(-p, kind="stable")
    sorted_p = p[order]
    expected = np.concatenate([[0.0], np.cumsum(sorted_p)])
    realised = known = None
    if outcomes is not None:
        y = np.asarray(outcomes, dtype=float)[order]
        is_known = ~np.isnan(y)
        if is_known.any():
            realised = np.concatenate([[0.0], np.cumsum(np.where(is_known, y, 0.0))])
            known = np.concatenate([[0], np.cumsum(is_known)])
    return ThresholdCurve(sorted_p, expected, realised, known)


def calls_at(curve: ThresholdCurve, threshold: float) -> int:
    """Number of customers whose probability is at least ``threshold``."""
    return int(np.searchsorted(-curve.probabilities, -float(threshold), side="right"))


def selected_calls(curve: ThresholdCurve, threshold: float, capacity: int | None = None) -> int:
    """Customers called at ``threshold``, cut to the best ``capacity`` when one is given."""
    calls = calls_at(curve, threshold)
    return calls if capacity is None else min(calls, max(int(capacity), 0))


@dataclass(frozen=True)
class ThresholdSummary:
    """What calling the ``calls`` best customers costs and earns.

    Realised fields are None when the cohort carries no outcomes; they count only the
    customers whose outcome is known.
    """

    threshold: float
    calls: int
    customers: int
    expected_subscriptions: float
    cost: float
    expected_revenue: float
    expected_profit: float
    profit_calling_everyone: float
    profit_calling_at_random: float
    realised_subscriptions: float | None = None
    realised_revenue: float | None = None
    realised_profit: float | None = None
    realised_profit_calling_everyone: float | None = None
    realised_profit_calling_at_random: float | None = None
    outcomes_known_called: int | None = None
    outcomes_known: int | None = None

    @property
    def share_called(self) -> float:
        """Share of the cohort that is called."""
        return self.calls / self.customers if self.customers else 0.0

    @property
    def uplift_vs_everyone(self) -> float:
        """Expected profit minus the expected profit of calling every customer."""
        return self.expected_profit - self.profit_calling_everyone

    @property
    def uplift_vs_random(self) -> float:
        """Expected profit minus that of calling as many customers chosen at random."""
        return self.expected_profit - self.profit_calling_at_random

    @property
    def realised_uplift_vs_everyone(self) -> float | None:
        """Realised profit minus the realised profit of calling everyone (None without y)."""
        if self.realised_profit is None or self.realised_profit_calling_everyone is None:
            return None
        return self.realised_profit - self.realised_profit_calling_everyone

    @property
    def realised_uplift_vs_random(self) -> float | None:
        """Realised profit minus that of as many random calls at the week's rate (None w/o y)."""
        if self.realised_profit is None or self.realised_profit_calling_at_random is None:
            return None
        return self.realised_profit - self.realised_profit_calling_at_random


def summarise(
    curve: ThresholdCurve, settings: BusinessSettings, calls: int, threshold: float
) -> ThresholdSummary:
    """Figures for calling the ``calls`` best customers (``threshold`` is recorded as given)."""
    n = curve.size
    calls = int(min(max(calls, 0), n))
    cost_per_call, value = settings.call_cost, settings.subscription_value
    expected = float(curve.expected[calls])
    everyone = money.profit(float(curve.expected[n]), n, cost_per_call, value)
    mean_p = float(curve.expected[n]) / n if n else 0.0
    at_random = money.profit(calls * mean_p, calls, cost_per_call, value)
    summary = ThresholdSummary(
        threshold=float(threshold),
        calls=calls,
        customers=n,
        expected_subscriptions=expected,
        cost=cost_per_call * calls,
        expected_revenue=value * expected,
        expected_profit=money.profit(expected, calls, cost_per_call, value),
        profit_calling_everyone=everyone,
        profit_calling_at_random=at_random,
    )
    if not curve.has_outcomes:
        return summary
    assert curve.realised is not None and curve.known is not None
    known_all = int(curve.known[n])
    realised = float(curve.realised[calls])
    known_called = int(curve.known[calls])
    rate = float(curve.realised[n]) / known_all
    return replace(
        summary,
        realised_subscriptions=realised,
        realised_revenue=value * realised,
        realised_profit=money.profit(realised, known_called, cost_per_call, value),
        realised_profit_calling_everyone=money.profit(
            float(curve.realised[n]), known_all, cost_per_call, value
        ),
        realised_profit_calling_at_random=money.profit(
            known_called * rate, known_called, cost_per_call, value
        ),
        outcomes_known_called=known_called,
        outcomes_known=known_all,
    )


def summary_at(
    curve: ThresholdCurve,
    settings: BusinessSettings,
    threshold: float,
    capacity: int | None = None,
) -> ThresholdSummary:
    """Figures at a threshold (cut to the capacity when one is given)."""
    return summarise(curve, settings, selected_calls(curve, threshold, capacity), threshold)


def cut_points(curve: ThresholdCurve) -> np.ndarray:
    """Numbers of calls a threshold can produce: 0 and the end of every group of equal scores."""
    p = curve.probabilities
    if len(p) == 0:
        return np.array([0])
    ends = np.flatnonzero(np.r_[p[1:] < p[:-1], True]) + 1
    return np.concatenate([[0], ends]) if p[0] < 1.0 else ends


def threshold_for_calls(curve: ThresholdCurve, calls: int) -> float:
    """A round threshold that calls exactly the ``calls`` best customers.

    ``calls`` must be a cut point (:func:`cut_points`). The threshold is the number with
    the fewest decimals in ``(p[calls], p[calls - 1]]`` (e.g. 0.05 rather than 0.050137).
    """
    p = curve.probabilities
    n = len(p)
    if n == 0:
        return 0.0
    calls = int(min(max(calls, 0), n))
    high = 1.0 if calls == 0 else float(p[calls - 1])
    low = float(p[calls]) if calls < n else -1.0
    if calls == 0:
        for decimals in range(1, 10):
            scale = 10**decimals
            candidate = math.ceil(p[0] * scale) / scale
            if candidate <= p[0]:
                candidate = (math.floor(p[0] * scale) + 1) / scale
            if p[0] < candidate <= 1.0:
                return candidate
        return 1.0
    for decimals in range(1, 10):
        scale = 10**decimals
        candidate = math.floor(high * scale) / scale
        if candidate > high:
            candidate = (math.floor(high * scale) - 1) / scale
        if low < candidate <= high:
            return max(candidate, 0.0)
    return high


def _best_cut(curve: ThresholdCurve, settings: BusinessSettings, realised: bool) -> int:
    cuts = cut_points(curve)
    if realised:
        if not curve.has_outcomes:
            raise ValueError("The cohort carries no outcomes.")
        assert curve.realised is not None and curve.known is not None
        subscribers, calls = curve.realised[cuts], curve.known[cuts]
    else:
        subscribers, calls = curve.expected[cuts], cuts
    return money.best_cut(
        cuts, subscribers, calls, settings.call_cost, settings.subscription_value
    )


def optimal_calls(curve: ThresholdCurve, settings: BusinessSettings) -> int:
    """Number of calls that maximises expected profit (the fewest calls among equal optima)."""
    return _best_cut(curve, settings, realised=False)


def optimal_threshold(curve: ThresholdCurve, settings: BusinessSettings) -> float:
    """The threshold that maximises expected profit."""
    return threshold_for_calls(curve, optimal_calls(curve, settings))


def hindsight_threshold(curve: ThresholdCurve, settings: BusinessSettings) -> float:
    """The threshold that would have maximised realised profit (needs outcomes)."""
    return threshold_for_calls(curve, _best_cut(curve, settings, realised=True))


def capacity_calls(curve: ThresholdCurve, capacity: int) -> int:
    """The largest number of calls a threshold can give without exceeding the capacity."""
    cuts = cut_points(curve)
    fitting = cuts[cuts <= max(int(capacity), 0)]
    return int(fitting[-1]) if len(fitting) else 0


def capacity_threshold(curve: ThresholdCurve, capacity: int | None) -> float | None:
    """The lowest threshold whose calls fit the capacity (None when there is no capacity)."""
    if capacity is None:
        return None
    return threshold_for_calls(curve, capacity_calls(curve, capacity))


def curve_table(
    curve: ThresholdCurve, settings: BusinessSettings, max_points: int = 800
) -> pd.DataFrame:
    """Figures at (up to ``max_points``) thresholds, for the curves over all thresholds.

    Columns: ``calls``, ``threshold`` (lowest probability called), ``share_called``,
    ``expected_subscriptions``, ``cost``, ``expected_revenue``, ``expected_profit``, ``gain``
    (share of expected subscriptions reached), ``lift``; with outcomes also
    ``realised_subscriptions``, ``realised_profit`` and ``realised_gain``. The profit-optimal
    cut and both ends are always included.
    """
    n = curve.size
    cuts = cut_points(curve)
    if len(cuts) > max_points:
        picks = np.linspace(0, len(cuts) - 1, max_points).round().astype(int)
        cuts = np.unique(np.append(cuts[picks], optimal_calls(curve, settings)))
    p = curve.probabilities
    thresholds = np.where(cuts > 0, p[np.maximum(cuts - 1, 0)] if n else 0.0, 1.0)
    expected = curve.expected[cuts]
    total = float(curve.expected[n]) if n else 0.0
    share = cuts / n if n else np.zeros(len(cuts))
    table = pd.DataFrame(
        {
            "calls": cuts,
            "threshold": thresholds,
            "share_called": share,
            "expected_subscriptions": expected,
            "cost": settings.call_cost * cuts,
            "expected_revenue": settings.subscription_value * expected,
            "expected_profit": money.profit(
                expected, cuts, settings.call_cost, settings.subscription_value
            ),
            "gain": expected / total if total > 0 else np.zeros(len(cuts)),
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        table["lift"] = np.where(share > 0, table["gain"] / share, np.nan)
    if curve.has_outcomes:
        assert curve.realised is not None and curve.known is not None
        realised = curve.realised[cuts]
        table["realised_subscriptions"] = realised
        table["realised_profit"] = money.profit(
            realised, curve.known[cuts], settings.call_cost, settings.subscription_value
        )
        subscribers = float(curve.realised[n])
        table["realised_gain"] = realised / subscribers if subscribers > 0 else np.nan
    return table


def calibration_table(
    outcomes: np.ndarray | pd.Series,
    probabilities: np.ndarray | pd.Series,
    bins: int = 10,
    strategy: str = "quantile",
) -> pd.DataFrame:
    """Reliability bins: predicted versus observed conversion (customers with known y only).

    Args:
        bins: number of bins.
        strategy: ``quantile`` (equal numbers of customers, readable for a skewed week) or
            ``uniform`` (equal-width probability bins, 0-10%, 10-20%, ...).

    Returns:
        One row per non-empty bin: ``low``, ``high`` (probability range), ``customers``,
        ``mean_probability``, ``observed_rate``, ``subscribers``.
    """
    y = np.asarray(outcomes, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    known = ~np.isnan(y)
    y, p = y[known], p[known]
    columns = ["low", "high", "customers", "mean_probability", "observed_rate", "subscribers"]
    if len(y) == 0:
        return pd.DataFrame(columns=columns)
    if strategy == "quantile":
        order = np.argsort(p, kind="stable")
        groups = [g for g in np.array_split(order, min(bins, len(order))) if len(g)]
    elif strategy == "uniform":
        which = np.minimum((p * bins).astype(int), bins - 1)
        groups = [np.flatnonzero(which == b) for b in range(bins)]
        groups = [g for g in groups if len(g)]
    else:
        raise ValueError(f"Unknown strategy {strategy!r}; use 'quantile' or 'uniform'.")
    rows = [
        {
            "low": float(p[g].min()),
            "high": float(p[g].max()),
            "customers": len(g),
            "mean_probability": float(p[g].mean()),
            "observed_rate": float(y[g].mean()),
            "subscribers": int(y[g].sum()),
        }
        for g in groups
    ]
    return pd.DataFrame(rows, columns=columns)


def format_money(value: float | None, decimals: int = 0) -> str:
    """Euros with thousands separators: ``€12,345``, ``-€1,234``, ``€5.00`` (decimals=2)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    rounded = round(float(value), decimals)
    sign = "-" if rounded < 0 else ""
    return f"{sign}€{abs(rounded):,.{decimals}f}"


def format_signed_money(value: float | None, decimals: int = 0) -> str:
    """Money with an explicit sign, for differences: ``+€1,234``, ``-€56``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = format_money(value, decimals)
    return text if text.startswith("-") else "+" + text


def describe_difference(value: float | None, decimals: int = 0) -> str:
    """A money difference in words: ``€1,234 more``, ``€56 less``, ``the same``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if round(float(value), decimals) == 0:
        return "the same"
    word = "more" if value > 0 else "less"
    return f"{format_money(abs(float(value)), decimals)} {word}"


def format_percent(value: float | None, decimals: int = 1) -> str:
    """A share as a percentage: ``0.1234`` -> ``12.3%``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):,.{decimals}f}%"


def format_count(value: float | None, decimals: int = 0) -> str:
    """A count with thousands separators: ``12,345`` (or ``123.4`` with decimals=1)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):,.{decimals}f}"
