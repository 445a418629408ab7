"""Score cohorts with a saved pipeline and evaluate saved models on the two hold-outs.

Every front door (CLI, dashboard, API) scores through :func:`score_cohort`, so the
probability, the decision and the rank mean the same everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from termdeposit.errors import CohortValidationError, Problem, TermDepositError
from termdeposit.exports import neutralise_frame
from termdeposit.modeling.metrics import classification_metrics
from termdeposit.registry import LoadedModel
from termdeposit.schema import (
    ID_COLUMN,
    INPUT_COLUMNS,
    NUMERIC_INPUTS,
    TARGET,
    Cohort,
    read_cohort_file,
    validate_cohort,
)

DECISION_YES = "will convert"
DECISION_NO = "won't convert"
SCORE_COLUMNS = (ID_COLUMN, "probability", "decision", "rank")
#: Files larger than this are scored in chunks (two passes: score, then write with ranks).
CHUNK_THRESHOLD_BYTES = 64 * 1024 * 1024
CHUNK_ROWS = 250_000

ProgressFn = Callable[[float], None]


def ranks_of(probabilities: np.ndarray) -> np.ndarray:
    """Rank 1 = highest probability; ties keep the input order (stable).

    Probabilities are rounded to 12 decimals first, so equal customers tie exactly even when
    the model's arithmetic differs in the last bits between batches (parallel tree sums).
    """
    order = np.argsort(-np.round(np.asarray(probabilities, dtype=float), 12), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def decisions(
    probabilities: np.ndarray, threshold: float | None = None, top_n: int | None = None
) -> np.ndarray:
    """True where a customer is to be called: probability >= threshold, or within the top N."""
    probabilities = np.asarray(probabilities, dtype=float)
    if top_n is not None:
        if top_n < 0:
            raise TermDepositError(
                "The number of calls cannot be negative.", hint="Use 0 or more."
            )
        return ranks_of(probabilities) <= top_n
    if threshold is None or not 0.0 <= threshold <= 1.0:
        raise TermDepositError(
            f"The threshold must be a probability between 0 and 1, not {threshold}.",
            hint="For example 0.1 calls everyone with at least a 10% chance.",
        )
    return probabilities >= threshold


def score_frame(
    model: LoadedModel,
    frame: pd.DataFrame,
    threshold: float | None = None,
    top_n: int | None = None,
) -> pd.DataFrame:
    """Score a validated cohort frame: id, probability, decision, rank, then the inputs (and y).

    Rows stay in input order. Without a threshold or top N the model's default threshold is used.
    """
    probabilities = model.predict_proba(frame.loc[:, list(INPUT_COLUMNS)])
    if threshold is None and top_n is None:
        threshold = model.threshold
    call = decisions(probabilities, threshold, top_n)
    out = pd.DataFrame(
        {
            ID_COLUMN: frame[ID_COLUMN].to_numpy(),
            "probability": probabilities,
            "decision": np.where(call, DECISION_YES, DECISION_NO),
            "rank": ranks_of(probabilities),
        }
    )
    return pd.concat([out, _output_inputs(frame)], axis=1)


def _output_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The inputs (and y) as written in outputs: whole-number columns as integers."""
    extra = [c for c in (*INPUT_COLUMNS, TARGET) if c in frame]
    inputs = frame.loc[:, extra].reset_index(drop=True)
    for column, (_, _, whole) in NUMERIC_INPUTS.items():
        if whole:
            inputs[column] = inputs[column].astype("int64")
    return inputs


def score_cohort(
    model: LoadedModel, cohort: Cohort, threshold: float | None = None, top_n: int | None = None
) -> pd.DataFrame:
    """Score a validated :class:`~termdeposit.schema.Cohort` (see :func:`score_frame`)."""
    return score_frame(model, cohort.frame, threshold, top_n)


def call_list(scored: pd.DataFrame) -> pd.DataFrame:
    """The customers to call, best first (rank order)."""
    chosen = scored[scored["decision"] == DECISION_YES]
    return chosen.sort_values("rank", kind="stable").reset_index(drop=True)


@dataclass
class FileScoreSummary:
    """What :func:`score_file` did."""

    rows: int
    calls: int
    expected_subscriptions: float
    chunked: bool
    notices: list[str]
    probabilities: np.ndarray


def _iter_csv_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    with open(path, "rb") as handle:
        head = handle.read(65536)
    text = head.decode("utf-8-sig", errors="replace")
    first = text.split("\n", 1)[0]
    separator = ";" if first.count(";") > first.count(",") else ","
    yield from pd.read_csv(
        path,
        sep=separator,
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
        encoding="utf-8-sig",
        chunksize=chunk_rows,
    )


def _validated_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[int, Cohort]]:
    start = 0
    for raw in _iter_csv_chunks(path, chunk_rows):
        cohort = validate_cohort(raw, row_offset=start)
        if cohort.ids_generated:
            cohort.frame[ID_COLUMN] = [f"row-{start + i + 1:09d}" for i in range(len(raw))]
        yield start, cohort
        start += len(raw)


def _check_unique_ids(hashes: list[np.ndarray]) -> None:
    values = np.concatenate(hashes) if hashes else np.empty(0, dtype=np.uint64)
    unique, counts = np.unique(values, return_counts=True)
    if (counts > 1).any():
        raise CohortValidationError(
            [
                Problem(
                    ID_COLUMN, "", f"{int((counts > 1).sum())} customer ids appear more than once"
                )
            ]
        )


