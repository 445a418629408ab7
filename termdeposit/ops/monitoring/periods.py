"""Weekly periods: the plan of a cohort, periods (a cohort file, or the API's records rolled up
per week), their expected and realised figures.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings, default_settings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import (
    ID_COLUMN,
)
from termdeposit.decisions.abtest import ab_results
from termdeposit.decisions.forecast import card_error, profit_range
from termdeposit.modeling import registry
from termdeposit.modeling.metrics import expected_calibration_error
from termdeposit.ops.monitoring.statistics import estimated_auc, mean_confidence
from termdeposit.storage.store import Store, open_store

# -- the plan of a cohort -----------------------------------------------------------------------


@dataclass
class Plan:
    """What was decided for a cohort: the model's probabilities and who was to be called."""

    cohort_id: int
    model_version: str
    threshold: float | None
    members: pd.DataFrame
    call_list_id: int | None
    settings: BusinessSettings
    ab_share: float


def cohort_plan(
    store: Store, cohort_id: int, settings: BusinessSettings | None = None
) -> Plan | None:
    """The latest call list of a cohort, or else its latest scoring; None if never scored."""
    settings = settings or default_settings()
    lists = store.call_lists(cohort_id)
    if len(lists):
        latest = lists.iloc[-1]
        members = store.call_list_members(int(latest["id"]))
        list_settings = BusinessSettings(
            call_cost=float(latest["call_cost"]),
            subscription_value=float(latest["subscription_value"]),
            capacity=None if pd.isna(latest["capacity"]) else int(latest["capacity"]),
        )
        return Plan(
            cohort_id,
            str(latest["model_version"]),
            None if pd.isna(latest["threshold"]) else float(latest["threshold"]),
            members,
            int(latest["id"]),
            list_settings,
            float(latest["ab_share"] or 0.0),
        )
    runs = store.scoring_runs(cohort_id)
    if runs.empty:
        return None
    latest = runs.iloc[-1]
    scored = store.predictions(int(latest["id"]))
    members = pd.DataFrame(
        {
            ID_COLUMN: scored["customer_id"].astype(str),
            "group": "model",
            "call": scored["decision"].astype(bool),
            "probability": scored["probability"].astype(float),
        }
    )
    return Plan(
        cohort_id,
        str(latest["model_version"]),
        None if pd.isna(latest["threshold"]) else float(latest["threshold"]),
        members,
        None,
        settings,
        0.0,
    )


# -- periods ------------------------------------------------------------------------------------


@dataclass
class Period:
    """One week as monitoring sees it: a cohort file, or the API's records of one week (day).

    Attributes:
        key: ``cohort:<id>`` or ``api:<ISO week or day>``: alerts are scoped by it.
        label: the week label shown to users.
        cohort_ids: the cohorts it holds (several for an API roll-up).
        frame: one row per customer: ``cohort_id``, ``customer_id``, the 19 inputs,
            ``probability``, ``call`` (planned), ``group``, ``called`` and ``subscribed``
            (NaN until the outcome is recorded).
        model_version: the model that scored it (the latest one, for a roll-up).
        settings: the money settings of its call list (or the defaults).
        call_list_id: its call list (single cohorts), for the A/B figures.
        ab_share: the hold-out share of that call list.
        threshold: the decision threshold used, if one.
    """

    key: str
    label: str
    cohort_ids: list[int]
    frame: pd.DataFrame
    model_version: str
    settings: BusinessSettings = field(default_factory=default_settings)
    call_list_id: int | None = None
    ab_share: float = 0.0
    threshold: float | None = None

    @property
    def rows(self) -> int:
        """Customers in the period."""
        return len(self.frame)

    @cached_property
    def outcomes(self) -> pd.DataFrame:
        """The called customers with a recorded result."""
        known = self.frame["called"].notna() & self.frame["called"].astype(float).eq(1)
        return self.frame[known]


