"""Score a cohort file and write the prediction log while the output is being written.

The prediction log used to be written after scoring, from the finished output file read back
with pandas: on a million customers that took longer than the scoring. Here the scored rows go
to the log as each chunk is written (:func:`~termdeposit.modeling.predict.score_file`'s
``on_scored``), on a thread of their own, in bulk (see ``Store.log_scoring``): the database
works while the next chunk is formatted. The guarantees are the log's own: one transaction
for the whole file, so a failure anywhere (scoring, writing, the database) logs nothing, and
the same file, model and rule is logged once however many runs score it at once. The
transaction starts when the first scored chunk is ready, so on SQLite other writers wait for
the writing of the file, not for its scoring.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from termdeposit.modeling.predict import FileScoreSummary, ProgressFn, score_file
from termdeposit.modeling.registry import LoadedModel
from termdeposit.storage.store import ScoringLog, Store, source_sha256

#: Scored chunks waiting for the log writer (each holds up to a chunk of rows).
WAITING_CHUNKS = 2


class _ScoringFailedError(Exception):
    """Scoring stopped: the log writer must roll back."""


class _WriterStoppedError(Exception):
    """The log writer failed: scoring stops (the writer's error is the one reported)."""


class _Handover:
    """Scored chunks handed from the scoring thread to the log writer, in order."""

    _END = object()
    _ABORT = object()

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue(WAITING_CHUNKS)
        self._writer_done = threading.Event()

    def put(self, chunk: pd.DataFrame) -> None:
        """Hand over a chunk; waits while the writer is behind.

        Raises:
            _WriterStoppedError: the writer failed, so scoring on is of no use.
        """
        if not self._send(chunk):
            raise _WriterStoppedError

    def _send(self, item: object) -> bool:
        while not self._writer_done.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """No more chunks: the writer commits."""
        self._send(self._END)

    def abort(self) -> None:
        """Scoring failed: the writer rolls back."""
        self._send(self._ABORT)

    def writer_finished(self) -> None:
        self._writer_done.set()

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The chunks, until the end (or an abort, raised as an error)."""
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if item is self._ABORT:
                raise _ScoringFailedError
            yield item  # type: ignore[misc]


def _write_log(
    store: Store,
    handover: _Handover,
    source: Path,
    *,
    model_version: str,
    threshold: float | None,
    top_n: int | None,
    week_label: str | None,
    origin: str,
) -> ScoringLog | None:
    """The log writer: hash the file while it is scored, then log every chunk it is handed."""
    try:
        sha = source_sha256(source)
        chunks = handover.chunks()
        first = next(chunks, None)
        if first is None:
            return None
        return store.log_scoring(
            itertools.chain([first], chunks),
            file_sha256=sha,
            model_version=model_version,
            threshold=threshold,
            top_n=top_n,
            name=Path(source).name,
            week_label=week_label,
            source=origin,
        )
    finally:
        handover.writer_finished()


def score_file_logged(
    store: Store,
    model: LoadedModel,
    source: Path,
    destination: Path,
    threshold: float | None = None,
    top_n: int | None = None,
    *,
    week_label: str | None = None,
    progress: ProgressFn | None = None,
    force_chunked: bool = False,
    origin: str = "cli",
) -> tuple[FileScoreSummary, ScoringLog]:
    """Score ``source`` into ``destination`` and log every prediction, in one transaction.

    Returns the scoring's summary and what was logged. ``destination`` should be a file of
    this run's own (the CLI renames it to the user's output once this returns): it is written
    before the log commits.

    Raises:
        TermDepositError: the cohort cannot be scored, or the log refuses it (nothing logged).
        StoreUnavailableError: the database cannot be used (nothing logged).
    """
    rule_threshold = model.threshold if threshold is None and top_n is None else threshold
    handover = _Handover()
    with ThreadPoolExecutor(1, thread_name_prefix="prediction-log") as writer:
        logged = writer.submit(
            _write_log,
            store,
            handover,
            Path(source),
            model_version=model.version,
            threshold=rule_threshold,
            top_n=top_n,
            week_label=week_label,
            origin=origin,
        )
        try:
            summary = score_file(
                model,
                source,
                destination,
                threshold,
                top_n,
                progress=progress,
                force_chunked=force_chunked,
                on_scored=handover.put,
            )
        except BaseException as failure:
            handover.abort()
            try:
                logged.result()
            except _ScoringFailedError:
                pass
            except Exception as writer_error:
                if isinstance(failure, _WriterStoppedError):
                    raise writer_error from None
                # otherwise the scoring's own error is the one to report
            raise
        handover.close()
        result = logged.result()  # the writer's error, if it failed
    if result is None:  # pragma: no cover - score_file raises on a file without customers
        raise RuntimeError("the scoring handed no rows to the prediction log")
    return summary, result
