"""``GET /health`` (liveness and readiness) and ``GET /model`` (the production model's card)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from termdeposit.apps.api.security import GUARDED
from termdeposit.core.errors import TermDepositError

router = APIRouter()


@router.get("/health", tags=["service"])
def health(request: Request) -> JSONResponse:
    """Liveness and readiness: 200 with the model version, 503 without a model."""
    holder = request.app.state.models
    try:
        model = holder.get()
    except TermDepositError as exc:
        return JSONResponse({"status": "no model", "error": exc.message}, status_code=503)
    return JSONResponse(
        {"status": "ok", "model_version": model.version, "reload_error": holder.last_error}
    )


@router.get("/model", tags=["model"], dependencies=GUARDED)
def model_card(request: Request) -> dict[str, Any]:
    """The production model's card: family, metrics on both hold-outs, threshold."""
    return request.app.state.models.get().card
