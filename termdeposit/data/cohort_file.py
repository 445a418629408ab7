"""Read any reasonable cohort file (CSV or Excel) and validate it against the column contract.

The contract itself (names, kinds, ranges, categories) is :mod:`termdeposit.core.schema`.

Validation is lazy: it collects every problem at once, as column / rows / what was expected,
and raises :class:`~termdeposit.core.errors.CohortValidationError`. Rows are numbered as a
spreadsheet shows them (the header is row 1, the first customer row 2).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from termdeposit.data import fast_csv
from termdeposit.core.config import MAX_UPLOAD_MB
from termdeposit.core.errors import CohortValidationError, Problem, TermDepositError
from termdeposit.core.schema import (
    CATEGORICAL_COLUMNS,
    CATEGORICAL_INPUTS,
    ID_ALIASES,
    ID_COLUMN,
    INPUT_COLUMNS,
    NUMERIC_COLUMNS,
    NUMERIC_INPUTS,
    POST_CALL_COLUMNS,
    TARGET,
    UNKNOWN_ALLOWED,
)


#: Largest file accepted by :func:`read_table` (the dashboard and the API use it).
MAX_FILE_BYTES = MAX_UPLOAD_MB * 2**20
#: A header line longer than this cannot be a cohort header.
MAX_HEADER_CHARS = 20_000
#: Limits for xlsx workbooks (zip archives): total unpacked size and compression ratio.
MAX_UNPACKED_BYTES = 500 * 2**20
MAX_ZIP_RATIO = 200
#: How messages name the file :func:`read_table` reads, by kind: (short name, what to upload).
FILE_KINDS = {
    "cohort": ("the cohort", "the weekly cohort file with its customers"),
    "outcomes": (
        "the outcomes",
        "the week's outcomes file: one row per customer with customer_id, called and subscribed",
    ),
}

_MAX_LISTED_ROWS = 5


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


def _row_list(index: pd.Index | np.ndarray) -> str:
    rows = [str(int(i) + 2) for i in list(index)[:_MAX_LISTED_ROWS]]
    more = len(index) - len(rows)
    return ", ".join(rows) + (f" (and {more} more)" if more > 0 else "")


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise TermDepositError(
            "The file is not readable text (it is neither UTF-8 nor Windows-1252 encoded).",
            hint="In Excel use 'Save as > CSV UTF-8' and upload that file.",
        ) from exc
    return text


def _sniff_separator(text: str) -> str:
    first = text.split("\n", 1)[0]
    outside = re.sub(r'"[^"]*"', "", first)
    counts = {sep: outside.count(sep) for sep in (";", ",", "\t", "|")}
    best = max(counts, key=lambda s: counts[s])
    if counts[best] == 0:
        raise TermDepositError(
            "The first line of the file has a single column: the separator could not be found.",
            hint="Save the file as CSV separated by ';' or ',' with the column names "
            "on the first line.",
        )
    return best


def _looks_binary(data: bytes) -> bool:
    head = data[:4096]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    return b"\x00" in head


def read_table(data: bytes, filename: str = "upload", kind: str = "cohort") -> pd.DataFrame:
    """Read a CSV (``;``/``,``/tab separated, any quoting, UTF-8 with or without BOM) or xlsx.

    All cells are read as text, so ids with leading zeros survive; typing happens in
    :func:`validate_cohort`. The file type is taken from the content, not the name.

    Args:
        kind: what the file should hold (a key of :data:`FILE_KINDS`), for the hints.

    Raises:
        TermDepositError: empty, binary or unreadable file, with what to do.
    """
    name, upload = FILE_KINDS[kind]
    if not data or not data.strip():
        raise TermDepositError(f"'{filename}' is empty.", hint=f"Upload {upload}.")
    if len(data) > MAX_FILE_BYTES:
        raise TermDepositError(
            f"'{filename}' is {len(data) / 2**20:,.0f} MB, over the {MAX_FILE_BYTES // 2**20} MB "
            "limit for one upload.",
            hint="Split the cohort into smaller files, or score it with 'termdeposit score', "
            "which reads large files in chunks."
            if kind == "cohort"
            else f"Split {name} into smaller files and upload them one after the other.",
        )
    if data.startswith(b"PK\x03\x04"):
        return _read_xlsx(data, filename, name)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise TermDepositError(
            f"'{filename}' is an old-style (.xls) or password-protected Excel file.",
            hint="Open it in Excel, remove any password and save it as .xlsx or CSV UTF-8.",
        )
    if data.startswith(b"%PDF"):
        raise TermDepositError(
            f"'{filename}' is a PDF document, not a CSV or Excel file.",
            hint=f"Export {name} from the source system as CSV or .xlsx and upload that file.",
        )
    if _looks_binary(data):
        raise TermDepositError(
            f"'{filename}' is not a CSV or Excel file (it holds binary data).",
            hint=f"Upload {name} as a CSV file or an .xlsx workbook.",
        )
    text = _decode(data)
    header_line = text.split("\n", 1)[0]
    if len(header_line) > MAX_HEADER_CHARS:
        raise TermDepositError(
            f"The first line of '{filename}' is {len(header_line):,} characters long: that is "
            f"not the header of {name} (it has far too many columns).",
            hint="Upload a file whose first line holds the column names.",
        )
    separator = _sniff_separator(text)
    frame = fast_csv.read_csv_text(data, separator)  # None unless it reads as pandas would
    try:
        if frame is None:
            frame = pd.read_csv(
                io.StringIO(text),
                sep=separator,
                dtype=str,
                keep_default_na=False,
                skipinitialspace=True,
                quotechar='"',
            )
    except (pd.errors.ParserError, csv.Error) as exc:
        raise TermDepositError(
            f"'{filename}' could not be read as CSV: {_short(str(exc).splitlines()[0], 200)}",
            hint="Check that every line has the same number of columns and quotes are closed.",
        ) from exc
    header = next(csv.reader([header_line.lstrip("\ufeff")], delimiter=separator), [])
    if len(header) == len(frame.columns):
        frame.columns = [h.strip() for h in header]
    return frame


def _short(text: str, limit: int = 40) -> str:
    """Shorten a cell or message for display (hostile cells can be megabytes long)."""
    text = str(text).replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_zip(data: bytes, filename: str, name: str = "the cohort") -> None:
    """Refuse workbooks that unpack to something huge (zip bombs) or carry macros."""
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise TermDepositError(
            f"'{filename}' looks like an Excel workbook but is damaged.",
            hint="Open it in Excel and save it again as .xlsx (or CSV UTF-8).",
        ) from exc
    names = {m.filename.lower() for m in members}
    if not any(n.startswith("xl/") for n in names):
        raise TermDepositError(
            f"'{filename}' is a zip archive, not an Excel workbook.",
            hint=f"Upload {name} as a CSV file or an .xlsx workbook.",
        )
    if any(n.endswith("vbaproject.bin") for n in names):
        raise TermDepositError(
            f"'{filename}' is a workbook with macros (.xlsm); macros are not accepted.",
            hint="In Excel use 'Save as > Excel Workbook (.xlsx)' and upload that file.",
        )
    unpacked = sum(m.file_size for m in members)
    packed = max(sum(m.compress_size for m in members), 1)
    if unpacked > MAX_UNPACKED_BYTES or unpacked / packed > MAX_ZIP_RATIO:
        raise TermDepositError(
            f"'{filename}' would unpack to {unpacked / 2**20:,.0f} MB: too large to open safely.",
            hint=f"Save {name} as CSV UTF-8 and upload that file.",
        )


def _read_xlsx(data: bytes, filename: str, name: str = "the cohort") -> pd.DataFrame:
    _check_zip(data, filename, name)
    try:
        frame = pd.read_excel(io.BytesIO(data), dtype=str, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise TermDepositError(
            f"'{filename}' looks like an Excel workbook but could not be opened.",
            hint="Open it in Excel and save it again as .xlsx (or CSV UTF-8).",
        ) from exc
    return frame.fillna("")


def read_cohort_file(path: str | Path) -> pd.DataFrame:
    """Read a cohort file from disk (see :func:`read_table`)."""
    path = Path(path)
    if not path.is_file():
        raise TermDepositError(f"There is no file at '{path}'.", hint="Check the path.")
    return read_table(path.read_bytes(), path.name)


def _rename_columns(raw: pd.DataFrame, problems: list[Problem]) -> pd.DataFrame:
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for column in raw.columns:
        original = _short(str(column).replace("\ufeff", "").strip(), 60)
        target = _CANONICAL.get(_canonical_key(original), original)
        if target in seen:
            problems.append(
                Problem(target, "", f"appears twice (as '{seen[target]}' and '{original}')")
            )
        seen[target] = original
        mapping[column] = target
    if len(set(raw.columns)) != len(raw.columns):
        raw = raw.loc[:, ~pd.Index(raw.columns).duplicated()]
    return raw.rename(columns=mapping)


def _parse_numeric(frame: pd.DataFrame, problems: list[Problem]) -> dict[str, pd.Series]:
    parsed: dict[str, pd.Series] = {}
    for column, (low, high, whole) in NUMERIC_INPUTS.items():
        if column not in frame:
            continue
        text = frame[column].astype(str).str.strip()
        values = fast_csv.to_number(text.str.replace(",", ".", regex=False))
        blank = text.eq("") | text.str.lower().isin(["nan", "na", "null", "none"])
        bad = values.isna() & ~blank
        if blank.any():
            problems.append(
                Problem(column, _row_list(frame.index[blank]), "blank: a number is needed")
            )
        if bad.any():
            examples = ", ".join(repr(_short(v)) for v in text[bad].unique()[:3])
            problems.append(
                Problem(
                    column, _row_list(frame.index[bad]), f"expected a number, found {examples}"
                )
            )
        ok = values.notna()
        out_of_range = ok & ((values < low) | (values > high) | ~np.isfinite(values))
        if out_of_range.any():
            examples = ", ".join(f"{v:g}" for v in values[out_of_range].unique()[:3])
            problems.append(
                Problem(
                    column,
                    _row_list(frame.index[out_of_range]),
                    f"out of range: expected {low:g} to {high:g}, found {examples}",
                )
            )
        if whole:
            fractional = ok & ~out_of_range & (values != np.floor(values))
            if fractional.any():
                problems.append(
                    Problem(column, _row_list(frame.index[fractional]), "expected a whole number")
                )
        parsed[column] = values.astype("float64")
    return parsed


def _parse_categorical(frame: pd.DataFrame, problems: list[Problem]) -> dict[str, pd.Series]:
    parsed: dict[str, pd.Series] = {}
    for column, allowed in CATEGORICAL_INPUTS.items():
        if column not in frame:
            continue
        values = frame[column].astype(str).str.strip().str.lower()
        blank = values.eq("") | values.isin(["nan", "na", "null", "none"])
        if column in UNKNOWN_ALLOWED:
            values = values.mask(blank, "unknown")
        elif blank.any():
            problems.append(
                Problem(column, _row_list(frame.index[blank]), "blank: a value is needed")
            )
        unseen = ~values.isin(allowed) & ~blank
        if unseen.any():
            examples = ", ".join(repr(_short(v)) for v in values[unseen].unique()[:3])
            problems.append(
                Problem(
                    column,
                    _row_list(frame.index[unseen]),
                    f"value never seen in training: {examples}; expected one of "
                    + ", ".join(allowed),
                )
            )
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


def _parse_ids(frame: pd.DataFrame, problems: list[Problem]) -> tuple[pd.Series, bool]:
    if ID_COLUMN not in frame:
        width = max(5, len(str(len(frame))))
        ids = pd.Series([f"row-{i + 1:0{width}d}" for i in range(len(frame))], index=frame.index)
        return ids, True
    ids = frame[ID_COLUMN].astype(str).str.strip()
    blank = ids.eq("")
    if blank.any():
        problems.append(Problem(ID_COLUMN, _row_list(frame.index[blank]), "blank customer id"))
    duplicated = ids.duplicated(keep=False) & ~blank
    if duplicated.any():
        examples = ", ".join(repr(_short(v)) for v in ids[duplicated].unique()[:3])
        problems.append(
            Problem(
                ID_COLUMN,
                _row_list(frame.index[duplicated]),
                f"the same customer id appears more than once: {examples}",
            )
        )
    return ids, False


def _check_broken_rows(frame: pd.DataFrame) -> None:
    """Refuse rows that landed whole in the first column (another separator than the header)."""
    if frame.shape[1] < 3:
        return
    rest = frame.iloc[:, 1:].astype(str)
    first = frame.iloc[:, 0].astype(str)
    broken = rest.eq("").all(axis=1) & first.str.contains(r"[;,\t|]", regex=True)
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


def validate_cohort(raw: pd.DataFrame, row_offset: int = 0) -> Cohort:
    """Check a table read by :func:`read_table` against the contract; type its columns.

    Args:
        raw: the table, every cell as text.
        row_offset: customers before this table in the file (for chunks of a large file), so
            reported row numbers are the file's.

    Raises:
        CohortValidationError: every problem found (missing columns, wrong types, values
            out of range, categories never seen in training, duplicate ids, no rows).
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
    missing = [c for c in INPUT_COLUMNS if c not in frame]
    for column in missing:
        problems.append(Problem(column, "", "missing column"))
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
    ids, generated = _parse_ids(frame, problems)
    # Each parser judges a cell on its own: run it on the distinct values, then on every row
    # only if some value has a problem (for the row numbers).
    numeric = fast_csv.parse_by_distinct_values(_parse_numeric, frame, NUMERIC_COLUMNS)
    if numeric is None:
        numeric = _parse_numeric(frame, problems)
    categorical = fast_csv.parse_by_distinct_values(_parse_categorical, frame, CATEGORICAL_COLUMNS)
    if categorical is None:
        categorical = _parse_categorical(frame, problems)
    target = _parse_target(frame, problems)
    if problems:
        raise CohortValidationError(problems)

    typed = pd.DataFrame({ID_COLUMN: ids.astype(object)})
    for column in INPUT_COLUMNS:
        typed[column] = numeric[column] if column in numeric else categorical[column]
    notices: list[str] = []
    if generated:
        notices.append(
            "The file has no customer id column: ids were made from the row numbers "
            "(row-00001 is the first customer)."
        )
    if target is not None:
        typed[TARGET] = target
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
    typed = typed.reset_index(drop=True)
    return Cohort(frame=typed, ids_generated=generated, notices=notices, extra_columns=extra)


def load_cohort(data: bytes, filename: str = "upload") -> Cohort:
    """Read and validate a cohort from the bytes of an uploaded file."""
    return validate_cohort(read_table(data, filename))


def inputs_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the 19 model inputs of a typed frame (never ``duration`` or ``y``)."""
    return frame.loc[:, list(INPUT_COLUMNS)]
