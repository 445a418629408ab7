"""Monitoring: weekly business figures, expected against realised, drift, and alert rules.

Per cohort (week) the plan is the latest call list issued for it (or, without one, the latest
scoring). Before outcomes arrive, the expected figures come from the probabilities: calls,
conversion among the called, subscriptions, profit, and an AUC estimated from the scores
alone (confidence-based performance estimation: with calibrated probabilities, each customer
is a positive with probability p, so the expected AUC follows without any label). When the
outcomes are uploaded the realised figures stand beside them.

Drift compares each cohort with the training reference sample saved beside the model:
PSI for each customer input and for the score (bands 0.1 / 0.25), the share of drifted
inputs and the mean confidence. Inputs that describe the week rather than the customer
(month, weekday, the five macro-economic rates) are the same for everyone in a week, so
their PSI against a multi-month reference is always huge and says nothing; for them the
check is whether the week's value lies inside the range the model was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings, default_settings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import feature_label
from termdeposit.core.schema import CATEGORICAL_COLUMNS, CONTEXT_INPUTS, ID_COLUMN, INPUT_COLUMNS
from termdeposit.decisions.forecast import card_error, profit_range
from termdeposit.modeling import registry
from termdeposit.modeling.metrics import expected_calibration_error
from termdeposit.storage.store import Store, open_store

#: PSI bands: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 significant shift.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25
CUSTOMER_INPUTS = tuple(c for c in INPUT_COLUMNS if c not in CONTEXT_INPUTS)
LIMITS_KEY = "alert_limits"
#: Smallest share used for an empty bin, so PSI stays finite.
_EPSILON = 1e-4


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
        categories = sorted(set(expected.astype(str)) | set(actual.astype(str)))
        e = expected.astype(str).value_counts(normalize=True).reindex(categories, fill_value=0)
        a = actual.astype(str).value_counts(normalize=True).reindex(categories, fill_value=0)
        return e.to_numpy(float), a.to_numpy(float), categories
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


def psi(expected: np.ndarray | pd.Series, actual: np.ndarray | pd.Series, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``: sum (a - e) ln(a / e)."""
    if len(pd.Series(expected).dropna()) == 0 or len(pd.Series(actual).dropna()) == 0:
        return float("nan")
    e, a, _ = bin_shares(expected, actual, bins)
    e = np.clip(e, _EPSILON, None)
    a = np.clip(a, _EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


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


# -- alert limits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertLimits:
    """Editable limits of the alert rules (stored in the database, shared by app and cron).

    Attributes:
        psi_input: alert when a watched customer input's PSI is above this.
        drifted_share: alert when more than this share of customer inputs drifted (PSI > 0.25).
        psi_score: alert when the score distribution's PSI is above this.
        context_margin: alert when a week's context input (rates, month) lies outside the
            training range by more than this share of that range.
        confidence_drop: alert when mean confidence fell by more than this vs training.
        conversion_drop: alert when conversion among the called is below the trailing
            4-week mean by more than this share (0.25 = a quarter below).
        auc_min: alert when the AUC among called customers is below this.
        ece_max: alert when the calibration error among called customers is above this.
        watched_inputs: the customer inputs whose PSI raises an alert on its own.
    """

    psi_input: float = PSI_SIGNIFICANT
    drifted_share: float = 0.3
    psi_score: float = PSI_SIGNIFICANT
    context_margin: float = 0.05
    confidence_drop: float = 0.05
    conversion_drop: float = 0.25
    auc_min: float = 0.65
    ece_max: float = 0.10
    watched_inputs: tuple[str, ...] = ("age", "job", "contact", "pdays", "previous", "poutcome")

    def check(self) -> AlertLimits:
        """Refuse limits that make no sense, saying which and why."""
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "watched_inputs":
                unknown = [v for v in value if v not in CUSTOMER_INPUTS]
                if unknown:
                    raise TermDepositError(
                        f"Unknown watched inputs: {', '.join(unknown)}.",
                        hint=f"Choose among: {', '.join(CUSTOMER_INPUTS)}.",
                    )
            elif not (0 <= float(value) <= 10):
                raise TermDepositError(
                    f"The limit {item.name} = {value} is out of range.",
                    hint="Limits are small positive numbers (PSI 0.25, shares 0.3, AUC 0.65).",
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
            if key in names:
                clean[key] = tuple(value) if key == "watched_inputs" else float(value)
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
        else:
            try:
                values[key] = float(raw)
            except ValueError as exc:
                raise TermDepositError(f"The limit {key} must be a number, not {raw!r}.") from exc
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


# -- weekly figures -----------------------------------------------------------------------------


def model_card(version: str) -> dict[str, Any]:
    """The card behind a model's money ranges (empty for a model no longer on disk: its ranges
    then use the fallback error)."""
    try:
        return registry.read_card(version)
    except TermDepositError:
        return {}


def cohort_figures(
    plan: Plan, outcomes: pd.DataFrame, card: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Expected (with their 80% ranges) and, when outcomes exist, realised figures of one
    cohort. ``card``: the scoring model's card, whose weekly rate model gives the cohort's
    week-level error and range percentiles (default: read it)."""
    cost, value = plan.settings.call_cost, plan.settings.subscription_value
    members = plan.members
    p = members["probability"].to_numpy(float)
    planned = members["call"].to_numpy(bool)
    card = model_card(plan.model_version) if card is None else card
    error = card_error(card, len(p))
    planned_range = profit_range(p[planned], error.sigma, plan.settings, error.levels)
    row: dict[str, Any] = {
        "customers": int(len(members)),
        "model_version": plan.model_version,
        "threshold": plan.threshold,
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
    row["has_outcomes"] = bool(len(outcomes))
    if len(outcomes):
        merged = members.merge(
            outcomes.loc[:, [ID_COLUMN, "called", "subscribed"]], on=ID_COLUMN, how="left"
        )
        known = merged["called"].notna()
        called = merged["called"].fillna(False).astype(bool).to_numpy()
        subscribed = merged["subscribed"].fillna(False).astype(bool).to_numpy() & called
        calls = int(called.sum())
        subs = int(subscribed.sum())
        uncalled = ~called
        realised_profit = float(money.profit(subs, calls, cost, value))
        called_range = profit_range(p[called], error.sigma, plan.settings, error.levels)
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


def weekly_table(
    store: Store | None = None, settings: BusinessSettings | None = None
) -> pd.DataFrame:
    """One row per scored cohort (oldest first): expected and realised figures, A/B uplift.

    The money settings are those recorded with the cohort's call list, or ``settings``.
    """
    from termdeposit.decisions.abtest import ab_results

    store = store or open_store()
    cohorts = store.cohorts()
    outcomes = store.outcomes()
    rows = []
    cards: dict[str, dict[str, Any]] = {}
    for cohort in cohorts.itertuples(index=False):
        plan = cohort_plan(store, int(cohort.id), settings)
        if plan is None:
            continue
        if plan.model_version not in cards:
            cards[plan.model_version] = model_card(plan.model_version)
        figures = cohort_figures(
            plan, outcomes[outcomes["cohort_id"] == cohort.id], cards[plan.model_version]
        )
        row = {
            "cohort_id": int(cohort.id),
            "week_label": cohort.week_label,
            "name": cohort.name,
            "uploaded_at": cohort.uploaded_at,
            **figures,
        }
        if plan.call_list_id is not None and plan.ab_share > 0 and figures["has_outcomes"]:
            ab = ab_results(store, plan.call_list_id, n_boot=500)
            row["ab_uplift_per_customer"] = ab.uplift_per_customer
            row["ab_uplift_low"] = ab.interval[0]
            row["ab_uplift_high"] = ab.interval[1]
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    if "conversion" in table:
        previous = table["conversion"].shift(1).rolling(4, min_periods=1).mean()
        table["trailing_conversion"] = previous
    return table


# -- drift --------------------------------------------------------------------------------------


@dataclass
class DriftReport:
    """Drift of one cohort against the model's training reference."""

    cohort_id: int
    model_version: str
    table: pd.DataFrame
    score_psi: float
    drifted_share: float
    mean_confidence: float
    reference_confidence: float

    @property
    def context_out_of_range(self) -> pd.DataFrame:
        """Context inputs whose week value lies outside the training range."""
        return self.table[(self.table["kind"] == "context") & self.table["outside_range"]]


def model_reference(version: str) -> pd.DataFrame:
    """The training reference sample (inputs, score, y) saved with a model version.

    Read without unpickling the model (the sample is a plain parquet file beside it, checked
    against the model's checksum list).
    """
    return registry.read_reference(version)


def drift_report(
    current: pd.DataFrame,
    current_scores: np.ndarray,
    reference: pd.DataFrame,
    cohort_id: int = 0,
    model_version: str = "",
    margin: float = AlertLimits.context_margin,
) -> DriftReport:
    """PSI of every customer input and of the score; range check of the context inputs."""
    rows = []
    for column in INPUT_COLUMNS:
        kind = "context" if column in CONTEXT_INPUTS else "customer"
        value = psi(reference[column], current[column])
        outside = False
        detail = ""
        if kind == "context" and column not in CATEGORICAL_COLUMNS:
            low, high = float(reference[column].min()), float(reference[column].max())
            span = max(high - low, 1e-9)
            week_low, week_high = float(current[column].min()), float(current[column].max())
            outside = week_low < low - margin * span or week_high > high + margin * span
            detail = f"this week {week_low:g} to {week_high:g}, in training {low:g} to {high:g}"
        elif kind == "context":
            unseen = sorted(set(current[column].astype(str)) - set(reference[column].astype(str)))
            outside = bool(unseen)
            detail = f"not seen in training: {', '.join(unseen)}" if unseen else ""
        rows.append(
            {
                "input": column,
                "kind": kind,
                "psi": value,
                "band": psi_band(value) if kind == "customer" else "(weekly context)",
                "outside_range": outside,
                "detail": detail,
            }
        )
    table = pd.DataFrame(rows)
    customer = table[table["kind"] == "customer"]
    reference_scores = reference["score"].to_numpy(float)
    return DriftReport(
        cohort_id=cohort_id,
        model_version=model_version,
        table=table,
        score_psi=psi(reference_scores, np.asarray(current_scores, dtype=float)),
        drifted_share=float((customer["psi"] > PSI_SIGNIFICANT).mean()),
        mean_confidence=mean_confidence(current_scores),
        reference_confidence=mean_confidence(reference_scores),
    )


def cohort_drift(
    store: Store, cohort_id: int, limits: AlertLimits | None = None
) -> DriftReport | None:
    """Drift of a logged cohort against the reference of the model that scored it."""
    limits = limits or load_limits(store)
    plan = cohort_plan(store, cohort_id)
    if plan is None:
        return None
    inputs = store.cohort_inputs(cohort_id)
    scores = inputs[[ID_COLUMN]].merge(plan.members, on=ID_COLUMN, how="left")["probability"]
    reference = model_reference(plan.model_version)
    return drift_report(
        inputs,
        scores.to_numpy(float),
        reference,
        cohort_id,
        plan.model_version,
        limits.context_margin,
    )


# -- alert rules --------------------------------------------------------------------------------


def drift_alerts(report: DriftReport, limits: AlertLimits, label: str) -> list[dict[str, Any]]:
    """Alerts raised by a drift report."""
    scope = f"cohort:{report.cohort_id}"
    alerts = []
    table = report.table.set_index("input")
    for column in limits.watched_inputs:
        value = float(table.loc[column, "psi"])
        if value > limits.psi_input:
            alerts.append(
                _alert(
                    "input_drift",
                    scope,
                    column,
                    f"{label}: {feature_label(column)} shifted (PSI {value:.2f} > "
                    f"{limits.psi_input:g})",
                    value,
                    limits.psi_input,
                )
            )
    if report.drifted_share > limits.drifted_share:
        alerts.append(
            _alert(
                "drift_share",
                scope,
                "inputs",
                f"{label}: {report.drifted_share:.0%} of customer inputs shifted significantly "
                f"(limit {limits.drifted_share:.0%})",
                report.drifted_share,
                limits.drifted_share,
                "critical",
            )
        )
    if report.score_psi > limits.psi_score:
        alerts.append(
            _alert(
                "score_drift",
                scope,
                "score",
                f"{label}: the score distribution shifted (PSI {report.score_psi:.2f} > "
                f"{limits.psi_score:g})",
                report.score_psi,
                limits.psi_score,
            )
        )
    for row in report.context_out_of_range.itertuples(index=False):
        alerts.append(
            _alert(
                "context_range",
                scope,
                row.input,
                f"{label}: {feature_label(row.input)} is outside what the model was trained "
                f"on ({row.detail})",
                None,
                limits.context_margin,
            )
        )
    drop = report.reference_confidence - report.mean_confidence
    if drop > limits.confidence_drop:
        alerts.append(
            _alert(
                "confidence_drop",
                scope,
                "confidence",
                f"{label}: mean confidence fell to {report.mean_confidence:.2f} from "
                f"{report.reference_confidence:.2f} in training",
                drop,
                limits.confidence_drop,
            )
        )
    return alerts


def outcome_alerts(week: pd.Series, limits: AlertLimits) -> list[dict[str, Any]]:
    """Alerts raised by a week's realised figures (one row of :func:`weekly_table`)."""
    scope = f"cohort:{int(week['cohort_id'])}"
    label = str(week["week_label"])
    alerts = []
    trailing = week.get("trailing_conversion", float("nan"))
    conversion = week.get("conversion", float("nan"))
    if pd.notna(trailing) and pd.notna(conversion) and trailing > 0:
        floor = trailing * (1 - limits.conversion_drop)
        if conversion < floor:
            alerts.append(
                _alert(
                    "conversion_drop",
                    scope,
                    "conversion",
                    f"{label}: conversion among the called {conversion:.1%} is below the "
                    f"trailing 4-week mean {trailing:.1%} by more than "
                    f"{limits.conversion_drop:.0%}",
                    conversion,
                    floor,
                )
            )
    auc = week.get("auc", float("nan"))
    if pd.notna(auc) and auc < limits.auc_min:
        alerts.append(
            _alert(
                "auc_low",
                scope,
                "auc",
                f"{label}: AUC among the called {auc:.3f} is below {limits.auc_min:g}",
                auc,
                limits.auc_min,
                "critical",
            )
        )
    ece = week.get("calibration_error", float("nan"))
    if pd.notna(ece) and ece > limits.ece_max:
        alerts.append(
            _alert(
                "calibration",
                scope,
                "ece",
                f"{label}: calibration error {ece:.3f} above {limits.ece_max:g}: the "
                "probabilities are off (recalibrate: 'termdeposit recalibrate')",
                ece,
                limits.ece_max,
            )
        )
    return alerts


def _alert(
    rule: str,
    scope: str,
    subject: str,
    message: str,
    value: float | None,
    limit: float | None,
    severity: str = "warning",
) -> dict[str, Any]:
    return {
        "rule": rule,
        "scope": scope,
        "subject": subject,
        "message": message,
        "value": value,
        "limit": limit,
        "severity": severity,
    }


@dataclass
class MonitorResult:
    """One monitoring run: the weekly table, the latest drift, the alerts raised and stored."""

    weekly: pd.DataFrame
    drift: DriftReport | None
    alerts: pd.DataFrame

    @property
    def active(self) -> pd.DataFrame:
        """Alerts of this run nobody has acknowledged."""
        if self.alerts.empty:
            return self.alerts
        return self.alerts[self.alerts["acknowledged_at"].isna()]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: weekly KPIs, drift table, alerts."""
        from termdeposit.ops.backtest import json_records

        drift = None
        if self.drift is not None:
            drift = {
                "cohort_id": self.drift.cohort_id,
                "model_version": self.drift.model_version,
                "score_psi": _clean(self.drift.score_psi),
                "drifted_share": _clean(self.drift.drifted_share),
                "mean_confidence": _clean(self.drift.mean_confidence),
                "reference_confidence": _clean(self.drift.reference_confidence),
                "inputs": json_records(self.drift.table.map(_clean)),
            }
        weekly = self.weekly.copy()
        if "uploaded_at" in weekly:
            weekly["uploaded_at"] = weekly["uploaded_at"].astype(str)
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


def run_monitor(
    store: Store | None = None,
    limits: AlertLimits | None = None,
    settings: BusinessSettings | None = None,
) -> MonitorResult:
    """Compute the weekly table and the latest cohort's drift; raise and store the alerts.

    Drift rules look at the most recent cohort; outcome rules at the most recent cohort
    with outcomes. An alert already stored for the same rule and cohort is refreshed, not
    duplicated, and keeps its acknowledgement.
    """
    store = store or open_store()
    limits = (limits or load_limits(store)).check()
    weekly = weekly_table(store, settings)
    drafts: list[dict[str, Any]] = []
    drift = None
    if not weekly.empty:
        latest = weekly.iloc[-1]
        drift = cohort_drift(store, int(latest["cohort_id"]), limits)
        if drift is not None:
            drafts += drift_alerts(drift, limits, str(latest["week_label"]))
        with_outcomes = weekly[weekly["has_outcomes"]]
        if len(with_outcomes):
            drafts += outcome_alerts(with_outcomes.iloc[-1], limits)
    stored = store.record_alerts(drafts) if drafts else store.alerts(active_only=False).head(0)
    return MonitorResult(weekly, drift, stored)