def api_rollup() -> str:
    """How API records are grouped into periods: ``week`` (ISO week, default) or ``day``."""
    value = os.environ.get("TERMDEPOSIT_API_ROLLUP", "week").strip().lower() or "week"
    if value not in ("week", "day"):
        raise TermDepositError(
            f"TERMDEPOSIT_API_ROLLUP must be week or day, not {value!r}.",
            hint="week rolls the API's records of one ISO week into one monitored period.",
        )
    return value


def rollup_key(uploaded_at: dt.datetime, rollup: str = "week") -> str:
    """The API period a record logged at ``uploaded_at`` (UTC) belongs to."""
    if rollup == "day":
        return f"{uploaded_at:%Y-%m-%d}"
    iso = uploaded_at.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def load_periods(store: Store, settings: BusinessSettings | None = None) -> list[Period]:
    """Every scored period in the order they arrived, with inputs, plans and outcomes."""
    cohorts = store.cohorts()
    if cohorts.empty:
        return []
    outcomes = store.outcomes()
    rollup = api_rollup()
    groups: dict[str, list[int]] = {}
    labels: dict[str, str] = {}
    for cohort_id, source, uploaded_at, week_label in zip(
        cohorts["id"].astype(int),
        cohorts["source"],
        cohorts["uploaded_at"],
        cohorts["week_label"],
        strict=True,
    ):
        if source == "api":
            when = rollup_key(uploaded_at, rollup)
            key, label = f"api:{when}", f"API {when}"
        else:
            key, label = f"cohort:{cohort_id}", str(week_label)
        groups.setdefault(key, []).append(cohort_id)
        labels.setdefault(key, label)
    periods = []
    for key, members in groups.items():
        period = _period(store, key, labels[key], members, outcomes, settings)
        if period is not None:
            periods.append(period)
    return periods


def _period(
    store: Store,
    key: str,
    label: str,
    cohort_ids: list[int],
    outcomes: pd.DataFrame,
    settings: BusinessSettings | None,
) -> Period | None:
    parts = []
    plans = []
    for cohort_id in cohort_ids:
        plan = cohort_plan(store, cohort_id, settings)
        if plan is None:
            continue
        inputs = store.cohort_inputs(cohort_id)
        part = inputs.merge(
            plan.members.loc[:, [ID_COLUMN, "group", "call", "probability"]],
            on=ID_COLUMN,
            how="inner",
        )
        part.insert(0, "cohort_id", cohort_id)
        parts.append(part)
        plans.append(plan)
    if not plans:
        return None
    frame = pd.concat(parts, ignore_index=True)
    known = outcomes.loc[:, ["cohort_id", ID_COLUMN, "called", "subscribed"]]
    frame = frame.merge(known, on=["cohort_id", ID_COLUMN], how="left")
    for column in ("called", "subscribed"):
        frame[column] = frame[column].astype(float)
    latest = plans[-1]
    single = len(plans) == 1
    return Period(
        key=key,
        label=label,
        cohort_ids=[p.cohort_id for p in plans],
        frame=frame,
        model_version=latest.model_version,
        settings=latest.settings,
        call_list_id=latest.call_list_id if single else None,
        ab_share=latest.ab_share if single else 0.0,
        threshold=latest.threshold,
    )


# -- weekly figures -----------------------------------------------------------------------------


def model_card(version: str) -> dict[str, Any]:
    """The card behind a model's money ranges (empty for a model no longer on disk: its ranges
    then use the fallback error)."""
    try:
        return registry.read_card(version)
    except TermDepositError:
        return {}


