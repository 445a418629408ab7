"""Monitoring: weekly figures, expected against realised; drift; alerts that mean something.

**Periods.** Monitoring works on weekly periods: a cohort file (dashboard, command line,
weekly job) is one period; records scored one by one through the API are rolled into one
period per ISO week (``TERMDEPOSIT_API_ROLLUP=day``: per day), never one period per request.
Before outcomes arrive, the expected figures come from the probabilities (calls, conversion,
profit, and an AUC estimated from the calibrated scores alone); when the outcomes are uploaded
the realised figures stand beside them.

**Drift.** Each period's customers are compared with the training reference sample saved
beside the model that scored them (PSI of each customer input, and of the scores' spread) and
with the last 4 weeks. Small periods are pooled with the weeks before them (at most 4 weeks)
until they hold ``min_rows`` customers; with fewer, drift is not judged. A PSI is read *beyond
chance*: PSI less what sampling alone gives with that many rows ((bins - 1) x (1/n + 1/N)).

The month, the weekday and the five economic rates are the same for everyone in a week and
move every week: they are not customer drift. Whether the week's economy lies outside what the
model was trained on is reported as *information* ("the economy moved outside what the model
saw", with the range), and the score's drift is judged on the spread of the log-odds around the
week's median, so the economy moving every score together does not count as the score
drifting.

**Alerts.** A rule raises an alert only on enough rows (``min_rows`` customers for drift,
``min_outcomes`` called customers with a result for the outcome rules) and only when the effect
is large on those rows: beyond chance for PSI and calibration, and for AUC and conversion with
the one-sided 95% bound past the limit. A change that persists in small weeks gathers those
rows by pooling (up to ``recent_weeks`` weeks). An alert stands for an *episode*: while the
condition lasts it is one alert, refreshed every week (whichever model version is in
production), and a new alert comes only after the condition cleared (drift back in the stable
band, the KPI back within its limit; the alert is then marked cleared). Each run re-reads the
whole history, so the alerts are the same whenever the check runs.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings, default_settings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import feature_label
from termdeposit.core.schema import (
    CATEGORICAL_COLUMNS,
    CONTEXT_INPUTS,
    ID_COLUMN,
    INPUT_COLUMNS,
)
from termdeposit.decisions.abtest import ab_results
from termdeposit.decisions.forecast import card_error, profit_range
from termdeposit.modeling import registry
from termdeposit.modeling.metrics import expected_calibration_error
from termdeposit.ops.backtest import json_records
from termdeposit.storage.store import Store, open_store

#: PSI bands: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 significant shift.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25
CUSTOMER_INPUTS = tuple(c for c in INPUT_COLUMNS if c not in CONTEXT_INPUTS)
ECONOMY_INPUTS = tuple(c for c in CONTEXT_INPUTS if c not in CATEGORICAL_COLUMNS)
LIMITS_KEY = "alert_limits"
#: One-sided 95% normal quantile: "clearly past the limit".
Z_ONE_SIDED = 1.645
#: Smallest share used for an empty bin, so PSI stays finite.
_EPSILON = 1e-4
#: Rule names, and which of them are about drift.
DRIFT_RULES = ("input_drift", "score_drift")
OUTCOME_RULES = ("auc_drop", "conversion_drop", "calibration")
INFO_RULES = ("economy",)
CLEARED_BY = "monitoring (cleared)"


# -- PSI ----------------------------------------------------------------------------------------


def psi_band(value: float) -> str:
    """``stable`` (< 0.1), ``moderate`` (0.1-0.25) or ``significant`` (> 0.25)."""
    if np.isnan(value):
        return "n/a"
    if value > PSI_SIGNIFICANT:
        return "significant"
    return "moderate" if value >= PSI_MODERATE else "stable"


def bin_shares(
    expected: np.ndarray | pd.Series, actual: np.ndarray | pd.Series, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Shares of the reference and current values per bin, and the bin labels.

    Numbers are cut at the reference's deciles (repeated edges merged; the outer bins are
    open, so new extremes land in them); anything else is one bin per category.
    """
    expected = pd.Series(expected).dropna()
    actual = pd.Series(actual).dropna()
    if not pd.api.types.is_numeric_dtype(expected) or not pd.api.types.is_numeric_dtype(actual):
        e_share = expected.astype(str).value_counts(normalize=True)
        a_share = actual.astype(str).value_counts(normalize=True)
        categories = sorted(e_share.index.union(a_share.index))
        e_share = e_share.reindex(categories, fill_value=0)
        a_share = a_share.reindex(categories, fill_value=0)
        return e_share.to_numpy(float), a_share.to_numpy(float), categories
    values = expected.to_numpy(float)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    count = len(edges) + 1
    e = np.bincount(np.searchsorted(edges, values, side="right"), minlength=count) / len(values)
    current = actual.to_numpy(float)
    a = np.bincount(np.searchsorted(edges, current, side="right"), minlength=count) / max(
        len(current), 1
    )
    bounds = [-np.inf, *edges, np.inf]
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return e, a, labels


def chance_psi(rows: int, reference_rows: int, bins: int) -> float:
    """The PSI chance alone gives two samples of these sizes from one population.

    PSI is the symmetric Kullback-Leibler divergence of the binned shares; for samples of n
    and N rows from one population its expectation is about (bins - 1) x (1/n + 1/N) (checked
    by simulation for n from 30 to 2,000 with the smoothing of :func:`psi_parts`).
    """
    if rows == 0 or reference_rows == 0:
        return float("nan")
    return (bins - 1) * (1 / rows + 1 / reference_rows)


