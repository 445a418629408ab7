"""The prediction log: cohorts (one per distinct file), their customers, scoring runs and
predictions.

The same cohort file (same sha256) is one cohort however often it is uploaded or scored; the
same file scored with the same model and decision rule is one scoring run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import CATEGORICAL_COLUMNS, ID_COLUMN, INPUT_COLUMNS
from termdeposit.storage import database
from termdeposit.storage.database import (
    Database,
    current_user,
    insert_or_get,
    now,
    select_in_batches,
)
from termdeposit.storage.database import metadata as _metadata

cohorts = Table(
    "cohorts",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("file_sha256", String(64), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("week_label", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),
    Column("user", String(64), nullable=False),
)

cohort_customers = Table(
    "cohort_customers",
    _metadata,
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("row_number", Integer, nullable=False),
    Column("inputs", Text, nullable=False),
)

scorings = Table(
    "scorings",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("threshold", Float),
    Column("top_n", Integer),
    Column("calls", Integer, nullable=False),
    Column("source", String(16), nullable=False),
    Column("user", String(64), nullable=False),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("cohort_id", "model_version", "rule", name="uq_scoring"),
)

predictions = Table(
    "predictions",
    _metadata,
    Column("scoring_id", ForeignKey("scorings.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("probability", Float, nullable=False),
    Column("decision", Boolean, nullable=False),
    Column("rank", Integer, nullable=False),
)


@dataclass(frozen=True)
class ScoringLog:
    """What :meth:`CohortRepository.log_scoring` stored.

    Attributes:
        cohort_id: the cohort (one per distinct file).
        scoring_id: the scoring run (one per cohort, model version and decision rule).
        new_cohort: False when the same file had been seen before.
        new_scoring: False when this exact scoring was already logged (nothing was added).
        rows: customers in the cohort.
    """

    cohort_id: int
    scoring_id: int
    new_cohort: bool
    new_scoring: bool
    rows: int


class CohortRepository:
    """Cohorts, their customers' inputs, scoring runs and predictions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing ---------------------------------------------------------------------------------

    def log_scoring(
        self,
        scored: pd.DataFrame | Mapping[str, Any] | Iterable[pd.DataFrame],
        *,
        file_sha256: str,
        model_version: str,
        threshold: float | None = None,
        top_n: int | None = None,
        name: str | None = None,
        week_label: str | None = None,
        source: str = "cli",
        user: str | None = None,
    ) -> ScoringLog:
        """Log one scoring of a cohort file, in one transaction.

        Args:
            scored: one row per customer with ``customer_id``, ``probability``, ``decision``
                (True / "call" = to call), ``rank`` (optional) and the 19 inputs
                (the frame :func:`~termdeposit.modeling.predict.score_frame` returns), the same
                as a mapping of column name to values (the API's small batches, no pandas), or
                an iterable of such frames (chunks of a large file, ranks over the whole file).
            file_sha256: sha256 of the uploaded file's bytes: the same file is one cohort.
            model_version: the version that scored it.
            threshold / top_n: the decision rule used (one of them).
            name: file name shown in lists (default: the hash prefix).
            week_label: which week the cohort is for (default: the ISO week of today).
            source: ``app``, ``cli`` or ``api``.

        Returns:
            Which cohort and scoring run the predictions belong to. Scoring the same file with
            the same model and rule again adds nothing (``new_scoring`` is False).

        Raises:
            TermDepositError: missing columns, duplicate ids, or a known file whose customers
                differ; nothing is stored.
        """
        if not isinstance(file_sha256, str) or len(file_sha256) != 64:
            raise TermDepositError(
                "A cohort must be identified by the sha256 of its file (64 hex characters)."
            )
        if threshold is None and top_n is None:
            raise TermDepositError("Say which decision rule was used: a threshold or a top N.")
        chunks = [scored] if isinstance(scored, pd.DataFrame | Mapping) else scored
        user = user or current_user()
        rule = f"top {int(top_n)}" if top_n is not None else f"threshold {float(threshold):.6f}"
        stamp = now()

        def work(conn: Connection) -> ScoringLog:
            cohort_id = scoring_id = None
            new_cohort = new_scoring = False
            total = calls = 0
            for raw in chunks:
                frame = _prepared_scoring(raw)  # plain lists: no pandas per row
                if cohort_id is None:
                    cohort_id, new_cohort = self.ensure_cohort(
                        conn, file_sha256, name, week_label, source, user, stamp
                    )
                    scoring_id, new_scoring = insert_or_get(
                        conn,
                        scorings,
                        {
                            "cohort_id": cohort_id,
                            "model_version": model_version,
                            "rule": rule,
                            "threshold": None if threshold is None else float(threshold),
                            "top_n": None if top_n is None else int(top_n),
                            "calls": 0,
                            "source": source,
                            "user": user,
                            "scored_at": stamp,
                        },
                        ["cohort_id", "model_version", "rule"],
                    )
                if new_cohort:
                    self.insert_customers(conn, cohort_id, frame.ids, frame.inputs, total)
                if new_scoring:
                    database.bulk_insert(
                        conn,
                        predictions,
                        ("scoring_id", "customer_id", "probability", "decision", "rank"),
                        (
                            itertools.repeat(scoring_id, len(frame.ids)),
                            frame.ids,
                            frame.probability,
                            frame.decision,
                            frame.rank,
                        ),
                    )
                total += len(frame.ids)
                calls += int(np.count_nonzero(frame.decision))
            if cohort_id is None or scoring_id is None:
                raise TermDepositError("There are no scored customers to log.")
            self.finish_cohort(conn, cohort_id, new_cohort, total)
            if new_scoring:
                conn.execute(
                    scorings.update().where(scorings.c.id == scoring_id).values(calls=calls)
                )
            return ScoringLog(cohort_id, scoring_id, new_cohort, new_scoring, total)

        try:
            return self.db.transaction(work)
        except IntegrityError as exc:
            raise TermDepositError(
                "The scored cohort has the same customer id more than once; nothing was logged.",
                hint="Give every customer a distinct id.",
            ) from exc

    def ensure_cohort(
        self,
        conn: Connection,
        file_sha256: str,
        name: str | None,
        week_label: str | None,
        source: str,
        user: str,
        stamp: dt.datetime,
    ) -> tuple[int, bool]:
        """Return the cohort of this file hash and whether it was created now (rows 0)."""
        iso = stamp.isocalendar()
        row = {
            "file_sha256": file_sha256,
            "name": (name or f"file {file_sha256[:12]}")[:255],
            "week_label": (week_label or f"{iso.year}-W{iso.week:02d}")[:64],
            "rows": 0,
            "uploaded_at": stamp,
            "source": source,
            "user": user,
        }
        return insert_or_get(conn, cohorts, row, ["file_sha256"])

    def finish_cohort(self, conn: Connection, cohort_id: int, new: bool, rows: int) -> None:
        """Record the size of a new cohort, or check a known one has the same size."""
        if new:
            conn.execute(cohorts.update().where(cohorts.c.id == cohort_id).values(rows=rows))
            return
        stored = conn.execute(select(cohorts.c.rows).where(cohorts.c.id == cohort_id)).scalar_one()
        if stored != rows:
            raise TermDepositError(
                f"This file was logged before with {stored} customers, now {rows}.",
                hint="The same file must give the same customers; nothing was stored.",
            )

    def insert_customers(
        self, conn: Connection, cohort_id: int, ids: list[str], inputs: list[str], offset: int
    ) -> None:
        """Store the customers of a new cohort with their inputs (JSON, see inputs_json)."""
        database.bulk_insert(
            conn,
            cohort_customers,
            ("cohort_id", "customer_id", "row_number", "inputs"),
            (
                itertools.repeat(cohort_id, len(ids)),
                ids,
                range(offset, offset + len(ids)),
                inputs,
            ),
        )

    # -- reading ---------------------------------------------------------------------------------

    def cohorts(self) -> pd.DataFrame:
        """Every cohort, oldest first: id, name, week label, rows, uploaded at, hash."""
        return self.db.read(select(cohorts).order_by(cohorts.c.id), times=["uploaded_at"])

    def find_cohort(self, ref: str | int) -> dict[str, Any]:
        """A cohort by id, week label, file name or sha256 (prefix of 8+ characters).

        Raises:
            TermDepositError: no cohort, or several, match.
        """
        table = self.cohorts()
        key = str(ref).strip()
        if table.empty:
            raise TermDepositError(
                "No cohort has been scored yet.",
                hint="Score the week's cohort first ('termdeposit score' or the Score page).",
            )
        match = table[
            (table["id"].astype(str) == key)
            | (table["week_label"] == key)
            | (table["name"] == key)
            | (table["file_sha256"].str.startswith(key.lower()) & (len(key) >= 8))
        ]
        if len(match) != 1:
            listing = ", ".join(
                f"{r.id} ({r.week_label}, {r.name})" for r in table.tail(8).itertuples()
            )
            raise TermDepositError(
                f"{'No' if match.empty else 'More than one'} cohort matches '{key}'.",
                hint=f"Give the cohort's id or week label; the latest are: {listing}.",
            )
        return match.iloc[0].to_dict()

    def cohort_inputs(self, cohort_id: int) -> pd.DataFrame:
        """The customers of a cohort with their 19 inputs (typed as when scored)."""
        raw = self.db.read(
            select(cohort_customers.c.customer_id, cohort_customers.c.inputs)
            .where(cohort_customers.c.cohort_id == int(cohort_id))
            .order_by(cohort_customers.c.row_number)
        )
        return inputs_frame(raw)

    def customer_cohorts(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        """For each given customer id, the cohorts it belongs to (customer_id, cohort_id)."""
        ids = [str(c) for c in customer_ids]
        found = self.db.transaction(
            lambda conn: select_in_batches(
                conn,
                lambda batch: select(
                    cohort_customers.c.customer_id, cohort_customers.c.cohort_id
                ).where(cohort_customers.c.customer_id.in_(batch)),
                ids,
            )
        )
        return pd.DataFrame(found, columns=[ID_COLUMN, "cohort_id"])

    def scoring_runs(self, cohort_id: int | None = None) -> pd.DataFrame:
        """Scoring runs (newest last), optionally of one cohort."""
        return self.db.read(
            select(scorings).where(*of_cohort(scorings, cohort_id)).order_by(scorings.c.id)
        )

    def predictions(self, scoring_id: int) -> pd.DataFrame:
        """The logged predictions of one scoring run, in rank order."""
        return self.db.read(
            select(
                predictions.c.customer_id,
                predictions.c.probability,
                predictions.c.decision,
                predictions.c.rank,
            )
            .where(predictions.c.scoring_id == int(scoring_id))
            .order_by(predictions.c.rank),
            flags=["decision"],
        )


def of_cohort(table: Table, cohort_id: int | None) -> list[ColumnElement[bool]]:
    """Conditions keeping the rows of ``table`` that belong to one cohort, when one is given
    (none otherwise)."""
    return [] if cohort_id is None else [table.c.cohort_id == int(cohort_id)]


# -- scored rows as the log stores them ----------------------------------------------------------


@dataclass
class _ScoredRows:
    """A scored frame as the prediction log stores it: one plain list per column."""

    ids: list[str]
    probability: list[float]
    decision: list[bool]
    rank: list[int]
    inputs: list[str]  # each row's 19 inputs as a JSON list


def _json_cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # as JSON null, never NaN (not JSON)
    return value


def _values(table: pd.DataFrame | Mapping[str, Any], column: str) -> list[Any]:
    """One column of a frame, or of a mapping of columns, as a list of Python values."""
    values = table[column]
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _json_texts(values: Any) -> pa.Array:
    """One input column as JSON texts (what ``json.dumps`` writes; NaN and infinities as null).

    A column of a large cohort holds a few hundred distinct values: each is formatted once and
    spread to its rows by code. Columns where equal values could be written differently
    (negative zero, mixed Python types) are formatted value by value.
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype):
        text = pa.array(values)  # Arrow-backed text: no Python strings per cell
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        if not text.null_count:
            encoded = pc.dictionary_encode(text)
            texts = [json.dumps(u) for u in encoded.dictionary.to_pylist()]
            return pa.array(texts, type=pa.string()).take(encoded.indices)
    if hasattr(values, "to_numpy"):
        array = np.asarray(values.to_numpy())
    else:  # a list keeps each value's own type (1, 2.5 and True are not all floats)
        array = np.asarray(values, dtype=object if isinstance(values, list | tuple) else None)
    if array.dtype.kind in "US":
        array = array.astype(object)
    by_value = array.dtype.kind in "iub" or (
        array.dtype.kind == "f" and not np.any((array == 0) & np.signbit(array))
    )
    if by_value or array.dtype == object:
        codes, uniques = pd.factorize(array, use_na_sentinel=False)
        distinct = np.asarray(uniques).tolist()
        if by_value or all(type(u) is str for u in distinct):
            texts = [json.dumps(_json_cell(u)) for u in distinct]
            return pa.array(texts, type=pa.string()).take(pa.array(codes))
    return pa.array([json.dumps(_json_cell(v)) for v in array.tolist()], type=pa.string())


def inputs_json(frame: pd.DataFrame | Mapping[str, Any]) -> list[str]:
    """Each row's 19 inputs as a compact JSON list (missing numbers as null), as
    ``json.dumps(row, separators=(",", ":"))`` writes it."""
    columns = [_json_texts(frame[c]) for c in INPUT_COLUMNS]
    joined = pc.binary_join_element_wise(*columns, ",")
    return pc.binary_join_element_wise("[", joined, "]", "").to_pylist()


def _prepared_scoring(scored: pd.DataFrame | Mapping[str, Any]) -> _ScoredRows:
    """Check a scored frame (or mapping of columns) and normalise it (text ids, boolean
    decision, ranks)."""
    # Imported when a scoring is logged: the scoring module loads scikit-learn, which the
    # store's readers (the API's start, the CLI's status commands) do not need.
    from termdeposit.modeling.predict import DECISION_YES, ranks_of

    needed = [ID_COLUMN, "probability", "decision", *INPUT_COLUMNS]
    missing = [c for c in needed if c not in scored]
    if missing:
        raise TermDepositError(
            "The scored cohort lacks columns the prediction log needs: " + ", ".join(missing),
            hint="Log the frame returned by score_frame (id, probability, decision, inputs).",
        )
    ids = [str(i) for i in _values(scored, ID_COLUMN)]
    if not ids:
        raise TermDepositError("There are no scored customers to log.")
    if len(set(ids)) != len(ids):
        raise TermDepositError("The scored cohort has duplicate customer ids; nothing was logged.")
    decision = np.asarray(scored["decision"])
    if decision.dtype != bool:
        codes, uniques = pd.factorize(decision, use_na_sentinel=False)
        yes = [d if isinstance(d, bool | np.bool_) else str(d) == DECISION_YES for d in uniques]
        decision = np.asarray(yes, dtype=bool)[codes]
    probability = np.asarray(_values(scored, "probability"), dtype=float)
    ranks = np.asarray(scored["rank"]) if "rank" in scored else ranks_of(probability)
    return _ScoredRows(
        ids=ids,
        probability=probability.tolist(),
        decision=decision.tolist(),
        rank=ranks.astype(np.int64).tolist(),
        inputs=inputs_json(scored),
    )


def inputs_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Rebuild typed inputs from stored JSON rows (customer_id, inputs)."""
    if raw.empty:
        return pd.DataFrame(columns=[ID_COLUMN, *INPUT_COLUMNS])
    values = pd.DataFrame([json.loads(v) for v in raw["inputs"]], columns=list(INPUT_COLUMNS))
    for column in INPUT_COLUMNS:
        if column in CATEGORICAL_COLUMNS:
            values[column] = values[column].astype(object)
        else:
            values[column] = values[column].astype("float64")
    values.insert(0, ID_COLUMN, raw["customer_id"].astype(str).to_numpy())
    return values


# -- scored output files (the CLI's path) --------------------------------------------------------


def source_sha256(path: Path) -> str:
    """sha256 identifying a scored source: the file's bytes, or a folder's files in order."""
    # Imported when used, as the data readers below: they keep the store's import light.
    from termdeposit.data.dataset import sha256_file

    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode())
        digest.update(sha256_file(item).encode())
    return digest.hexdigest()


def read_scored_csv(path: Path, chunk_rows: int = 50_000) -> Iterable[pd.DataFrame]:
    """Read a scored output file (as ``termdeposit score`` writes it) in chunks, for the log.

    Text cells were written with a leading quote where a spreadsheet would see a formula;
    the quote is removed again from the customer id.
    """
    from termdeposit.data.exports import FORMULA_PREFIXES

    for chunk in pd.read_csv(
        path, dtype={ID_COLUMN: str}, keep_default_na=False, chunksize=chunk_rows
    ):
        ids = chunk[ID_COLUMN].astype(str)
        quoted = ids.str.startswith("'") & ids.str[1:2].isin(list(FORMULA_PREFIXES))
        chunk[ID_COLUMN] = ids.where(~quoted, ids.str[1:])
        yield chunk
