"""The column contract of a weekly cohort: names, kinds, ranges and categories.

A cohort holds the 19 customer and context inputs of the UCI bank-additional data (everything
but ``duration`` and ``y``) and an optional customer id. ``duration`` and ``y`` may be present:
they are never used for scoring (``y`` is kept aside to show realised results). Reading and
validating a file against this contract is :mod:`termdeposit.data.cohort_file`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # core stays free of pandas at import time
    import pandas as pd

ID_COLUMN = "customer_id"
TARGET = "y"
#: Known only after a call: never an input of a model that chooses whom to call.
POST_CALL_COLUMNS = ("duration", "y")

#: Numeric inputs: (lowest plausible, highest plausible, whole numbers only).
NUMERIC_INPUTS: dict[str, tuple[float, float, bool]] = {
    "age": (16, 110, True),
    "campaign": (1, 100, True),
    "pdays": (0, 999, True),
    "previous": (0, 100, True),
    "emp.var.rate": (-10.0, 10.0, False),
    "cons.price.idx": (80.0, 120.0, False),
    "cons.conf.idx": (-100.0, 100.0, False),
    "euribor3m": (-2.0, 20.0, False),
    "nr.employed": (1000.0, 10000.0, False),
}

#: Categorical inputs and every value seen in the training data (the data set's own spelling).
CATEGORICAL_INPUTS: dict[str, tuple[str, ...]] = {
    "job": (
        "admin.",
        "blue-collar",
        "entrepreneur",
        "housemaid",
        "management",
        "retired",
        "self-employed",
        "services",
        "student",
        "technician",
        "unemployed",
        "unknown",
    ),
    "marital": ("divorced", "married", "single", "unknown"),
    "education": (
        "basic.4y",
        "basic.6y",
        "basic.9y",
        "high.school",
        "illiterate",
        "professional.course",
        "university.degree",
        "unknown",
    ),
    "default": ("no", "yes", "unknown"),
    "housing": ("no", "yes", "unknown"),
    "loan": ("no", "yes", "unknown"),
    "contact": ("cellular", "telephone"),
    "month": ("mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    "day_of_week": ("mon", "tue", "wed", "thu", "fri"),
    "poutcome": ("failure", "nonexistent", "success"),
}

#: The 19 inputs in the data set's column order.
INPUT_COLUMNS: tuple[str, ...] = (
    "age",
    "job",
    "marital",
    "education",
    "default",
    "housing",
    "loan",
    "contact",
    "month",
    "day_of_week",
    "campaign",
    "pdays",
    "previous",
    "poutcome",
    "emp.var.rate",
    "cons.price.idx",
    "cons.conf.idx",
    "euribor3m",
    "nr.employed",
)
NUMERIC_COLUMNS = tuple(c for c in INPUT_COLUMNS if c in NUMERIC_INPUTS)
CATEGORICAL_COLUMNS = tuple(c for c in INPUT_COLUMNS if c in CATEGORICAL_INPUTS)
#: Inputs that describe the week and the economy, not the customer: the same for everyone
#: called in a week (drift checks them by range; reason codes leave them out).
CONTEXT_INPUTS: tuple[str, ...] = (
    "month",
    "day_of_week",
    "emp.var.rate",
    "cons.price.idx",
    "cons.conf.idx",
    "euribor3m",
    "nr.employed",
)
#: Inputs that describe the customer (monitoring's customer drift).
CUSTOMER_INPUTS = tuple(c for c in INPUT_COLUMNS if c not in CONTEXT_INPUTS)
#: The week's economic indicators (numbers the same for everyone called in a week).
ECONOMY_INPUTS = tuple(c for c in CONTEXT_INPUTS if c not in CATEGORICAL_COLUMNS)
#: ``pdays`` value meaning "never contacted in an earlier campaign" (the data set's code).
PDAYS_NEVER = 999
#: Inputs whose blank cells mean the data set's ``unknown``.
UNKNOWN_ALLOWED = tuple(c for c, v in CATEGORICAL_INPUTS.items() if "unknown" in v)

#: Names (compared without case, spaces or punctuation) accepted for the customer id column.
ID_ALIASES = ("customerid", "id", "clientid", "customer", "client", "customerno")
#: Longest customer id, in characters: the one limit of the CLI, the API, the dashboard and the
#: store (whose id columns hold this many characters, on PostgreSQL as on SQLite).
ID_MAX_LENGTH = 128
#: Characters a customer id may not hold (a regular expression): control characters such as
#: NUL, tab and line breaks (C0 and C1), and the Unicode line and paragraph separators. Spaces
#: around an id are removed before it is checked.
ID_FORBIDDEN_CHARACTERS = "[\x00-\x1f\x7f-\x9f\u2028\u2029]"
#: The id rule in words, for messages and API documentation.
ID_RULE = (
    f"1 to {ID_MAX_LENGTH} characters: letters, digits, punctuation and spaces, "
    "no tabs, line breaks or other control characters"
)


def inputs_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The 19 model inputs of a frame, in the model's order (never ``duration`` or ``y``)."""
    return frame.loc[:, list(INPUT_COLUMNS)]
