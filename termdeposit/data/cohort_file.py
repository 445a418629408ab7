"""Validate a cohort table against the column contract; read and validate a cohort file.

Reading any reasonable file (CSV in any encoding and separator, or xlsx), whatever its size, is
:mod:`termdeposit.data.reader`; the contract itself is :mod:`termdeposit.core.schema` (as data)
and :mod:`termdeposit.data.contract` (as pandera schemas). Here the text cells are matched to
the contract's columns and typed, and every problem is collected at once, as column / rows /
what was expected, in a :class:`~termdeposit.core.errors.CohortValidationError`. Rows are
numbered as a spreadsheet shows them (the header is row 1, the first customer row 2).

Hand-written (pandera cannot see these; see :mod:`termdeposit.data.contract`): column names
matched loosely, so ``Age`` and ``age`` or ``id`` and ``customer_id`` are one column named twice
(refused); text read as numbers the way people write them (``4,5``) with the text quoted when it
is not one; blank cells that mean the data set's ``unknown``; rows that landed whole in the first
column; yes/no outcomes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from termdeposit.core.errors import CohortValidationError, Problem
from termdeposit.core.schema import (
    CATEGORICAL_COLUMNS,
    ID_ALIASES,
    ID_COLUMN,
    INPUT_COLUMNS,
    NUMERIC_COLUMNS,
    POST_CALL_COLUMNS,
    TARGET,
    UNKNOWN_ALLOWED,
)
from termdeposit.data import contract, fast_csv
from termdeposit.data.reader import MAX_FILE_BYTES, open_table, read_table
from termdeposit.data.sniffing import FILE_KINDS, MAX_HEADER_CHARS

__all__ = [
    "FILE_KINDS",
    "MAX_FILE_BYTES",
    "MAX_HEADER_CHARS",
    "Cohort",
    "load_cohort",
    "read_cohort_file",
    "read_table",
    "validate_cohort",
]

_BLANKS = ["nan", "na", "null", "none"]


@dataclass
class Cohort:
    """A validated cohort, ready to score.

    Attributes:
        frame: one row per customer: ``customer_id`` (text), the 19 typed inputs, and ``y``
            (0/1, NaN where unknown) when the file carried outcomes.
        ids_generated: True when the file had no id column and ids were made from row numbers.
        notices: plain-language notes for the user (ignored columns, generated ids, ...).
        extra_columns: columns of the file that are not inputs (kept aside, not scored).
    """

    frame: pd.DataFrame
    ids_generated: bool = False
    notices: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)

    @property
    def has_outcomes(self) -> bool:
        """True when the file carried known outcomes (``y``) for at least one customer."""
        return TARGET in self.frame and bool(self.frame[TARGET].notna().any())

    def __len__(self) -> int:
        return len(self.frame)


def _canonical_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).strip().lower())


_CANONICAL = {_canonical_key(c): c for c in (*INPUT_COLUMNS, *POST_CALL_COLUMNS)}
_CANONICAL.update({alias: ID_COLUMN for alias in ID_ALIASES})
_row_list = contract.row_list
_short = contract.short


def read_cohort_file(path: str | Path) -> pd.DataFrame:
    """Read a whole cohort file from disk, any size (see :mod:`termdeposit.data.reader`)."""
    return open_table(path).read()


def _rename_columns(raw: pd.DataFrame, problems: list[Problem]) -> pd.DataFrame:
    """The contract's names for the file's columns; a column named twice is kept once."""
    names: list[str] = []
    seen: dict[str, str] = {}
    keep: list[int] = []
    for position, column in enumerate(raw.columns):
        original = _short(str(column).replace("\ufeff", "").strip(), 60)
        target = _CANONICAL.get(_canonical_key(original), original)
        if target in seen:
            problems.append(
                Problem(target, "", f"appears twice (as '{seen[target]}' and '{original}')")
            )
            continue
        seen[target] = original
        names.append(target)
        keep.append(position)
    return raw.iloc[:, keep].set_axis(names, axis=1)


def _parse_numeric(frame: pd.DataFrame, problems: list[Problem]) -> dict[str, pd.Series]:
    """Numbers as people write them (``4,5`` is 4.5); blank or unreadable cells are NaN."""
    parsed: dict[str, pd.Series] = {}
    for column in NUMERIC_COLUMNS:
        if column not in frame:
            continue
        text = frame[column].astype(str).str.strip()
        values = fast_csv.to_number(text.str.replace(",", ".", regex=False))
        blank = text.eq("") | text.str.lower().isin(_BLANKS)
        bad = values.isna() & ~blank
        if bad.any():
            examples = ", ".join(repr(_short(v)) for v in text[bad].unique()[:3])
            problems.append(
                Problem(
                    column, _row_list(frame.index[bad]), f"expected a number, found {examples}"
                )
            )
        parsed[column] = values.astype("float64")
    return parsed


def _parse_categorical(frame: pd.DataFrame, problems: list[Problem]) -> dict[str, pd.Series]:
    """Categories in the data set's spelling (lower case); blank is ``unknown`` where the data
    set has it, else NaN."""
    parsed: dict[str, pd.Series] = {}
    for column in CATEGORICAL_COLUMNS:
        if column not in frame:
            continue
        # Text, then NaN where blank in a column without ``unknown``.
        values: pd.Series = frame[column].astype(str).str.strip().str.lower()
        blank = values.eq("") | values.isin(_BLANKS)
        values = values.mask(blank, "unknown" if column in UNKNOWN_ALLOWED else np.nan)
        parsed[column] = fast_csv.as_object(values)
    return parsed


def _parse_target(frame: pd.DataFrame, problems: list[Problem]) -> pd.Series | None:
    if TARGET not in frame:
        return None
    text = frame[TARGET].astype(str).str.strip().str.lower()
    mapping = {"yes": 1.0, "no": 0.0, "1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "": np.nan}
    values = text.map(mapping)
    bad = values.isna() & text.ne("")
    if bad.any():
        problems.append(
            Problem(TARGET, _row_list(frame.index[bad]), "outcome must be yes or no (or blank)")
        )
    return values.astype("float64")


def _parse_ids(frame: pd.DataFrame) -> tuple[pd.Series, bool]:
    """The customer ids (stripped text), or ids made from row numbers when there are none."""
    if ID_COLUMN not in frame:
        width = max(5, len(str(len(frame))))
        ids = pd.Series([f"row-{i + 1:0{width}d}" for i in range(len(frame))], index=frame.index)
        return ids, True
    return frame[ID_COLUMN].astype(str).str.strip(), False


def _check_broken_rows(frame: pd.DataFrame) -> None:
    """Refuse rows that landed whole in the first column (another separator than the header)."""
    if frame.shape[1] < 3:
        return
    rest = frame.iloc[:, 1:].astype(str)
    first = frame.iloc[:, 0].astype(str)
    broken = (rest == "").all(axis=1) & first.str.contains(r"[;,\t|]", regex=True)
    if broken.any():
        raise CohortValidationError(
            [
                Problem(
                    "(whole row)",
                    _row_list(frame.index[broken]),
                    "the row uses a different separator than the header line (';' or ','): "
                    "all its values landed in the first column",
                )
            ]
        )


def _typed_inputs(
    frame: pd.DataFrame, problems: list[Problem]
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The inputs present, typed (text that is not a number reported and left NaN), and their
    distinct typed values (None when some text was not a number).

    Each parser judges a cell on its own: it runs on the distinct values, then on every row
    only if some value has a problem (for the row numbers).
    """
    distinct: dict[str, pd.Series] | None = {}
    numeric = fast_csv.parse_by_distinct_values(_parse_numeric, frame, NUMERIC_COLUMNS, distinct)
    if numeric is None:
        numeric, distinct = _parse_numeric(frame, problems), None
    categorical = fast_csv.parse_by_distinct_values(
        _parse_categorical, frame, CATEGORICAL_COLUMNS, distinct
    )
    if categorical is None:
        categorical, distinct = _parse_categorical(frame, problems), None
    typed = {**numeric, **categorical}
    columns = [c for c in INPUT_COLUMNS if c in typed]
    values = pd.DataFrame({c: typed[c] for c in columns}, index=frame.index)
    return values, contract.distinct_frame(distinct) if distinct is not None else None


