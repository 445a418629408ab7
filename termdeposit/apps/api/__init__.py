"""The HTTP API (FastAPI): health, model card, real-time predictions, file scoring, outcomes.

Run it with ``termdeposit serve-api --host 127.0.0.1 --port 8000``; the OpenAPI docs are at
``/docs``. Every endpoint scores with the production model through the same contract and the
same saved pipeline as the CLI and the dashboard. The model is loaded once and swapped when
another version is promoted (the production pointer is checked at most once a second, with
one ``stat`` call). Every scoring is written to the prediction log unless the caller asks
``log=false``; if the log cannot be written the API answers 503 and says so.

``POST /score`` streams the uploaded file to disk and scores it as ``termdeposit score`` does
(in chunks when large); ``POST /outcomes`` records the week's call outcomes (a CSV or xlsx file
with customer_id, called, subscribed; optional ``cohort`` as a form or query field) through
:func:`~termdeposit.services.outcomes.record_feedback`: all or nothing, idempotent (the same file
again changes nothing). It answers a JSON summary (``rows``, ``added``, ``unchanged``,
``cohorts``, ``notices``, ``message``).

Errors a caller can cause answer 4xx with ``{"error", "hint", "problems": [{"field",
"records", "problem"}]}``; records are numbered from 1. For an uploaded file, ``error`` is the
same message the command line prints and the dashboard shows, and each problem names the
``rows`` of the file (as numbered in a spreadsheet); a refused outcomes file also lists every
row concerned in ``rows_concerned`` (``row``, ``customer_id``, ``problem``). A body over a
limit answers 413 with the limit named. Set ``TERMDEPOSIT_API_TOKEN`` to require
``Authorization: Bearer <token>`` on everything but ``/health`` and the docs.

Rooms: :mod:`.app` (the factory), :mod:`.routers` (``service``, ``scoring``, ``outcomes``),
:mod:`.records` (the records of ``/predict`` and the contract), :mod:`.batching` (concurrent
predictions scored and logged together), :mod:`.models` (the production model, reloaded on
promotion), :mod:`.errors` (error answers, body limits), :mod:`.security` (the bearer token),
:mod:`.uploads` (files streamed to disk).
"""

from __future__ import annotations

from termdeposit.apps.api.app import create_app
from termdeposit.apps.api.records import (
    MAX_RECORDS,
    CustomerRecord,
    _text_records,
    _typed_records,
    columns_frame,
    records_columns,
)
from termdeposit.core.errors import CohortValidationError

__all__ = [
    "MAX_RECORDS",
    "CohortValidationError",
    "CustomerRecord",
    "_text_records",
    "_typed_records",
    "app",
    "columns_frame",
    "create_app",
    "records_columns",
]

#: The application ``termdeposit serve-api`` runs (``termdeposit.apps.api:app``).
app = create_app()
