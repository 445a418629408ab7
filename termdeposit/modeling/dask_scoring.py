"""Score very large cohorts with Dask: a folder of partitions or one large file split into many.

The input is a folder of CSV or parquet files (one partition per file, in name order) or one
large CSV/parquet file that Dask splits into blocks. Every partition goes through the same
contract and the same saved pipeline as the pandas engine, with
``dask.dataframe.map_partitions``, in two passes like the chunked pandas path:

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client, Future, LocalCluster

from termdeposit.core.errors import CohortValidationError, Problem, TermDepositError
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS
from termdeposit.data.cohort_file import _sniff_separator, validate_cohort
from termdeposit.data.fast_csv import csv_bytes
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

#: Size of the blocks one large CSV file is split into.
DEFAULT_BLOCKSIZE = "64MiB"
CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")

ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class Partitions:
    """The input as a Dask frame of text cells, and what each partition is called."""

    frame: dd.DataFrame
    names: list[str]
    one_per_file: bool
    head: pd.DataFrame


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


def _csv_separator(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(65536).decode("utf-8-sig", errors="replace")
    return _sniff_separator(head)


def _header(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.readline().removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n")


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
    kind = kinds.pop()
    if kind == "csv":
        with open(files[0], "rb") as handle:
            if handle.read(4) == b"PK\x03\x04":
                raise TermDepositError(
                    f"'{files[0].name}' is an Excel workbook: the Dask engine reads CSV or "
                    "parquet files.",
                    hint="Score it with the pandas engine, or save it as CSV.",
                )
        first = _header(files[0])
        for path in files[1:]:
            if _header(path) != first:
                raise TermDepositError(
                    f"'{path.name}' does not have the same header line as '{files[0].name}'.",
                    hint="Every partition must have the same columns in the same order.",
                )
    return files, kind


def read_partitions(source: Path, blocksize: str | int = DEFAULT_BLOCKSIZE) -> Partitions:
    """Open a folder of partitions (one per file) or one file (split in blocks) as text cells."""
    source = Path(source)
    files, kind = _input_files(source)
    one_per_file = source.is_dir()
    if kind == "parquet":
        frame = dd.read_parquet(
            [str(p) for p in files], split_row_groups=False if one_per_file else "adaptive"
        )
    else:
        frame = dd.read_csv(
            [str(p) for p in files],
            sep=_csv_separator(files[0]),
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            quotechar='"',
            encoding="utf-8-sig",
            blocksize=None if one_per_file else blocksize,
        )
    one_per_file = one_per_file and frame.npartitions == len(files)
    names = (
        [p.name for p in files]
        if one_per_file
        else [f"{source.name} (part {i + 1})" for i in range(frame.npartitions)]
    )
    return Partitions(frame, names, one_per_file, _head(files[0], kind))


def _head(path: Path, kind: str, rows: int = 5) -> pd.DataFrame:
    """The first rows of the first file, read here (for the contract's notes)."""
    if kind == "parquet":
        import pyarrow.parquet as pq

        batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows), None)
        return batch.to_pandas() if batch is not None else pd.DataFrame()
    return pd.read_csv(
        path,
        sep=_csv_separator(path),
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
        encoding="utf-8-sig",
        nrows=rows,
    )


def as_text(part: pd.DataFrame) -> pd.DataFrame:
    """Cells as the CSV reader gives them: text, with empty strings for missing values.

    Typed parquet columns become the text pandas would write for them, so the contract sees
    exactly what it sees in a CSV file.
    """
    out = {}
    for column in part.columns:
        values = part[column]
        missing = values.isna()
        text = values.astype(str)
        if is_whole_float(values):
            text = values.astype("Int64").astype(str)
        out[column] = text.mask(missing, "")
    return pd.DataFrame(out, index=part.index)


def is_whole_float(values: pd.Series) -> bool:
    """True for float columns holding only whole numbers (parquet's integers with gaps)."""
    if not pd.api.types.is_float_dtype(values.dtype):
        return False
    finite = values.dropna()
    whole = np.all(np.floor(finite) == finite) and np.all(np.abs(finite) < 2**53)
    return bool(len(finite)) and bool(whole)


def _score_partition(part: pd.DataFrame, model: LoadedModel) -> tuple[pd.DataFrame, np.ndarray]:
    """Pass 1 in a worker: probabilities and id hashes (NaN rows if validation fails), and the
    partition's make-up (sums that add up to the cohort's, for its week's forecast rate)."""
    try:
        cohort = validate_cohort(as_text(part))
    except CohortValidationError:
        failed = pd.DataFrame(
            {
                "probability": np.full(len(part), np.nan),
                "id_hash": np.zeros(len(part), dtype="uint64"),
            }
        )
        return failed, np.zeros(1 + len(COMPOSITION))
    scored = pd.DataFrame(
        {
            "probability": predict_proba(
                model, cohort.frame.loc[:, list(INPUT_COLUMNS)], threads=1
            ),
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
    partition_info: dict[str, Any] | None = None,
) -> pd.Series:
    """Pass 2 in a worker: this partition's lines of the output CSV (header in the first)."""
    number = partition_info["number"] if partition_info else 0
    if len(part) == 0:
        return pd.Series([b""], dtype=object)
    cohort = validate_cohort(as_text(part), row_offset=offsets[number])
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
) -> CohortValidationError:
    """Validate the failed partitions again here, with their file's row numbers."""
    problems: list[Problem] = []
    for number in failed[:5]:
        part = partitions.frame.get_partition(number).compute()
        offset = 0 if partitions.one_per_file else offsets[number]
        try:
            validate_cohort(as_text(part), row_offset=offset)
        except CohortValidationError as exc:
            where = partitions.names[number] if partitions.one_per_file else ""
            problems += [
                Problem(f"{where}: {p.column}" if where else p.column, p.rows, p.problem)
                for p in exc.problems
            ]
    summary = (
        f"{len(failed)} of {len(offsets)} partitions cannot be scored."
        if partitions.one_per_file
        else "The file cannot be scored."
    )
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
    blocksize: str | int = DEFAULT_BLOCKSIZE,
    progress: ProgressFn | None = None,
    window: int = 4,
) -> FileScoreSummary:
    """Score partitions with Dask into one CSV, byte for byte as the pandas engine writes it.

    Args:
        client: a Dask client (see :func:`dask_client`); a local cluster is started if None.
        blocksize: size of the blocks one large CSV file is split into.
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
        dask.delayed(_score_partition)(part, shared_model)
        for part in partitions.frame.to_delayed()
    ]
    results = _gather_in_order(client, tasks, report, 0.0, 0.5)
    parts = [scored for scored, _ in results]
    sums = np.sum([partial for _, partial in results], axis=0)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(int).tolist()
    failed = [i for i, p in enumerate(parts) if len(p) and np.isnan(p["probability"].iloc[0])]
    if failed:
        raise _validation_error(partitions, failed, offsets[:-1])
    total = offsets[-1]
    if total == 0:
        raise TermDepositError(f"'{source}' has no customers.", hint="Check the input.")
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
) -> list[pd.DataFrame]:
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