def _in_contract_order(problems: list[Problem], header: int) -> list[Problem]:
    """Header problems first, then by column in contract order (the id first)."""
    order = {c: i for i, c in enumerate((ID_COLUMN, *INPUT_COLUMNS, TARGET))}
    rest = sorted(problems[header:], key=lambda p: order.get(p.column, len(order)))
    return problems[:header] + rest


def validate_cohort(raw: pd.DataFrame, row_offset: int = 0) -> Cohort:
    """Check a table read by :func:`read_table` against the contract; type its columns.

    Args:
        raw: the table, every cell as text, columns named as in the file's header.
        row_offset: customers before this table in the file (for chunks of a large file), so
            reported row numbers are the file's.

    Raises:
        CohortValidationError: every problem found (columns named twice, missing columns,
            wrong types, values out of range, categories never seen in training, blank,
            duplicate or malformed ids, no rows).
    """
    problems: list[Problem] = []
    frame = _rename_columns(raw, problems)
    frame.index = pd.RangeIndex(row_offset, row_offset + len(frame))
    if len(frame) == 0:
        raise CohortValidationError(
            [Problem("(file)", "", "no customer rows: the file holds only a header")],
            summary="The file has no customers.",
        )
    _check_broken_rows(frame)
    missing = contract.missing_columns(frame.columns)
    problems += [Problem(column, "", "missing column") for column in missing]
    if len(missing) == len(INPUT_COLUMNS):
        raise CohortValidationError(
            problems[:3]
            + [
                Problem(
                    "(file)",
                    "",
                    f"none of the {len(INPUT_COLUMNS)} input "
                    "columns were found: is this the cohort file?",
                )
            ],
            summary="This does not look like a cohort file.",
        )
    header_problems = len(problems)
    ids, generated = _parse_ids(frame)
    if not generated:
        problems += contract.id_problems(ids)
    typed, distinct = _typed_inputs(frame, problems)
    unreadable = {
        p.column: typed.index[typed[p.column].isna()] for p in problems if p.column in typed
    }
    problems += contract.input_problems(typed, unreadable, distinct)
    target = _parse_target(frame, problems)
    if problems:
        raise CohortValidationError(_in_contract_order(problems, header_problems))

    out = pd.DataFrame({ID_COLUMN: ids.astype(object)})
    for column in INPUT_COLUMNS:
        out[column] = typed[column]
    notices: list[str] = []
    if generated:
        notices.append(
            "The file has no customer id column: ids were made from the row numbers "
            "(row-00001 is the first customer)."
        )
    if target is not None:
        out[TARGET] = target
        notices.append(
            "Column 'y' (the outcome, known only after a call) is ignored for scoring; "
            "it is used only to show realised results."
        )
    if "duration" in frame:
        notices.append(
            "Column 'duration' (call length, known only after a call) is ignored for scoring."
        )
    known = {ID_COLUMN, *INPUT_COLUMNS, *POST_CALL_COLUMNS}
    extra = [str(c) for c in frame.columns if c not in known]
    if extra:
        notices.append(
            "Columns not used for scoring were set aside: "
            + ", ".join(extra[:10])
            + (" ..." if len(extra) > 10 else "")
        )
    out = out.reset_index(drop=True)
    return Cohort(frame=out, ids_generated=generated, notices=notices, extra_columns=extra)


def load_cohort(data: bytes | BinaryIO, filename: str = "upload") -> Cohort:
    """Read and validate a cohort from an uploaded file (its bytes, or a binary file object)."""
    return validate_cohort(read_table(data, filename))
