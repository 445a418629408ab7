"""The HTTP API (FastAPI): health, model card, real-time predictions, file scoring, outcomes.

Run it with ``termdeposit serve-api --host 127.0.0.1 --port 8000``; the OpenAPI docs are at
``/docs``. Every endpoint scores with the production model through the same contract and the
same saved pipeline as the CLI and the dashboard. The model is loaded once and swapped when
another version is promoted (the production pointer is checked at most once a second, with
one ``stat`` call). Every scoring is written to the prediction log unless the caller asks
``log=false``; if the log cannot be written the API answers 503 and says so.

``POST /outcomes`` records the week's call outcomes (a CSV or xlsx file with customer_id,
called, subscribed; optional ``cohort`` as a form or query field) through
:func:`~termdeposit.services.outcomes.record_feedback`: all or nothing, idempotent (the same file
again changes nothing). It answers a JSON summary (``rows``, ``added``, ``unchanged``,
``cohorts``, ``notices``, ``message``).

Errors a caller can cause answer 4xx with ``{"error", "hint", "problems": [{"field",
"records", "problem"}]}``; records are numbered from 1. For an uploaded file, ``error`` is the
same message the command line prints and the dashboard shows, and each problem names the
``rows`` of the file (as numbered in a spreadsheet); a refused outcomes file also lists every
row concerned in ``rows_concerned`` (``row``, ``customer_id``, ``problem``). Set
``TERMDEPOSIT_API_TOKEN`` to require ``Authorization: Bearer <token>`` on everything but
``/health`` and the docs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import Body, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from termdeposit.core import config
from termdeposit.core.config import default_settings
from termdeposit.core.errors import CohortValidationError, TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.core.schema import (
    CATEGORICAL_INPUTS,
    ID_COLUMN,
    INPUT_COLUMNS,
    NUMERIC_INPUTS,
    UNKNOWN_ALLOWED,
)
from termdeposit.data import fast_csv
from termdeposit.data.cohort_file import load_cohort, validate_cohort
from termdeposit.modeling import inference, registry
from termdeposit.modeling.predict import (
    DECISION_NO,
    DECISION_YES,
    decisions,
    file_sha256,
    ranks_of,
    score_cohort,
)
from termdeposit.modeling.registry import LoadedModel, ModelError
from termdeposit.services.forecasts import cohort_outlook

log = get_logger("api")

#: Most customer records accepted by one ``POST /predict`` (larger cohorts: ``POST /score``).
MAX_RECORDS = 1000
#: Most rows listed in ``rows_concerned`` when an outcomes file is refused.
MAX_LISTED_ROWS = 1000
#: Seconds between two looks at the production pointer.
POINTER_CHECK_SECONDS = 1.0
TOKEN_ENV = "TERMDEPOSIT_API_TOKEN"
_BLANKS = frozenset({"", "nan", "na", "null", "none"})
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class ModelHolder:
    """The production model, loaded once and swapped when the production pointer changes."""

    def __init__(self, models_dir: Path | None = None) -> None:
        self.models_dir = models_dir
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._error: TermDepositError | None = None
        self._stamp: Any = None
        self._checked = -math.inf

    def _pointer_stamp(self) -> Any:
        try:
            return registry.pointer_stamp(self.models_dir)
        except TermDepositError as exc:  # object storage out of reach: keep the loaded model
            log.warning("could not look at the production pointer: %s", exc)
            return self._stamp

    def get(self) -> LoadedModel:
        """The production model (reloaded first if the pointer changed).

        Raises:
            ModelError: no usable production model (the API answers 503).
        """
        now = time.monotonic()
        if now - self._checked >= POINTER_CHECK_SECONDS:
            with self._lock:
                if now - self._checked >= POINTER_CHECK_SECONDS:
                    stamp = self._pointer_stamp()
                    if stamp != self._stamp or self._model is None:
                        self._reload(stamp)
                    self._checked = time.monotonic()
        if self._model is None:
            raise self._error or ModelError("There is no production model yet.")
        return self._model

    def _reload(self, stamp: Any) -> None:
        try:
            version = registry.production_version(self.models_dir)
            if self._model is None or version != self._model.version:
                self._model = registry.load_model(version, self.models_dir)
                log.info("serving model %s", self._model.version)
            self._error = None
        except TermDepositError as exc:
            self._error = exc
            log.error("could not load the production model: %s", exc)
        self._stamp = stamp

    @property
    def last_error(self) -> str | None:
        """Why the last (re)load failed, if it did."""
        return self._error.message if self._error else None


def _field_name(column: str) -> str:
    return column.replace(".", "_")


def _record_model() -> type[BaseModel]:
    """The customer record of ``POST /predict``, built from the cohort contract."""
    fields: dict[str, Any] = {
        "customer_id": (
            Annotated[str, StringConstraints(max_length=200)] | int | None,
            Field(None, description="Your id of the customer (optional)."),
        )
    }
    for column in INPUT_COLUMNS:
        if column in NUMERIC_INPUTS:
            low, high, whole = NUMERIC_INPUTS[column]
            kind = "whole number" if whole else "number"
            fields[_field_name(column)] = (
                float | str,
                Field(alias=column, description=f"A {kind} from {low:g} to {high:g}."),
            )
        else:
            allowed = CATEGORICAL_INPUTS[column]
            blank = " (blank = unknown)" if column in UNKNOWN_ALLOWED else ""
            fields[_field_name(column)] = (
                str,
                Field(
                    alias=column,
                    max_length=100,
                    description=f"One of {', '.join(allowed)}{blank}.",
                ),
            )
    return create_model(
        "CustomerRecord",
        __config__=ConfigDict(extra="ignore", populate_by_name=True),
        **fields,
    )


CustomerRecord = _record_model()
_FIELDS = {column: _field_name(column) for column in INPUT_COLUMNS}
_EXAMPLE = {
    "customer_id": "C00042",
    "age": 41,
    "job": "management",
    "marital": "married",
    "education": "university.degree",
    "default": "no",
    "housing": "yes",
    "loan": "no",
    "contact": "cellular",
    "month": "may",
    "day_of_week": "thu",
    "campaign": 1,
    "pdays": 999,
    "previous": 0,
    "poutcome": "nonexistent",
    "emp.var.rate": -1.8,
    "cons.price.idx": 92.893,
    "cons.conf.idx": -46.2,
    "euribor3m": 1.299,
    "nr.employed": 5099.1,
}


class Prediction(BaseModel):
    """One scored customer."""

    customer_id: str
    probability: float = Field(description="Probability of subscribing (calibrated).")
    decision: str = Field(description=f"'{DECISION_YES}' (call) or '{DECISION_NO}'.")
    model_version: str


class Predictions(BaseModel):
    """The answer of ``POST /predict``."""

    model_version: str
    threshold: float
    predictions: list[Prediction]
    logged: bool = Field(description="Whether the predictions went to the prediction log.")


def _number(value: Any, column: str) -> float | None:
    """The float the contract would read from this value, or None if only it can tell."""
    if isinstance(value, str):
        if not _PLAIN_NUMBER.fullmatch(value):
            return None
        value = float(value)
    if not isinstance(value, float) or not math.isfinite(value):
        return None
    low, high, whole = NUMERIC_INPUTS[column]
    if not low <= value <= high or (whole and not value.is_integer()):
        return None
    return value


def _category(value: str, column: str) -> str | None:
    """The category the contract would read from this value, or None if only it can tell."""
    if not value.isascii():
        return None
    text = value.strip().lower()
    if text in _BLANKS and column in UNKNOWN_ALLOWED:
        return "unknown"
    return text if text in CATEGORICAL_INPUTS[column] else None


#: Validated records as plain columns: ``customer_id`` and the 19 inputs, one list each.
Columns = dict[str, list[Any]]


def _typed_records(records: list[BaseModel]) -> Columns | None:
    """The validated columns of clean records, built directly (no text round trip, no pandas).

    Returns None as soon as a value is anything but plainly valid: the records then go
    through :func:`~termdeposit.data.cohort_file.validate_cohort`, which accepts or explains them.
    A test checks that both give the same frame.
    """
    ids = [r.customer_id for r in records]
    if all(i is None for i in ids):
        width = max(5, len(str(len(records))))
        ids = [f"row-{i + 1:0{width}d}" for i in range(len(records))]
    else:
        ids = [str(i) if i is not None else "" for i in ids]
        if any(not i or i != i.strip() or not i.isascii() for i in ids):
            return None
        if len(set(ids)) != len(ids):
            return None
    columns: Columns = {ID_COLUMN: ids}
    for column in INPUT_COLUMNS:
        name = _FIELDS[column]
        check = _number if column in NUMERIC_INPUTS else _category
        values = [check(getattr(r, name), column) for r in records]
        if None in values:
            return None
        columns[column] = values
    return columns


def _text_records(records: list[BaseModel]) -> pd.DataFrame:
    """The records as the text cells of a cohort file (for the contract's own checks)."""
    rows = []
    for record in records:
        row = {ID_COLUMN: "" if record.customer_id is None else str(record.customer_id)}
        for column in INPUT_COLUMNS:
            value = getattr(record, _FIELDS[column])
            row[column] = repr(value) if isinstance(value, float) else str(value)
        rows.append(row)
    if all(r.customer_id is None for r in records):
        for row in rows:
            del row[ID_COLUMN]
    return pd.DataFrame(rows, dtype=str)


def records_columns(records: list[BaseModel]) -> Columns:
    """Validate customer records through the cohort contract; return their typed columns.

    Raises:
        CohortValidationError: every problem, with records numbered from 1.
    """
    typed = _typed_records(records)
    if typed is not None:
        return typed
    try:
        frame = validate_cohort(_text_records(records), row_offset=-1).frame
    except CohortValidationError as exc:
        raise CohortValidationError(exc.problems, "The records cannot be scored.") from None
    return {c: frame[c].tolist() for c in (ID_COLUMN, *INPUT_COLUMNS)}


def columns_frame(columns: Columns) -> pd.DataFrame:
    """Typed columns as the validated cohort frame (numbers float64, text as objects)."""
    return pd.DataFrame(
        {
            c: np.asarray(columns[c], dtype="float64" if c in NUMERIC_INPUTS else object)
            for c in (ID_COLUMN, *INPUT_COLUMNS)
        }
    )


def _error(
    status: int, message: str, hint: str | None = None, problems: Any = None, **extra: Any
) -> Any:
    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    if problems:
        body["problems"] = problems
    body.update(extra)
    return JSONResponse(body, status_code=status)


def _problems(exc: CohortValidationError, where: str) -> list[dict[str, str]]:
    return [{"field": p.column, where: p.rows, "problem": p.problem} for p in exc.problems]


def _columns_sha256(columns: Columns) -> str:
    """A fingerprint of validated records (the same records are one cohort in the log)."""
    text = json.dumps([columns[c] for c in (ID_COLUMN, *INPUT_COLUMNS)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _log_scoring(scored: pd.DataFrame | Columns, **details: Any) -> bool:
    """Write a scoring to the prediction log (StoreUnavailableError -> 503)."""
    from termdeposit.storage.store import log_scoring

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
            frame = columns_frame(columns).loc[:, list(INPUT_COLUMNS)]
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


def create_app(models_dir: Path | None = None, token: str | None = None) -> FastAPI:
    """The API application (``models_dir``: default ``TERMDEPOSIT_MODELS``).

    Args:
        token: bearer token every call but ``/health`` must carry (default: the
            ``TERMDEPOSIT_API_TOKEN`` environment variable; none = open).
    """
    holder = ModelHolder(models_dir)
    token = (token if token is not None else os.environ.get(TOKEN_ENV)) or None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            holder.get()
        except TermDepositError as exc:
            log.error("starting without a model: %s", exc.message)
        app.state.batcher = PredictionBatcher(holder)
        app.state.batcher.start()
        yield
        await app.state.batcher.stop()

    app = FastAPI(
        title="termdeposit scoring API",
        version="1",
        summary="Whom to call about a term deposit: probabilities and decisions.",
        description=(
            f"`POST /predict` scores up to {MAX_RECORDS} customer records (JSON); "
            f"`POST /score` scores a cohort file (CSV or xlsx, up to {config.MAX_UPLOAD_MB} MB) "
            "and returns the scored CSV. Both use the production model and write the "
            "prediction log (`log=false` to opt out). `POST /outcomes` records the week's "
            "call outcomes (customer_id, called, subscribed), all or nothing and idempotent. "
            "Errors: 4xx with `error`, `hint` and `problems` (`field`, `records` numbered "
            "from 1 or the file's `rows`, `problem`)."
        ),
        lifespan=lifespan,
        max_body_size=(config.MAX_UPLOAD_MB + 1) * 2**20,
    )
    app.state.models = holder
    bearer = HTTPBearer(auto_error=False, description=f"Required when {TOKEN_ENV} is set.")

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise StarletteHTTPException(
                401, "A valid bearer token is required.", {"WWW-Authenticate": "Bearer"}
            )

    guarded = [Depends(authorised)]

    @app.exception_handler(CohortValidationError)
    async def invalid_cohort(request: Request, exc: CohortValidationError) -> Any:
        if request.url.path.endswith("/predict"):
            hint = "Fix the records and send them again; nothing was scored or stored."
            return _error(422, exc.summary, hint, _problems(exc, "records"))
        from termdeposit.services.outcomes import OutcomesError

        # An uploaded file: the message the command line prints and the dashboard shows.
        extra: dict[str, Any] = {}
        if isinstance(exc, OutcomesError) and len(exc.details):
            listed = exc.details.head(MAX_LISTED_ROWS).to_json(orient="records")
            extra = {
                "rows_concerned": json.loads(listed),
                "rows_concerned_total": len(exc.details),
            }
        return _error(422, exc.message, exc.hint, _problems(exc, "rows"), **extra)

    @app.exception_handler(TermDepositError)
    async def user_error(request: Request, exc: TermDepositError) -> Any:
        from termdeposit.storage.store import StoreUnavailableError

        status = 503 if isinstance(exc, ModelError | StoreUnavailableError) else 400
        hint = exc.hint
        if isinstance(exc, StoreUnavailableError) and request.url.path.endswith(
            ("/predict", "/score")
        ):
            hint = f"{hint or ''} Or score without logging: add log=false to the request.".strip()
        return _error(status, exc.message, hint)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Any:
        problems = []
        for error in exc.errors()[:50]:
            if error.get("type") == "json_invalid":
                detail = (error.get("ctx") or {}).get("error", "")
                problems.append(
                    {"field": "(request)", "records": "", "problem": f"invalid JSON {detail}"}
                )
                continue
            location = [str(part) for part in error.get("loc", ()) if part != "body"]
            record = next((int(p) + 1 for p in location if p.isdigit()), None)
            fields = [p for p in location if not p.isdigit() and p not in ("float", "str")]
            problems.append(
                {
                    "field": fields[-1] if fields else "(request)",
                    "records": str(record) if record is not None else "",
                    "problem": error.get("msg", "invalid"),
                }
            )
        return _error(422, "The request does not match the API's schema.", None, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Any:
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, "Internal error; it was logged on the server.")

    @app.get("/health", tags=["service"])
    def health() -> JSONResponse:
        """Liveness and readiness: 200 with the model version, 503 without a model."""
        try:
            model = holder.get()
        except TermDepositError as exc:
            return JSONResponse({"status": "no model", "error": exc.message}, status_code=503)
        return JSONResponse(
            {"status": "ok", "model_version": model.version, "reload_error": holder.last_error}
        )

    @app.get("/model", tags=["model"], dependencies=guarded)
    def model_card() -> dict[str, Any]:
        """The production model's card: family, metrics on both hold-outs, threshold."""
        return holder.get().card

    @app.post(
        "/predict",
        tags=["scoring"],
        dependencies=guarded,
        response_model=Predictions,
        max_body_size=MAX_RECORDS * 4096,
    )
    async def predict(
        request: Request,
        records: Annotated[
            list[CustomerRecord],  # type: ignore[valid-type]
            Body(description=f"1 to {MAX_RECORDS} customer records.", examples=[[_EXAMPLE]]),
        ],
        threshold: Annotated[
            float | None,
            Query(
                ge=0,
                le=1,
                description="Call at or above this probability (default: the "
                "model's break-even threshold).",
            ),
        ] = None,
        log_predictions: Annotated[
            bool, Query(alias="log", description="Write the prediction log (default true).")
        ] = True,
    ) -> JSONResponse:
        """Score customer records: probability, decision and model version for each.

        A list of records is not a week's cohort: each gets the model's own probability. A
        cohort scored as a whole (``POST /score``) follows its week's forecast rate.
        """
        if not records:
            raise TermDepositError("Send at least one customer record.")
        if len(records) > MAX_RECORDS:
            raise StarletteHTTPException(
                413,
                f"{len(records)} records: at most {MAX_RECORDS} per request; "
                "score larger cohorts with POST /score.",
            )
        columns = _typed_records(records)
        if columns is None:
            columns = await asyncio.to_thread(records_columns, records)
        scored = await request.app.state.batcher.score(columns, threshold, log_predictions)
        version = scored.model_version
        return JSONResponse(
            {
                "model_version": version,
                "threshold": scored.threshold,
                "logged": scored.logged,
                "predictions": [
                    {
                        "customer_id": cid,
                        "probability": float(p),
                        "decision": DECISION_YES if c else DECISION_NO,
                        "model_version": version,
                    }
                    for cid, p, c in zip(
                        columns[ID_COLUMN], scored.probabilities, scored.call, strict=True
                    )
                ],
            }
        )

    @app.post("/score", tags=["scoring"], dependencies=guarded)
    def score(
        file: Annotated[UploadFile, File(description="Cohort file: CSV or xlsx.")],
        threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
        top: Annotated[int | None, Query(ge=0, description="Call the N most likely.")] = None,
        log_predictions: Annotated[bool, Query(alias="log")] = True,
        summary: Annotated[
            bool,
            Query(
                description="Answer the forecast as JSON (the week's rate, expected profit "
                "with its 80% range, the recommendation in words) instead of the scored CSV."
            ),
        ] = False,
    ) -> Response:
        """Score a cohort file; answer the scored CSV (id, probability, decision, rank, inputs).

        The cohort's probabilities follow its week's forecast rate. The forecast comes in the
        ``X-Expected-Profit`` (``-Low``, ``-High``: the 80% range), ``X-Week-Rate-Forecast``
        and ``X-Recommendation`` headers, or as JSON with ``summary=true``.
        """
        if threshold is not None and top is not None:
            raise TermDepositError("Give either threshold or top, not both.")
        data = _read_upload(file)
        name = Path(file.filename or "upload.csv").name
        model = holder.get()
        cohort = load_cohort(data, name)
        if threshold is None and top is None:
            threshold = model.threshold
        scored = score_cohort(model, cohort, threshold, top)
        logged = log_predictions and _log_scoring(
            scored,
            file_sha256=file_sha256(data),
            model_version=model.version,
            threshold=None if top is not None else threshold,
            top_n=top,
            name=name,
        )
        outlook = cohort_outlook(
            model,
            scored["probability"].to_numpy(float),
            default_settings(),
            called=(scored["decision"] == DECISION_YES).to_numpy(),
            frame=cohort.frame,
        )
        if summary:
            return JSONResponse(
                {
                    "model_version": model.version,
                    "rows": len(scored),
                    "logged": bool(logged),
                    **outlook.as_dict(),
                }
            )
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).stem)[:80] or "cohort"
        advice = outlook.recommendation
        forecast_headers = {
            "X-Expected-Profit": f"{outlook.chosen.expected:.2f}",
            "X-Expected-Profit-Low": f"{outlook.chosen.low:.2f}",
            "X-Expected-Profit-High": f"{outlook.chosen.high:.2f}",
            "X-Recommendation": advice.choice,
            "X-Recommended-Calls": str(advice.calls),
            "X-Recommended-Threshold": f"{advice.threshold:.6f}",
        }
        if outlook.week is not None:
            forecast_headers["X-Week-Rate-Forecast"] = f"{outlook.week.rate:.5f}"
            forecast_headers["X-Week-Rate-Low"] = f"{outlook.week.low:.5f}"
            forecast_headers["X-Week-Rate-High"] = f"{outlook.week.high:.5f}"
        return Response(
            fast_csv.csv_bytes(scored),
            media_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="scored-{stem}.csv"',
                "X-Model-Version": model.version,
                "X-Rows": str(len(scored)),
                "X-Calls": str(int((scored["decision"] == DECISION_YES).sum())),
                "X-Logged": str(bool(logged)).lower(),
                **forecast_headers,
            },
        )

    @app.post("/outcomes", tags=["feedback"], dependencies=guarded)
    def record_outcomes(
        file: Annotated[
            UploadFile,
            File(description="Outcomes file (CSV or xlsx): customer_id, called, subscribed."),
        ],
        cohort: Annotated[
            str | None,
            Form(
                description="The cohort these outcomes are for: id, week label or file name "
                "(default: each customer's cohort is found by id)."
            ),
        ] = None,
        cohort_query: Annotated[
            str | None, Query(alias="cohort", description="The same, as a query field.")
        ] = None,
    ) -> JSONResponse:
        """Record the week's call outcomes, all or nothing; the same file again changes nothing.

        Refused files (unknown customers or cohort, contradictory rows, values other than
        yes/no, outcomes that differ from those recorded earlier) answer 4xx with the message,
        the problems and every row concerned; nothing is stored.
        """
        from termdeposit.services.outcomes import record_feedback
        from termdeposit.storage.store import open_store

        given = {c.strip() for c in (cohort, cohort_query) if c is not None and c.strip()}
        if len(given) > 1:
            raise TermDepositError(
                f"Two different cohorts were given: {', '.join(sorted(given))}.",
                hint="Give the cohort once, as a form field or as a query field.",
            )
        data = _read_upload(file)
        name = Path(file.filename or "outcomes.csv").name
        result = record_feedback(data, name, next(iter(given), None), store=open_store())
        return JSONResponse(
            {
                "rows": result.rows,
                "added": result.added,
                "unchanged": result.unchanged,
                "cohorts": result.cohorts,
                "notices": result.notices,
                "message": " ".join([result.summary(), *result.notices]),
            }
        )

    return app


def _read_upload(file: UploadFile) -> bytes:
    """The bytes of an uploaded file (413 over the upload limit)."""
    limit = config.MAX_UPLOAD_MB * 2**20
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise StarletteHTTPException(
            413, f"The file is over the {config.MAX_UPLOAD_MB} MB limit of one upload."
        )
    return data


app = create_app()
