"""Drift of a period's customers against the training reference and the last weeks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import (
    CATEGORICAL_COLUMNS,
    CONTEXT_INPUTS,
    INPUT_COLUMNS,
)
from termdeposit.modeling import registry
from termdeposit.ops.monitoring.limits import AlertLimits, load_limits
from termdeposit.ops.monitoring.periods import Period, load_periods
from termdeposit.ops.monitoring.statistics import (
    centred_log_odds,
    mean_confidence,
    psi_band,
    psi_beyond_chance,
    psi_parts,
)
from termdeposit.storage.store import Store


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
