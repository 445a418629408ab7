"""Score very large cohorts with Dask: a folder of partitions or one large file split into many.

The input is a folder of CSV (or xlsx) or parquet files (one partition per file, in name order)
or one large CSV/parquet file split into blocks. CSV partitions are read by the product's one
reader (:mod:`termdeposit.data.reader`): one file is cut into byte ranges at record ends (quotes
respected, the encoding settled for the whole file) that each worker reads and parses as the
pandas engine would, so the engine changes only how rows stream, never what is read or refused.
Every partition goes through the same contract and the same saved pipeline as the pandas
engine, with ``dask.dataframe.map_partitions``, in two passes like the chunked pandas path:

1. each worker validates and scores its partitions and returns probabilities and id hashes;
2. the client decides whom to call and ranks everyone over the whole cohort;
3. each worker validates its partitions again and renders their rows of the output CSV, which
   the client appends in order, a few partitions at a time.

The output file is byte for byte the one the pandas engine writes for the same rows. The
cluster is a local one (worker processes on this machine) unless a scheduler address is given;
a remote cluster's workers must see the same paths and have termdeposit installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.utils import parse_bytes
from distributed import Client, Future, LocalCluster

from termdeposit.core import config
from termdeposit.core.errors import CohortValidationError, Problem, TermDepositError
from termdeposit.core.schema import ID_COLUMN, inputs_only
from termdeposit.data.cohort_file import validate_cohort
from termdeposit.data.fast_csv import csv_bytes
from termdeposit.data.reader import Part, Table, open_table, plan_parts, read_part
from termdeposit.modeling.base_rate import COMPOSITION, composition_sums
from termdeposit.modeling.inference import predict_proba
from termdeposit.modeling.predict import (
    FileScoreSummary,
    _check_unique_ids,
    _id_hashes,
    assemble_scored,
    decisions,
    follow_week,
    generated_ids,
    ranks_of,
    week_forecast,
)
from termdeposit.modeling.registry import LoadedModel

CSV_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx")
PARQUET_SUFFIXES = (".parquet", ".pq")
_PASS1_META = pd.DataFrame(
    {"probability": pd.Series(dtype="float64"), "id_hash": pd.Series(dtype="uint64")}
)

ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class Partitions:
    """The input as a Dask frame of text cells, and what each partition is called.

    Attributes:
        columns: the header's names (CSV and xlsx): partitions hold positional columns
            ("0", "1", ...), since a header may name a column twice; None for parquet.
        parts: what each CSV partition reads (None for parquet).
    """

    frame: dd.DataFrame
    names: list[str]
    one_per_file: bool
    head: pd.DataFrame
    columns: tuple[str, ...] | None = None
    parts: list[Part] | None = None


@contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int = 2,
    processes: bool = True,
    memory_limit: str | None = None,
) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a new local cluster of ``workers``.

    The local cluster runs one thread per worker (each worker scores its partition
    sequentially); ``processes=False`` keeps the workers in this process (fast to start).

    Raises:
        TermDepositError: the scheduler cannot be reached.
    """
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise TermDepositError(
                f"Could not reach the Dask scheduler at {scheduler} ({exc}).",
                hint="Check the address (tcp://host:8786) or leave out --scheduler to use "
                "a local cluster.",
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=processes,
            memory_limit=memory_limit or "auto",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _input_files(source: Path) -> tuple[list[Path], str]:
    """The files to score, in name order, and their kind (csv or parquet)."""
    if source.is_dir():
        files = sorted(
            p
            for p in source.iterdir()
            if p.is_file() and p.suffix.lower() in (*CSV_SUFFIXES, *PARQUET_SUFFIXES)
        )
        if not files:
            raise TermDepositError(
                f"The folder '{source}' holds no .csv or .parquet files.",
                hint="Put the cohort's partitions (part-0001.csv, ...) in the folder.",
            )
    elif source.is_file():
        files = [source]
    else:
        raise TermDepositError(
            f"There is no file or folder at '{source}'.", hint="Check the path."
        )
    kinds = {"parquet" if p.suffix.lower() in PARQUET_SUFFIXES else "csv" for p in files}
    if len(kinds) > 1:
        raise TermDepositError(
            f"The folder '{source}' mixes CSV and parquet files.",
            hint="Keep one kind of file per folder.",
        )
    return files, kinds.pop()


_UNREADABLE = "__unreadable__"


def _read_positional(part: Part, width: int) -> pd.DataFrame:
    """A CSV/xlsx partition with positional columns; a part that cannot be read becomes one
    marker row (the client reads it again itself, for the message)."""
    try:
        frame = read_part(part)
    except TermDepositError:
        return pd.DataFrame({_UNREADABLE: ["x"]})
    if frame.shape[1] != width:  # a workbook partition with another header
        return pd.DataFrame({_UNREADABLE: ["x"]})
    return frame.set_axis([str(i) for i in range(width)], axis=1)


def _text_partitions(source: Path, files: list[Path], blocksize: int) -> Partitions:
    tables = [open_table(p) for p in files]
    columns = tables[0].text.columns if tables[0].text else tuple(tables[0].read().columns)
    for table in tables[1:]:
        other = table.text.columns if table.text else tuple(table.read().columns)
        if other != columns:
            raise TermDepositError(
                f"'{table.filename}' does not have the same header line as "
                f"'{tables[0].filename}'.",
                hint="Every partition must have the same columns in the same order.",
            )
    one_per_file = source.is_dir()
    parts = [
        part for table in tables for part in plan_parts(table, None if one_per_file else blocksize)
    ]
    if not parts:
        validate_cohort(tables[0].header_frame())  # refuses it: "the file has no customers"
    width = len(columns)
    meta = pd.DataFrame({str(i): pd.Series(dtype=str) for i in range(width)})
    frame = dd.from_map(_read_positional, parts, width=width, meta=meta, enforce_metadata=False)
    names = (
        [p.filename for p in parts]
        if one_per_file
        else [f"{source.name} (part {i + 1})" for i in range(len(parts))]
    )
    head = _first_rows(tables[0])
    return Partitions(frame, names, one_per_file, head, columns, parts)


def _first_rows(table: Table, rows: int = 5) -> pd.DataFrame:
    """The first rows of the first file, read here (for the contract's notes)."""
    try:
        first = next(table.frames(65536), None)
    except TermDepositError:
        first = None
    return first.head(rows) if first is not None else table.header_frame()


def read_partitions(source: Path, blocksize: str | int | None = None) -> Partitions:
    """Open a folder of partitions (one per file) or one file (split in blocks) as text cells.

    Args:
        blocksize: bytes per block of one large file (default: the chunk setting,
            ``TERMDEPOSIT_CHUNK_MB``).
    """
    source = Path(source)
    files, kind = _input_files(source)
    size = parse_bytes(blocksize) if blocksize is not None else config.chunk_bytes()
    if kind == "csv":
        return _text_partitions(source, files, size)
    one_per_file = source.is_dir()
    frame = dd.read_parquet(
        [str(p) for p in files], split_row_groups=False if one_per_file else "adaptive"
    )
    one_per_file = one_per_file and frame.npartitions == len(files)
    names = (
        [p.name for p in files]
        if one_per_file
        else [f"{source.name} (part {i + 1})" for i in range(frame.npartitions)]
    )
    return Partitions(frame, names, one_per_file, _parquet_head(files[0]))


def _parquet_head(path: Path, rows: int = 5) -> pd.DataFrame:
    """The first rows of the first file, read here (for the contract's notes)."""
    import pyarrow.parquet as pq

    batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows), None)
    return batch.to_pandas() if batch is not None else pd.DataFrame()


