"""One table of readable names: inputs, groupings, table columns and alert rules.

People who use the product never saw the bank's column names (``nr.employed``, ``pdays``) or
the store's (``cohort_id``, ``psi``); every page, chart, export and report takes its labels
from here, so a name is written once.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

#: Readable names of the 19 inputs.
FEATURE_LABELS: dict[str, str] = {
    "age": "Age",
    "job": "Job",
    "marital": "Marital status",
    "education": "Education",
    "default": "Credit in default",
    "housing": "Housing loan",
    "loan": "Personal loan",
    "contact": "Contact phone",
    "month": "Month of the call",
    "day_of_week": "Day of the call",
    "campaign": "Calls in this campaign",
    "pdays": "Last contact in an earlier campaign",
    "previous": "Contacts before this campaign",
    "poutcome": "Outcome of the previous campaign",
    "emp.var.rate": "Employment variation rate",
    "cons.price.idx": "Consumer price index",
    "cons.conf.idx": "Consumer confidence index",
    "euribor3m": "3-month Euribor rate",
    "nr.employed": "People employed (thousands)",
}

#: The age grouping used by the fairness checks (not an input of its own).
AGE_BAND = "age band"

#: Readable names of the groupings the fairness checks compare.
ATTRIBUTE_LABELS: dict[str, str] = {
    AGE_BAND: "Age band",
    **{
        name: FEATURE_LABELS[name]
        for name in (
            "marital",
            "education",
            "job",
            "default",
            "housing",
            "loan",
            "contact",
            "month",
            "day_of_week",
            "poutcome",
        )
    },
}

#: Readable names of the columns of the product's own tables (store, monitoring, backtest).
COLUMN_LABELS: dict[str, str] = {
    "customer_id": "Customer id",
    "duration": "Length of the call",
    "never_contacted": "Never contacted before",
    "y": "Subscribed (the outcome)",
    "cohort_id": "Cohort",
    "week_label": "Week",
    "week": "Week",
    "name": "Name",
    "rows": "Customers",
    "customers": "Customers",
    "probability": "Chance of subscribing",
    "rank": "Rank",
    "outcomes": "Outcomes recorded",
    "called": "Called",
    "subscribed": "Subscribed",
    "conversion among called": "Conversion among the called",
    "input": "Input",
    "psi": "Shift (PSI)",
    "band": "Shift",
    "outside_range": "Outside the training range",
    "detail": "Detail",
    "reference_mean": "Mean in training",
    "cohort_mean": "Mean in this cohort",
    "model_trained_at_week": "Model trained up to week",
    "model_version": "Model",
    "threshold": "Threshold",
    "calls": "Calls",
    "subscribers": "Subscribers",
    "subscribers_reached": "Subscribers reached",
    "profit_model": "Profit with the model",
    "profit_call_all": "Profit calling everyone",
    "profit": "Profit",
    "expected_profit": "Expected profit",
    "uplift": "Uplift",
    "ece": "Calibration error",
    "base_rate": "Subscription rate",
    "mean_probability": "Average chance given",
    "scored_at": "Scored at",
    "uploaded_at": "Scored at",
    "source": "Scored from",
    "user": "By",
}

#: What each monitoring rule watches, in words (the rule codes stay in the store).
ALERT_RULES: dict[str, str] = {
    "input_drift": "a customer input shifted",
    "drift_share": "many customer inputs shifted",
    "score_drift": "the scores shifted",
    "context_range": "the week's economy is outside what the model was trained on",
    "confidence_drop": "the model is less sure of its scores",
    "conversion_drop": "fewer called customers subscribed than in recent weeks",
    "auc_low": "the ranking of the called customers got worse",
    "calibration": "the chances no longer match what happens",
}


def feature_label(name: str) -> str:
    """The readable name of an input (the name itself when unknown)."""
    return FEATURE_LABELS.get(name, name)


def column_label(name: str) -> str:
    """The readable name of any column the product shows (the name itself when unknown)."""
    return COLUMN_LABELS.get(name) or FEATURE_LABELS.get(name) or ATTRIBUTE_LABELS.get(name, name)


def rule_words(rule: str) -> str:
    """What a monitoring rule watches, in words."""
    return ALERT_RULES.get(rule, rule.replace("_", " "))


def readable_columns(
    frame: pd.DataFrame, extra: Mapping[str, str] | None = None, keep: list[str] | None = None
) -> pd.DataFrame:
    """The frame with readable column names (``extra`` first), optionally only ``keep``."""
    shown = frame.loc[:, [c for c in keep if c in frame]] if keep is not None else frame
    names = dict(extra or {})
    return shown.rename(columns={c: names.get(c) or column_label(c) for c in shown.columns})
