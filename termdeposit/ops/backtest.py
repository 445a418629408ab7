"""Weekly backtest: replay the reference data week by week, as the product would have run it.

Each scored week runs the product's own weekly procedure: the scoring model is refitted every
``retrain_every`` weeks on all earlier weeks (the learning loop; the model family is fixed: the
search itself is not replayed), the weekly rate model is refitted every week on all earlier
weeks and the week's probabilities follow its forecast rate
(:mod:`termdeposit.modeling.base_rate`, the code every scoring path runs), and the product's
recommendation (:func:`termdeposit.decisions.forecast.recommend`: the profit-maximising
threshold, compared with calling everyone and nobody) decides whom to call, with the expected
profit and its 80% range. Nothing from a week's future, nor the week's own outcomes, is used.

For each week it records what the product expected and what was realised, and the simple
policies: calling everyone, calling nobody, the rate rule (call the whole week when the rate of
the most recent whole weeks holding >= 1,000 customers is at least cost / value, else nobody)
and the hindsight bound (the best threshold chosen after seeing the week's outcomes, with the
same ranking). ``--grid`` runs every cost x value cell of :data:`GRID` in one pass (the
probabilities do not depend on the money settings).

The previous product method (Platt recalibration on the latest >= 1,000 outcomes, break-even
threshold) is ``BacktestConfig(recalibration="platt", follow_week=False,
threshold_rule="break-even")``; the data README's reference method is :func:`reference_config`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import TARGET, inputs_only
from termdeposit.decisions.economics import build_curve, hindsight_calls
from termdeposit.decisions.forecast import ProfitForecaster, recommend_with
from termdeposit.modeling.base_rate import BaseRateModel, composition_sums, week_table
from termdeposit.modeling.blend import macro_drop_positions
from termdeposit.modeling.metrics import expected_calibration_error
from termdeposit.modeling.train import build_pipeline
from termdeposit.ops.retrain import ScoreMap

#: The reference scored weeks: week 13 (July 2008) to the last week (118).
FIRST_SCORED_WEEK = 13
RECALIBRATIONS = ("none", "intercept", "platt", "isotonic")
THRESHOLD_RULES = ("recommend", "break-even", "past-profit")
#: Every money setting of ``--grid``: cost {2, 5, 10, 20} x value {20, 50, 100, 200}.
GRID = tuple((float(c), float(v)) for c in (2, 5, 10, 20) for v in (20, 50, 100, 200))
#: ``--quick``: a CI-sized replay (weeks 13-40, the model refitted every 8 weeks).
QUICK = {"first_week": 13, "last_week": 40, "retrain_every": 8}
#: The rate rule reads the most recent whole weeks holding at least this many customers.
RATE_RULE_ROWS = 1000
BACKTEST_MODELS = ("logreg", "blend")
#: The forest of the ``blend`` backtest model, the regression + forest average (fixed: the
#: replay retrains 27 times).
BLEND_FOREST = {"n_estimators": 150, "max_depth": 10, "min_samples_leaf": 20, "max_features": 0.3}

ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class BacktestConfig:
    """How the replay decides; the defaults are the product's method.

    Attributes:
        call_cost / subscription_value: the money settings.
        retrain_every: retrain every k scored weeks on all earlier weeks.
        first_week / last_week: the scored weeks (inclusive; last None = to the end).
        recalibration: map fitted on recent outcomes: none (the product), intercept (shift the
            log-odds so the mean matches), platt (slope and intercept) or isotonic.
        recalibration_rows: use the most recent whole weeks holding at least this many rows.
        follow_week: make each week's probabilities follow its forecast rate (the product).
        threshold_rule: ``recommend`` (the product's recommendation: the profit-maximising
            threshold on its own estimates), ``break-even`` (call when probability >= cost /
            value) or ``past-profit`` (the threshold that maximised profit over the previous
            ``lookback_weeks`` scored weeks; the first calls all).
        macro: macro-economic inputs the model sees (``all`` or ``nr.employed``).
        C: inverse regularisation strength of the logistic regression.
        half_life_weeks: recency weighting of training rows (None = all rows weigh the same).
        model: ``logreg``, or ``blend`` (that regression averaged with a random forest on all
            five macro inputs, as the training's fourth candidate).
    """

    call_cost: float = 5.0
    subscription_value: float = 100.0
    retrain_every: int = 4
    first_week: int = FIRST_SCORED_WEEK
    last_week: int | None = None
    recalibration: str = "none"
    recalibration_rows: int = 1000
    follow_week: bool = True
    threshold_rule: str = "recommend"
    lookback_weeks: int = 8
    macro: str = "nr.employed"
    C: float = 1.0
    half_life_weeks: float | None = None
    model: str = "logreg"

    def check(self) -> BacktestConfig:
        """Refuse settings that cannot be replayed, with what to use instead."""
        if self.recalibration not in RECALIBRATIONS:
            raise TermDepositError(
                f"Unknown recalibration '{self.recalibration}'.",
                hint=f"Use one of: {', '.join(RECALIBRATIONS)}.",
            )
        if self.threshold_rule not in THRESHOLD_RULES:
            raise TermDepositError(
                f"Unknown threshold rule '{self.threshold_rule}'.",
                hint=f"Use one of: {', '.join(THRESHOLD_RULES)}.",
            )
        if self.macro not in ("all", "nr.employed"):
            raise TermDepositError(
                f"Unknown macro input set '{self.macro}'.", hint="Use all or nr.employed."
            )
        if self.model not in BACKTEST_MODELS:
            raise TermDepositError(
                f"Unknown backtest model '{self.model}'.",
                hint=f"Use one of: {', '.join(BACKTEST_MODELS)}.",
            )
        if self.retrain_every < 1 or self.lookback_weeks < 1 or self.recalibration_rows < 1:
            raise TermDepositError(
                "The retrain interval, lookback and recalibration rows must be at least 1."
            )
        if self.call_cost < 0 or self.subscription_value <= 0:
            raise TermDepositError(
                "The call cost cannot be negative and a subscription must be worth something."
            )
        if self.first_week < 1:
            raise TermDepositError(
                "The first scored week must be 1 or later: the model needs earlier weeks."
            )
        if self.last_week is not None and self.last_week < self.first_week:
            raise TermDepositError(
                f"The last week ({self.last_week}) is before the first ({self.first_week})."
            )
        return self


def reference_config(call_cost: float = 5.0, subscription_value: float = 100.0) -> BacktestConfig:
    """The data README's reference method (plain LR, past-profit threshold, no recalibration)."""
    return BacktestConfig(
        call_cost=call_cost,
        subscription_value=subscription_value,
        recalibration="none",
        follow_week=False,
        threshold_rule="past-profit",
        macro="all",
    )


def previous_product_config(
    call_cost: float = 5.0, subscription_value: float = 100.0
) -> BacktestConfig:
    """The product's method before the weekly rate model (Platt on the latest >= 1,000
    outcomes, break-even threshold): the "now" figures of the forecasts issue."""
    return BacktestConfig(
        call_cost=call_cost,
        subscription_value=subscription_value,
        recalibration="platt",
        follow_week=False,
        threshold_rule="break-even",
    )


@dataclass
class BacktestResult:
    """Totals and the per-week table of one replay."""

    config: BacktestConfig
    weeks: pd.DataFrame
    profit_model: float
    profit_call_all: float
    calls_model: int
    calls_all: int
    subscribers: int
    subscribers_reached: int
    ece: float
    ece_raw: float
    top_half_share: float
    seconds: float
    weekly_rate_gap: float = float("nan")
    cells: list[dict[str, Any]] = field(default_factory=list)
    cell_weeks: dict[tuple[float, float], pd.DataFrame] = field(default_factory=dict)

    @property
    def uplift(self) -> float:
        """Profit of the model's calls minus the profit of calling everyone."""
        return self.profit_model - self.profit_call_all

    def as_dict(self) -> dict[str, Any]:
        """The figures and the per-week table as plain JSON-ready values."""
        weeks = self.weeks.copy()
        return {
            "profit_model": round(self.profit_model, 2),
            "profit_call_all": round(self.profit_call_all, 2),
            "uplift": round(self.uplift, 2),
            "uplift_pct_of_call_all": (
                round(100 * self.uplift / abs(self.profit_call_all), 2)
                if self.profit_call_all
                else None
            ),
            "profit_hindsight": round(float(weeks["profit_hindsight"].sum()), 2),
            "calls_model": self.calls_model,
            "calls_all": self.calls_all,
            "subscribers": self.subscribers,
            "subscribers_reached": self.subscribers_reached,
            "subscribers_reached_share": round(self.subscribers_reached / self.subscribers, 4)
            if self.subscribers
            else None,
            "top_half_share": round(self.top_half_share, 4),
            "ece": round(self.ece, 4),
            "ece_before_recalibration": round(self.ece_raw, 4),
            "scored_weeks": int(len(weeks)),
            "first_week": int(weeks["week"].min()) if len(weeks) else None,
            "last_week": int(weeks["week"].max()) if len(weeks) else None,
            "seconds": round(self.seconds, 1),
            "config": asdict(self.config),
            "weeks": json_records(weeks),
        }

    def summary(self) -> dict[str, Any]:
        """The issue's JSON: the window, one entry per money cell, ECE and weekly rate gap."""
        weeks = self.weeks
        return {
            "window": {
                "first_week": int(weeks["week"].min()) if len(weeks) else None,
                "last_week": int(weeks["week"].max()) if len(weeks) else None,
                "rows": int(weeks["rows"].sum()),
            },
            "cells": self.cells,
            "ece": round(self.ece, 5),
            "weekly_rate_gap": round(self.weekly_rate_gap, 5),
        }


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as plain Python values (numpy scalars converted)."""
    records = []
    for row in frame.to_dict(orient="records"):
        records.append(
            {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        )
    return records


#: A threshold that calls nobody (above every probability).
CALL_NOBODY = 1.01


def profit_threshold(probabilities: np.ndarray, y: np.ndarray, cost: float, value: float) -> float:
    """The threshold that would have maximised profit on these scores (above 1: call nobody).

    The search is the dashboard's (:func:`termdeposit.decisions.economics.hindsight_calls`):
    one rule for where a threshold can cut (never between equal scores) and for calling nobody.
    """
    curve = build_curve(probabilities, y)
    calls = hindsight_calls(curve, BusinessSettings(call_cost=cost, subscription_value=value))
    return float(curve.probabilities[calls - 1]) if calls else CALL_NOBODY


def recent_rows(weeks: np.ndarray, before: int, min_rows: int) -> np.ndarray:
    """Positions of the most recent whole weeks before ``before`` with >= min_rows rows."""
    past = np.flatnonzero(weeks < before)
    if len(past) <= min_rows:
        return past
    cut_week = weeks[past[-min_rows]]
    return past[weeks[past] >= cut_week]


def fit_recalibration(method: str, scores: np.ndarray, y: np.ndarray) -> Callable:
    """Fit a map from raw probabilities to recalibrated ones on recent outcomes.

    Shared with :mod:`termdeposit.ops.retrain` (the product's ``recalibrate`` command), so the
    backtest measures exactly what the product does.
    """
    return ScoreMap.fit(method, scores, y)


def run_backtest(
    frame: pd.DataFrame,
    config: BacktestConfig | None = None,
    progress: ProgressFn | None = None,
    cache: dict[tuple, np.ndarray] | None = None,
    cells: tuple[tuple[float, float], ...] | None = None,
) -> BacktestResult:
    """Replay the weeks of ``frame`` (the reference data with ``week`` and ``y``).

    Args:
        frame: rows in time order with the 19 inputs, ``y``, ``week`` and ``week_label``.
        config: the method (default: the product's).
        progress: called with the fraction of scored weeks done.
        cache: share between runs on the same frame (e.g. an ablation): each refitted
            model's scores of every row, so variants that differ only in recalibration,
            threshold or money settings do not refit the same models.
        cells: money settings (cost, value) to replay in the same pass (default: the
            config's); the result's ``weeks`` table is the config's own setting.
    """
    config = (config or BacktestConfig()).check()
    started = time.perf_counter()
    report = progress or (lambda fraction: None)
    weeks_all = frame["week"].to_numpy(int)
    last = int(weeks_all.max()) if config.last_week is None else config.last_week
    scored_weeks = [w for w in sorted(set(weeks_all)) if config.first_week <= w <= last]
    if not scored_weeks:
        raise TermDepositError(
            f"There are no weeks between {config.first_week} and {last} in the data.",
            hint="Run 'termdeposit weeks' to see them.",
        )
    own = (float(config.call_cost), float(config.subscription_value))
    settings_list = list(dict.fromkeys([own, *(cells or ())]))
    X = inputs_only(frame).reset_index(drop=True)
    y = frame[TARGET].to_numpy(int)
    labels = frame["week_label"].to_numpy() if "week_label" in frame else weeks_all.astype(str)
    table = week_table(frame.reset_index(drop=True), weeks_all)
    position = {int(w): i for i, w in enumerate(table["week"])}
    rate_predictions: dict[int, float] = {}

    rows: dict[tuple[float, float], list[dict[str, Any]]] = {s: [] for s in settings_list}
    history: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    issued: list[np.ndarray] = []
    raw_scores: list[np.ndarray] = []
    outcomes_seen: list[np.ndarray] = []
    top_half_hits = 0
    cache = {} if cache is None else cache
    scores_now = np.empty(0)
    trained_at = None
    # One BLAS thread: on a shared 2-core machine this makes each fit 10x faster.
    with threadpool_limits(1):
        for i, week in enumerate(scored_weeks):
            if trained_at is None or i % config.retrain_every == 0:
                key = (
                    week,
                    config.macro,
                    config.C,
                    config.half_life_weeks,
                    config.model,
                    len(frame),
                )
                if key not in cache:
                    train_rows = weeks_all < week
                    model = _fit(X[train_rows], y[train_rows], weeks_all[train_rows], week, config)
                    cache[key] = model.predict_proba(X)[:, 1]
                scores_now = cache[key]
                trained_at = week
            mask = weeks_all == week
            raw = scores_now[mask]
            probabilities = raw
            if config.recalibration != "none":
                recent = recent_rows(weeks_all, week, config.recalibration_rows)
                if len(recent) and 0 < y[recent].sum() < len(recent):
                    mapper = fit_recalibration(config.recalibration, scores_now[recent], y[recent])
                    probabilities = mapper(raw)
            rate_model = BaseRateModel.fit(
                table.iloc[: position[week]], predictions=rate_predictions
            )
            sums = composition_sums(X[mask])
            if config.follow_week:
                probabilities = rate_model.adjust(probabilities, sums)
            forecast_rate = float(rate_model.predict(sums).rate)
            outcome = y[mask]
            curve = build_curve(probabilities, outcome)
            forecaster = ProfitForecaster.for_error(curve, rate_model.error_for(len(outcome)))
            recent_rate = y[recent_rows(weeks_all, week, RATE_RULE_ROWS)].mean()
            realised = curve.realised if curve.realised is not None else np.zeros(curve.size + 1)
            for cost, value in settings_list:
                calls, threshold = _decide(config, cost, value, week, history, forecaster)
                expected = forecaster.profit(calls, BusinessSettings(cost, value))
                called = realised[calls]
                everyone = float(money.profit(outcome.sum(), len(outcome), cost, value))
                gains = money.profit(realised, np.arange(curve.size + 1), cost, value)
                rows[(cost, value)].append(
                    {
                        "week": int(week),
                        "label": str(labels[mask][0]),
                        "rows": int(mask.sum()),
                        "subscribers": int(outcome.sum()),
                        "model_trained_at_week": int(trained_at),
                        "threshold": round(float(min(threshold, 1.01)), 5),
                        "calls": int(calls),
                        "subscribers_reached": int(called),
                        "mean_probability": round(float(probabilities.mean()), 5),
                        "forecast_rate": round(forecast_rate, 5),
                        "rate": round(float(outcome.mean()), 5),
                        "sigma": round(rate_model.sigma_for(len(outcome)), 3),
                        "profit_model": float(money.profit(called, calls, cost, value)),
                        "expected_profit": round(expected.expected, 2),
                        "expected_low": round(expected.low, 2),
                        "expected_high": round(expected.high, 2),
                        "profit_call_all": everyone,
                        "profit_rate_rule": everyone if recent_rate >= cost / value else 0.0,
                        "profit_hindsight": max(0.0, float(gains.max())),
                    }
                )
            history[week] = (probabilities, outcome)
            issued.append(probabilities)
            raw_scores.append(raw)
            outcomes_seen.append(outcome)
            half = int(np.ceil(len(outcome) / 2))
            top_half_hits += int(outcome[np.argsort(-raw, kind="stable")[:half]].sum())
            report((i + 1) / len(scored_weeks))
    tables = {s: _with_cumulative(pd.DataFrame(r)) for s, r in rows.items()}
    weeks = tables[own]
    scores, raw_all, outcomes = (
        np.concatenate(issued),
        np.concatenate(raw_scores),
        np.concatenate(outcomes_seen),
    )
    gap = float(
        (weeks["rows"] * (weeks["mean_probability"] - weeks["rate"]).abs()).sum()
        / weeks["rows"].sum()
    )
    return BacktestResult(
        config=config,
        weeks=weeks,
        profit_model=float(weeks["profit_model"].sum()),
        profit_call_all=float(weeks["profit_call_all"].sum()),
        calls_model=int(weeks["calls"].sum()),
        calls_all=int(weeks["rows"].sum()),
        subscribers=int(weeks["subscribers"].sum()),
        subscribers_reached=int(weeks["subscribers_reached"].sum()),
        ece=expected_calibration_error(outcomes, scores),
        ece_raw=expected_calibration_error(outcomes, raw_all),
        top_half_share=top_half_hits / max(int(outcomes.sum()), 1),
        seconds=time.perf_counter() - started,
        weekly_rate_gap=gap,
        cells=[cell_summary(c, v, tables[(c, v)]) for c, v in (cells or (own,))],
        cell_weeks=tables,
    )


def _with_cumulative(weeks: pd.DataFrame) -> pd.DataFrame:
    weeks["cumulative_model"] = weeks["profit_model"].cumsum()
    weeks["cumulative_call_all"] = weeks["profit_call_all"].cumsum()
    return weeks


def _decide(
    config: BacktestConfig,
    cost: float,
    value: float,
    week: int,
    history: dict[int, tuple[np.ndarray, np.ndarray]],
    forecaster: ProfitForecaster,
) -> tuple[int, float]:
    """Customers called (the best ``k``) and the threshold, by the configured rule."""
    curve = forecaster.curve
    if config.threshold_rule == "recommend":
        advice = recommend_with(forecaster, BusinessSettings(cost, value))
        return advice.calls, advice.threshold
    if config.threshold_rule == "break-even":
        threshold = cost / value
    else:
        past = [w for w in history if week - config.lookback_weeks <= w < week]
        if not past:
            threshold = 0.0
        else:
            scores = np.concatenate([history[w][0] for w in past])
            outcomes = np.concatenate([history[w][1] for w in past])
            threshold = profit_threshold(scores, outcomes, cost, value)
    calls = int(np.searchsorted(-curve.probabilities, -threshold, side="right"))
    return calls, threshold


def cell_summary(cost: float, value: float, weeks: pd.DataFrame) -> dict[str, Any]:
    """One money cell of the issue's JSON from its per-week table.

    ``coverage`` is the share of weeks with at least one call whose realised profit fell in
    the 80% range and ``mean_range_width`` the range's mean width over those weeks (a range
    must hold the profit without being too wide to use); ``weekly_abs_error`` the mean over
    weeks of |expected - realised|;
    ``worst_week_loss`` the model's worst week against the better of calling everyone or
    nobody (0 or negative).
    """
    called = weeks["calls"] > 0
    inside = (weeks["profit_model"] >= weeks["expected_low"] - 1e-6) & (
        weeks["profit_model"] <= weeks["expected_high"] + 1e-6
    )
    shortfall = weeks["profit_model"] - np.maximum(weeks["profit_call_all"], 0.0)
    return {
        "cost": cost,
        "value": value,
        "profit_model": round(float(weeks["profit_model"].sum()), 2),
        "profit_call_all": round(float(weeks["profit_call_all"].sum()), 2),
        "profit_call_none": 0.0,
        "profit_rate_rule": round(float(weeks["profit_rate_rule"].sum()), 2),
        "profit_hindsight_weekly": round(float(weeks["profit_hindsight"].sum()), 2),
        "expected_profit_model": round(float(weeks["expected_profit"].sum()), 2),
        "expected_low": round(float(weeks["expected_low"].sum()), 2),
        "expected_high": round(float(weeks["expected_high"].sum()), 2),
        "coverage": round(float(inside[called].mean()), 4) if called.any() else None,
        "mean_range_width": (
            round(float((weeks["expected_high"] - weeks["expected_low"])[called].mean()), 2)
            if called.any()
            else None
        ),
        "weekly_abs_error": round(
            float((weeks["expected_profit"] - weeks["profit_model"]).abs().mean()), 2
        ),
        "worst_week_loss": round(float(min(shortfall.min(), 0.0)), 2),
    }


def _fit(
    X: pd.DataFrame, y: np.ndarray, weeks: np.ndarray, week: int, config: BacktestConfig
) -> Any:
    """Fit the scoring pipeline (logistic regression, or the blend) on the weeks before it."""
    if len(y) == 0 or y.min() == y.max():
        raise TermDepositError(
            f"Week {week} has no earlier weeks with both outcomes to learn from.",
            hint="Start the backtest at a later week.",
        )
    if config.model == "blend":
        model = build_pipeline("blend").set_params(
            clean__macro="all",
            clf__linear_drop=macro_drop_positions(config.macro),
            clf__linear__C=config.C,
            clf__forest__n_jobs=1,
            clf__boosted=None,
            **{f"clf__forest__{k}": v for k, v in BLEND_FOREST.items()},
        )
    else:
        model = build_pipeline("logreg").set_params(clean__macro=config.macro, clf__C=config.C)
    weights = None
    if config.half_life_weeks:
        weights = 0.5 ** ((week - weeks) / config.half_life_weeks)
    return model.fit(X, y, clf__sample_weight=weights)
