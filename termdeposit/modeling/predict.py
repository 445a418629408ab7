"""Score cohorts with a saved pipeline and evaluate saved models on the two hold-outs.

Every front door (CLI, dashboard, API) scores through :func:`score_cohort`, so the
probability, the decision and the rank mean the same everywhere.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from termdeposit.core import config
from termdeposit.core.errors import CohortValidationError, Problem, TermDepositError
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS, NUMERIC_INPUTS, TARGET, inputs_only
from termdeposit.data import fast_csv
from termdeposit.data.cohort_file import Cohort, validate_cohort
from termdeposit.data.reader import Table, open_table
from termdeposit.modeling import base_rate, inference
from termdeposit.modeling.metrics import classification_metrics
from termdeposit.modeling.registry import LoadedModel

DECISION_YES = "call"
DECISION_NO = "do not call"
SCORE_COLUMNS = (ID_COLUMN, "probability", "decision", "rank")
#: Validated chunks kept from the first pass for the second (the last ones, up to this size),
#: so a file of a few million rows is read and validated once.
CHUNK_CACHE_BYTES = 512 * 1024 * 1024

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
    probabilities: np.ndarray | pd.Series,
    threshold: float | None = None,
    top_n: int | None = None,
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


def follow_week(model: LoadedModel, probabilities: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """The model's probabilities of a whole cohort made to follow its week's forecast rate.

    ``sums`` are the cohort's :func:`~termdeposit.modeling.base_rate.composition_sums` (added
    up over chunks for a large file). A model saved before the weekly rate model existed gives
    its probabilities unchanged. The ranking never changes.
    """
    rate_model = base_rate.from_card(model.card)
    if rate_model is None or len(probabilities) == 0:
        return np.array(probabilities, dtype=float)
    return rate_model.adjust(probabilities, sums)


def week_forecast(model: LoadedModel, sums: np.ndarray) -> base_rate.WeekForecast | None:
    """The cohort's forecast subscription rate and its range (None for an older model)."""
    rate_model = base_rate.from_card(model.card)
    return None if rate_model is None or sums[0] == 0 else rate_model.predict(sums)