def _named(part: pd.DataFrame, columns: tuple[str, ...] | None) -> pd.DataFrame:
    """A partition with the header's names (CSV: already text cells), or parquet as text."""
    if columns is not None:
        return part.set_axis(list(columns), axis=1)
    return as_text(part)


def as_text(part: pd.DataFrame) -> pd.DataFrame:
    """Cells as the CSV reader gives them: text, with empty strings for missing values.

    Typed parquet columns become the text pandas would write for them, so the contract sees
    exactly what it sees in a CSV file.
    """
    out = {}
    for position in range(part.shape[1]):
        values = part.iloc[:, position]
        missing = values.isna()
        text = values.astype(str)
        if is_whole_float(values):
            text = values.astype("Int64").astype(str)
        out[position] = text.mask(missing, "")
    return pd.DataFrame(out, index=part.index).set_axis(list(part.columns), axis=1)


def is_whole_float(values: pd.Series) -> bool:
    """True for float columns holding only whole numbers (parquet's integers with gaps)."""
    if not pd.api.types.is_float_dtype(values.dtype):
        return False
    finite = values.dropna()
    whole = np.all(np.floor(finite) == finite) and np.all(np.abs(finite) < 2**53)
    return bool(len(finite)) and bool(whole)


def _failed_rows(count: int) -> tuple[pd.DataFrame, np.ndarray]:
    failed = pd.DataFrame(
        {
            "probability": np.full(max(count, 1), np.nan),
            "id_hash": np.zeros(max(count, 1), "uint64"),
        }
    )
    return failed, np.zeros(1 + len(COMPOSITION))


