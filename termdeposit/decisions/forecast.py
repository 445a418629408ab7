"""Money forecasts with an honest range, and a recommendation never worse than the simple ones.

A week's profit is uncertain for two reasons: who among the called subscribes is chance
(binomial), and the week's rate itself may be off (the week-level error of the rate forecast,
sd ``sigma`` on the log-odds scale for a cohort of its size, measured out of time; see
:mod:`termdeposit.modeling.base_rate`). The 80% range is the 10th to 90th percentile of profit
under both (a mixture, over the week-level error, of the normal approximation of the binomial
sum), the two percentiles recalibrated on past weeks so that they held 80% of them. On the
reference backtest it held the realised weekly profit in about four weeks of five (README,
"Weekly backtest").

The recommendation compares, on the product's own estimates, calling the customers above the
profit-maximising threshold with calling everyone and calling nobody, and says which it
recommends and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings
from termdeposit.decisions.economics import (
    ThresholdCurve,
    format_money,
    format_percent,
    optimal_calls,
    threshold_for_calls,
)
from termdeposit.modeling.base_rate import (
    NOMINAL_LEVELS,
    WeekError,
    from_card,
    node_probabilities,
    node_weights_for,
)

#: Share of outcomes the range holds (10th to 90th percentile before recalibration).
RANGE_LEVEL = 0.8
#: Used when a model carries no measured error (saved before the rate model existed).
FALLBACK_SIGMA = 0.6


def card_error(card: dict[str, Any], customers: int) -> WeekError:
    """The week-level error of a cohort of ``customers`` scored by the model of ``card``, and
    its range's percentiles (the fallback for a model saved before the weekly rate model)."""
    rate_model = from_card(card)
    return WeekError(FALLBACK_SIGMA) if rate_model is None else rate_model.error_for(customers)


CHOICES = ("threshold", "everyone", "nobody")


@dataclass(frozen=True)
class MoneyRange:
    """An expected profit and its 80% range."""

    expected: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """Rounded plain values."""
        return {
            "expected": round(self.expected, 2),
            "low": round(self.low, 2),
            "high": round(self.high, 2),
        }

    def describe(self) -> str:
        """``€1,234 (80% range €800 to €1,700)``."""
        return (
            f"{format_money(self.expected)} (80% range {format_money(self.low)} to "
            f"{format_money(self.high)})"
        )


class ProfitForecaster:
    """Profit ranges for the best ``k`` customers of a cohort, for any ``k`` (one cohort).

    Built once per cohort from its probabilities in rank order: the customers' probabilities
    at every node of the week-level error, summed by blocks of :data:`BLOCK` customers and
    added up block by block. A range for any ``k`` then takes the sums up to ``k``'s block and
    the few customers after it (at most ``BLOCK - 1``), so memory stays at a few nodes per
    block, not per customer (a million customers: about 0.3 MB instead of 500 MB). ``sigma``
    is the cohort's week-level error and ``levels`` the percentiles of its 80% range (both
    from :meth:`termdeposit.modeling.base_rate.BaseRateModel.error_for`).
    """

    #: Customers per block of the running sums.
    BLOCK = 1024
    #: Customers whose node probabilities are held in memory at once while building.
    _CHUNK = 64 * BLOCK

    def __init__(
        self,
        curve: ThresholdCurve,
        sigma: float,
        levels: tuple[float, float] = NOMINAL_LEVELS,
    ) -> None:
        self.curve = curve
        self.sigma = float(sigma)
        self.levels = levels
        self.weights = node_weights_for(self.sigma)
        probabilities = curve.probabilities
        sums_p, sums_var = [np.zeros((1, len(self.weights)))], [np.zeros((1, len(self.weights)))]
        for start in range(0, len(probabilities), self._CHUNK):
            nodes = node_probabilities(probabilities[start : start + self._CHUNK], self.sigma)
            blocks = np.arange(0, len(nodes), self.BLOCK)
            sums_p.append(np.add.reduceat(nodes, blocks, axis=0))
            sums_var.append(np.add.reduceat(nodes * (1 - nodes), blocks, axis=0))
        self._cum_p = np.cumsum(np.vstack(sums_p), axis=0)
        self._cum_var = np.cumsum(np.vstack(sums_var), axis=0)

    def _node_sums(self, calls: int) -> tuple[np.ndarray, np.ndarray]:
        """Sums over the ``calls`` best customers of their node probabilities and variances."""
        block = calls // self.BLOCK
        total_p, total_var = self._cum_p[block].copy(), self._cum_var[block].copy()
        rest = self.curve.probabilities[block * self.BLOCK : calls]
        if len(rest):
            nodes = node_probabilities(rest, self.sigma)
            total_p += nodes.sum(axis=0)
            total_var += (nodes * (1 - nodes)).sum(axis=0)
        return total_p, total_var

    @classmethod
    def for_error(cls, curve: ThresholdCurve, error: WeekError) -> ProfitForecaster:
        """The forecaster of a cohort whose week-level error is ``error``."""
        return cls(curve, error.sigma, error.levels)

    def profit(self, calls: int, settings: BusinessSettings) -> MoneyRange:
        """Expected profit of calling the ``calls`` best customers and its range."""
        calls = int(min(max(calls, 0), self.curve.size))
        cost, value = settings.call_cost, settings.subscription_value
        node_p, node_var = self._node_sums(calls)
        means = money.profit(node_p, np.full_like(node_p, calls), cost, value)
        sds = value * np.sqrt(node_var)
        expected = money.profit(float(self.curve.expected[calls]), calls, cost, value)
        if calls == 0:
            return MoneyRange(0.0, 0.0, 0.0)
        return MoneyRange(
            expected,
            _mixture_quantile(means, sds, self.weights, self.levels[0]),
            _mixture_quantile(means, sds, self.weights, self.levels[1]),
        )

    def subscribers(self, calls: int) -> MoneyRange:
        """Expected subscribers among the ``calls`` best customers and their range."""
        return self.profit(calls, BusinessSettings(0.0, 1.0))


