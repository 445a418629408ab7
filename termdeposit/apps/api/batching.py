"""Concurrent ``POST /predict`` requests scored together, and their prediction log."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from termdeposit.apps.api.models import ModelHolder
from termdeposit.apps.api.records import MAX_RECORDS, Columns, columns_frame
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS, NUMERIC_INPUTS, inputs_only
from termdeposit.modeling import inference
from termdeposit.modeling.predict import decisions, ranks_of
from termdeposit.storage.store import log_scoring


def _columns_sha256(columns: Columns) -> str:
    """A fingerprint of validated records (the same records are one cohort in the log)."""
    text = json.dumps([columns[c] for c in (ID_COLUMN, *INPUT_COLUMNS)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _log_scoring(scored: pd.DataFrame | Columns, **details: Any) -> bool:
    """Write a scoring to the prediction log (StoreUnavailableError -> 503)."""
    log_scoring(scored, source="api", **details)
    return True


@dataclass
class _Pending:
    """One ``POST /predict`` waiting for its batch."""

    columns: Columns
    threshold: float | None
    log: bool
    future: asyncio.Future[Any]

    @property
    def rows(self) -> int:
        return len(self.columns[ID_COLUMN])


@dataclass(frozen=True)
class Scored:
    """What a request gets back from its batch."""

    probabilities: np.ndarray
    call: np.ndarray
    threshold: float
    model_version: str
    logged: bool


class PredictionBatcher:
    """Score concurrent ``POST /predict`` requests together.

    Requests that arrive while a batch is being scored form the next batch: one pipeline call
    and one prediction-log write per batch instead of per request. A lone request waits for
    nothing; under load, throughput grows with the batch. Each request keeps its own
    threshold, and its own error when its part of the log cannot be written.
    """

    def __init__(self, models: ModelHolder, max_rows: int = 4 * MAX_RECORDS) -> None:
        self.models = models
        self.max_rows = max_rows
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batching task in the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the batching task (pending requests fail)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def score(self, columns: Columns, threshold: float | None, log: bool) -> Scored:
        """Queue validated records and wait for their batch."""
        pending = _Pending(columns, threshold, log, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            rows = batch[0].rows
            while not self._queue.empty() and rows < self.max_rows:
                batch.append(self._queue.get_nowait())
                rows += batch[-1].rows
            try:
                results = await asyncio.to_thread(self._score_batch, batch)
            except Exception as exc:  # the model could not be used: every request learns why
                results = [exc] * len(batch)
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, Exception):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)

    def _score_batch(self, batch: list[_Pending]) -> list[Scored | Exception]:
        model = self.models.get()
        columns = _joined([p.columns for p in batch])
        probabilities = None
        if len(columns[ID_COLUMN]) <= inference.COMPILED_MAX_ROWS:
            probabilities = inference.positive_proba(model.pipeline, _input_arrays(columns))
        if probabilities is None:
            frame = inputs_only(columns_frame(columns))
            probabilities = inference.predict_proba(model, frame)
        bounds = np.cumsum([0] + [p.rows for p in batch])
        results: list[Scored | Exception] = []
        for pending, start, stop in zip(batch, bounds[:-1], bounds[1:], strict=True):
            rule = model.threshold if pending.threshold is None else pending.threshold
            part = probabilities[start:stop]
            results.append(Scored(part, decisions(part, rule), rule, model.version, False))
        for group in _log_groups(batch, results):
            try:
                self._log(group, batch, results, model.version)
            except TermDepositError as exc:
                for i in group:
                    results[i] = exc
        return results

    @staticmethod
    def _log(group: list[int], batch: list[_Pending], results: list[Any], version: str) -> None:
        columns = _joined([batch[i].columns for i in group])
        probabilities = np.concatenate([results[i].probabilities for i in group])
        call = np.concatenate([results[i].call for i in group])
        _log_scoring(
            _scored_columns(columns, probabilities, call),
            file_sha256=_columns_sha256(columns),
            model_version=version,
            threshold=results[group[0]].threshold,
            name=f"API requests ({len(probabilities)} records)",
        )
        for i in group:
            results[i] = dataclasses.replace(results[i], logged=True)


def _joined(parts: list[Columns]) -> Columns:
    """The columns of several requests, one after the other."""
    if len(parts) == 1:
        return parts[0]
    return {c: [v for part in parts for v in part[c]] for c in parts[0]}


def _input_arrays(columns: Columns) -> dict[str, np.ndarray]:
    """The 19 inputs as numpy arrays (numbers float64, categories as objects)."""
    return {
        c: np.asarray(columns[c], dtype="float64" if c in NUMERIC_INPUTS else object)
        for c in INPUT_COLUMNS
    }


def _scored_columns(columns: Columns, probabilities: np.ndarray, call: np.ndarray) -> Columns:
    """The scored records as the prediction log takes them: id, probability, decision, rank
    and the inputs (whole numbers as integers, as in every scored output)."""
    scored: Columns = {
        ID_COLUMN: columns[ID_COLUMN],
        "probability": probabilities.tolist(),
        "decision": [bool(c) for c in call],
        "rank": ranks_of(probabilities).tolist(),
    }
    for column in INPUT_COLUMNS:
        whole = column in NUMERIC_INPUTS and NUMERIC_INPUTS[column][2]
        scored[column] = [int(v) for v in columns[column]] if whole else columns[column]
    return scored


def _log_groups(batch: list[_Pending], results: list[Any]) -> list[list[int]]:
    """Requests to log together: same threshold, no customer id twice in a group."""
    groups: list[tuple[float, set[str], list[int]]] = []
    for i, pending in enumerate(batch):
        if not pending.log:
            continue
        ids = set(pending.columns[ID_COLUMN])
        rule = results[i].threshold
        for threshold, seen, members in groups:
            if threshold == rule and not seen & ids:
                seen |= ids
                members.append(i)
                break
        else:
            groups.append((rule, ids, [i]))
    return [members for _, _, members in groups]
