"""Every answer the API gives to a request it cannot serve: JSON, with the field or limit named.

Errors a caller can cause answer 4xx with ``{"error", "hint", "problems": [{"field",
"records" | "rows", "problem"}]}``. A body over a limit answers 413 in the same shape, naming the
limit, before the body is read. Anything unexpected answers 500 with a JSON body and is logged;
the connection stays open for the client's next request (a raised error would make the server
close it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from termdeposit.apps.api.records import MAX_RECORDS
from termdeposit.core import config
from termdeposit.core.errors import CohortValidationError, TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.modeling.registry import ModelError
from termdeposit.services.outcomes import OutcomesError
from termdeposit.storage.store import StoreUnavailableError

log = get_logger("api")

#: Most rows listed in ``rows_concerned`` when an outcomes file is refused.
MAX_LISTED_ROWS = 1000


def error_response(
    status: int, message: str, hint: str | None = None, problems: Any = None, **extra: Any
) -> JSONResponse:
    """The JSON body of every error: ``error``, then ``hint``, ``problems`` and extras if any."""
    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    if problems:
        body["problems"] = problems
    body.update(extra)
    return JSONResponse(body, status_code=status)


def _problems(exc: CohortValidationError, where: str) -> list[dict[str, str]]:
    return [{"field": p.column, where: p.rows, "problem": p.problem} for p in exc.problems]


async def invalid_cohort(request: Request, exc: Exception) -> JSONResponse:
    """422: records or an uploaded file that break the contract, every problem listed."""
    assert isinstance(exc, CohortValidationError)
    if request.url.path.endswith("/predict"):
        hint = "Fix the records and send them again; nothing was scored or stored."
        return error_response(422, exc.summary, hint, _problems(exc, "records"))
    # An uploaded file: the message the command line prints and the dashboard shows.
    extra: dict[str, Any] = {}
    if isinstance(exc, OutcomesError) and len(exc.details):
        listed = exc.details.head(MAX_LISTED_ROWS).to_json(orient="records")
        extra = {"rows_concerned": json.loads(listed), "rows_concerned_total": len(exc.details)}
    return error_response(422, exc.message, exc.hint, _problems(exc, "rows"), **extra)


async def user_error(request: Request, exc: Exception) -> JSONResponse:
    """400, or 503 when the model or the prediction log is unavailable."""
    assert isinstance(exc, TermDepositError)
    status = 503 if isinstance(exc, ModelError | StoreUnavailableError) else 400
    hint = exc.hint
    if isinstance(exc, StoreUnavailableError) and request.url.path.endswith(
        ("/predict", "/score")
    ):
        hint = f"{hint or ''} Or score without logging: add log=false to the request.".strip()
    return error_response(status, exc.message, hint)


def _field(location: list[str], fields: set[str]) -> str:
    """The field an error is about: the last part of its location that names one."""
    named = [part for part in location if part in fields]
    if named:
        return named[-1]
    rest = [p for p in location if not p.isdigit() and p not in ("body", "query")]
    return rest[0] if rest else "(request)"


def bad_request(fields: set[str]) -> Callable[[Request, Exception], Any]:
    """422 for a request that does not match the schema, naming each field and record."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for error in exc.errors()[:50]:
            if error.get("type") == "json_invalid":
                detail = (error.get("ctx") or {}).get("error", "")
                problems.append(
                    {"field": "(request)", "records": "", "problem": f"invalid JSON {detail}"}
                )
                continue
            location = [str(part) for part in error.get("loc", ())]
            record = next(
                (int(p) + 1 for p in location[1:2] if p.isdigit() and location[0] == "body"),
                None,
            )
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            problem = {
                "field": _field(location[1:], fields),
                "records": str(record) if record is not None else "",
                "problem": message,
            }
            if problem not in problems:
                problems.append(problem)
        return error_response(422, "The request does not match the API's schema.", None, problems)

    return handler


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Errors of the HTTP layer (401, 404, 405, 413, ...) in the same JSON shape."""
    assert isinstance(exc, StarletteHTTPException)
    response = error_response(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


def install(app: FastAPI, fields: set[str]) -> None:
    """Install every error handler and the two error middlewares on the application."""
    app.add_exception_handler(CohortValidationError, invalid_cohort)
    app.add_exception_handler(TermDepositError, user_error)
    app.add_exception_handler(RequestValidationError, bad_request(fields))
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(BodyLimit)


async def _send_json(send: Send, status: int, body: dict[str, Any], close: bool) -> None:
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class UnexpectedErrors:
    """Answer anything unexpected with a JSON 500 (logged), without raising it further.

    Starlette's own error middleware re-raises after its 500, and the server then drops the
    connection; a client keeping its connection alive would see the next request fail.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("unexpected error on %s", scope.get("path", "?"))
            if started:
                raise
            await _send_json(
                send, 500, {"error": "Internal error; it was logged on the server."}, False
            )


class _TooLargeError(Exception):
    """The body grew past its limit while being read."""


def body_limits() -> dict[str, int]:
    """Largest request body, in bytes, by path (``""``: every other path)."""
    return {"/predict": MAX_RECORDS * 4096, "": (config.MAX_UPLOAD_MB + 1) * 2**20}


def _limit_text(limit: int) -> str:
    if limit % 2**20 == 0:
        return f"{limit // 2**20:,} MB"
    return f"{limit / 1024:,.0f} KB"


class BodyLimit:
    """Refuse a request body over its path's limit with a JSON 413 that names the limit.

    A declared ``Content-Length`` over the limit is refused before reading; a body that grows
    past it while being read is refused as soon as it does.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = body_limits()
        limit = limits.get(scope.get("path", ""), limits[""])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(send, scope, limit, close=True)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLargeError
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except _TooLargeError:
            if started:
                raise
            await self._refuse(send, scope, limit, close=True)

    @staticmethod
    async def _refuse(send: Send, scope: Scope, limit: int, close: bool) -> None:
        path = scope.get("path", "")
        hint = (
            f"Send at most {MAX_RECORDS:,} records per request, or score a whole cohort with "
            "POST /score."
            if path == "/predict"
            else "Split the file into smaller ones, or score it with 'termdeposit score', "
            "which reads large files in chunks."
        )
        body = {
            "error": f"The request is over the {_limit_text(limit)} limit of {path or '/'}.",
            "hint": hint,
            "limit_bytes": limit,
        }
        await _send_json(send, 413, body, close)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
