"""Data drops waiting to be ingested: list and read them from a folder or an object-storage
prefix (``s3://bucket/drops``), the same way.

A drop is one file (CSV, tab-separated text or an .xlsx workbook) directly inside the folder
or prefix; hidden files and sub-folders are left alone. Drops are listed in name order, so a
source system that names them by date (``2026-w39.csv``) gives them in time order. Reading
returns the file's bytes, which the ingest step validates like any upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from termdeposit.core.config import is_url
from termdeposit.core.errors import TermDepositError
from termdeposit.data.object_storage import open_filesystem, shown_url, storage_error

#: File endings that can hold a drop.
DROP_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx")


@dataclass(frozen=True)
class Drop:
    """One drop file: its name, where it is (a path or a URL) and its size in bytes."""

    name: str
    location: str
    size: int


def _is_drop(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(DROP_SUFFIXES)


def list_drops(location: str | Path) -> list[Drop]:
    """Every drop in a folder or an ``s3://`` prefix, in name order.

    A location that names one file (local or in object storage) gives that file alone.

    Raises:
        TermDepositError: the folder or prefix does not exist or cannot be read.
    """
    if is_url(str(location)):
        return _list_remote(str(location).rstrip("/"))
    path = Path(location).expanduser()
    if path.is_file():
        return [Drop(path.name, str(path), path.stat().st_size)]
    if not path.is_dir():
        raise TermDepositError(
            f"There is no folder or file at '{path}'.", hint="Check the path of the drops."
        )
    return [
        Drop(p.name, str(p), p.stat().st_size)
        for p in sorted(path.iterdir())
        if p.is_file() and _is_drop(p.name)
    ]


def _list_remote(url: str) -> list[Drop]:
    fs, root = open_filesystem(url)
    scheme = url.split("://", 1)[0]
    try:
        if fs.isfile(root):
            return [Drop(PurePosixPath(root).name, url, int(fs.info(root).get("size", 0)))]
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        entries = []
    except Exception as exc:  # network, credentials, permissions: say so in words
        raise storage_error(exc, url, "list the data drops") from exc
    drops = [
        Drop(
            PurePosixPath(e["name"]).name,
            f"{scheme}://{e['name']}",
            int(e.get("size") or 0),
        )
        for e in entries
        if e.get("type") == "file" and _is_drop(PurePosixPath(e["name"]).name)
    ]
    if not drops and not entries:
        raise TermDepositError(
            f"There are no data drops at {shown_url(url)} (the prefix is empty or missing).",
            hint="Check the bucket and prefix of the drops.",
        )
    return sorted(drops, key=lambda d: d.name)


def read_drop(drop: Drop | str | Path) -> bytes:
    """The bytes of one drop (a :class:`Drop`, a local path or an ``s3://`` URL).

    Raises:
        TermDepositError: the file is missing or cannot be read.
    """
    location = drop.location if isinstance(drop, Drop) else str(drop)
    if is_url(location):
        fs, path = open_filesystem(location)
        try:
            return fs.cat_file(path)
        except FileNotFoundError as exc:
            raise TermDepositError(
                f"There is no data drop at {shown_url(location)}.", hint="Check the URL."
            ) from exc
        except Exception as exc:
            raise storage_error(exc, location, "read the data drop") from exc
    file = Path(location).expanduser()
    if not file.is_file():
        raise TermDepositError(f"There is no file at '{file}'.", hint="Check the path.")
    return file.read_bytes()
