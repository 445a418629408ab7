"""Where the registry keeps its files: a local folder or an object-storage prefix.

Both hold the same things under the same names: one folder (prefix) per version with the
model's files, the production pointer ``PRODUCTION`` and the audit journal. They differ in
how each write is made safe, and :mod:`termdeposit.modeling.registry` relies only on the
guarantees listed here:

* **A version appears whole or not at all.** Folder: written under a hidden name, flushed,
  then renamed. Object storage (no rename): the model's files are written first and the
  checksum list ``SHA256SUMS`` last, with a create-only put; a version is listed only once its
  checksum list exists, and two writers cannot both create it.
* **The pointer changes atomically, and only from the value the writer read.** Folder: a new
  file flushed and renamed over the old one, while the writer holds the registry lock (an
  ``flock`` on ``.registry.lock``, released by the kernel if the process dies). Object
  storage: a conditional put (``If-Match`` the ETag read, or ``If-None-Match: *`` when there
  is none), so a writer that lost a race gets :class:`StorageConflictError` instead of
  overwriting. Before an interrupted promotion is recorded as abandoned, the pointer is
  rewritten as it is (a new ETag), so the stalled writer's put can no longer land; only the
  very first pointer, which does not exist yet, cannot be fenced that way (if such a put
  lands late, :func:`~termdeposit.modeling.registry.pointer_status` reports the disagreement).
* **Journal records are appended in order and never rewritten.** Folder: one JSON line per
  record in ``promotions.jsonl``, appended and flushed (a line torn by a crash is ignored and
  cut off by the next writer). Object storage: one object per record,
  ``audit/<sequence>.json``, created with ``If-None-Match: *``, so one sequence number goes
  to one writer only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from termdeposit.core import config
from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.data.object_storage import (
    open_filesystem,
    precondition_failed,
    shown_url,
    storage_error,
)

log = get_logger("registry")

AUDIT_FILE = "promotions.jsonl"
AUDIT_PREFIX = "audit"
LOCK_FILE = ".registry.lock"
#: Hidden leftovers of a save or promotion killed half-way are removed after this long (a
#: save in progress writes its staging folder in seconds, so it is never this old).
STALE_DEBRIS_SECONDS = 3600
#: Seconds a promotion waits for another one to finish before giving up.
LOCK_WAIT_SECONDS = 60.0
#: On object storage (no lock), an unfinished journal record younger than this may belong to
#: a promotion still under way, so it is left alone; an older one was interrupted.
PENDING_GRACE_SECONDS = 120.0


class ModelError(TermDepositError):
    """A model that cannot be used: missing, tampered with, or not a model at all."""


class StorageConflictError(Exception):
    """Another writer changed the pointer or took the journal's next record first."""


