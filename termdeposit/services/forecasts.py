"""Forecast a scored cohort's money: the week's rate, the recommendation, ranges on every figure.

One use case every front door calls (CLI ``score`` and ``issue``, API ``POST /score``, the
dashboard's Threshold & profit page), so the same cohort gives the same forecast, range and
recommendation everywhere. The week's error (``sigma``, larger for a small cohort) and the
percentiles of every 80% range come from the model's weekly rate model, measured out of time
when it was fitted (:mod:`termdeposit.modeling.base_rate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from termdeposit.core.config import BusinessSettings
from termdeposit.decisions.economics import (
    ThresholdCurve,
    build_curve,
    format_count,
    format_percent,
)
from termdeposit.decisions.forecast import (
    MoneyRange,
    ProfitForecaster,
    Recommendation,
    card_error,
    profit_range,
    recommend_with,
)
from termdeposit.modeling import base_rate
from termdeposit.modeling.registry import LoadedModel


@dataclass(frozen=True)
class CohortOutlook:
    """What the product forecasts for a scored cohort.

    Attributes:
        week: the cohort's forecast subscription rate and its range (None for a model saved
            before the weekly rate model existed).
        sigma: the cohort's week-level error (log-odds sd) behind every range.
        recommendation: threshold vs calling everyone vs calling nobody, in words.
        calls: customers called as chosen (threshold, top N or a list); chosen: their
            expected profit and range.
    """

    week: base_rate.WeekForecast | None
    sigma: float
    recommendation: Recommendation
    calls: int
    chosen: MoneyRange

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON outputs (API, CLI --json)."""
        return {
            "week_rate_forecast": None if self.week is None else self.week.as_dict(),
            "calls": self.calls,
            "expected_profit": self.chosen.as_dict(),
            "recommendation": self.recommendation.as_dict(),
        }

    def lines(self) -> list[str]:
        """The forecast in words, one line per figure (CLI)."""
        out = []
        if self.week is not None:
            out.append(
                f"This week's subscription rate is forecast at {format_percent(self.week.rate)} "
                f"(80% range {format_percent(self.week.low)} to {format_percent(self.week.high)})."
            )
        out.append(
            f"Calling these {format_count(self.calls)} customers: expected profit "
            f"{self.chosen.describe()}."
        )
        out.append(f"Recommendation: {self.recommendation.text}")
        return out


def cohort_outlook(
    model: LoadedModel | dict[str, Any],
    probabilities: np.ndarray,
    settings: BusinessSettings,
    called: np.ndarray | None = None,
    frame: pd.DataFrame | None = None,
    week: base_rate.WeekForecast | None = None,
) -> CohortOutlook:
    """Forecast a scored cohort.

    Args:
        model: the model that scored it (or its card).
        probabilities: the scored probabilities (already following the week's rate).
        settings: call cost and subscription value.
        called: True for the customers to be called as chosen (default: the recommendation).
        frame: the cohort's inputs, for the week's rate forecast (when ``week`` is not given).
        week: the week's rate forecast when already made (e.g. while scoring a large file).
    """
    card = model if isinstance(model, dict) else model.card
    p = np.asarray(probabilities, dtype=float)
    error = card_error(card, len(p))
    if week is None and frame is not None and len(frame):
        rate_model = base_rate.from_card(card)
        if rate_model is not None:
            week = rate_model.predict(base_rate.composition_sums(frame))
    forecaster = ProfitForecaster.for_error(build_curve(p), error)
    advice = recommend_with(forecaster, settings)
    if called is None:
        calls, chosen = advice.calls, advice.model
    else:
        called = np.asarray(called, dtype=bool)
        chosen = profit_range(p[called], error.sigma, settings, error.levels)
        calls = int(called.sum())
    return CohortOutlook(week, error.sigma, advice, calls, chosen)


def cohort_forecaster(card: dict[str, Any], curve: ThresholdCurve) -> ProfitForecaster:
    """Ranges for any number of calls of a cohort (built once; each range is then cheap)."""
    return ProfitForecaster.for_error(curve, card_error(card, curve.size))


def week_forecast(card: dict[str, Any], frame: pd.DataFrame) -> base_rate.WeekForecast | None:
    """The cohort's forecast subscription rate and its range (None for an older model)."""
    rate_model = base_rate.from_card(card)
    if rate_model is None or not len(frame):
        return None
    return rate_model.predict(base_rate.composition_sums(frame))


def recommendation(forecaster: ProfitForecaster, settings: BusinessSettings) -> Recommendation:
    """Threshold vs calling everyone vs calling nobody, for the cohort of ``forecaster``."""
    return recommend_with(forecaster, settings)


def what_if_probability(
    card: dict[str, Any],
    raw_after: float,
    raw_before: float,
    issued_before: float,
    customers: int,
) -> float:
    """A customer's probability after a what-if change, in the same week as the cohort's
    (``customers``: the cohort's size, which sets its week-level error)."""
    rate_model = base_rate.from_card(card)
    sigma = 0.0 if rate_model is None else rate_model.sigma_for(customers)
    return base_rate.same_week(raw_after, raw_before, issued_before, sigma)
