"""Does the call list treat demographic groups fairly, and what would fairness cost?

Every group figure comes from Fairlearn's ``MetricFrame`` (selection rate, mean score, true
positive rate, precision, false positive rate, and the between-group differences and ratios),
so no group arithmetic is written by hand here. Groups under :data:`MIN_GROUP_SIZE` people are
shown but marked too small to judge and left out of the headline figures; a group called at
less than four fifths of the best-treated group's rate is flagged (the four-fifths rule).

95% intervals come from resampling the customers (bootstrap): each resample is drawn as
multinomial counts over the distinct (group, called, outcome) combinations, which is the same
as drawing customers with replacement for these metrics, and all resamples are evaluated by
one ``MetricFrame`` with the resample number as a control feature.

The price of fairness compares the chosen threshold with per-group thresholds that call the
same share of every group (demographic parity), and the production model with the same model
retrained without the protected inputs (``age``, ``marital``).

Size: Group figures, bootstrap intervals, per-group policies and the price of fairness share
the group definitions (age bands, small groups) and one MetricFrame set-up.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    equalized_odds_difference,
    false_positive_rate,
    mean_prediction,
    selection_rate,
    true_positive_rate,
)
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.metrics import precision_score, roc_auc_score

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import AGE_BAND, ATTRIBUTE_LABELS
from termdeposit.core.schema import CATEGORICAL_INPUTS, TARGET, inputs_only

AGE_BANDS = ("<25", "25–34", "35–44", "45–54", "55–64", "65+")
#: Lower edges of the age bands after the first (a band includes its lower edge).
AGE_EDGES = (25, 35, 45, 55, 65)
#: Groups checked by default (and in the model card).
DEFAULT_ATTRIBUTES = (AGE_BAND, "marital", "education", "job")
#: Every grouping a user can pick: the age band and each category input.
ATTRIBUTE_CHOICES = (AGE_BAND, *CATEGORICAL_INPUTS)
#: Inputs a model may not need to see to rank customers (the "blind" model drops them).
PROTECTED_INPUTS = ("age", "marital")
#: Groups smaller than this are too small to judge.
MIN_GROUP_SIZE = 30
#: A group called at less than this share of the best-treated group's rate is flagged.
FOUR_FIFTHS = 0.8
#: Bootstrap resamples for the 95% intervals.
N_BOOT = 200
INTERVAL = (0.025, 0.975)

STATUS_SMALL = "too small to judge"
STATUS_FLAGGED = "below four-fifths"
STATUS_OK = "ok"


def age_band(age: pd.Series | np.ndarray) -> pd.Series:
    """The age band of each age: <25, 25–34, 35–44, 45–54, 55–64, 65+ (lower edge included)."""
    ages = pd.Series(np.asarray(age, dtype=float))
    bands = pd.cut(ages, [-np.inf, *AGE_EDGES, np.inf], right=False, labels=list(AGE_BANDS))
    return bands.astype(str)


def groups_of(frame: pd.DataFrame, attribute: str) -> pd.Series:
    """The group of every customer for an attribute (``age band`` or a category input)."""
    if attribute == AGE_BAND:
        groups = age_band(frame["age"])
    elif attribute in CATEGORICAL_INPUTS:
        groups = frame[attribute].astype(str).reset_index(drop=True)
    else:
        raise TermDepositError(
            f"'{attribute}' is not a grouping the fairness check knows.",
            hint=f"Choose one of: {', '.join(ATTRIBUTE_CHOICES)}.",
        )
    return pd.Series(groups.to_numpy(dtype=object), name=attribute)


def group_order(attribute: str, present: list[str]) -> list[str]:
    """Groups in their natural order (age bands, or the data set's list of values)."""
    known = AGE_BANDS if attribute == AGE_BAND else CATEGORICAL_INPUTS.get(attribute, ())
    ordered = [g for g in known if g in present]
    return ordered + sorted(g for g in present if g not in ordered)


def _precision(y_true: Any, y_pred: Any) -> float:
    return float(precision_score(y_true, y_pred, zero_division=np.nan))


def _number(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


@dataclass
class GroupReport:
    """Group metrics for one attribute at one set of calls.

    Attributes:
        attribute: the grouping (``age band``, ``marital``, ...).
        table: one row per group: ``size``, ``selection_rate`` (share called), ``mean_score``;
            with outcomes also ``outcomes_known``, ``tpr``, ``precision``, ``fpr``; then
            ``ratio_to_best`` (selection rate / best judged group's) and ``status``.
        judged: groups of at least :data:`MIN_GROUP_SIZE` people (the headline figures use
            only these).
        best_group: the judged group with the highest selection rate.
        dp_difference: largest minus smallest selection rate among judged groups.
        dp_ratio: smallest over largest selection rate among judged groups.
        eo_difference: equalized odds difference (the larger of the TPR and FPR gaps) among
            groups with at least :data:`MIN_GROUP_SIZE` known outcomes, or None.
        intervals: 95% bootstrap intervals, once :func:`add_intervals` has run.
    """

    attribute: str
    table: pd.DataFrame
    judged: list[str]
    best_group: str | None
    dp_difference: float | None
    dp_ratio: float | None
    eo_difference: float | None
    has_outcomes: bool
    calls: int
    size: int
    intervals: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> list[str]:
        """Judged groups called at less than four fifths of the best-treated group's rate."""
        return list(self.table.index[self.table["status"] == STATUS_FLAGGED])

    @property
    def too_small(self) -> list[str]:
        """Groups too small to judge."""
        return list(self.table.index[self.table["status"] == STATUS_SMALL])


def _outcome_mask(outcomes: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if outcomes is None:
        return np.zeros(n, dtype=bool), np.zeros(n)
    y = pd.to_numeric(pd.Series(np.asarray(outcomes, dtype=object)), errors="coerce").to_numpy(
        dtype=float
    )
    return ~np.isnan(y), np.nan_to_num(y)


def group_report(
    frame: pd.DataFrame,
    scores: Any,
    called: Any,
    attribute: str,
    outcomes: Any = None,
) -> GroupReport:
    """Group metrics of a set of calls for one attribute (no intervals; see add_intervals).

    Args:
        frame: the customers' inputs (row order of ``scores``).
        scores: each customer's probability of subscribing.
        called: True for each customer on the call list.
        attribute: ``age band`` or a category input.
        outcomes: 1 subscribed / 0 did not / NaN unknown, or None when no outcome is known.
    """
    groups = groups_of(frame, attribute)
    scores = np.asarray(scores, dtype=float)
    called = np.asarray(called, dtype=bool).astype(int)
    known, y = _outcome_mask(outcomes, len(groups))

    calls = MetricFrame(
        metrics={"size": count, "selection_rate": selection_rate},
        y_true=called,
        y_pred=called,
        sensitive_features=groups,
    )
    means = MetricFrame(
        metrics={"mean_score": mean_prediction},
        y_true=scores,
        y_pred=scores,
        sensitive_features=groups,
    )
    table = pd.concat([calls.by_group, means.by_group], axis=1)
    table["size"] = table["size"].astype(int)
    has_outcomes = bool(known.any())
    if has_outcomes:
        rates = MetricFrame(
            metrics={
                "outcomes_known": count,
                "tpr": true_positive_rate,
                "precision": _precision,
                "fpr": false_positive_rate,
            },
            y_true=y[known].astype(int),
            y_pred=called[known],
            sensitive_features=groups[known],
        )
        table = table.join(rates.by_group)
        table["outcomes_known"] = table["outcomes_known"].fillna(0).astype(int)
    table = table.loc[group_order(attribute, [str(g) for g in table.index])]
    table.index.name = attribute

    judged = [str(g) for g in table.index[table["size"] >= MIN_GROUP_SIZE]]
    in_judged = groups.isin(judged).to_numpy()
    best_group = dp_difference = dp_ratio = eo_difference = None
    table["ratio_to_best"] = np.nan
    if judged:
        judged_frame = MetricFrame(
            metrics=selection_rate,
            y_true=called[in_judged],
            y_pred=called[in_judged],
            sensitive_features=groups[in_judged],
        )
        best = float(judged_frame.group_max())
        best_group = str(judged_frame.by_group.idxmax())
        if len(judged) > 1:
            dp_difference = _number(judged_frame.difference())
            dp_ratio = _number(judged_frame.ratio())
        if best > 0:
            table["ratio_to_best"] = table["selection_rate"] / best
    if has_outcomes:
        eo_groups = [str(g) for g in table.index[table["outcomes_known"] >= MIN_GROUP_SIZE]]
        mask = known & groups.isin(eo_groups).to_numpy()
        if len(eo_groups) > 1:
            eo_difference = _number(
                equalized_odds_difference(
                    y[mask].astype(int), called[mask], sensitive_features=groups[mask]
                )
            )
    status = np.where(
        table["size"] < MIN_GROUP_SIZE,
        STATUS_SMALL,
        np.where(table["ratio_to_best"] < FOUR_FIFTHS, STATUS_FLAGGED, STATUS_OK),
    )
    table["status"] = status
    return GroupReport(
        attribute=attribute,
        table=table,
        judged=judged,
        best_group=best_group,
        dp_difference=dp_difference,
        dp_ratio=dp_ratio,
        eo_difference=eo_difference,
        has_outcomes=has_outcomes,
        calls=int(called.sum()),
        size=len(groups),
    )


def _weighted(values: np.ndarray, weights: np.ndarray) -> float:
    total = float(np.sum(weights))
    return float(np.sum(values * weights) / total) if total > 0 else float("nan")


def weighted_selection_rate(y_true: Any, y_pred: Any, sample_weight: Any) -> float:
    """Share called, each row counting ``sample_weight`` customers."""
    return _weighted(np.asarray(y_pred, dtype=float), np.asarray(sample_weight, dtype=float))


def weighted_true_positive_rate(y_true: Any, y_pred: Any, sample_weight: Any) -> float:
    """Share of subscribers called (rows with unknown outcome, coded -1, are ignored)."""
    mask = np.asarray(y_true) == 1
    return _weighted(np.asarray(y_pred, dtype=float)[mask], np.asarray(sample_weight)[mask])


def weighted_false_positive_rate(y_true: Any, y_pred: Any, sample_weight: Any) -> float:
    """Share of non-subscribers called (rows with unknown outcome, coded -1, are ignored)."""
    mask = np.asarray(y_true) == 0
    return _weighted(np.asarray(y_pred, dtype=float)[mask], np.asarray(sample_weight)[mask])


def _resampled_frame(
    data: pd.DataFrame, metrics: dict[str, Any], n_boot: int, seed: int
) -> MetricFrame:
    """One MetricFrame over ``n_boot`` bootstrap resamples of ``data`` (group, called, y).

    A resample of the customers is drawn as multinomial counts over the distinct
    (group, called, y) combinations; the resample number is the control feature, so
    ``by_group``, ``difference()`` and ``ratio()`` come out once per resample. Groups are
    passed as integer codes (Fairlearn is much faster on them than on text).
    """
    rng = np.random.default_rng(seed)
    combos = data.groupby(["code", "called", "y"]).size().rename("n").reset_index()
    total = int(combos["n"].sum())
    weights = rng.multinomial(total, combos["n"].to_numpy() / total, size=n_boot)
    weight = weights.reshape(-1).astype(float)
    return MetricFrame(
        metrics=metrics,
        y_true=np.tile(combos["y"].to_numpy(dtype=np.int64), n_boot),
        y_pred=np.tile(combos["called"].to_numpy(dtype=np.int64), n_boot),
        sensitive_features=pd.Series(
            np.tile(combos["code"].to_numpy(dtype=np.int64), n_boot), name="group"
        ),
        control_features=pd.Series(
            np.repeat(np.arange(n_boot, dtype=np.int64), len(combos)), name="resample"
        ),
        sample_params={name: {"sample_weight": weight} for name in metrics},
    )


def _quantiles(values: pd.Series) -> tuple[float, float] | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return None
    low, high = np.quantile(values.to_numpy(float), INTERVAL)
    return float(low), float(high)


def bootstrap_intervals(
    frame: pd.DataFrame,
    called: Any,
    report: GroupReport,
    outcomes: Any = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """95% bootstrap intervals of the judged groups' selection rates and the headline gaps.

    Returns a dict with ``selection_rate`` (DataFrame: group -> low, high), ``dp_difference``,
    ``dp_ratio`` and ``eo_difference`` (each (low, high) or None), ``n_boot`` and ``seconds``.
    """
    started = time.perf_counter()
    groups = groups_of(frame, report.attribute)
    names = [str(g) for g in report.table.index]
    known, y = _outcome_mask(outcomes, len(groups))
    data = pd.DataFrame(
        {
            "group": groups.to_numpy(),
            "code": groups.map({name: i for i, name in enumerate(names)}).to_numpy(),
            "called": np.asarray(called, dtype=bool).astype(np.int64),
            "y": np.where(known, y, -1).astype(np.int64),
        }
    )
    result: dict[str, Any] = {
        "selection_rate": pd.DataFrame(columns=["low", "high"], dtype=float),
        "dp_difference": None,
        "dp_ratio": None,
        "eo_difference": None,
        "n_boot": n_boot,
    }
    eo_groups: list[str] = []
    if report.has_outcomes:
        enough = report.table["outcomes_known"] >= MIN_GROUP_SIZE
        eo_groups = [str(g) for g in report.table.index[enough]]
    rates_only = {"selection_rate": weighted_selection_rate}
    odds = {"tpr": weighted_true_positive_rate, "fpr": weighted_false_positive_rate}
    # Usually the groups judged on calls and on outcomes are the same: one pass does both.
    together = len(eo_groups) > 1 and set(eo_groups) == set(report.judged)
    if report.judged:
        resampled = _resampled_frame(
            data[data["group"].isin(report.judged)],
            {**rates_only, **odds} if together else rates_only,
            n_boot,
            seed,
        )
        rates = resampled.by_group["selection_rate"].unstack("group")
        result["selection_rate"] = pd.DataFrame(
            [_quantiles(rates[code]) or (np.nan, np.nan) for code in rates.columns],
            index=[names[int(code)] for code in rates.columns],
            columns=["low", "high"],
        )
        if len(report.judged) > 1:
            gaps = resampled.difference()
            result["dp_difference"] = _quantiles(gaps["selection_rate"])
            result["dp_ratio"] = _quantiles(resampled.ratio()["selection_rate"])
            if together:
                result["eo_difference"] = _quantiles(gaps[["tpr", "fpr"]].max(axis=1))
    with_outcomes = data[data["group"].isin(eo_groups) & (data["y"] >= 0)]
    if len(eo_groups) > 1 and not together and len(with_outcomes):
        gaps = _resampled_frame(with_outcomes, odds, n_boot, seed).difference()
        result["eo_difference"] = _quantiles(gaps[["tpr", "fpr"]].max(axis=1))
    result["seconds"] = time.perf_counter() - started
    return result


def add_intervals(
    report: GroupReport,
    frame: pd.DataFrame,
    called: Any,
    outcomes: Any = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> GroupReport:
    """The report with 95% bootstrap intervals added (``selection_low/high`` columns too)."""
    intervals = bootstrap_intervals(frame, called, report, outcomes, n_boot, seed)
    table = report.table.copy()
    bounds = intervals["selection_rate"].reindex(table.index)
    table["selection_low"] = bounds["low"].to_numpy(dtype=float)
    table["selection_high"] = bounds["high"].to_numpy(dtype=float)
    report = GroupReport(**{**report.__dict__, "table": table, "intervals": intervals})
    return report


# --- the price of fairness -------------------------------------------------------------------


@dataclass
class Policy:
    """One way of choosing whom to call, and what it brings.

    Attributes:
        name: short name shown to users.
        description: how the calls are chosen, in a sentence.
        called: True for each customer called.
        thresholds: the lowest probability called in each group (NaN: nobody called).
        calls: customers called.
        expected_profit: sum over the calls of probability x value - cost.
        realised_profit: value x subscribers called - cost x calls (None if outcomes unknown).
        report: group metrics of these calls.
    """

    name: str
    description: str
    called: np.ndarray
    thresholds: pd.Series
    calls: int
    expected_profit: float
    realised_profit: float | None
    report: GroupReport


def _order_in_groups(scores: np.ndarray, groups: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's position within their group by score (0 = best) and the group sizes."""
    order = np.lexsort((np.arange(len(scores)), -scores, groups.to_numpy(dtype=str)))
    ranked = pd.Series(groups.to_numpy(dtype=str)[order])
    position = np.empty(len(scores), dtype=int)
    position[order] = ranked.groupby(ranked).cumcount().to_numpy()
    sizes = groups.map(groups.value_counts()).to_numpy(dtype=int)
    return position, sizes


def parity_calls(scores: Any, groups: pd.Series, rate: float) -> np.ndarray:
    """Call the best ``rate`` share of every group (rounded to whole customers)."""
    scores = np.asarray(scores, dtype=float)
    position, sizes = _order_in_groups(scores, groups)
    return position < np.floor(rate * sizes + 0.5)


def best_parity_rate(
    scores: Any, groups: pd.Series, settings: BusinessSettings, steps: int = 1000
) -> float:
    """The share called in every group that maximises expected profit under parity."""
    scores = np.asarray(scores, dtype=float)
    gain = money.profit(scores, 1.0, settings.call_cost, settings.subscription_value)
    position, sizes = _order_in_groups(scores, groups)
    rates = np.linspace(0.0, 1.0, steps + 1)
    profit = np.zeros(len(rates))
    for name in pd.unique(groups):
        mask = (groups == name).to_numpy()
        ordered = np.empty(int(mask.sum()))
        ordered[position[mask]] = gain[mask]
        cumulative = np.concatenate([[0.0], np.cumsum(ordered)])
        profit += cumulative[np.floor(rates * sizes[mask][0] + 0.5).astype(int)]
    return float(rates[int(np.argmax(profit))])


def _policy(
    name: str,
    description: str,
    frame: pd.DataFrame,
    scores: np.ndarray,
    called: np.ndarray,
    attribute: str,
    settings: BusinessSettings,
    outcomes: Any,
) -> Policy:
    groups = groups_of(frame, attribute)
    report = group_report(frame, scores, called, attribute, outcomes)
    lowest = pd.Series(np.where(called, scores, np.nan)).groupby(groups.to_numpy()).min()
    thresholds = lowest.reindex(report.table.index)
    known, y = _outcome_mask(outcomes, len(scores))
    realised = None
    if known.all() and len(scores):
        realised = float(
            money.profit(
                y[called].sum(), called.sum(), settings.call_cost, settings.subscription_value
            )
        )
    return Policy(
        name=name,
        description=description,
        called=called,
        thresholds=thresholds,
        calls=int(called.sum()),
        expected_profit=float(
            money.profit(
                scores[called].sum(),
                called.sum(),
                settings.call_cost,
                settings.subscription_value,
            )
        ),
        realised_profit=realised,
        report=report,
    )


def price_of_fairness(
    frame: pd.DataFrame,
    scores: Any,
    called: Any,
    attribute: str,
    settings: BusinessSettings,
    outcomes: Any = None,
) -> list[Policy]:
    """The chosen calls beside two demographic-parity alternatives for one attribute.

    1. As chosen: the calls of the current threshold (and capacity).
    2. Parity, same number of calls: every group called at the same share, the share that
       gives (about) as many calls as the chosen threshold.
    3. Parity, most profitable: every group called at the same share, the share that
       maximises expected profit.

    Per-group thresholds follow from the shares (the lowest probability called in each group).
    Fairlearn's ``ThresholdOptimizer`` is not used: it optimises accuracy-type objectives and
    needs known outcomes, while the bank's objective is profit and new cohorts have none.
    """
    scores = np.asarray(scores, dtype=float)
    called = np.asarray(called, dtype=bool)
    groups = groups_of(frame, attribute)
    label = ATTRIBUTE_LABELS.get(attribute, attribute).lower()
    same_rate = float(called.mean()) if len(called) else 0.0
    best_rate = best_parity_rate(scores, groups, settings)
    return [
        _policy(
            "As chosen",
            "One threshold for everyone (the threshold and capacity chosen on the other pages).",
            frame,
            scores,
            called,
            attribute,
            settings,
            outcomes,
        ),
        _policy(
            "Parity, same number of calls",
            f"Each {label} group has its own threshold so that {same_rate:.1%} of every group "
            "is called: about as many calls as chosen.",
            frame,
            scores,
            parity_calls(scores, groups, same_rate),
            attribute,
            settings,
            outcomes,
        ),
        _policy(
            "Parity, most profitable",
            f"Each {label} group has its own threshold so that {best_rate:.1%} of every group "
            "is called: the share with the highest expected profit under parity.",
            frame,
            scores,
            parity_calls(scores, groups, best_rate),
            attribute,
            settings,
            outcomes,
        ),
    ]


#: Per-group policies a user can apply to the downloadable call list (key -> name).
POLICY_CHOICES = {
    "single": "One threshold for everyone (no group policy)",
    "parity_same_calls": "Equal share called in every group, about as many calls",
    "parity_best": "Equal share called in every group, the most profitable share",
}


@dataclass(frozen=True)
class AppliedPolicy:
    """A per-group policy applied to a cohort: who is called and each group's threshold.

    Attributes:
        policy: a key of :data:`POLICY_CHOICES`.
        attribute: the grouping (e.g. ``age band``).
        called: True for each customer called, in the cohort's row order.
        thresholds: the lowest probability called in each group (NaN: nobody called).
        share: the share of every group called (None for ``single``).
        description: what was done, in a sentence (for the About sheet and the audit log).
    """

    policy: str
    attribute: str
    called: np.ndarray
    thresholds: pd.Series
    share: float | None
    description: str


def apply_policy(
    frame: pd.DataFrame,
    scores: Any,
    called: Any,
    policy: str,
    attribute: str,
    settings: BusinessSettings,
) -> AppliedPolicy:
    """Who is called under a per-group policy; a pure function the call-list service can take.

    Args:
        frame: the scored cohort (its inputs give the groups).
        scores: the probabilities, same order.
        called: the calls of the single threshold (and capacity) chosen by the user.
        policy: ``single`` (keep ``called``), ``parity_same_calls`` (every group called at the
            share ``called`` gives overall) or ``parity_best`` (every group called at the
            share with the highest expected profit under parity).
        attribute: the grouping the policy equalises.

    Raises:
        TermDepositError: an unknown policy or grouping.
    """
    if policy not in POLICY_CHOICES:
        raise TermDepositError(
            f"Unknown group policy '{policy}'.",
            hint=f"Choose one of: {', '.join(POLICY_CHOICES)}.",
        )
    if attribute not in ATTRIBUTE_CHOICES:
        raise TermDepositError(
            f"Unknown grouping '{attribute}'.",
            hint=f"Choose one of: {', '.join(ATTRIBUTE_CHOICES)}.",
        )
    scores = np.asarray(scores, dtype=float)
    chosen = np.asarray(called, dtype=bool)
    groups = groups_of(frame, attribute)
    label = ATTRIBUTE_LABELS.get(attribute, attribute).lower()
    share: float | None = None
    if policy == "single":
        description = "One threshold for everyone; no per-group policy."
    else:
        share = (
            float(chosen.mean())
            if policy == "parity_same_calls" and len(chosen)
            else best_parity_rate(scores, groups, settings)
        )
        chosen = parity_calls(scores, groups, share)
        description = (
            f"Per-group thresholds by {label}: the best {share:.1%} of every group is called "
            f"({POLICY_CHOICES[policy].lower()})."
        )
    lowest = pd.Series(np.where(chosen, scores, np.nan)).groupby(groups.to_numpy()).min()
    order = group_order(attribute, [str(g) for g in pd.unique(groups)])
    return AppliedPolicy(
        policy=policy,
        attribute=attribute,
        called=chosen,
        thresholds=lowest.reindex(order),
        share=share,
        description=description,
    )


# --- a model without the protected inputs ----------------------------------------------------


class DropInputs(TransformerMixin, BaseEstimator):
    """Remove some input columns from a frame (used to train a model that never sees them).

    Args:
        columns: the inputs to remove.
    """

    def __init__(self, columns: tuple[str, ...] = PROTECTED_INPUTS) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: object = None) -> DropInputs:
        """Remember the incoming column names."""
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return ``X`` without the dropped columns."""
        return X.drop(columns=[c for c in self.columns if c in X.columns])

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the columns :meth:`transform` returns."""
        return np.asarray(
            [c for c in self.feature_names_in_ if c not in self.columns], dtype=object
        )


def without_inputs(artifact: Any, drop: tuple[str, ...] = PROTECTED_INPUTS) -> Any:
    """An unfitted copy of a saved artifact (same family, settings, calibration) that drops
    ``drop`` right after cleaning, so the model never sees them."""
    from imblearn.pipeline import Pipeline as ImbPipeline

    from termdeposit.insight.explain import underlying_pipeline

    inner, calibrated = underlying_pipeline(artifact)
    steps: list[tuple[str, Any]] = []
    for name, step in inner.steps:
        steps.append((name, clone(step)))
        if name == "clean":
            steps.append(("drop", DropInputs(tuple(drop))))
    blind = ImbPipeline(steps)
    if calibrated:
        return clone(artifact).set_params(estimator=blind)
    return blind


@dataclass
class BlindComparison:
    """The production model against its twin trained without the protected inputs.

    Both are fitted on the same rows (everything before the time hold-out) and judged on the
    time hold-out at the break-even threshold, where outcomes are known.
    """

    dropped: tuple[str, ...]
    rows_fit: int
    rows_holdout: int
    threshold: float
    table: pd.DataFrame
    fairness: pd.DataFrame
    seconds: float


def compare_without_protected(
    model: Any,
    reference: pd.DataFrame,
    settings: BusinessSettings,
    drop: tuple[str, ...] = PROTECTED_INPUTS,
) -> BlindComparison:
    """Retrain the production configuration without ``drop`` and compare on the time hold-out.

    Args:
        model: the production :class:`~termdeposit.modeling.registry.LoadedModel`.
        reference: the reference data in time order (inputs and ``y``).
        settings: business settings (the break-even threshold and the profit figures).
        drop: the inputs the twin never sees.
    """
    from termdeposit.modeling.train import make_splits

    started = time.perf_counter()
    artifact = model.pipeline
    seed = model.info.random_state
    y = reference[TARGET].to_numpy(dtype=int)
    splits = make_splits(y, seed)
    X = inputs_only(reference).reset_index(drop=True)
    blind = without_inputs(artifact, drop).fit(X.iloc[splits.fit_time], y[splits.fit_time])
    holdout = X.iloc[splits.holdout_time].reset_index(drop=True)
    y_holdout = y[splits.holdout_time]
    threshold = settings.break_even
    scores = {
        "Production model": artifact.predict_proba(holdout)[:, 1],
        f"Without {' and '.join(drop)}": blind.predict_proba(holdout)[:, 1],
    }
    rows = []
    fairness_rows = []
    for name, p in scores.items():
        called = p >= threshold
        subscribers = int(y_holdout[called].sum())
        rows.append(
            {
                "model": name,
                "auc": float(roc_auc_score(y_holdout, p)),
                "calls": int(called.sum()),
                "subscribers_reached": subscribers,
                "expected_profit": float(
                    money.profit(
                        p[called].sum(),
                        called.sum(),
                        settings.call_cost,
                        settings.subscription_value,
                    )
                ),
                "realised_profit": float(
                    money.profit(
                        subscribers,
                        called.sum(),
                        settings.call_cost,
                        settings.subscription_value,
                    )
                ),
            }
        )
        for attribute in (AGE_BAND, "marital"):
            report = group_report(holdout, p, called, attribute, y_holdout)
            fairness_rows.append(
                {
                    "model": name,
                    "attribute": attribute,
                    "dp_ratio": report.dp_ratio,
                    "dp_difference": report.dp_difference,
                    "eo_difference": report.eo_difference,
                    "flagged": ", ".join(report.flagged),
                }
            )
    return BlindComparison(
        dropped=tuple(drop),
        rows_fit=len(splits.fit_time),
        rows_holdout=len(splits.holdout_time),
        threshold=threshold,
        table=pd.DataFrame(rows).set_index("model"),
        fairness=pd.DataFrame(fairness_rows),
        seconds=time.perf_counter() - started,
    )


# --- the model card's fairness section -------------------------------------------------------


def _rounded(value: Any, digits: int = 4) -> Any:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return None if math.isnan(value) else round(value, digits)


def report_as_dict(report: GroupReport) -> dict[str, Any]:
    """A group report as plain JSON-ready values (for the model card and downloads)."""
    columns = [
        c
        for c in (
            "size",
            "selection_rate",
            "mean_score",
            "outcomes_known",
            "tpr",
            "precision",
            "fpr",
            "ratio_to_best",
        )
        if c in report.table
    ]
    groups = {
        str(group): {
            **{c: _rounded(row[c]) for c in columns},
            "status": str(row["status"]),
        }
        for group, row in report.table.iterrows()
    }
    return {
        "groups": groups,
        "demographic_parity_difference": _rounded(report.dp_difference),
        "demographic_parity_ratio": _rounded(report.dp_ratio),
        "equalized_odds_difference": _rounded(report.eo_difference),
        "best_treated_group": report.best_group,
        "below_four_fifths": report.flagged,
        "too_small_to_judge": report.too_small,
    }


def card_section(model_or_pipeline: Any, frame_holdout: pd.DataFrame, threshold: float) -> dict:
    """The model card's fairness section: group metrics on the time hold-out at ``threshold``.

    Args:
        model_or_pipeline: a loaded model or the fitted artifact.
        frame_holdout: the time-ordered hold-out (inputs and ``y``).
        threshold: the default threshold (customers at or above it are called).
    """
    artifact = getattr(model_or_pipeline, "pipeline", model_or_pipeline)
    frame = frame_holdout.reset_index(drop=True)
    scores = artifact.predict_proba(inputs_only(frame))[:, 1]
    called = scores >= threshold
    outcomes = frame.get(TARGET)
    return {
        "computed_on": (
            f"time hold-out ({len(frame):,} customers, the last 20% of the reference data) "
            f"at the default threshold {threshold:g}"
        ),
        "threshold": float(threshold),
        "rows": len(frame),
        "calls": int(called.sum()),
        "rules": (
            f"groups under {MIN_GROUP_SIZE} customers are too small to judge and left out of "
            "the parity and equalized-odds figures; a group called at less than "
            f"{FOUR_FIFTHS:g} x the best-treated group's rate is flagged (four-fifths rule)"
        ),
        "attributes": {
            attribute: report_as_dict(group_report(frame, scores, called, attribute, outcomes))
            for attribute in DEFAULT_ATTRIBUTES
        },
    }