@dataclass(frozen=True)
class Pointer:
    """The production pointer as read: its bytes (None when there is none) and the token a
    conditional write must match (the bytes in a folder, the ETag in object storage)."""

    raw: bytes | None
    token: Any = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Journal records from JSON lines, and the length of the whole lines (a last line without
    its newline was torn by a crash: it is not a record)."""
    complete = data.rfind(b"\n") + 1
    records = []
    for number, line in enumerate(data[:complete].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("skipped line %d of the audit journal: not a record", number)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, complete


class LocalFolder:
    """The registry in a local folder (see the module docstring for its guarantees)."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None

    # -- model versions ----------------------------------------------------------------------

    def version_names(self, card_name: str) -> list[str]:
        """Names of the version folders holding a card (not links), unsorted."""
        if not self.root.is_dir():
            return []
        return [
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.is_symlink() and (p / card_name).is_file()
        ]

    def version_exists(self, version: str) -> bool:
        """Whether anything already has this version's name."""
        return (self.root / version).exists() or (self.root / version).is_symlink()

    def _version_dir(self, version: str) -> Path:
        path = self.root / version
        if path.is_symlink() or (path.exists() and path.resolve().parent != self.root.resolve()):
            raise ModelError(
                f"Model {version} is a link pointing outside the models folder; it was not "
                "loaded.",
                hint="Remove the link and copy the model folder in instead.",
            )
        return path

    def read_file(self, version: str, name: str) -> bytes | None:
        """A file of a version, or None when it is missing (links are refused)."""
        path = self._version_dir(version) / name
        if path.is_symlink():
            raise ModelError(
                f"Model {version} holds a link ({name}) instead of a file; it was not loaded.",
                hint="Restore the model folder from a backup, or retrain.",
            )
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def file_names(self, version: str) -> set[str]:
        """Names of the plain files in a version's folder."""
        folder = self._version_dir(version)
        return {p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink()}

    def save_version(self, version: str, files: list[tuple[str, bytes]]) -> None:
        """Write a version's files under a hidden name, flush them, then rename it into place.

        Raises:
            ModelError: the version exists already.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / version
        if self.version_exists(version):
            raise ModelError(f"Model {version} already exists.", hint="Use a new version name.")
        self.remove_stale_debris()
        staging = self.root / f".staging-{secrets.token_hex(6)}"
        staging.mkdir()
        try:
            for name, data in files:
                self._write_file(staging / name, data)
            self._sync_dir(staging)
            os.replace(staging, final)
            self._sync_dir(self.root)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def replace_file(self, version: str, name: str, data: bytes) -> None:
        """Replace one file of a version atomically (a new file renamed over the old one)."""
        folder = self._version_dir(version)
        temporary = folder / f".{name}.{secrets.token_hex(4)}"
        try:
            self._write_file(temporary, data)
            os.replace(temporary, folder / name)
            self._sync_dir(folder)
        finally:
            temporary.unlink(missing_ok=True)

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _sync_dir(folder: Path) -> None:
        """Flush a folder's entries to disk (a power cut right after a rename cannot lose it)."""
        if hasattr(os, "O_DIRECTORY"):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def remove_stale_debris(self) -> None:
        """Remove what a killed save or promotion left behind (``.staging-*`` folders,
        ``.pointer-*`` files) once it is old: nothing reads it, and it would pile up."""
        cutoff = time.time() - STALE_DEBRIS_SECONDS
        for path in [*self.root.glob(".staging-*"), *self.root.glob(".pointer-*")]:
            try:
                if path.is_symlink() or path.lstat().st_mtime > cutoff:
                    continue
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                log.info("removed %s, left by an interrupted save", path.name)
            except OSError:  # another process removed it first, or it cannot be: harmless
                continue

    # -- the production pointer ----------------------------------------------------------------

    def read_pointer(self) -> Pointer:
        """The pointer's bytes (None when there is no pointer file)."""
        path = self.root / config.PRODUCTION_POINTER
        if path.is_symlink():
            return Pointer(b"<a link>", b"<a link>")
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return Pointer(None, None)
        return Pointer(raw, raw)

    def write_pointer(self, version: str, expected: Pointer) -> None:
        """Point production at ``version`` (the caller holds the registry lock).

        Raises:
            StorageConflictError: the pointer is no longer what the caller read.
        """
        if self.read_pointer().token != expected.token:
            raise StorageConflictError("the production pointer changed")
        fd = -1
        temporary = self.root / f".pointer-{secrets.token_hex(6)}"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, (version + "\n").encode())
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(temporary, self.root / config.PRODUCTION_POINTER)
            self._sync_dir(self.root)
        finally:
            if fd >= 0:
                os.close(fd)
            temporary.unlink(missing_ok=True)

    def pointer_stamp(self) -> tuple[int, int, int] | None:
        """Changes whenever the pointer file is replaced (for hot reloading)."""
        try:
            info = os.stat(self.root / config.PRODUCTION_POINTER)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size, info.st_ino

    # -- the journal ---------------------------------------------------------------------------

    def journal(self) -> tuple[list[dict[str, Any]], int]:
        """Every complete record, oldest first, and the journal's position (its record count:
        what :meth:`append` is told the writer saw)."""
        try:
            data = (self.root / AUDIT_FILE).read_bytes()
        except FileNotFoundError:
            return [], 0
        records = _parse_lines(data)[0]
        return records, len(records)

    def journal_stamp(self) -> tuple[int, int] | None:
        """Changes whenever a record is appended."""
        try:
            info = os.stat(self.root / AUDIT_FILE)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def append(self, record: dict[str, Any], seen: int) -> None:
        """Append one record (the caller holds the registry lock); a line torn by an earlier
        crash is cut off first, so the new record starts on a line of its own."""
        del seen  # the lock already keeps writers apart
        line = (json.dumps(record, default=str) + "\n").encode()
        path = self.root / AUDIT_FILE
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                complete = _parse_lines(os.pread(fd, size, 0))[1]
                if complete < size:
                    os.ftruncate(fd, complete)
                    log.warning("cut off a torn last line of the audit journal")
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            self._sync_dir(self.root)

    # -- the lock ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def exclusive(self, wait: float = LOCK_WAIT_SECONDS) -> Iterator[bool]:
        """Hold the registry lock (yields True), or yield False if ``wait`` is 0 and another
        process holds it. Re-entrant within a process."""
        with self._thread_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield True
                finally:
                    self._depth -= 1
                return
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not self._acquire(fd, wait):
                    yield False
                    return
                self._depth = 1
                try:
                    yield True
                finally:
                    self._depth = 0
            finally:
                os.close(fd)  # closing releases the lock

    @staticmethod
    def _acquire(fd: int, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                if wait:
                    raise ModelError(
                        "Another promotion or rollback is under way in this models folder.",
                        hint="Wait for it to finish, then try again.",
                    )
                return False
            time.sleep(0.05)

    def pending_is_stale(self, record: dict[str, Any]) -> bool:
        """Under the lock no other promotion is running: an unfinished record is stale."""
        del record
        return True


class ObjectStore:
    """The registry under an object-storage prefix (see the module docstring)."""

    remote = True

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.label = shown_url(self.url)
        self.fs, self.prefix = open_filesystem(self.url)
        self._records: dict[str, dict[str, Any]] = {}

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    def _call(self, doing: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (FileNotFoundError, StorageConflictError):
            raise
        except Exception as exc:
            if precondition_failed(exc):
                raise StorageConflictError(doing) from exc
            raise storage_error(exc, self.url, doing) from exc

    def _put(self, key: str, data: bytes, **conditions: Any) -> Any:
        mode = conditions.pop("mode", "overwrite")
        return self._call(
            "write to the models storage",
            self.fs.pipe_file,
            key,
            data,
            mode=mode,
            **conditions,
        )

    # -- model versions ----------------------------------------------------------------------

    def version_names(self, marker: str) -> list[str]:
        """Names of the versions whose commit marker (the checksum list) exists."""
        found = self._call("list the models", self.fs.glob, self._key("*", marker))
        return [PurePosixPath(key).parent.name for key in found]

    def version_exists(self, version: str) -> bool:
        """Whether any object already sits under this version's prefix."""
        try:
            return bool(self._call("list the models", self.fs.ls, self._key(version)))
        except FileNotFoundError:
            return False

    def read_file(self, version: str, name: str) -> bytes | None:
        """A file of a version, or None when it is missing."""
        try:
            return self._call("read the model", self.fs.cat_file, self._key(version, name))
        except FileNotFoundError:
            return None

    def file_names(self, version: str) -> set[str]:
        """Names of the objects directly under a version's prefix."""
        try:
            entries = self._call(
                "list the model's files", self.fs.ls, self._key(version), detail=True
            )
        except FileNotFoundError:
            return set()
        return {PurePosixPath(e["name"]).name for e in entries if e.get("type") == "file"}

    def save_version(self, version: str, files: list[tuple[str, bytes]]) -> None:
        """Write a version's files in order; the last one (the checksum list, the version's
        commit marker) with a create-only put.

        Raises:
            ModelError: the version exists already.
        """
        if self.version_exists(version):
            raise ModelError(f"Model {version} already exists.", hint="Use a new version name.")
        *body, (marker, marker_data) = files
        for name, data in body:
            self._put(self._key(version, name), data)
        try:
            self._put(self._key(version, marker), marker_data, mode="create")
        except StorageConflictError as exc:
            raise ModelError(
                f"Model {version} was saved by another process at the same moment.",
                hint="Train again: the new model gets a new version name.",
            ) from exc

    def replace_file(self, version: str, name: str, data: bytes) -> None:
        """Replace one object of a version (a single put is atomic)."""
        self._put(self._key(version, name), data)

    def remove_stale_debris(self) -> None:
        """Nothing to do: an unfinished version has no commit marker and is never listed."""

    # -- the production pointer ----------------------------------------------------------------

    def read_pointer(self) -> Pointer:
        """The pointer's bytes and ETag (None, None when there is no pointer)."""
        key = self._key(config.PRODUCTION_POINTER)
        try:
            info = self._call("read the production pointer", self.fs.info, key)
            raw = self._call("read the production pointer", self.fs.cat_file, key)
        except FileNotFoundError:
            return Pointer(None, None)
        return Pointer(raw, info.get("ETag"))

    def write_pointer(self, version: str, expected: Pointer) -> None:
        """Compare-and-swap the pointer: written only if it still has the ETag read.

        Raises:
            StorageConflictError: another writer changed it first.
        """
        key = self._key(config.PRODUCTION_POINTER)
        data = (version + "\n").encode()
        if expected.raw is None:
            self._put(key, data, mode="create")
        else:
            self._put(key, data, IfMatch=expected.token)

    def pointer_stamp(self) -> str | None:
        """The pointer's ETag (changes with every write)."""
        try:
            info = self._call(
                "read the production pointer", self.fs.info, self._key(config.PRODUCTION_POINTER)
            )
        except FileNotFoundError:
            return None
        return str(info.get("ETag"))

    # -- the journal ---------------------------------------------------------------------------

    def _journal_keys(self) -> list[str]:
        try:
            keys = self._call("list the audit journal", self.fs.ls, self._key(AUDIT_PREFIX))
        except FileNotFoundError:
            return []
        return sorted(
            k
            for k in keys
            if PurePosixPath(k).suffix == ".json" and PurePosixPath(k).stem.isdigit()
        )

    def journal(self) -> tuple[list[dict[str, Any]], int]:
        """Every record, oldest first (records never change, so each is fetched once), and the
        journal's position (the last record's sequence number)."""
        records = []
        keys = self._journal_keys()
        for key in keys:
            if key not in self._records:
                data = self._call("read the audit journal", self.fs.cat_file, key)
                try:
                    self._records[key] = json.loads(data)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    log.warning("skipped %s of the audit journal: not a record", key)
                    self._records[key] = {}
            if self._records[key]:
                records.append(self._records[key])
        position = int(PurePosixPath(keys[-1]).stem) if keys else 0
        return records, position

    def journal_stamp(self) -> tuple[str, ...]:
        """Changes whenever a record is added."""
        return tuple(self._journal_keys())

    def append(self, record: dict[str, Any], seen: int) -> None:
        """Create record number ``seen + 1``; create-only, so a writer that did not see the
        latest record cannot add one.

        Raises:
            StorageConflictError: another writer took that number first.
        """
        key = self._key(AUDIT_PREFIX, f"{seen + 1:010d}.json")
        self._put(key, json.dumps(record, default=str).encode(), mode="create")

    # -- no lock: conditional writes keep writers apart ---------------------------------------

    @contextlib.contextmanager
    def exclusive(self, wait: float = LOCK_WAIT_SECONDS) -> Iterator[bool]:
        """Object storage has no lock: every write is conditional instead."""
        del wait
        yield True

    def pending_is_stale(self, record: dict[str, Any]) -> bool:
        """An unfinished record is left to its writer for a grace period."""
        try:
            at = dt.datetime.fromisoformat(str(record.get("at")))
        except ValueError:
            return True
        age = (dt.datetime.now(dt.UTC) - at).total_seconds()
        return age > PENDING_GRACE_SECONDS


Storage = LocalFolder | ObjectStore

_OPEN: dict[str, Storage] = {}
_OPEN_LOCK = threading.Lock()


def open_storage(location: str | Path | None = None) -> Storage:
    """The storage at a location (default ``TERMDEPOSIT_MODELS``): a folder or a URL.

    One object per location and process, so the registry lock is re-entrant within a process.
    """
    location = location if location is not None else config.models_location()
    if isinstance(location, str) and config.is_url(location):
        remote, key = True, location.rstrip("/")
    else:
        remote, key = False, str(Path(location).expanduser().resolve())
    with _OPEN_LOCK:
        if key not in _OPEN:
            _OPEN[key] = ObjectStore(key) if remote else LocalFolder(Path(key))
        return _OPEN[key]
