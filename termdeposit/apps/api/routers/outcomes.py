"""``POST /outcomes``: the week's call outcomes, recorded all or nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse

from termdeposit.apps.api.security import GUARDED
from termdeposit.apps.api.uploads import save_upload
from termdeposit.core.errors import TermDepositError
from termdeposit.services.outcomes import record_feedback
from termdeposit.storage.store import open_store

router = APIRouter()


@router.post("/outcomes", tags=["feedback"], dependencies=GUARDED)
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
    given = {c.strip() for c in (cohort, cohort_query) if c is not None and c.strip()}
    if len(given) > 1:
        raise TermDepositError(
            f"Two different cohorts were given: {', '.join(sorted(given))}.",
            hint="Give the cohort once, as a form field or as a query field.",
        )
    upload = save_upload(file, "outcomes.csv")
    try:
        data = upload.path.read_bytes()
    finally:
        upload.remove()
    result = record_feedback(data, upload.name, next(iter(given), None), store=open_store())
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