def _score_partition(
    part: pd.DataFrame, model: LoadedModel, columns: tuple[str, ...] | None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Pass 1 in a worker: probabilities and id hashes, or NaN rows if the partition cannot
    be read or breaks the contract (the client then says why), and the partition's make-up
    (sums that add up to the cohort's, for its week's forecast rate)."""
    if _UNREADABLE in part.columns:
        return _failed_rows(1)
    if len(part) == 0:  # a range of blank lines: no customers, nothing wrong
        return _PASS1_META.copy(), np.zeros(1 + len(COMPOSITION))
    try:
        cohort = validate_cohort(_named(part, columns))
    except CohortValidationError:
        return _failed_rows(len(part))
    scored = pd.DataFrame(
        {
            "probability": predict_proba(model, inputs_only(cohort.frame), threads=1),
            "id_hash": _id_hashes(cohort.frame[ID_COLUMN]),
        }
    )
    return scored, composition_sums(cohort.frame)


def _render_partition(
    part: pd.DataFrame,
    scores: pd.DataFrame,
    offsets: list[int],
    total_rows: int,
    header_partition: int,
    columns: tuple[str, ...] | None,
    partition_info: dict[str, Any] | None = None,
) -> pd.Series:
    """Pass 2 in a worker: this partition's lines of the output CSV (header in the first)."""
    number = partition_info["number"] if partition_info else 0
    if len(part) == 0:
        return pd.Series([b""], dtype=object)
    cohort = validate_cohort(_named(part, columns), row_offset=offsets[number])
    if cohort.ids_generated:
        cohort.frame[ID_COLUMN] = generated_ids(offsets[number], len(cohort.frame), total_rows)
    out = assemble_scored(
        cohort.frame,
        scores["probability"].to_numpy(),
        scores["call"].to_numpy(),
        scores["rank"].to_numpy(),
    )
    return pd.Series([csv_bytes(out, header=number == header_partition)], dtype=object)


def _validation_error(
    partitions: Partitions, failed: list[int], offsets: list[int]
) -> TermDepositError:
    """Read and validate the failed partitions again here, with their file's row numbers.

    One file answers as the pandas engine's chunked path does: the first failing partition's
    problems (a partition that cannot be read at all: the reader's own message). A folder lists
    the problems of its first five failing files, each named.
    """
    problems: list[Problem] = []
    for number in failed[:5]:
        offset = 0 if partitions.one_per_file else offsets[number]
        if partitions.parts is not None:
            part = read_part(replace(partitions.parts[number], first_row=offset + 2))
        else:
            part = partitions.frame.get_partition(number).compute()
        try:
            validate_cohort(_named(part, None), row_offset=offset)
        except CohortValidationError as exc:
            if not partitions.one_per_file:
                return exc
            where = partitions.names[number]
            problems += [Problem(f"{where}: {p.column}", p.rows, p.problem) for p in exc.problems]
    summary = f"{len(failed)} of {len(offsets)} partitions cannot be scored."
    return CohortValidationError(problems, summary=summary)


def _notices(partitions: Partitions) -> tuple[list[str], bool]:
    """The contract's notes for this input (they depend on its columns only)."""
    head = partitions.head
    try:
        cohort = validate_cohort(as_text(head))
    except CohortValidationError:
        return [], ID_COLUMN not in head.columns
    return cohort.notices, cohort.ids_generated


def score_partitioned(
    model: LoadedModel,
    source: Path,
    destination: Path,
    threshold: float | None = None,
    top_n: int | None = None,
    client: Client | None = None,
    blocksize: str | int | None = None,
    progress: ProgressFn | None = None,
    window: int = 4,
) -> FileScoreSummary:
    """Score partitions with Dask into one CSV, byte for byte as the pandas engine writes it.

    Args:
        client: a Dask client (see :func:`dask_client`); a local cluster is started if None.
        blocksize: size of the blocks one large file is split into (default: the chunk
            setting, ``TERMDEPOSIT_CHUNK_MB``).
        window: partitions rendered ahead of the one being written (bounds client memory).

    Raises:
        CohortValidationError: partitions that break the contract, with their rows.
        TermDepositError: unreadable input, duplicate ids across partitions.
    """
    if client is None:
        with dask_client() as local:
            return score_partitioned(
                model, source, destination, threshold, top_n, local, blocksize, progress, window
            )
    report = progress or (lambda fraction: None)
    destination = Path(destination)
    if threshold is None and top_n is None:
        threshold = model.threshold
    partitions = read_partitions(Path(source), blocksize)
    notices, generated = _notices(partitions)
    shared_model = client.scatter(model, broadcast=True)

    tasks = [
        dask.delayed(_score_partition)(part, shared_model, partitions.columns)
        for part in partitions.frame.to_delayed()
    ]
    results: list[tuple[pd.DataFrame, np.ndarray]] = _gather_in_order(
        client, tasks, report, 0.0, 0.5
    )
    parts = [scored for scored, _ in results]
    sums = np.sum([partial for _, partial in results], axis=0)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(int).tolist()
    failed = [i for i, p in enumerate(parts) if len(p) and np.isnan(p["probability"].iloc[0])]
    if failed:
        raise _validation_error(partitions, failed, offsets[:-1])
    total = offsets[-1]
    if total == 0:
        validate_cohort(partitions.head.iloc[:0])  # refuses it: "the file has no customers"
    if not generated:
        _check_unique_ids([p["id_hash"].to_numpy() for p in parts])
    probabilities = follow_week(
        model, np.concatenate([p["probability"].to_numpy() for p in parts]), sums
    )
    call = decisions(probabilities, threshold, top_n)
    ranks = ranks_of(probabilities)

    slices = [
        pd.DataFrame(
            {
                "probability": probabilities[start:stop],
                "call": call[start:stop],
                "rank": ranks[start:stop],
            }
        )
        for start, stop in zip(offsets[:-1], offsets[1:], strict=True)
    ]
    scattered = client.scatter(slices)
    score_parts = dd.from_delayed(scattered, meta=slices[0].iloc[:0], verify_meta=False)
    rendered = partitions.frame.map_partitions(
        _render_partition,
        score_parts,
        offsets[:-1],
        total,
        next(i for i, p in enumerate(parts) if len(p)),
        partitions.columns,
        align_dataframes=False,
        meta=pd.Series(dtype=object),
    )
    tmp = destination.with_name(f".{destination.name}.part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "wb") as handle:
            for i, text in enumerate(_stream_in_order(client, rendered.to_delayed(), window)):
                handle.write(text.iloc[0])
                report(0.5 + 0.5 * (i + 1) / len(slices))
        tmp.replace(destination)
    finally:
        if tmp.exists():
            tmp.unlink()
        client.cancel(scattered)
        client.cancel(shared_model)
    return FileScoreSummary(
        total,
        int(call.sum()),
        float(probabilities.sum()),
        True,
        notices,
        probabilities,
        week_forecast(model, sums),
    )


def _gather_in_order(
    client: Client, tasks: list[Any], report: ProgressFn, start: float, span: float
) -> list[Any]:
    """Compute every task, reporting progress as they finish; results in task order."""
    from distributed import as_completed

    futures: list[Future] = client.compute(tasks)
    for done, _ in enumerate(as_completed(futures), start=1):
        report(start + span * done / len(futures))
    return client.gather(futures)


def _stream_in_order(client: Client, tasks: list[Any], window: int) -> Iterator[Any]:
    """Results in task order, with at most ``window`` tasks computed ahead of the consumer."""
    pending: list[Future] = []
    upcoming = iter(tasks)
    for task in upcoming:
        pending.append(client.compute(task))
        if len(pending) > window:
            break
    while pending:
        future = pending.pop(0)
        yield future.result()
        future.release()
        following = next(upcoming, None)
        if following is not None:
            pending.append(client.compute(following))
