"""The customer records of ``POST /predict``: their schema, and reading them through the contract.

A record's fields come from the cohort contract (:mod:`termdeposit.core.schema`). Numbers are
JSON numbers or text (``"41"``); JSON booleans are refused for numbers and ids (``true`` is not
1). Clean records are typed directly; anything else goes through
:func:`~termdeposit.data.cohort_file.validate_cohort`, which accepts it or says what is wrong,
with the same words as for a file (ids: the one id rule, at most
:data:`~termdeposit.core.schema.ID_MAX_LENGTH` characters).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from termdeposit.core.errors import CohortValidationError
from termdeposit.core.schema import (
    CATEGORICAL_INPUTS,
    ID_COLUMN,
    ID_FORBIDDEN_CHARACTERS,
    ID_MAX_LENGTH,
    ID_RULE,
    INPUT_COLUMNS,
    NUMERIC_INPUTS,
    UNKNOWN_ALLOWED,
)
from termdeposit.data.cohort_file import validate_cohort
from termdeposit.modeling.predict import DECISION_NO, DECISION_YES

#: Most customer records accepted by one ``POST /predict`` (larger cohorts: ``POST /score``).
MAX_RECORDS = 1000
_BLANKS = frozenset({"", "nan", "na", "null", "none"})
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_FORBIDDEN = re.compile(ID_FORBIDDEN_CHARACTERS)


def _not_boolean(value: Any) -> Any:
    """Refuse JSON ``true`` / ``false`` where a number or an id is expected."""
    if isinstance(value, bool):
        raise ValueError("true or false is not accepted here: give a number or text")
    return value


def _field_name(column: str) -> str:
    return column.replace(".", "_")


class RecordBase(BaseModel):
    """What every customer record has: the optional id (the inputs come from the contract)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    customer_id: Annotated[str | int | None, BeforeValidator(_not_boolean)] = Field(
        None, description=f"Your id of the customer (optional): {ID_RULE}."
    )


def _record_model() -> type[RecordBase]:
    """The customer record of ``POST /predict``, built from the cohort contract."""
    fields: dict[str, Any] = {}
    for column in INPUT_COLUMNS:
        if column in NUMERIC_INPUTS:
            low, high, whole = NUMERIC_INPUTS[column]
            kind = "whole number" if whole else "number"
            fields[_field_name(column)] = (
                Annotated[float | str, BeforeValidator(_not_boolean)],
                Field(alias=column, description=f"A {kind} from {low:g} to {high:g}."),
            )
        else:
            allowed = CATEGORICAL_INPUTS[column]
            blank = " (blank = unknown)" if column in UNKNOWN_ALLOWED else ""
            fields[_field_name(column)] = (
                str,
                Field(
                    alias=column,
                    max_length=100,
                    description=f"One of {', '.join(allowed)}{blank}.",
                ),
            )
    return create_model("CustomerRecord", __base__=RecordBase, __module__=__name__, **fields)


CustomerRecord = _record_model()
_FIELDS = {column: _field_name(column) for column in INPUT_COLUMNS}
_EXAMPLE = {
    "customer_id": "C00042",
    "age": 41,
    "job": "management",
    "marital": "married",
    "education": "university.degree",
    "default": "no",
    "housing": "yes",
    "loan": "no",
    "contact": "cellular",
    "month": "may",
    "day_of_week": "thu",
    "campaign": 1,
    "pdays": 999,
    "previous": 0,
    "poutcome": "nonexistent",
    "emp.var.rate": -1.8,
    "cons.price.idx": 92.893,
    "cons.conf.idx": -46.2,
    "euribor3m": 1.299,
    "nr.employed": 5099.1,
}


class Prediction(BaseModel):
    """One scored customer."""

    customer_id: str
    probability: float = Field(description="Probability of subscribing (calibrated).")
    decision: str = Field(description=f"'{DECISION_YES}' (call) or '{DECISION_NO}'.")
    model_version: str