def psi_parts(
    expected: np.ndarray | pd.Series, actual: np.ndarray | pd.Series, bins: int = 10
) -> tuple[float, float]:
    """The PSI of ``actual`` against ``expected``, and the part of it beyond chance.

    The PSI is the usual one: sum (a - e) ln(a / e) over the bins, an empty bin counted as a
    share of 0.0001. The part beyond chance is computed on counts plus one half per bin (so an
    empty bin in a small sample does not explode it), less :func:`chance_psi`; never below 0.
    """
    expected = pd.Series(expected).dropna()
    actual = pd.Series(actual).dropna()
    if len(expected) == 0 or len(actual) == 0:
        return float("nan"), float("nan")
    e, a, _ = bin_shares(expected, actual, bins)
    raw = float(
        np.sum(
            (np.clip(a, _EPSILON, None) - np.clip(e, _EPSILON, None))
            * np.log(np.clip(a, _EPSILON, None) / np.clip(e, _EPSILON, None))
        )
    )
    k = len(e)
    n, big_n = len(actual), len(expected)
    smooth_a = (a * n + 0.5) / (n + 0.5 * k)
    smooth_e = (e * big_n + 0.5) / (big_n + 0.5 * k)
    smoothed = float(np.sum((smooth_a - smooth_e) * np.log(smooth_a / smooth_e)))
    return raw, max(0.0, smoothed - chance_psi(n, big_n, k))


