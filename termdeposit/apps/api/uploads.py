"""Uploaded files, streamed to disk: memory holds one piece of a file at a time, never all of it.

The multipart parser already spools a large upload to a temporary file; here it is copied, in
pieces, into a private folder under its own (cleaned) name, its size checked against the upload
limit and its sha256 computed on the way. The scoring then reads it from disk like any file
(in chunks when large), and the folder is removed once the answer has been sent.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from termdeposit.core import config

#: Bytes copied at a time.
PIECE_BYTES = 1 << 20


@dataclass(frozen=True)
class SavedUpload:
    """An upload on disk: where, under which name the user gave it, and its sha256."""

    folder: Path
    path: Path
    name: str
    sha256: str
    size: int

    def remove(self) -> None:
        """Delete the file and its folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


def upload_name(file: UploadFile, default: str) -> str:
    """The file's own name without any folder part (the name the logs and messages show)."""
    name = Path(file.filename or default).name
    return name if name not in ("", ".", "..") else default


def _disk_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:120].strip(" .")
    return cleaned or "upload"


def save_upload(file: UploadFile, default: str) -> SavedUpload:
    """Copy an upload to disk in pieces (413 over the upload limit, naming it).

    Raises:
        HTTPException: 413 when the file is over ``MAX_UPLOAD_MB``.
    """
    limit = config.MAX_UPLOAD_MB * 2**20
    name = upload_name(file, default)
    folder = Path(tempfile.mkdtemp(prefix="termdeposit-upload-"))
    path = folder / _disk_name(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "wb") as out:
            while piece := file.file.read(PIECE_BYTES):
                size += len(piece)
                if size > limit:
                    raise StarletteHTTPException(
                        413,
                        f"The file is over the {config.MAX_UPLOAD_MB} MB limit of one upload.",
                    )
                digest.update(piece)
                out.write(piece)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return SavedUpload(folder, path, name, digest.hexdigest(), size)