class Predictions(BaseModel):
    """The answer of ``POST /predict``."""

    model_version: str
    threshold: float
    predictions: list[Prediction]
    logged: bool = Field(description="Whether the predictions went to the prediction log.")


def _number(value: Any, column: str) -> float | None:
    """The float the contract would read from this value, or None if only it can tell."""
    if isinstance(value, str):
        if not _PLAIN_NUMBER.fullmatch(value):
            return None
        value = float(value)
    if not isinstance(value, float) or not math.isfinite(value):
        return None
    low, high, whole = NUMERIC_INPUTS[column]
    if not low <= value <= high or (whole and not value.is_integer()):
        return None
    return value


def _category(value: str, column: str) -> str | None:
    """The category the contract would read from this value, or None if only it can tell."""
    if not value.isascii():
        return None
    text = value.strip().lower()
    if text in _BLANKS and column in UNKNOWN_ALLOWED:
        return "unknown"
    return text if text in CATEGORICAL_INPUTS[column] else None


#: Validated records as plain columns: ``customer_id`` and the 19 inputs, one list each.
Columns = dict[str, list[Any]]


def _typed_records(records: list[RecordBase]) -> Columns | None:
    """The validated columns of clean records, built directly (no text round trip, no pandas).

    Returns None as soon as a value is anything but plainly valid: the records then go
    through :func:`~termdeposit.data.cohort_file.validate_cohort`, which accepts or explains them.
    A test checks that both give the same frame.
    """
    given = [r.customer_id for r in records]
    if all(i is None for i in given):
        width = max(5, len(str(len(records))))
        ids = [f"row-{i + 1:0{width}d}" for i in range(len(records))]
    else:
        ids = [str(i) if i is not None else "" for i in given]
        if any(
            not i
            or i != i.strip()
            or not i.isascii()
            or len(i) > ID_MAX_LENGTH
            or _FORBIDDEN.search(i)
            for i in ids
        ):
            return None
        if len(set(ids)) != len(ids):
            return None
    columns: Columns = {ID_COLUMN: ids}
    for column in INPUT_COLUMNS:
        name = _FIELDS[column]
        check = _number if column in NUMERIC_INPUTS else _category
        values = [check(getattr(r, name), column) for r in records]
        if None in values:
            return None
        columns[column] = values
    return columns


def _text_records(records: list[RecordBase]) -> pd.DataFrame:
    """The records as the text cells of a cohort file (for the contract's own checks)."""
    rows = []
    for record in records:
        row = {ID_COLUMN: "" if record.customer_id is None else str(record.customer_id)}
        for column in INPUT_COLUMNS:
            value = getattr(record, _FIELDS[column])
            row[column] = repr(value) if isinstance(value, float) else str(value)
        rows.append(row)
    if all(r.customer_id is None for r in records):
        for row in rows:
            del row[ID_COLUMN]
    return pd.DataFrame(rows, dtype=str)


def records_columns(records: list[RecordBase]) -> Columns:
    """Validate customer records through the cohort contract; return their typed columns.

    Raises:
        CohortValidationError: every problem, with records numbered from 1.
    """
    typed = _typed_records(records)
    if typed is not None:
        return typed
    try:
        frame = validate_cohort(_text_records(records), row_offset=-1).frame
    except CohortValidationError as exc:
        raise CohortValidationError(exc.problems, "The records cannot be scored.") from None
    return {c: frame[c].tolist() for c in (ID_COLUMN, *INPUT_COLUMNS)}


def columns_frame(columns: Columns) -> pd.DataFrame:
    """Typed columns as the validated cohort frame (numbers float64, text as objects)."""
    return pd.DataFrame(
        {
            c: np.asarray(columns[c], dtype="float64" if c in NUMERIC_INPUTS else object)
            for c in (ID_COLUMN, *INPUT_COLUMNS)
        }
    )