def cohort_probabilities(model: LoadedModel, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities of every customer of a whole cohort (the week's rate followed)."""
    raw = inference.predict_proba(model, inputs_only(frame))
    return follow_week(model, raw, base_rate.composition_sums(frame))


def score_frame(
    model: LoadedModel,
    frame: pd.DataFrame,
    threshold: float | None = None,
    top_n: int | None = None,
) -> pd.DataFrame:
    """Score a validated cohort frame: id, probability, decision, rank, then the inputs (and y).

    The frame is one whole cohort: its probabilities follow the week's forecast rate
    (:func:`follow_week`). Rows stay in input order. Without a threshold or top N the model's
    default threshold is used.
    """
    probabilities = cohort_probabilities(model, frame)
    if threshold is None and top_n is None:
        threshold = model.threshold
    call = decisions(probabilities, threshold, top_n)
    return assemble_scored(frame, probabilities, call, ranks_of(probabilities))


def assemble_scored(
    frame: pd.DataFrame, probabilities: np.ndarray, call: np.ndarray, ranks: np.ndarray
) -> pd.DataFrame:
    """The scored rows of a validated frame: id, probability, decision, rank, inputs (and y)."""
    out = pd.DataFrame(
        {
            ID_COLUMN: frame[ID_COLUMN].to_numpy(),
            "probability": probabilities,
            "decision": np.where(call, DECISION_YES, DECISION_NO),
            "rank": ranks,
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
    """Score a validated :class:`~.cohort_file.Cohort` (see :func:`score_frame`)."""
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
    week: base_rate.WeekForecast | None = None


def _validated_chunks(
    table: Table,
    block_bytes: int,
    total_rows: int | None = None,
    stop_row: int | None = None,
) -> Iterator[tuple[int, Cohort]]:
    """Validated chunks with the row they start at, up to ``stop_row`` (all by default)."""
    start = 0
    if stop_row is not None and stop_row <= 0:
        return
    for raw in table.frames(block_bytes):
        cohort = validate_cohort(raw, row_offset=start)
        if cohort.ids_generated:
            cohort.frame[ID_COLUMN] = generated_ids(start, len(raw), total_rows)
        yield start, cohort
        start += len(raw)
        if stop_row is not None and start >= stop_row:
            return


def _block_bytes(path: Path, chunk_rows: int | None) -> int:
    """Bytes read at a time: half the chunk setting, or about ``chunk_rows`` rows."""
    if chunk_rows is None:
        return max(config.chunk_bytes() // 2, 1024)
    with open(path, "rb") as handle:
        head = handle.read(65536)
    lines = max(head.count(b"\n"), 1)
    return min(max(len(head) // lines, 16) * chunk_rows, 1 << 30)


def generated_ids(start: int, count: int, total_rows: int | None = None) -> list[str]:
    """Ids made from row numbers, as for a whole file of ``total_rows`` (row-00001, ...)."""
    width = max(5, len(str(total_rows))) if total_rows is not None else 9
    return [f"row-{start + i + 1:0{width}d}" for i in range(count)]


def _check_unique_ids(hashes: list[np.ndarray]) -> None:
    values = np.concatenate(hashes) if hashes else np.empty(0, dtype=np.uint64)
    values.sort()  # in place: one copy of the hashes in memory, even for 10M customers
    repeated = values[1:] == values[:-1]
    if repeated.any():
        first_repeats = repeated & np.r_[True, ~repeated[:-1]]
        raise CohortValidationError(
            [
                Problem(
                    ID_COLUMN,
                    "",
                    f"{int(first_repeats.sum())} customer ids appear more than once",
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
    chunk_rows: int | None = None,
    progress: ProgressFn | None = None,
    force_chunked: bool = False,
    on_scored: Callable[[pd.DataFrame], None] | None = None,
    name: str | None = None,
) -> FileScoreSummary:
    """Score a cohort file into a CSV: every row with id, probability, decision, rank, inputs.

    Every file goes through the one reader and the one validator. Small files (and
    workbooks) are read whole; CSV files over :func:`~termdeposit.core.config.chunk_bytes` (or
    any with ``force_chunked``) in chunks, in two passes (score, then write with ranks), so
    memory stays bounded: the same rows, scores and refusals. The output is written to a
    temporary file and renamed: a failure leaves no partial output.

    Args:
        chunk_rows: rows per chunk, roughly (default: half the chunk setting's bytes).
        on_scored: called with the scored rows (the frame :func:`score_frame` returns) in file
            order, a chunk at a time, as they are written — how the prediction log is written
            while the rest is scored. If it raises, nothing is written to ``destination``.
        name: the file's name in messages (default: its name on disk).
    """
    source, destination = Path(source), Path(destination)
    report = progress or (lambda fraction: None)
    if threshold is None and top_n is None:
        threshold = model.threshold
    table = open_table(source, name)
    chunked = force_chunked or (
        not table.workbook and source.stat().st_size > config.chunk_bytes()
    )
    tmp = destination.with_name(f".{destination.name}.part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not chunked:
            cohort = validate_cohort(table.read())
            report(0.3)
            scored = score_cohort(model, cohort, threshold, top_n)
            report(0.8)
            tmp.write_bytes(fast_csv.csv_bytes(scored))
            if on_scored is not None:
                on_scored(scored)
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
                week_forecast(model, base_rate.composition_sums(cohort.frame)),
            )
        block_bytes = _block_bytes(source, chunk_rows)
        parts, hashes, notices, cache, sums = _first_pass(model, table, block_bytes, report)
        if not parts:
            validate_cohort(table.header_frame())  # refuses it: "the file has no customers"
        _check_unique_ids(hashes)
        probabilities = follow_week(model, parts[0], sums)
        del parts, hashes  # 16 bytes per customer, not needed in the second pass
        call = decisions(probabilities, threshold, top_n)
        ranks = ranks_of(probabilities)
        total = len(probabilities)

        def render(chunk: tuple[int, Cohort]) -> tuple[int, bytes, pd.DataFrame]:
            start, cohort = chunk
            if cohort.ids_generated:
                cohort.frame[ID_COLUMN] = generated_ids(start, len(cohort.frame), total)
            stop = start + len(cohort.frame)
            out = assemble_scored(
                cohort.frame, probabilities[start:stop], call[start:stop], ranks[start:stop]
            )
            return stop, fast_csv.csv_bytes(out, header=start == 0), out

        with open(tmp, "wb") as handle:
            reread = _validated_chunks(table, block_bytes, total, min(cache, default=total))
            for stop, data, out in _in_order(render, itertools.chain(reread, cache.items())):
                handle.write(data)
                if on_scored is not None:
                    on_scored(out)
                report(0.5 + 0.5 * stop / total)
        tmp.replace(destination)
        return FileScoreSummary(
            len(probabilities),
            int(call.sum()),
            float(probabilities.sum()),
            True,
            notices,
            probabilities,
            week_forecast(model, sums),
        )
    finally:
        if tmp.exists():
            tmp.unlink()


def _in_order(
    function: Callable[[Any], Any], items: Iterator[Any], workers: int = 2, window: int = 3
) -> Iterator[Any]:
    """``map(function, items)`` on ``workers`` threads, in order, with at most ``window``
    results waiting: chunks are formatted two at a time (Arrow releases Python's lock) while
    memory stays bounded, whatever the number of chunks."""
    with ThreadPoolExecutor(workers, thread_name_prefix="render") as pool:
        pending: list[Future[Any]] = []
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= window:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()


def _first_pass(
    model: LoadedModel, table: Table, block_bytes: int, report: ProgressFn
) -> tuple[list[np.ndarray], list[np.ndarray], list[str], dict[int, Cohort], np.ndarray]:
    """Validate and score every chunk: probabilities, id hashes, the first notices, the
    validated chunks by first row when all of them fit in :data:`CHUNK_CACHE_BYTES` (a larger
    file keeps none: its second pass reads it again, and memory stays bounded), and the
    cohort's make-up (for its week's forecast rate).
    """
    source = table.path
    size = max(source.stat().st_size, 1)
    rows = _estimated_rows(table)
    # Two growing arrays rather than a list of small ones: few, large allocations, so the
    # memory freed by each chunk is not pinned between long-lived pieces.
    probabilities = _GrowingArray(np.float64, int(rows * 1.05))
    hashes = _GrowingArray(np.uint64, int(rows * 1.05))
    notices: list[str] = []
    cache: dict[int, Cohort] = {}
    sums = np.zeros(1 + len(base_rate.COMPOSITION))
    keep: bool | None = None
    # Each chunk is predicted in the background while the next one is read and validated.
    pending: Future[np.ndarray] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="first-pass") as runner:
        for start, cohort in _validated_chunks(table, block_bytes):
            inputs = inputs_only(cohort.frame)
            predicted = runner.submit(inference.predict_proba, model, inputs)
            hashes.extend(_id_hashes(cohort.frame[ID_COLUMN]))
            sums += base_rate.composition_sums(cohort.frame)
            notices = notices or cohort.notices
            if keep is None:
                keep = rows * _frame_bytes(cohort.frame) / len(cohort.frame) <= CHUNK_CACHE_BYTES
            if keep:
                cache[start] = cohort
            if pending is not None:
                probabilities.extend(pending.result())
            pending = predicted
            report(min(0.5, 0.5 * hashes.size * 200 / size))
        if pending is not None:
            probabilities.extend(pending.result())
    parts = [probabilities.values()] if probabilities.size else []
    return parts, [hashes.values()], notices, cache, sums


class _GrowingArray:
    """A 1-D array that grows by half its size when full."""

    def __init__(self, dtype: Any, capacity: int) -> None:
        self.data = np.empty(max(capacity, 1024), dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        end = self.size + len(values)
        if end > len(self.data):
            grown = np.empty(max(end, len(self.data) * 3 // 2), dtype=self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = values
        self.size = end

    def values(self) -> np.ndarray:
        return self.data[: self.size]


def _estimated_rows(table: Table) -> float:
    """Customers in a file, estimated from the length of its first lines."""
    newline = table.text.newline.encode() if table.text else b"\n"
    with open(table.path, "rb") as handle:
        head = handle.read(1 << 20)
    return table.path.stat().st_size * max(head.count(newline), 1) / max(len(head), 1)


def _frame_bytes(frame: pd.DataFrame) -> int:
    """Rough size of a validated frame: its arrays plus about 64 bytes per id string."""
    return int(frame.memory_usage(index=False).sum()) + 64 * len(frame)


def evaluate(model: LoadedModel, frame: pd.DataFrame) -> dict[str, Any]:
    """Re-measure a saved model on the two hold-outs of the reference data.

    Each hold-out is scored by a twin with the model's configuration refitted on the rows
    before it (time) or outside it (random), as at training time: the production artifact is
    fitted on every row, so no figure is ever computed on rows the scoring model was trained
    on.
    """
    from termdeposit.modeling.train import make_splits

    seed = model.info.random_state
    X = inputs_only(frame).reset_index(drop=True)
    y = frame[TARGET].to_numpy(dtype=int)
    splits = make_splits(y, seed)
    before = clone(model.pipeline).fit(X.iloc[splits.fit_time], y[splits.fit_time])
    time_scores = before.predict_proba(X.iloc[splits.holdout_time])[:, 1]
    twin = clone(model.pipeline).fit(X.iloc[splits.fit_random], y[splits.fit_random])
    random_scores = twin.predict_proba(X.iloc[splits.holdout_random])[:, 1]
    time_m = classification_metrics(y[splits.holdout_time], time_scores)
    random_m = classification_metrics(y[splits.holdout_random], random_scores)
    return {
        "version": model.version,
        "family": model.info.family,
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
