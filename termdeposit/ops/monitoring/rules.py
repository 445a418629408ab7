"""Alert rules: drift and outcome checks, episodes (one alert while a condition lasts), the
assessment of every period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import feature_label
from termdeposit.core.schema import ECONOMY_INPUTS
from termdeposit.modeling.metrics import expected_calibration_error
from termdeposit.ops.monitoring.drift import (
    DriftReport,
    _window_start,
    period_drift,
)
from termdeposit.ops.monitoring.limits import AlertLimits
from termdeposit.ops.monitoring.periods import Period
from termdeposit.ops.monitoring.statistics import (
    PSI_MODERATE,
    Z_ONE_SIDED,
    auc_standard_error,
    chance_calibration_error,
    within_period_auc,
)

#: Rule names, and which of them are about drift.
DRIFT_RULES = ("input_drift", "score_drift")
OUTCOME_RULES = ("auc_drop", "conversion_drop", "calibration")
INFO_RULES = ("economy",)
CLEARED_BY = "monitoring (cleared)"

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
