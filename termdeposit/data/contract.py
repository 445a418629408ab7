"""The cohort contract as pandera schemas, and their failures in the user's words.

:mod:`termdeposit.core.schema` holds the contract as data (names, ranges, categories, the id
rule). Here it becomes two pandera schemas over a *typed* frame, run lazily so every problem
is found at once:

- the inputs: every one of the 19 columns present (a missing one is "missing column"), no
  blank numbers, numbers within their plausible range, whole numbers where the data set has
  counts, categories seen in training, blanks only where they mean the data set's
  ``unknown``;
- the customer ids: not blank, at most :data:`~termdeposit.core.schema.ID_MAX_LENGTH`
  characters, no control characters, each id once. (A second schema: pandera 0.35 misreports
  the null cells of the columns after a column that fails both a uniqueness and another check.)

Each failure case (column, check, value, row) becomes a
:class:`~termdeposit.core.errors.Problem` with spreadsheet row numbers. What stays hand-written,
in :mod:`termdeposit.data.cohort_file`, is what pandera cannot see: column names matched
loosely (``Age`` and ``age``, ``id`` and ``customer_id`` are one column, named twice), text
read as numbers the way people write them (``4,5``; ``forty`` is "expected a number, found
'forty'", where pandera's coercion would only report a failed dtype), blank cells that mean
``unknown``, rows that landed whole in the first column, and yes/no outcomes.

Large frames are checked on their distinct values first (a million rows hold a few hundred
distinct values per input), and ids by the id schema's own check functions; only a frame with
a problem goes through pandera row by row, for the rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow
import pyarrow.compute as pc

from termdeposit.core.errors import Problem
from termdeposit.core.schema import (
    CATEGORICAL_INPUTS,
    ID_COLUMN,
    ID_FORBIDDEN_CHARACTERS,
    ID_MAX_LENGTH,
    INPUT_COLUMNS,
    NUMERIC_INPUTS,
)

_MAX_LISTED_ROWS = 5
_MAX_EXAMPLES = 3


def _whole(values: pd.Series) -> pd.Series:
    return values == np.floor(values)


def _arrow_text(ids: pd.Series) -> pyarrow.Array:
    try:
        return pyarrow.array(ids, type=pyarrow.string())
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError):
        return pyarrow.array(ids.astype(str), type=pyarrow.string())


def _id_present(ids: pd.Series) -> pd.Series:
    lengths = pc.utf8_length(_arrow_text(ids)).to_numpy(zero_copy_only=False)
    return pd.Series(lengths > 0, index=ids.index)


def _id_length_ok(ids: pd.Series) -> pd.Series:
    lengths = pc.utf8_length(_arrow_text(ids)).to_numpy(zero_copy_only=False)
    return pd.Series(lengths <= ID_MAX_LENGTH, index=ids.index)


def _id_characters_ok(ids: pd.Series) -> pd.Series:
    bad = pc.match_substring_regex(_arrow_text(ids), ID_FORBIDDEN_CHARACTERS)
    return pd.Series(~bad.to_numpy(zero_copy_only=False), index=ids.index)


def _ids_pass(ids: pd.Series) -> bool:
    """The id schema's checks, run directly: True when pandera would find nothing."""
    text = _arrow_text(ids)
    lengths = pc.utf8_length(text)
    return (
        pc.min(lengths).as_py() > 0
        and pc.max(lengths).as_py() <= ID_MAX_LENGTH
        and not pc.any(pc.match_substring_regex(text, ID_FORBIDDEN_CHARACTERS)).as_py()
        and ids.is_unique
    )


def _input_column(column: str) -> pa.Column:
    if column in NUMERIC_INPUTS:
        low, high, whole = NUMERIC_INPUTS[column]
        checks = [pa.Check.in_range(low, high, name="in_range")]
        if whole:
            checks.append(pa.Check(_whole, name="whole_number"))
        return pa.Column(None, checks, nullable=False, required=True, name=column)
    allowed = list(CATEGORICAL_INPUTS[column])
    return pa.Column(
        None, [pa.Check.isin(allowed, name="isin")], nullable=False, required=True, name=column
    )