def psi(expected: np.ndarray | pd.Series, actual: np.ndarray | pd.Series, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``: sum (a - e) ln(a / e)."""
    return psi_parts(expected, actual, bins)[0]


def psi_beyond_chance(
    expected: np.ndarray | pd.Series, actual: np.ndarray | pd.Series, bins: int = 10
) -> float:
    """The PSI less what chance gives with these sample sizes (see :func:`psi_parts`)."""
    return psi_parts(expected, actual, bins)[1]


def centred_log_odds(probabilities: np.ndarray | pd.Series) -> np.ndarray:
    """Log-odds of the scores less their median: the spread of the scores, not their level.

    The week's economy is the same for every customer of a week, so it moves every score's
    log-odds together; what is left is how the model ranks this week's customers.
    """
    p = np.clip(np.asarray(probabilities, dtype=float), 1e-6, 1 - 1e-6)
    p = p[~np.isnan(p)]
    z = np.log(p / (1 - p))
    return z - np.median(z) if len(z) else z


# -- performance estimation ---------------------------------------------------------------------


def estimated_auc(probabilities: np.ndarray) -> float:
    """AUC expected from calibrated probabilities alone (no outcomes needed).

    Each customer counts as a subscriber with weight p and as a non-subscriber with weight
    1 - p; the AUC is the weighted share of (subscriber, non-subscriber) pairs ranked in the
    right order (ties count half). Exact pair weights, O(n log n).
    """
    p = np.asarray(probabilities, dtype=float)
    if len(p) < 2:
        return float("nan")
    order = np.argsort(p, kind="stable")
    p_sorted = p[order]
    negatives = 1 - p_sorted
    _, starts = np.unique(p_sorted, return_index=True)
    positives_in_tie = np.add.reduceat(p_sorted, starts)
    negatives_in_tie = np.add.reduceat(negatives, starts)
    self_pairs = np.add.reduceat(p_sorted * negatives, starts)
    negatives_below = np.concatenate([[0.0], np.cumsum(negatives)])[starts]
    # a positive beats every negative with a lower score; pairs inside a tie count half
    correct = float(
        (positives_in_tie * negatives_below).sum()
        + 0.5 * (positives_in_tie * negatives_in_tie - self_pairs).sum()
    )
    total = p.sum() * negatives.sum() - (p * (1 - p)).sum()
    return float(correct / total) if total > 0 else float("nan")


def mean_confidence(probabilities: np.ndarray) -> float:
    """Mean of max(p, 1 - p): how sure the model is of its call / no-call split."""
    p = np.asarray(probabilities, dtype=float)
    return float(np.maximum(p, 1 - p).mean()) if len(p) else float("nan")


def within_period_auc(
    y: np.ndarray, scores: np.ndarray, periods: np.ndarray
) -> tuple[float, int, int]:
    """AUC over the (subscriber, non-subscriber) pairs of the same period, pooled.

    Pairs across weeks are left out: their order says how the weeks' economies differ, not how
    well customers are ranked. Returns (AUC, subscribers, non-subscribers).
    """
    y = np.asarray(y, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    periods = np.asarray(periods)
    correct = pairs = 0.0
    for period in np.unique(periods):
        mask = periods == period
        pos, neg = int(y[mask].sum()), int((~y[mask]).sum())
        if pos == 0 or neg == 0:
            continue
        ranks = rankdata(scores[mask])
        correct += ranks[y[mask]].sum() - pos * (pos + 1) / 2
        pairs += pos * neg
    positives, negatives = int(y.sum()), int((~y).sum())
    return (correct / pairs if pairs else float("nan")), positives, negatives


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an AUC (Hanley and McNeil, 1982)."""
    if np.isnan(auc) or positives == 0 or negatives == 0:
        return float("nan")
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def chance_calibration_error(scores: np.ndarray, bins: int = 10) -> float:
    """The calibration error a perfectly calibrated model shows on this many rows, by chance.

    In each bin the observed rate of n customers with mean score p wanders by about
    sqrt(p (1 - p) / n); the mean absolute value of that is sqrt(2 / pi) times it.
    """
    scores = np.asarray(scores, dtype=float)
    if len(scores) == 0:
        return float("nan")
    which = np.minimum((scores * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        part = scores[which == b]
        p = part.mean()
        total += len(part) * np.sqrt(2 / np.pi) * np.sqrt(p * (1 - p) / len(part))
    return float(total / len(scores))


# -- alert limits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitSpec:
    """What values a limit accepts, and how to say it to a user."""

    low: float
    high: float
    whole: bool
    words: str


#: The accepted range of every limit, with what it means in words (checked on every change).
LIMIT_SPECS: dict[str, LimitSpec] = {
    "psi_input": LimitSpec(0.01, 10, False, "a PSI: 0.1 is a moderate shift, 0.25 a large one"),
    "drifted_share": LimitSpec(0, 1, False, "a share of the 12 customer inputs, from 0 to 1"),
    "psi_score": LimitSpec(0.01, 10, False, "a PSI: 0.1 is a moderate shift, 0.25 a large one"),
    "context_margin": LimitSpec(0, 1, False, "a share of the training range, from 0 to 1"),
    "conversion_drop": LimitSpec(
        0.01, 1, False, "a share of the trailing conversion: 0.25 means a quarter below it"
    ),
    "auc_min": LimitSpec(
        0.5, 1, False, "an AUC, between 0.5 (no better than chance) and 1 (perfect); 0.65 is usual"
    ),
    "ece_max": LimitSpec(
        0.005, 1, False, "a calibration error, a probability from 0 to 1; 0.1 is usual"
    ),
    "min_rows": LimitSpec(20, 1_000_000, True, "a number of customers, at least 20"),
    "min_outcomes": LimitSpec(20, 1_000_000, True, "a number of called customers, at least 20"),
    "min_subscribers": LimitSpec(1, 100_000, True, "a number of subscribers, at least 1"),
    "recent_weeks": LimitSpec(1, 52, True, "a number of weeks, from 1 to 52"),
}


@dataclass(frozen=True)
class AlertLimits:
    """Editable limits of the alert rules (stored in the database, shared by app and cron).

    Attributes:
        psi_input: a watched customer input drifted when its PSI beyond chance is above this.
        drifted_share: the customers drifted (critical) when more than this share of the 12
            customer inputs did.
        psi_score: the spread of the scores drifted when its PSI beyond chance is above this.
        context_margin: the economy is outside what the model saw when a rate lies outside
            the training range by more than this share of that range (information only).
        conversion_drop: conversion among the called fell when it is below the trailing
            4-week conversion by more than this share (0.25 = a quarter below).
        auc_min: the ranking fell when the AUC among the called is below this.
        ece_max: the probabilities are off when the calibration error beyond chance is above.
        min_rows: customers a period needs (pooled with up to ``recent_weeks`` weeks before
            it) before its drift is judged.
        min_outcomes: called customers with a known result needed before the outcome rules.
        min_subscribers: subscribers and non-subscribers each needed before the AUC rule.
        recent_weeks: weeks pooled for small periods, and the "last weeks" drift is compared
            with (a new change, or a lasting shift).
        watched_inputs: the customer inputs whose drift raises an alert on its own.
    """

    psi_input: float = PSI_SIGNIFICANT
    drifted_share: float = 0.3
    psi_score: float = PSI_SIGNIFICANT
    context_margin: float = 0.05
    conversion_drop: float = 0.25
    auc_min: float = 0.65
    ece_max: float = 0.10
    min_rows: int = 200
    min_outcomes: int = 100
    min_subscribers: int = 10
    recent_weeks: int = 4
    watched_inputs: tuple[str, ...] = ("age", "job", "contact", "pdays", "previous", "poutcome")

    def check(self) -> AlertLimits:
        """Refuse limits that make no sense, saying which, why and what is usual."""
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "watched_inputs":
                unknown = [v for v in value if v not in CUSTOMER_INPUTS]
                if unknown:
                    raise TermDepositError(
                        f"Unknown watched inputs: {', '.join(unknown)}.",
                        hint=f"Choose among the customer inputs: {', '.join(CUSTOMER_INPUTS)}.",
                    )
                continue
            spec = LIMIT_SPECS[item.name]
            number = float(value)
            if not (spec.low <= number <= spec.high) or (spec.whole and number != int(number)):
                default = getattr(AlertLimits, item.name)
                raise TermDepositError(
                    f"The limit {item.name} cannot be {value:g}: it is {spec.words}.",
                    hint=f"The default is {default:g}; nothing was changed.",
                )
        return self

    def as_dict(self) -> dict[str, Any]:
        """Plain values (stored as JSON)."""
        out = asdict(self)
        out["watched_inputs"] = list(self.watched_inputs)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AlertLimits:
        """Limits from stored values (unknown keys ignored, missing ones at their default)."""
        names = {f.name for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key not in names:
                continue
            if key == "watched_inputs":
                clean[key] = tuple(value)
            elif LIMIT_SPECS[key].whole:
                clean[key] = int(value)
            else:
                clean[key] = float(value)
        return cls(**clean)


def load_limits(store: Store | None = None) -> AlertLimits:
    """The alert limits in force (stored ones, or the defaults)."""
    store = store or open_store()
    return AlertLimits.from_dict(store.get_setting(LIMITS_KEY, {}) or {})


def save_limits(limits: AlertLimits, store: Store | None = None) -> AlertLimits:
    """Check and store new alert limits."""
    store = store or open_store()
    limits.check()
    store.set_setting(LIMITS_KEY, limits.as_dict())
    return limits


def update_limits(changes: dict[str, str], store: Store | None = None) -> AlertLimits:
    """Change some limits by name (values as text, e.g. from ``--set auc_min=0.7``)."""
    current = load_limits(store)
    values: dict[str, Any] = {}
    names = {f.name for f in fields(AlertLimits)}
    for key, raw in changes.items():
        if key not in names:
            raise TermDepositError(
                f"There is no alert limit '{key}'.", hint=f"Limits: {', '.join(sorted(names))}."
            )
        if key == "watched_inputs":
            values[key] = tuple(v.strip() for v in raw.split(",") if v.strip())
            continue
        try:
            number = float(raw)
        except ValueError as exc:
            raise TermDepositError(
                f"The limit {key} must be a number, not {raw!r}.",
                hint=f"It is {LIMIT_SPECS[key].words}.",
            ) from exc
        whole = LIMIT_SPECS[key].whole and number.is_integer()
        values[key] = int(number) if whole else number
    return save_limits(replace(current, **values), store)


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


# -- drift --------------------------------------------------------------------------------------


@dataclass
class DriftReport:
    """Drift of one period against the training reference and against the weeks before it.

    Attributes:
        period / label / model_version: what was judged, against which model's reference.
        rows: customers judged (the period pooled with up to ``recent_weeks`` weeks before it
            until it holds ``min_rows``); ``weeks``: how many weeks that took.
        recent_rows: customers of the weeks before those (the "last weeks" compared with).
        judged: False when even the pooled weeks hold too few customers to judge.
        table: one row per input: ``psi`` (against training), ``psi_beyond_chance``,
            ``psi_recent`` (beyond chance, against the last weeks), ``band``,
            ``outside_range`` and ``detail`` (economy and calendar inputs).
        score_psi: PSI beyond chance of the scores' spread (centred log-odds) against training.
        score_psi_recent: the same against the last weeks.
        score_level: how far the week's median log-odds sits from training's (the economy's
            pull on every score; information).
        drifted_share: share of the 12 customer inputs whose PSI beyond chance is above the
            limit.
    """

    period: str
    label: str
    model_version: str
    rows: int
    weeks: int
    recent_rows: int
    judged: bool
    table: pd.DataFrame
    score_psi: float
    score_psi_recent: float
    score_level: float
    drifted_share: float
    mean_confidence: float
    reference_confidence: float
    cohort_id: int | None = None

    @property
    def context_out_of_range(self) -> pd.DataFrame:
        """Economy and calendar inputs whose week value lies outside the training range."""
        return self.table[(self.table["kind"] == "context") & self.table["outside_range"]]


def model_reference(version: str) -> pd.DataFrame:
    """The training reference sample (inputs, score, y) saved with a model version.

    Read without unpickling the model (the sample is a plain parquet file beside it, checked
    against the model's checksum list).
    """
    return registry.read_reference(version)


def _centred(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Centred log-odds of ``column``, centred within each period of a pooled frame."""
    if "_period" not in frame or frame["_period"].nunique() <= 1:
        return centred_log_odds(frame[column].to_numpy(float))
    parts = [
        centred_log_odds(group[column].to_numpy(float)) for _, group in frame.groupby("_period")
    ]
    return np.concatenate(parts)


def drift_report(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    recent: pd.DataFrame | None = None,
    week: pd.DataFrame | None = None,
    limits: AlertLimits | None = None,
    period: str = "",
    label: str = "",
    model_version: str = "",
    weeks: int = 1,
    cohort_id: int | None = None,
) -> DriftReport:
    """PSI (beyond chance) of every customer input and of the scores' spread; economy ranges.

    Args:
        current: the customers judged (the 19 inputs and ``probability``; ``_period`` marks
            the weeks of a pooled frame).
        reference: the model's training sample (inputs and ``score``).
        recent: customers of the last weeks before ``current`` (same columns), or None.
        week: the period's own customers, for the economy's range (default ``current``).
    """
    limits = limits or AlertLimits()
    week = current if week is None else week
    recent_rows = 0 if recent is None else len(recent)
    compare_recent = recent is not None and recent_rows >= limits.min_rows
    rows = []
    for column in INPUT_COLUMNS:
        kind = "context" if column in CONTEXT_INPUTS else "customer"
        value, beyond = psi_parts(reference[column], current[column])
        against_recent = (
            psi_beyond_chance(recent[column], current[column])
            if compare_recent and recent is not None
            else float("nan")
        )
        outside = False
        detail = ""
        if kind == "context" and column not in CATEGORICAL_COLUMNS:
            low, high = float(reference[column].min()), float(reference[column].max())
            span = max(high - low, 1e-9)
            week_low, week_high = float(week[column].min()), float(week[column].max())
            margin = limits.context_margin * span
            outside = week_low < low - margin or week_high > high + margin
            shown = f"{week_low:g}" if week_low == week_high else f"{week_low:g} to {week_high:g}"
            detail = f"this week {shown}, the model saw {low:g} to {high:g}"
        elif kind == "context":
            unseen = sorted(set(week[column].astype(str)) - set(reference[column].astype(str)))
            outside = bool(unseen)
            detail = f"not seen in training: {', '.join(unseen)}" if unseen else ""
        rows.append(
            {
                "input": column,
                "kind": kind,
                "psi": value,
                "psi_beyond_chance": beyond,
                "psi_recent": against_recent,
                "band": psi_band(beyond) if kind == "customer" else "(weekly context)",
                "outside_range": outside,
                "detail": detail,
            }
        )
    table = pd.DataFrame(rows)
    customer = table[table["kind"] == "customer"]
    scores = current["probability"].to_numpy(float)
    reference_scores = reference["score"].to_numpy(float)
    centred = _centred(current, "probability")
    reference_centred = centred_log_odds(reference_scores)
    score_recent = float("nan")
    if compare_recent and recent is not None:
        score_recent = psi_beyond_chance(_centred(recent, "probability"), centred)
    level = float(
        np.median(_log_odds(week["probability"].to_numpy(float)))
        - np.median(_log_odds(reference_scores))
    )
    return DriftReport(
        period=period,
        label=label,
        model_version=model_version,
        rows=len(current),
        weeks=weeks,
        recent_rows=recent_rows,
        judged=len(current) >= limits.min_rows,
        table=table,
        score_psi=psi_beyond_chance(reference_centred, centred),
        score_psi_recent=score_recent,
        score_level=level,
        drifted_share=float((customer["psi_beyond_chance"] > limits.psi_input).mean()),
        mean_confidence=mean_confidence(scores),
        reference_confidence=mean_confidence(reference_scores),
        cohort_id=cohort_id,
    )


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _window_start(
    periods: list[Period], i: int, size: Callable[[Period], int], need: int, most: int
) -> int:
    """First period of the window ending at ``i``: back until ``need`` is met (``most`` weeks)."""
    total = 0
    start = i
    for j in range(i, max(-1, i - most), -1):
        total += size(periods[j])
        start = j
        if total >= need:
            break
    return start


def _pooled(periods: list[Period]) -> pd.DataFrame:
    if not periods:
        return pd.DataFrame(columns=[*INPUT_COLUMNS, "probability", "_period"])
    return pd.concat([p.frame.assign(_period=p.key) for p in periods], ignore_index=True)


class ReferenceCache:
    """Training reference samples by model version, read once per monitoring run."""

    def __init__(self, reader: Callable[[str], pd.DataFrame] = model_reference) -> None:
        self.reader = reader
        self._cache: dict[str, pd.DataFrame | TermDepositError] = {}

    def __call__(self, version: str) -> pd.DataFrame:
        """The reference of ``version``.

        Raises:
            TermDepositError: the version has no reference sample.
        """
        if version not in self._cache:
            try:
                self._cache[version] = self.reader(version)
            except TermDepositError as exc:
                self._cache[version] = exc
        found = self._cache[version]
        if isinstance(found, TermDepositError):
            raise found
        return found


def period_drift(
    periods: list[Period],
    i: int,
    reference_of: Callable[[str], pd.DataFrame],
    limits: AlertLimits,
) -> DriftReport:
    """Drift of period ``i``: pooled back to ``min_rows`` customers, against training and the
    last ``recent_weeks`` weeks before the pool."""
    start = _window_start(periods, i, lambda p: p.rows, limits.min_rows, limits.recent_weeks)
    window = periods[start : i + 1]
    recent = periods[max(0, start - limits.recent_weeks) : start]
    period = periods[i]
    return drift_report(
        _pooled(window),
        reference_of(period.model_version),
        recent=_pooled(recent) if recent else None,
        week=period.frame,
        limits=limits,
        period=period.key,
        label=period.label,
        model_version=period.model_version,
        weeks=len(window),
        cohort_id=period.cohort_ids[-1],
    )


def cohort_drift(
    store: Store, cohort_id: int, limits: AlertLimits | None = None
) -> DriftReport | None:
    """Drift of the period holding a logged cohort (None if the cohort was never scored)."""
    limits = limits or load_limits(store)
    periods = load_periods(store)
    for i, period in enumerate(periods):
        if int(cohort_id) in period.cohort_ids:
            return period_drift(periods, i, ReferenceCache(), limits)
    return None


# -- alert rules --------------------------------------------------------------------------------


@dataclass
class Check:
    """One rule looked at in one period.

    Attributes:
        judged: enough rows to say anything (otherwise the rule's state carries on).
        crossed: the limit is crossed (point estimate).
        strong: crossed clearly: on enough rows and beyond chance (or significantly).
        clear: the condition is clearly gone (drift back in the stable band, KPI within limit).
        window_start: the first period of the weeks pooled for this check.
    """

    index: int
    period: str
    label: str
    rule: str
    subject: str
    judged: bool
    crossed: bool
    strong: bool
    clear: bool
    value: float
    limit: float
    rows: int
    message: str
    severity: str = "warning"
    window_start: int = -1
    breach: bool = False


def drift_checks(report: DriftReport, index: int, limits: AlertLimits) -> list[Check]:
    """Customer-input drift, score drift and the economy (information) of one period."""
    table = report.table.set_index("input")
    customer = table[table["kind"] == "customer"]
    judged = report.rows >= limits.min_rows
    start = index - report.weeks + 1
    pooled = (
        f" ({report.rows:,} customers of the last {report.weeks} weeks)"
        if report.weeks > 1
        else f" ({report.rows:,} customers)"
    )
    many = report.drifted_share > limits.drifted_share
    checks = []
    for name in limits.watched_inputs:
        value = float(customer["psi_beyond_chance"].loc[name])
        crossed = value > limits.psi_input
        recent = float(customer["psi_recent"].loc[name])
        how = (
            "a new change against the weeks before"
            if recent > limits.psi_input
            else "steady against the weeks before: a lasting shift"
            if report.recent_rows >= limits.min_rows
            else ""
        )
        checks.append(
            Check(
                index=index,
                period=report.period,
                label=report.label,
                rule="input_drift",
                subject=name,
                judged=judged,
                crossed=crossed,
                strong=crossed,
                clear=value < PSI_MODERATE,
                value=value,
                limit=limits.psi_input,
                rows=report.rows,
                message=f"{feature_label(name)} (PSI {value:.2f}{'; ' + how if how else ''})",
                severity="critical" if many else "warning",
                window_start=start,
            )
        )
    checks.append(
        Check(
            index=index,
            period=report.period,
            label=report.label,
            rule="input_drift",
            subject="share of inputs",
            judged=judged,
            crossed=many,
            strong=many,
            clear=not many,
            value=report.drifted_share,
            limit=limits.drifted_share,
            rows=report.rows,
            message=f"{report.drifted_share:.0%} of the 12 customer inputs shifted",
            severity="critical",
            window_start=start,
        )
    )
    score_crossed = report.score_psi > limits.psi_score
    checks.append(
        Check(
            index=index,
            period=report.period,
            label=report.label,
            rule="score_drift",
            subject="score",
            judged=judged,
            crossed=score_crossed,
            strong=score_crossed,
            clear=report.score_psi < PSI_MODERATE,
            value=report.score_psi,
            limit=limits.psi_score,
            rows=report.rows,
            message=f"{report.label}: the model ranks these customers differently from the "
            f"training customers: the spread of their scores shifted, PSI "
            f"{report.score_psi:.2f} beyond chance{pooled} (the economy's pull on every score "
            "is left out).",
            window_start=start,
        )
    )
    outside = report.context_out_of_range
    economy = outside[outside["input"].isin(ECONOMY_INPUTS)]
    calendar = outside[~outside["input"].isin(ECONOMY_INPUTS)]
    parts = [
        f"{feature_label(name)} {detail.removeprefix('this week ')}"
        for name, detail in zip(economy["input"], economy["detail"], strict=True)
    ]
    parts += [
        f"{feature_label(name)}: {detail}"
        for name, detail in zip(calendar["input"], calendar["detail"], strict=True)
    ]
    checks.append(
        Check(
            index=index,
            period=report.period,
            label=report.label,
            rule="economy",
            subject="economy",
            judged=True,
            crossed=bool(len(outside)),
            strong=bool(len(outside)),
            clear=not len(outside),
            value=float(len(outside)),
            limit=limits.context_margin,
            rows=report.rows,
            message=f"{report.label}: for information, the economy moved outside what the model "
            f"saw: {'; '.join(parts)}. The scores extrapolate there; retraining on recent weeks "
            "brings the new range in.",
            severity="info",
            window_start=index,
        )
    )
    return checks


def outcome_checks(periods: list[Period], i: int, limits: AlertLimits) -> list[Check]:
    """AUC, conversion and calibration among the called, once enough outcomes are in."""
    period = periods[i]
    if period.outcomes.empty:
        return []

    def calls(p: Period) -> int:
        return len(p.outcomes)

    start = _window_start(periods, i, calls, limits.min_outcomes, limits.recent_weeks)
    window = [p for p in periods[start : i + 1]]
    known = pd.concat([p.outcomes.assign(_period=p.key) for p in window], ignore_index=True)
    n = len(known)
    weeks = len(window)
    where = f"{n:,} called customers" + (f" of the last {weeks} weeks" if weeks > 1 else "")
    y = known["subscribed"].to_numpy(float) == 1
    scores = known["probability"].to_numpy(float)
    checks = []

    auc, positives, negatives = within_period_auc(y, scores, known["_period"].to_numpy())
    se = auc_standard_error(auc, positives, negatives)
    judged = (
        n >= limits.min_outcomes
        and positives >= limits.min_subscribers
        and negatives >= limits.min_subscribers
    )
    low, high = auc - 1.96 * se, auc + 1.96 * se
    checks.append(
        Check(
            index=i,
            period=period.key,
            label=period.label,
            rule="auc_drop",
            subject="auc",
            judged=judged,
            crossed=judged and auc < limits.auc_min,
            strong=judged and auc + Z_ONE_SIDED * se < limits.auc_min,
            clear=judged and auc >= limits.auc_min,
            value=auc,
            limit=limits.auc_min,
            rows=n,
            message=f"{period.label}: the model's ranking fell: AUC among the called {auc:.3f} "
            f"(95% interval {low:.3f} to {high:.3f}, {where}) is below the limit "
            f"{limits.auc_min:g}. Retrain ('termdeposit retrain') if it does not recover.",
            severity="critical",
            window_start=start,
        )
    )

    current = period.outcomes if calls(period) >= limits.min_outcomes else known
    trail_end = i + 1 - (1 if current is period.outcomes else weeks)
    trailing_periods = periods[max(0, trail_end - limits.recent_weeks) : trail_end]
    trailing = (
        pd.concat([p.outcomes for p in trailing_periods], ignore_index=True)
        if trailing_periods
        else pd.DataFrame(columns=["subscribed"])
    )
    n_c, n_t = len(current), len(trailing)
    rate = float((current["subscribed"] == 1).mean()) if n_c else float("nan")
    base = float((trailing["subscribed"] == 1).mean()) if n_t else float("nan")
    judged = n_c >= limits.min_outcomes and n_t >= limits.min_outcomes
    floor = base * (1 - limits.conversion_drop) if judged else float("nan")
    se = (
        np.sqrt(
            rate * (1 - rate) / n_c + (1 - limits.conversion_drop) ** 2 * base * (1 - base) / n_t
        )
        if judged
        else float("nan")
    )
    checks.append(
        Check(
            index=i,
            period=period.key,
            label=period.label,
            rule="conversion_drop",
            subject="conversion",
            judged=judged,
            crossed=judged and rate < floor,
            strong=judged and rate + Z_ONE_SIDED * se < floor,
            clear=judged and rate >= floor,
            value=rate,
            limit=floor,
            rows=n_c,
            message=f"{period.label}: conversion among the called fell to {rate:.1%} "
            f"({n_c:,} calls) from {base:.1%} in the {len(trailing_periods)} weeks before "
            f"({n_t:,} calls): more than {limits.conversion_drop:.0%} below.",
            window_start=i if current is period.outcomes else start,
        )
    )

    ece = expected_calibration_error(y.astype(int), scores) if n else float("nan")
    chance = chance_calibration_error(scores) if n else float("nan")
    judged = n >= limits.min_outcomes
    checks.append(
        Check(
            index=i,
            period=period.key,
            label=period.label,
            rule="calibration",
            subject="calibration",
            judged=judged,
            crossed=judged and ece > limits.ece_max,
            strong=judged and ece - chance > limits.ece_max,
            clear=judged and ece <= limits.ece_max,
            value=ece,
            limit=limits.ece_max,
            rows=n,
            message=f"{period.label}: the probabilities are off: calibration error {ece:.3f} "
            f"({where}; {chance:.3f} would be chance) is above {limits.ece_max:g}. Recalibrate "
            "('termdeposit recalibrate').",
            window_start=start,
        )
    )
    return checks


@dataclass
class Episode:
    """A stretch of weeks during which a rule's condition held: one alert."""

    rule: str
    subject: str
    start: Check
    latest: Check
    end: Check | None = None

    @property
    def open(self) -> bool:
        """True while the condition still holds (no later check cleared it)."""
        return self.end is None

    def draft(self) -> dict[str, Any]:
        """The alert of this episode (as :meth:`Store.record_alerts` takes it)."""
        since = "" if self.latest.period == self.start.period else f" (since {self.start.label})"
        return {
            "rule": self.rule,
            "scope": f"since {self.start.period}"[:64],
            "subject": self.subject,
            "message": self.latest.message + since,
            "value": self.latest.value,
            "limit": self.latest.limit,
            "severity": self.latest.severity,
            "open": self.open,
            "start": self.start.label,
            "window": (self.start.window_start, self.start.index),
        }


def episodes(checks: list[Check]) -> list[Episode]:
    """Turn checks (in period order) into episodes, rule by rule.

    A judged check breaches when it crossed the limit clearly (on enough rows, beyond chance
    or significantly; a lasting change in small weeks gathers those rows by pooling). A breach
    opens an episode unless one is open; an open episode closes at a check that is clearly
    clear (drift back in the stable band, the KPI back within its limit).
    """
    out: list[Episode] = []
    by_rule: dict[tuple[str, str], list[Check]] = {}
    for check in checks:
        by_rule.setdefault((check.rule, check.subject), []).append(check)
    for (rule, subject), items in by_rule.items():
        current: Episode | None = None
        for check in items:
            if not check.judged:
                continue
            check.breach = check.strong
            if current is not None and check.clear:
                current.end = check
                current = None
                continue
            if current is None and check.breach:
                current = Episode(rule, subject, check, check)
                out.append(current)
            elif current is not None and (check.breach or check.crossed):
                current.latest = check
    return sorted(out, key=lambda e: (e.start.index, e.rule))


def customer_drift_draft(group: list[Episode]) -> dict[str, Any]:
    """One alert for the customer inputs whose drift started in the same week."""
    start = group[0].start
    still = [e for e in group if e.open] or group
    latest = max((e.latest for e in still), key=lambda c: c.index)
    pooled = (
        f"{latest.rows:,} customers of the last {latest.index - latest.window_start + 1} weeks"
        if latest.index > latest.window_start
        else f"{latest.rows:,} customers"
    )
    since = "" if latest.period == start.period else f" (since {start.label})"
    listed = "; ".join(e.latest.message for e in still)
    return {
        "rule": "input_drift",
        "scope": f"since {start.period}"[:64],
        "subject": "customers",
        "message": f"{latest.label}: the customers differ from those the model learned from: "
        f"{listed} ({pooled}){since}. Check whether the campaign's targeting changed; retrain "
        "if it lasts.",
        "value": max(e.latest.value for e in still if e.subject != "share of inputs")
        if any(e.subject != "share of inputs" for e in still)
        else latest.value,
        "limit": latest.limit,
        "severity": "critical"
        if any(e.latest.severity == "critical" for e in still)
        else "warning",
        "open": any(e.open for e in group),
        "start": start.label,
        "window": (start.window_start, start.index),
    }


@dataclass
class Assessment:
    """Every check of every period, the episodes, and the drift of each period."""

    checks: list[Check]
    episodes: list[Episode]
    drift: list[DriftReport | None]

    def table(self) -> pd.DataFrame:
        """One row per check (period, rule, judged, crossed, breach, value, limit, rows)."""
        return pd.DataFrame([asdict(c) for c in self.checks])

    def alerts(self, kinds: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """The alert drafts of the episodes (optionally of some rules only).

        Customer inputs whose drift starts in the same week make one alert together.
        """
        drafts = []
        groups: dict[str, list[Episode]] = {}
        for episode in self.episodes:
            if kinds is not None and episode.rule not in kinds:
                continue
            if episode.rule == "input_drift":
                groups.setdefault(episode.start.period, []).append(episode)
            else:
                drafts.append(episode.draft())
        drafts += [customer_drift_draft(group) for group in groups.values()]
        return sorted(drafts, key=lambda d: (d["window"][1], d["rule"]))


def assess(
    periods: list[Period],
    reference_of: Callable[[str], pd.DataFrame],
    limits: AlertLimits,
    cache: dict[tuple[Any, ...], tuple[DriftReport | None, list[Check]]] | None = None,
) -> Assessment:
    """Look at every period in order with every rule; group breaches into episodes.

    Each period is judged on itself and the weeks before it only (pools and trailing weeks
    look back), so a longer history never changes an earlier week's drift checks.

    Args:
        cache: drift of earlier calls (a period's drift does not change once it is scored),
            for callers that assess a growing history week after week.
    """
    checks: list[Check] = []
    reports: list[DriftReport | None] = []
    cache = {} if cache is None else cache
    for i in range(len(periods)):
        key = (
            tuple(p.key for p in periods[max(0, i - 2 * limits.recent_weeks) : i + 1]),
            periods[i].model_version,
            limits,
        )
        if key not in cache:
            try:
                drift = period_drift(periods, i, reference_of, limits)
                cache[key] = (drift, drift_checks(drift, i, limits))
            except TermDepositError:
                cache[key] = (None, [])
        report, found = cache[key]
        reports.append(report)
        checks += found
        checks += outcome_checks(periods, i, limits)
    return Assessment(checks, episodes(checks), reports)


# -- a monitoring run ---------------------------------------------------------------------------


@dataclass
class MonitorResult:
    """One monitoring run: the weekly table, the latest period's drift, the alerts in force."""

    weekly: pd.DataFrame
    drift: DriftReport | None
    alerts: pd.DataFrame
    assessment: Assessment | None = None

    @property
    def active(self) -> pd.DataFrame:
        """Warning and critical alerts of this run nobody has acknowledged."""
        if self.alerts.empty:
            return self.alerts
        return self.alerts[
            self.alerts["acknowledged_at"].isna() & (self.alerts["severity"] != "info")
        ]

    @property
    def information(self) -> pd.DataFrame:
        """Findings for information (the economy outside what the model saw) still in force."""
        if self.alerts.empty:
            return self.alerts
        return self.alerts[
            self.alerts["acknowledged_at"].isna() & (self.alerts["severity"] == "info")
        ]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: weekly KPIs, drift table, alerts."""
        drift = None
        if self.drift is not None:
            drift = {
                "period": self.drift.period,
                "cohort_id": self.drift.cohort_id,
                "model_version": self.drift.model_version,
                "rows": self.drift.rows,
                "weeks": self.drift.weeks,
                "judged": self.drift.judged,
                "score_psi": _clean(self.drift.score_psi),
                "score_psi_recent": _clean(self.drift.score_psi_recent),
                "score_level": _clean(self.drift.score_level),
                "drifted_share": _clean(self.drift.drifted_share),
                "mean_confidence": _clean(self.drift.mean_confidence),
                "reference_confidence": _clean(self.drift.reference_confidence),
                "inputs": json_records(self.drift.table.map(_clean)),
            }
        weekly = self.weekly.copy()
        alerts = self.alerts.copy()
        for column in ("raised_at", "last_seen_at", "acknowledged_at"):
            if column in alerts:
                alerts[column] = alerts[column].map(lambda v: None if v is None else str(v))
        return {
            "weekly": json_records(weekly.map(_clean)),
            "drift": drift,
            "alerts": json_records(alerts.map(_clean)),
        }


def _clean(value: Any) -> Any:
    if isinstance(value, float | np.floating) and np.isnan(value):
        return None
    return value


def _key(alert: dict[str, Any] | pd.Series) -> tuple[str, str, str]:
    return (str(alert["rule"]), str(alert["scope"]), str(alert["subject"]))


def record_assessment(store: Store, assessment: Assessment) -> pd.DataFrame:
    """Store the episodes' alerts; mark the alerts of episodes that ended as cleared.

    An open episode's alert is written or refreshed (value, message, last seen; its
    acknowledgement stays). An episode that ended is written once, if it never was, and its
    alert is marked cleared. Returns the alerts of the open episodes (as stored).
    """
    drafts = assessment.alerts()
    existing = store.alerts(active_only=False)
    known = {_key(row) for _, row in existing.iterrows()}
    wanted = [d for d in drafts if d["open"] or _key(d) not in known]
    if wanted:
        store.record_alerts(
            [{k: v for k, v in d.items() if k not in ("open", "start")} for d in wanted]
        )
    ended = {_key(d) for d in drafts if not d["open"]}
    stored = store.alerts(active_only=False)
    for _, row in stored.iterrows():
        if _key(row) in ended and row["acknowledged_at"] is None:
            store.acknowledge_alert(int(row["id"]), user=CLEARED_BY)
    stored = store.alerts(active_only=False)
    current = {_key(d) for d in drafts if d["open"]}
    mask = [(_key(row) in current) for _, row in stored.iterrows()]
    return stored[mask].reset_index(drop=True) if len(stored) else stored


def run_monitor(
    store: Store | None = None,
    limits: AlertLimits | None = None,
    settings: BusinessSettings | None = None,
) -> MonitorResult:
    """Weekly table, drift of every period, every rule over the whole history; store alerts.

    Re-running changes nothing unless the data did: alerts are keyed by rule and the period
    their episode started, refreshed while the episode lasts.
    """
    store = store or open_store()
    limits = (limits or load_limits(store)).check()
    periods = load_periods(store, settings)
    weekly = figures_table(store, periods)
    if not periods:
        empty = store.alerts(active_only=False).head(0)
        return MonitorResult(weekly, None, empty, None)
    assessment = assess(periods, ReferenceCache(), limits)
    stored = record_assessment(store, assessment)
    return MonitorResult(weekly, assessment.drift[-1], stored, assessment)
