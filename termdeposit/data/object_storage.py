"""Object storage (``s3://bucket/prefix``) through fsspec and s3fs.

Models (``TERMDEPOSIT_MODELS``) and data drops can live in an S3-compatible bucket instead of
a local folder. The connection is configured the standard AWS way, never by the product:
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or an instance role), ``AWS_DEFAULT_REGION``
and, for a server other than AWS (MinIO, Ceph, a test server), ``AWS_ENDPOINT_URL``.

Messages name the bucket and prefix, never credentials.
"""

from __future__ import annotations

import errno
from typing import Any
from urllib.parse import urlsplit

from termdeposit.core.errors import TermDepositError

CONNECTION_HINT = (
    "Check the bucket name, the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the machine's "
    "role) and, for a server other than AWS, AWS_ENDPOINT_URL."
)


class ObjectStorageError(TermDepositError):
    """Object storage that cannot be reached, read or written."""


def shown_url(url: str) -> str:
    """The URL without any user:password part (safe to print and log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{parts.path}"


def open_filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system for a URL and the path inside it (bucket/prefix, no scheme).

    Listings are not cached: another process may add a model or move the pointer at any time.

    Raises:
        ObjectStorageError: the URL's storage cannot be used (package missing, bad URL).
    """
    try:
        import fsspec
    except ImportError as exc:  # fsspec comes with the runtime requirements
        raise ObjectStorageError(
            "Object storage needs the fsspec and s3fs packages.",
            hint="Install them: pip install -r requirements.txt.",
        ) from exc
    try:
        fs, path = fsspec.core.url_to_fs(url, use_listings_cache=False)
    except ImportError as exc:
        raise ObjectStorageError(
            f"Reading {shown_url(url)} needs the s3fs package.",
            hint="Install it: pip install -r requirements.txt.",
        ) from exc
    except (ValueError, TypeError) as exc:
        raise ObjectStorageError(
            f"'{shown_url(url)}' is not an object-storage location this product can use.",
            hint="Use s3://bucket/prefix.",
        ) from exc
    return fs, path.rstrip("/")


def storage_error(exc: BaseException, url: str, doing: str) -> ObjectStorageError:
    """A user-facing error for a failed object-storage call (no credentials, no internals)."""
    first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return ObjectStorageError(
        f"Could not {doing} at {shown_url(url)} ({first}).", hint=CONNECTION_HINT
    )


def precondition_failed(exc: BaseException) -> bool:
    """Whether a failed write was a conditional put that lost (If-Match / If-None-Match)."""
    if isinstance(exc, FileExistsError):
        return True
    cause = exc.__cause__ or exc.__context__
    response = getattr(cause, "response", None) or getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.EINVAL and "pre-condition" in str(exc)