#: Every input present and valid (numbers float64, categories lower-case text; NaN = blank).
INPUTS_SCHEMA = pa.DataFrameSchema(
    {column: _input_column(column) for column in INPUT_COLUMNS}, name="cohort inputs"
)
#: Customer ids: present, not too long, printable, each once.
IDS_SCHEMA = pa.DataFrameSchema(
    {
        ID_COLUMN: pa.Column(
            None,
            [
                pa.Check(_id_present, name="id_present"),
                pa.Check(_id_length_ok, name="id_length"),
                pa.Check(_id_characters_ok, name="id_characters"),
            ],
            unique=True,
            nullable=False,
            name=ID_COLUMN,
        )
    },
    name="customer ids",
)


def row_list(index: Iterable[int]) -> str:
    """Spreadsheet row numbers of 0-based positions (header = row 1), the first few listed."""
    rows = sorted({int(i) for i in index})
    shown = [str(i + 2) for i in rows[:_MAX_LISTED_ROWS]]
    more = len(rows) - len(shown)
    return ", ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def short(text: object, limit: int = 40) -> str:
    """Shorten a cell or message for display (hostile cells can be megabytes long)."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _visible(text: object) -> str:
    """Control characters written as escapes (a tab as \\t), so an id shows what is wrong."""
    names = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
    return re.sub(
        ID_FORBIDDEN_CHARACTERS, lambda m: names.get(m[0], f"\\x{ord(m[0]):02x}"), str(text)
    )


def _examples(values: pd.Series, number: bool = False, escape: bool = False) -> str:
    distinct = list(dict.fromkeys(values.tolist()))[:_MAX_EXAMPLES]
    if number:
        return ", ".join(f"{v:g}" for v in distinct)
    if escape:
        return ", ".join(f"'{short(_visible(v))}'" for v in distinct)
    return ", ".join(repr(short(v)) for v in distinct)


def _failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Pandera's failure cases (column, check, failure_case, index); empty when none."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures = exc.failure_cases
        # Built-in checks are reported by their description ("in_range(16, 110)").
        failures["check"] = failures["check"].astype(str).str.split("(").str[0]
        return failures
    return pd.DataFrame(columns=["column", "check", "failure_case", "index"])


def missing_columns(columns: Iterable[str]) -> list[str]:
    """The inputs a header lacks (pandera's column check, run on the header alone)."""
    header = pd.DataFrame(columns=list(dict.fromkeys(columns)))
    failures = _failures(INPUTS_SCHEMA, header)
    missing = failures.loc[failures["check"] == "column_in_dataframe", "failure_case"]
    found = set(missing.astype(str))
    return [c for c in INPUT_COLUMNS if c in found]


def distinct_frame(values: dict[str, pd.Series]) -> pd.DataFrame:
    """Each column's distinct values side by side (shorter columns repeat their values)."""
    length = max((len(v) for v in values.values()), default=0)
    return pd.DataFrame(
        {c: pd.Series(np.resize(v.to_numpy(), length), dtype=v.dtype) for c, v in values.items()}
    )


def input_problems(
    typed: pd.DataFrame,
    skip: dict[str, pd.Index] | None = None,
    distinct: pd.DataFrame | None = None,
) -> list[Problem]:
    """Every problem of the typed inputs present in ``typed``, in contract order.

    Args:
        typed: numbers as float64, categories as text, NaN where a cell was blank or
            unreadable; indexed by 0-based file row.
        skip: per column, rows already reported (text that is not a number): their blanks
            are not reported again.
        distinct: the columns' distinct values (:func:`distinct_frame`), checked first: the
            rows are checked only when some value fails.
    """
    columns = [c for c in INPUT_COLUMNS if c in typed]
    schema = INPUTS_SCHEMA.select_columns(columns)
    if distinct is not None and _failures(schema, distinct.loc[:, columns]).empty:
        return []
    failures = _failures(schema, typed.loc[:, columns])
    problems: list[Problem] = []
    for column in columns:
        mine = failures[failures["column"] == column]
        if mine.empty:
            continue
        problems += _column_problems(column, mine, (skip or {}).get(column))
    return problems


def _column_problems(column: str, failures: pd.DataFrame, skip: pd.Index | None) -> list[Problem]:
    problems: list[Problem] = []
    blank = failures[failures["check"] == "not_nullable"]
    if skip is not None:
        blank = blank[~blank["index"].isin(skip)]
    if len(blank):
        need = "a number" if column in NUMERIC_INPUTS else "a value"
        problems.append(Problem(column, row_list(blank["index"]), f"blank: {need} is needed"))
    if column in NUMERIC_INPUTS:
        low, high, _ = NUMERIC_INPUTS[column]
        outside = failures[failures["check"] == "in_range"]
        if len(outside):
            problems.append(
                Problem(
                    column,
                    row_list(outside["index"]),
                    f"out of range: expected {low:g} to {high:g}, found "
                    + _examples(outside["failure_case"].astype(float), number=True),
                )
            )
        fractional = failures[failures["check"] == "whole_number"]
        fractional = fractional[~fractional["index"].isin(outside["index"])]
        if len(fractional):
            problems.append(
                Problem(column, row_list(fractional["index"]), "expected a whole number")
            )
        return problems
    unseen = failures[failures["check"] == "isin"]
    if len(unseen):
        problems.append(
            Problem(
                column,
                row_list(unseen["index"]),
                f"value never seen in training: {_examples(unseen['failure_case'])}; "
                "expected one of " + ", ".join(CATEGORICAL_INPUTS[column]),
            )
        )
    return problems


def breaks_id_rule(ids: pd.Series) -> pd.Series:
    """True for ids (stripped text) over the length limit or holding a control character."""
    return ~(_id_length_ok(ids) & _id_characters_ok(ids))


def id_problems(ids: pd.Series, each_once: bool = True) -> list[Problem]:
    """Every problem of a column of customer ids (stripped text), with their rows.

    Args:
        each_once: report ids that appear more than once (a cohort); an outcomes file may
            repeat a row.
    """
    if _ids_pass(ids) or (not each_once and not breaks_id_rule(ids).any()):
        return []
    failures = _failures(IDS_SCHEMA, pd.DataFrame({ID_COLUMN: ids}))
    if failures.empty:
        return []
    problems: list[Problem] = []
    by_check = {check: part for check, part in failures.groupby("check", sort=False)}
    blank = by_check.get("id_present")
    if blank is not None:
        problems.append(Problem(ID_COLUMN, row_list(blank["index"]), "blank customer id"))
    long = by_check.get("id_length")
    if long is not None:
        problems.append(
            Problem(
                ID_COLUMN,
                row_list(long["index"]),
                f"customer id longer than {ID_MAX_LENGTH} characters: "
                f"{_examples(long['failure_case'])}",
            )
        )
    odd = by_check.get("id_characters")
    if odd is not None:
        problems.append(
            Problem(
                ID_COLUMN,
                row_list(odd["index"]),
                "customer id holding a tab, line break or other control character: "
                f"{_examples(odd['failure_case'], escape=True)}",
            )
        )
    repeated = by_check.get("field_uniqueness") if each_once else None
    if repeated is not None:
        repeated = repeated[repeated["failure_case"].astype(str) != ""]
    if repeated is not None and len(repeated):
        problems.append(
            Problem(
                ID_COLUMN,
                row_list(repeated["index"]),
                "the same customer id appears more than once: "
                f"{_examples(repeated['failure_case'])}",
            )
        )
    return problems
