"""``POST /predict`` (customer records as JSON) and ``POST /score`` (a cohort file)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from termdeposit.apps.api.records import (
    _EXAMPLE,
    MAX_RECORDS,
    CustomerRecord,
    Predictions,
    _typed_records,
    records_columns,
)
from termdeposit.apps.api.security import GUARDED
from termdeposit.apps.api.uploads import SavedUpload, save_upload
from termdeposit.core.config import default_settings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.memory import release_free_memory
from termdeposit.core.schema import ID_COLUMN
from termdeposit.modeling.predict import DECISION_NO, DECISION_YES, decisions, score_file
from termdeposit.services.forecasts import cohort_outlook
from termdeposit.storage.store import open_store, read_scored_csv

router = APIRouter(tags=["scoring"], dependencies=GUARDED)


@router.post("/predict", response_model=Predictions)
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


def _done(upload: SavedUpload) -> None:
    """After the answer is sent: remove the upload and give the memory it took back."""
    upload.remove()
    release_free_memory()


@router.post("/score")
def score(
    request: Request,
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

    The file is streamed to disk and scored as the command line scores it (in chunks when it
    is large), so the server's memory does not grow with the upload. The cohort's
    probabilities follow its week's forecast rate. The forecast comes in the
    ``X-Expected-Profit`` (``-Low``, ``-High``: the 80% range), ``X-Week-Rate-Forecast`` and
    ``X-Recommendation`` headers, or as JSON with ``summary=true``.
    """
    if threshold is not None and top is not None:
        raise TermDepositError("Give either threshold or top, not both.")
    model = request.app.state.models.get()
    upload = save_upload(file, "upload.csv")
    try:
        scored = upload.folder / "scored.csv"
        result = score_file(model, upload.path, scored, threshold, top, name=upload.name)
        rule = model.threshold if threshold is None and top is None else threshold
        if log_predictions:
            open_store().log_scoring(
                read_scored_csv(scored),
                file_sha256=upload.sha256,
                model_version=model.version,
                threshold=None if top is not None else rule,
                top_n=top,
                name=upload.name,
                source="api",
            )
        outlook = cohort_outlook(
            model,
            result.probabilities,
            default_settings(),
            called=decisions(result.probabilities, rule if top is None else None, top),
            week=result.week,
        )
    except BaseException:
        upload.remove()
        raise
    if summary:
        _done(upload)
        return JSONResponse(
            {
                "model_version": model.version,
                "rows": result.rows,
                "logged": bool(log_predictions),
                **outlook.as_dict(),
            }
        )
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
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(upload.name).stem)[:80] or "cohort"
    return FileResponse(
        scored,
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="scored-{stem}.csv"',
            "X-Model-Version": model.version,
            "X-Rows": str(result.rows),
            "X-Calls": str(result.calls),
            "X-Logged": str(bool(log_predictions)).lower(),
            **forecast_headers,
        },
        background=BackgroundTask(_done, upload),
    )
