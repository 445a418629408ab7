"""One table of words for people: input names, values in words, and reasons a caller reads.

Every page, file and message that shows an input to a person takes its name and its values
from here, so "Contact phone = mobile" reads the same on the Explanations page, in the call
list and in the fairness table.
"""

from __future__ import annotations

from typing import Any

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