def _id_hashes(ids: pd.Series) -> np.ndarray:
    return pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy(np.uint64)


def score_file(
    model: LoadedModel,
    source: Path,
    destination: Path,
    threshold: float | None = None,
    top_n: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: ProgressFn | None = None,
    force_chunked: bool = False,
) -> FileScoreSummary:
    """Score a cohort file into a CSV: every row with id, probability, decision, rank, inputs.

    Small files are read whole (CSV or xlsx); large CSV files are read and written in chunks
    in two passes (score, then write with ranks), so memory stays bounded. The output is
    written to a temporary file and renamed: a failure leaves no partial output.
    """
    source, destination = Path(source), Path(destination)
    report = progress or (lambda fraction: None)
    if threshold is None and top_n is None:
        threshold = model.threshold
    chunked = force_chunked or (
        source.is_file()
        and source.stat().st_size > CHUNK_THRESHOLD_BYTES
        and not source.read_bytes()[:4].startswith(b"PK")
    )
    tmp = destination.with_name(f".{destination.name}.part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not chunked:
            cohort = validate_cohort(read_cohort_file(source))
            report(0.3)
            scored = score_cohort(model, cohort, threshold, top_n)
            report(0.8)
            neutralise_frame(scored).to_csv(tmp, index=False)
            tmp.replace(destination)
            report(1.0)
            probabilities = scored["probability"].to_numpy()
            return FileScoreSummary(
                len(scored),
                int((scored["decision"] == DECISION_YES).sum()),
                float(probabilities.sum()),
                False,
                cohort.notices,
                probabilities,
            )
        size = max(source.stat().st_size, 1)
        parts: list[np.ndarray] = []
        hashes: list[np.ndarray] = []
        notices: list[str] = []
        for _, cohort in _validated_chunks(source, chunk_rows):
            parts.append(model.predict_proba(cohort.frame.loc[:, list(INPUT_COLUMNS)]))
            hashes.append(_id_hashes(cohort.frame[ID_COLUMN]))
            notices = notices or cohort.notices
            report(min(0.5, 0.5 * sum(len(p) for p in parts) * 200 / size))
        if not parts:
            raise TermDepositError(f"'{source.name}' has no customers.", hint="Check the file.")
        _check_unique_ids(hashes)
        probabilities = np.concatenate(parts)
        call = decisions(probabilities, threshold, top_n)
        ranks = ranks_of(probabilities)
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            for start, cohort in _validated_chunks(source, chunk_rows):
                stop = start + len(cohort.frame)
                out = pd.DataFrame(
                    {
                        ID_COLUMN: cohort.frame[ID_COLUMN].to_numpy(),
                        "probability": probabilities[start:stop],
                        "decision": np.where(call[start:stop], DECISION_YES, DECISION_NO),
                        "rank": ranks[start:stop],
                    }
                )
                out = pd.concat([out, _output_inputs(cohort.frame)], axis=1)
                neutralise_frame(out).to_csv(handle, index=False, header=start == 0)
                report(0.5 + 0.5 * stop / len(probabilities))
        tmp.replace(destination)
        return FileScoreSummary(
            len(probabilities),
            int(call.sum()),
            float(probabilities.sum()),
            True,
            notices,
            probabilities,
        )
    finally:
        if tmp.exists():
            tmp.unlink()


def evaluate(model: LoadedModel, frame: pd.DataFrame) -> dict[str, Any]:
    """Re-measure a saved model on the two hold-outs of the reference data.

    The time hold-out is scored by the artifact itself; the random hold-out by a twin with the
    same configuration refitted on the rows outside it (as at training time), so no figure is
    ever computed on rows the scoring model was trained on.
    """
    from termdeposit.modeling.train import make_splits

    seed = int(model.card.get("random_state", 0))
    X = frame.loc[:, list(INPUT_COLUMNS)].reset_index(drop=True)
    y = frame[TARGET].to_numpy(dtype=int)
    splits = make_splits(y, seed)
    time_scores = model.predict_proba(X.iloc[splits.holdout_time])
    twin = clone(model.pipeline).fit(X.iloc[splits.fit_random], y[splits.fit_random])
    random_scores = twin.predict_proba(X.iloc[splits.holdout_random])[:, 1]
    time_m = classification_metrics(y[splits.holdout_time], time_scores)
    random_m = classification_metrics(y[splits.holdout_random], random_scores)
    return {
        "version": model.version,
        "family": model.card.get("family"),
        "auc_random": random_m["auc"],
        "auc_time": time_m["auc"],
        "ap_random": random_m["average_precision"],
        "ap_time": time_m["average_precision"],
        "brier_random": random_m["brier"],
        "brier_time": time_m["brier"],
        "ece_random": random_m["ece"],
        "ece_time": time_m["ece"],
        "lift_top10": random_m["lift_top10"],
        "lift_top10_time": time_m["lift_top10"],
        "top50_share_random": random_m["top50_share"],
        "top50_share_time": time_m["top50_share"],
        "random": random_m,
        "time": time_m,
    }


def file_sha256(data: bytes) -> str:
    """sha256 of an uploaded file's bytes (one cohort per distinct file)."""
    return hashlib.sha256(data).hexdigest()