def period_figures(period: Period, card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Expected (with their 80% ranges) and, when outcomes exist, realised figures of one
    period. ``card``: the scoring model's card, whose weekly rate model gives the week-level
    error of a week of the period's size and the range's percentiles (default: read it)."""
    cost, value = period.settings.call_cost, period.settings.subscription_value
    frame = period.frame
    p = frame["probability"].to_numpy(float)
    planned = frame["call"].to_numpy(bool)
    card = model_card(period.model_version) if card is None else card
    error = card_error(card, period.rows)
    planned_range = profit_range(p[planned], error.sigma, period.settings, error.levels)
    row: dict[str, Any] = {
        "customers": int(len(frame)),
        "model_version": period.model_version,
        "threshold": period.threshold,
        "planned_calls": int(planned.sum()),
        "expected_conversion": float(p[planned].mean()) if planned.any() else float("nan"),
        "expected_subscriptions": float(p[planned].sum()),
        "expected_profit": float(money.profit(p[planned].sum(), planned.sum(), cost, value)),
        "expected_profit_low": planned_range.low,
        "expected_profit_high": planned_range.high,
        "expected_profit_call_all": float(money.profit(p.sum(), len(p), cost, value)),
        "estimated_auc": estimated_auc(p),
        "mean_confidence": mean_confidence(p),
    }
    row["estimated_uplift"] = row["expected_profit"] - row["expected_profit_call_all"]
    known = frame["called"].notna().to_numpy()
    row["has_outcomes"] = bool(known.any())
    if known.any():
        called = frame["called"].fillna(0).to_numpy(float) == 1
        subscribed = (frame["subscribed"].fillna(0).to_numpy(float) == 1) & called
        calls = int(called.sum())
        subs = int(subscribed.sum())
        uncalled = ~called
        realised_profit = float(money.profit(subs, calls, cost, value))
        called_range = profit_range(p[called], error.sigma, period.settings, error.levels)
        row.update(
            {
                "outcomes_recorded": int(known.sum()),
                "calls_made": calls,
                "subscribers": subs,
                "conversion": subs / calls if calls else float("nan"),
                "call_cost": float(cost * calls),
                "revenue": float(value * subs),
                "profit": realised_profit,
                "expected_subscriptions_of_called": float(p[called].sum()),
                "expected_profit_of_called": float(
                    money.profit(p[called].sum(), calls, cost, value)
                ),
                "expected_profit_of_called_low": called_range.low,
                "expected_profit_of_called_high": called_range.high,
                "profit_within_range": bool(
                    called_range.low - 1e-6 <= realised_profit <= called_range.high + 1e-6
                ),
                # the calls not made would have earned this (negative: saved money)
                "estimated_uplift_realised": -float(
                    money.profit(p[uncalled].sum(), uncalled.sum(), cost, value)
                ),
                "auc": _auc(subscribed[called], p[called]),
                "calibration_error": (
                    expected_calibration_error(subscribed[called].astype(int), p[called])
                    if calls
                    else float("nan")
                ),
            }
        )
    return row


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    if len(y) < 2 or len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y.astype(int), scores))


def figures_table(store: Store, periods: list[Period]) -> pd.DataFrame:
    """One row per period (oldest first): expected and realised figures, A/B uplift."""
    rows = []
    cards: dict[str, dict[str, Any]] = {}
    for period in periods:
        if period.model_version not in cards:
            cards[period.model_version] = model_card(period.model_version)
        figures = period_figures(period, cards[period.model_version])
        row = {
            "period": period.key,
            "cohort_id": period.cohort_ids[-1],
            "cohorts": len(period.cohort_ids),
            "week_label": period.label,
            **figures,
        }
        if period.call_list_id is not None and period.ab_share > 0 and figures["has_outcomes"]:
            ab = ab_results(store, period.call_list_id)
            row["ab_uplift_per_customer"] = ab.uplift_per_customer
            row["ab_uplift_low"] = ab.interval[0]
            row["ab_uplift_high"] = ab.interval[1]
            row["ab_verdict"] = ab.verdict
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    if "conversion" in table:
        previous = table["conversion"].shift(1).rolling(4, min_periods=1).mean()
        table["trailing_conversion"] = previous
    return table


def weekly_table(
    store: Store | None = None, settings: BusinessSettings | None = None
) -> pd.DataFrame:
    """One row per monitored period (oldest first): expected and realised figures, A/B uplift.

    The money settings are those recorded with the cohort's call list, or ``settings``.
    """
    store = store or open_store()
    return figures_table(store, load_periods(store, settings))