def profit_range(
    called: np.ndarray,
    sigma: float,
    settings: BusinessSettings,
    levels: tuple[float, float] = NOMINAL_LEVELS,
) -> MoneyRange:
    """Expected profit of calling exactly these customers (their probabilities) and its range.

    ``sigma`` is the week-level error of the whole cohort they belong to (not of the called
    alone) and ``levels`` the percentiles of its range.
    """
    called = np.asarray(called, dtype=float)
    if len(called) == 0:
        return MoneyRange(0.0, 0.0, 0.0)
    nodes = node_probabilities(called, sigma)
    weights = node_weights_for(sigma)
    cost, value = settings.call_cost, settings.subscription_value
    means = money.profit(nodes.sum(axis=0), len(called), cost, value)
    sds = value * np.sqrt((nodes * (1 - nodes)).sum(axis=0))
    return MoneyRange(
        money.profit(float(called.sum()), len(called), cost, value),
        _mixture_quantile(means, sds, weights, levels[0]),
        _mixture_quantile(means, sds, weights, levels[1]),
    )


def _mixture_quantile(means: np.ndarray, sds: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of a mixture of normals (bisection on the mixture's distribution)."""
    sds = np.maximum(sds, 1e-9)
    low = float((means - 8 * sds).min())
    high = float((means + 8 * sds).max())
    for _ in range(60):
        middle = (low + high) / 2
        if float(weights @ ndtr((middle - means) / sds)) < q:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@dataclass(frozen=True)
class Recommendation:
    """What the product recommends for a cohort, with the figures behind it.

    Attributes:
        choice: ``threshold`` (call the customers at or above it), ``everyone`` or ``nobody``.
        threshold: the probability threshold recommended (1.0 when nobody is called).
        calls: customers to call; customers: in the cohort.
        model: expected profit of the recommended calls and its range.
        everyone: the same for calling every customer; nobody earns 0 for sure.
        text: the recommendation and why, in words.
    """

    choice: str
    threshold: float
    calls: int
    customers: int
    model: MoneyRange
    everyone: MoneyRange
    text: str

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON outputs."""
        return {
            "choice": self.choice,
            "threshold": round(self.threshold, 6),
            "calls": self.calls,
            "customers": self.customers,
            "expected_profit": self.model.as_dict(),
            "expected_profit_calling_everyone": self.everyone.as_dict(),
            "expected_profit_calling_nobody": 0.0,
            "text": self.text,
        }


def recommend(
    curve: ThresholdCurve, settings: BusinessSettings, error: WeekError | None
) -> Recommendation:
    """Compare the profit-maximising threshold with calling everyone and calling nobody.

    All three are judged on the product's own expected profit; the threshold maximises it, so
    it is never expected to earn less than either simple policy. When it calls everyone or
    nobody, that is what is recommended.
    """
    error = WeekError(FALLBACK_SIGMA) if error is None else error
    return recommend_with(ProfitForecaster.for_error(curve, error), settings)


def recommend_with(forecaster: ProfitForecaster, settings: BusinessSettings) -> Recommendation:
    """:func:`recommend` for a cohort whose forecaster is already built (any money setting)."""
    curve = forecaster.curve
    n = curve.size
    calls = optimal_calls(curve, settings) if n else 0
    model = forecaster.profit(calls, settings)
    everyone = forecaster.profit(n, settings)
    threshold = threshold_for_calls(curve, calls) if n else 1.0
    choice = "everyone" if calls == n and n else ("nobody" if calls == 0 else "threshold")
    text = _explain(choice, calls, n, threshold, model, everyone, settings)
    return Recommendation(choice, threshold, calls, n, model, everyone, text)


def _explain(
    choice: str,
    calls: int,
    n: int,
    threshold: float,
    model: MoneyRange,
    everyone: MoneyRange,
    settings: BusinessSettings,
) -> str:
    """The recommendation in words: what to do, what it should earn, against the others."""
    break_even = format_percent(settings.break_even)
    if choice == "nobody":
        return (
            f"Call nobody this week: no customer's chance of subscribing reaches the "
            f"break-even {break_even} (cost ÷ value), so every call is expected to lose money. "
            f"Calling all {n:,} would be expected to earn {everyone.describe()}."
        )
    if choice == "everyone":
        return (
            f"Call all {n:,} customers: every one's chance of subscribing is at least the "
            f"break-even {break_even}. Expected profit {model.describe()}; calling nobody "
            "earns €0."
        )
    gain = model.expected - everyone.expected
    return (
        f"Call the {calls:,} of {n:,} customers with a chance of at least "
        f"{format_percent(threshold, 1)} (the break-even is {break_even}). Expected profit "
        f"{model.describe()}, {format_money(gain)} more than calling everyone "
        f"({everyone.describe()}) and more than calling nobody (€0)."
    )
