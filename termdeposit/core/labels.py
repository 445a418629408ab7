"""One table of words for people: input names, values in words, reasons a caller reads, the
columns of the product's own tables and what each monitoring rule watches.

Every page, file and message that shows an input to a person takes its name and its values
from here, so "Contact phone = mobile" reads the same on the Explanations page, in the call
list and in the fairness table; nobody meets ``nr.employed``, ``cohort_id`` or ``psi``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from termdeposit.core.schema import CATEGORICAL_INPUTS, PDAYS_NEVER

#: The fairness pages' derived attribute: age in bands.
AGE_BAND = "age band"

#: Readable names of the inputs, for people who never saw the bank's column names.
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

#: Names of the groups the fairness pages compare (inputs plus the derived age band).
ATTRIBUTE_LABELS: dict[str, str] = {
    AGE_BAND: "Age band",
    **{c: FEATURE_LABELS[c] for c in CATEGORICAL_INPUTS},
}

#: Category values in words (values not listed read as they are).
VALUE_WORDS: dict[str, dict[str, str]] = {
    "education": {
        "basic.4y": "basic (4 years)",
        "basic.6y": "basic (6 years)",
        "basic.9y": "basic (9 years)",
        "high.school": "high school",
        "professional.course": "professional course",
        "university.degree": "university degree",
    },
    "poutcome": {"nonexistent": "no earlier campaign"},
    "contact": {"cellular": "mobile", "telephone": "landline"},
    "month": {
        m: m.capitalize()
        for m in ("mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    },
    "day_of_week": {
        "mon": "Monday",
        "tue": "Tuesday",
        "wed": "Wednesday",
        "thu": "Thursday",
        "fri": "Friday",
    },
}

_JOB_PHRASES = {
    "admin.": "works in administration",
    "blue-collar": "blue-collar worker",
    "entrepreneur": "entrepreneur",
    "housemaid": "works as a housemaid",
    "management": "works in management",
    "retired": "retired",
    "self-employed": "self-employed",
    "services": "works in services",
    "student": "student",
    "technician": "technician",
    "unemployed": "unemployed",
}
_EDUCATION_PHRASES = {
    "basic.4y": "basic education (4 years)",
    "basic.6y": "basic education (6 years)",
    "basic.9y": "basic education (9 years)",
    "high.school": "high-school education",
    "illiterate": "no formal education",
    "professional.course": "professional course",
    "university.degree": "university degree",
}
_CATEGORY_PHRASES: dict[str, dict[str, str]] = {
    "job": _JOB_PHRASES,
    "education": _EDUCATION_PHRASES,
    "marital": {"single": "single", "married": "married", "divorced": "divorced or widowed"},
    "default": {
        "no": "no credit in default",
        "yes": "has credit in default",
        "unknown": "did not disclose credit status",
    },
    "housing": {"no": "no housing loan", "yes": "has a housing loan"},
    "loan": {"no": "no personal loan", "yes": "has a personal loan"},
    "contact": {"cellular": "reachable on a mobile", "telephone": "reachable on a landline"},
    "poutcome": {
        "success": "said yes in the previous campaign",
        "failure": "said no in the previous campaign",
        "nonexistent": "not in any earlier campaign",
    },
}


def label(column: str) -> str:
    """The readable name of an input or attribute (the column name when there is none)."""
    return ATTRIBUTE_LABELS.get(column) or FEATURE_LABELS.get(column, column)


def value_words(column: str, value: Any) -> str:
    """An input's value as people read it: ``mobile``, ``never``, ``6 days ago``, ``1.3``."""
    if column == "pdays":
        days = int(value)
        if days == PDAYS_NEVER:
            return "never"
        return "1 day ago" if days == 1 else f"{days} days ago"
    if column in CATEGORICAL_INPUTS:
        text = str(value)
        return VALUE_WORDS.get(column, {}).get(text, text)
    number = float(value)
    if number.is_integer():
        return f"{int(number):,}" if abs(number) >= 10_000 else str(int(number))
    return f"{number:.2f}".rstrip("0").rstrip(".")


def caller_phrase(column: str, value: Any) -> str:
    """A reason to call as a caller says it: ``said yes in the previous campaign``.

    Used for the call list's "Why call" columns; the week's context (date, economy) is never a
    reason there (it is the same for everyone called that week).
    """
    text = str(value)
    if column in _CATEGORY_PHRASES:
        return _CATEGORY_PHRASES[column].get(text, f"{label(column).lower()}: {text}")
    if column == "age":
        return f"aged {int(float(value))}"
    if column == "campaign":
        before = int(float(value)) - 1
        if before <= 0:
            return "first call in this campaign"
        return f"called {before} time{'s' if before > 1 else ''} already in this campaign"
    if column == "pdays":
        days = int(float(value))
        if days == PDAYS_NEVER:
            return "not contacted in an earlier campaign"
        return f"last contacted {value_words('pdays', days)}"
    if column == "previous":
        count = int(float(value))
        if count == 0:
            return "no contact before this campaign"
        return f"contacted {count} time{'s' if count > 1 else ''} before this campaign"
    return f"{label(column).lower()}: {value_words(column, value)}"


#: Readable names of the columns of the product's own tables (store, monitoring, backtest).
COLUMN_LABELS: dict[str, str] = {
    "customer_id": "Customer id",
    "duration": "Length of the call",
    "y": "Subscribed (the outcome)",
    "never_contacted": "Never contacted before",
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
    "auc_drop": "the ranking of the called customers got worse",
    "calibration": "the chances no longer match what happens",
    "economy": "the week's economy is outside what the model was trained on",
    "weekly_job": "a step of the weekly job failed",
}


def feature_label(name: str) -> str:
    """The readable name of an input (the name itself when unknown)."""
    return FEATURE_LABELS.get(name, name)


def column_label(name: str) -> str:
    """The readable name of any column the product shows (the name itself when unknown)."""
    return COLUMN_LABELS.get(name) or label(name)


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
