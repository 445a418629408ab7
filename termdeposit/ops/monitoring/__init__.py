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

from termdeposit.core.schema import CUSTOMER_INPUTS, ECONOMY_INPUTS
from termdeposit.ops.monitoring.drift import (
    DriftReport,
    ReferenceCache,
    cohort_drift,
    drift_report,
    model_reference,
    period_drift,
)
from termdeposit.ops.monitoring.limits import (
    LIMIT_SPECS,
    LIMITS_KEY,
    AlertLimits,
    LimitSpec,
    load_limits,
    save_limits,
    update_limits,
)
from termdeposit.ops.monitoring.periods import (
    Period,
    Plan,
    api_rollup,
    cohort_plan,
    figures_table,
    load_periods,
    model_card,
    period_figures,
    rollup_key,
    weekly_table,
)
from termdeposit.ops.monitoring.rules import (
    CLEARED_BY,
    DRIFT_RULES,
    INFO_RULES,
    OUTCOME_RULES,
    Assessment,
    Check,
    Episode,
    assess,
    customer_drift_draft,
    drift_checks,
    episodes,
    outcome_checks,
)
from termdeposit.ops.monitoring.runs import (
    MonitorResult,
    record_assessment,
    run_monitor,
)
from termdeposit.ops.monitoring.statistics import (
    PSI_MODERATE,
    PSI_SIGNIFICANT,
    Z_ONE_SIDED,
    auc_standard_error,
    bin_shares,
    centred_log_odds,
    chance_calibration_error,
    chance_psi,
    estimated_auc,
    mean_confidence,
    psi,
    psi_band,
    psi_beyond_chance,
    psi_parts,
    within_period_auc,
)

__all__ = [
    "CUSTOMER_INPUTS",
    "ECONOMY_INPUTS",
    "AlertLimits",
    "Assessment",
    "CLEARED_BY",
    "Check",
    "DRIFT_RULES",
    "DriftReport",
    "Episode",
    "INFO_RULES",
    "LIMITS_KEY",
    "LIMIT_SPECS",
    "LimitSpec",
    "MonitorResult",
    "OUTCOME_RULES",
    "PSI_MODERATE",
    "PSI_SIGNIFICANT",
    "Period",
    "Plan",
    "ReferenceCache",
    "Z_ONE_SIDED",
    "api_rollup",
    "assess",
    "auc_standard_error",
    "bin_shares",
    "centred_log_odds",
    "chance_calibration_error",
    "chance_psi",
    "cohort_drift",
    "cohort_plan",
    "customer_drift_draft",
    "drift_checks",
    "drift_report",
    "episodes",
    "estimated_auc",
    "figures_table",
    "load_limits",
    "load_periods",
    "mean_confidence",
    "model_card",
    "model_reference",
    "outcome_checks",
    "period_drift",
    "period_figures",
    "psi",
    "psi_band",
    "psi_beyond_chance",
    "psi_parts",
    "record_assessment",
    "rollup_key",
    "run_monitor",
    "save_limits",
    "update_limits",
    "weekly_table",
    "within_period_auc",
]
