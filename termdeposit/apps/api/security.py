"""The bearer token every endpoint but ``/health`` and the docs asks for, when one is set."""

from __future__ import annotations

import secrets

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

TOKEN_ENV = "TERMDEPOSIT_API_TOKEN"

bearer = HTTPBearer(auto_error=False, description=f"Required when {TOKEN_ENV} is set.")


def authorised(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    """Let the request through when no token is set or it carries the right one (else 401)."""
    token: str | None = request.app.state.token
    if token is None:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise StarletteHTTPException(
            401, "A valid bearer token is required.", {"WWW-Authenticate": "Bearer"}
        )


#: The dependency list of every guarded route.
GUARDED = [Depends(authorised)]
