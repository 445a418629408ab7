"""A monitoring run: assess every period, record the alerts, the result the front doors show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from termdeposit.core.config import BusinessSettings
from termdeposit.ops.backtest import json_records
from termdeposit.ops.monitoring.drift import DriftReport, ReferenceCache
from termdeposit.ops.monitoring.limits import AlertLimits, load_limits
from termdeposit.ops.monitoring.periods import figures_table, load_periods
from termdeposit.ops.monitoring.rules import CLEARED_BY, Assessment, assess
from termdeposit.storage.store import Store, open_store


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
