"""The application factory: one FastAPI app with the routers, the error handling, the model."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from termdeposit.apps.api import errors
from termdeposit.apps.api.batching import PredictionBatcher
from termdeposit.apps.api.models import ModelHolder, log
from termdeposit.apps.api.records import MAX_RECORDS, CustomerRecord
from termdeposit.apps.api.routers import outcomes, scoring, service
from termdeposit.apps.api.security import TOKEN_ENV
from termdeposit.core import config
from termdeposit.core.errors import TermDepositError
from termdeposit.core.memory import use_returning_allocator


def _field_names() -> set[str]:
    """Every field a request can name (for the errors' ``field``)."""
    names = {"customer_id", "file", "threshold", "top", "log", "cohort"}
    for field_name, field in CustomerRecord.model_fields.items():
        names |= {field_name, field.alias or field_name}
    return names


def create_app(models_dir: Path | None = None, token: str | None = None) -> FastAPI:
    """The API application (``models_dir``: default ``TERMDEPOSIT_MODELS``).

    Args:
        token: bearer token every call but ``/health`` must carry (default: the
            ``TERMDEPOSIT_API_TOKEN`` environment variable; none = open).
    """
    use_returning_allocator()
    holder = ModelHolder(models_dir)

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
            "from 1 or the file's `rows`, `problem`); 413 names the limit."
        ),
        lifespan=lifespan,
    )
    app.state.models = holder
    app.state.token = (token if token is not None else os.environ.get(TOKEN_ENV)) or None
    errors.install(app, _field_names())
    for router in (service.router, scoring.router, outcomes.router):
        app.include_router(router)
    return app
