"""Versioned models: save, verify, load, list, promote and roll back.

A model is a folder ``models/<version>/`` holding the pipeline artifact (``best_model.pkl``),
its card (``model_card.json``, which records the artifact's sha256) and a small reference
sample of training rows (``reference.parquet``, for drift and explanations). Loading checks
the sha256 before unpickling (unpickling runs code) and refuses anything outside the models
folder. One pointer file names the production version; every promotion and rollback is
appended to an audit log (``promotions.jsonl``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from termdeposit.core import config
from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger

log = get_logger("registry")

VERSION_PATTERN = re.compile(r"^v\d{8}-\d{6}(?:-\d+)?(?:-[a-z0-9]+)?$")
REFERENCE_FILE = "reference.parquet"
CHECKSUM_FILE = "SHA256SUMS"
#: HMAC-SHA256 of SHA256SUMS, written when ``TERMDEPOSIT_SIGNING_KEY`` is set.
SIGNATURE_FILE = "SIGNATURE"
AUDIT_FILE = "promotions.jsonl"


class ModelError(TermDepositError):
    """A model that cannot be used: missing, tampered with, or not a model at all."""


@dataclass
class LoadedModel:
    """A verified, unpickled pipeline with its card."""

    version: str
    pipeline: Any
    card: dict[str, Any]
    path: Path

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        """Probability of subscribing for each row (the positive class)."""
        return self.pipeline.predict_proba(frame)[:, 1]

    @property
    def threshold(self) -> float:
        """The default decision threshold recorded in the card."""
        return float(self.card.get("default_threshold", 0.5))

    def reference(self) -> pd.DataFrame:
        """Training reference sample (inputs, score, y) saved beside the artifact."""
        path = self.path / REFERENCE_FILE
        if not path.is_file():
            raise ModelError(
                f"Model {self.version} has no reference sample.",
                hint="Retrain it with 'termdeposit train'.",
            )
        return pd.read_parquet(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _root(models_dir: Path | None) -> Path:
    return (models_dir or config.models_dir()).resolve()


def check_version_name(version: str) -> str:
    """Refuse names that are not model versions (and so cannot escape the models folder)."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise ModelError(
            f"'{version}' is not a model version name.",
            hint="Version names look like v20261125-114512; run 'termdeposit models list'.",
        )
    return version


def _version_dir(version: str, models_dir: Path | None) -> Path:
    root = _root(models_dir)
    path = root / check_version_name(version)
    if path.is_symlink() or (path.exists() and path.resolve().parent != root):
        raise ModelError(
            f"Model {version} is a link pointing outside the models folder; it was not loaded.",
            hint="Remove the link and copy the model folder in instead.",
        )
    return path


def new_version(models_dir: Path | None = None, now: dt.datetime | None = None) -> str:
    """A new, sortable version name (UTC timestamp), unique within the models folder."""
    now = now or dt.datetime.now(dt.UTC)
    base = "v" + now.strftime("%Y%m%d-%H%M%S")
    root = _root(models_dir)
    version, n = base, 1
    while (root / version).exists():
        n += 1
        version = f"{base}-{n}"
    return version


#: Hidden leftovers of a save or promotion killed half-way are removed after this long (a
#: save in progress writes its staging folder in seconds, so it is never this old).
STALE_DEBRIS_SECONDS = 3600


def _remove_stale_debris(root: Path) -> None:
    """Remove what a killed save or promotion left behind (``.staging-*`` folders,
    ``.pointer-*`` files) once it is old: nothing reads it, and it would pile up."""
    cutoff = time.time() - STALE_DEBRIS_SECONDS
    for path in [*root.glob(".staging-*"), *root.glob(".pointer-*")]:
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


def save_model(
    pipeline: Any,
    card: dict[str, Any],
    reference: pd.DataFrame | None = None,
    models_dir: Path | None = None,
    version: str | None = None,
) -> str:
    """Write a new model folder atomically (temporary folder, then rename); return its version.

    The card gains ``version``, ``created`` and ``artifact_sha256``.
    """
    root = _root(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = check_version_name(version or new_version(root))
    final = root / version
    if final.exists():
        raise ModelError(f"Model {version} already exists.", hint="Use a new version name.")
    _remove_stale_debris(root)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        artifact = staging / config.MODEL_ARTIFACT
        joblib.dump(pipeline, artifact, compress=3)
        card = {
            **card,
            "version": version,
            "created": card.get("created")
            or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "artifact": config.MODEL_ARTIFACT,
            "artifact_sha256": _sha256(artifact),
        }
        if reference is not None:
            reference.to_parquet(staging / REFERENCE_FILE, index=False)
            card["reference_sha256"] = _sha256(staging / REFERENCE_FILE)
        (staging / config.MODEL_CARD).write_text(json.dumps(card, indent=2, default=str))
        _write_checksums(staging)
        _sync_folder(staging)
        os.replace(staging, final)
        _sync_folder(root, files=False)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return version


def _sync_folder(folder: Path, files: bool = True) -> None:
    """Flush a folder's files and the folder itself to disk (so a power cut right after a
    rename cannot leave a renamed model folder or pointer with empty files)."""
    if files:
        for path in folder.iterdir():
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
    if hasattr(os, "O_DIRECTORY"):  # folders cannot be opened for syncing on Windows
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_card(version: str, models_dir: Path | None = None) -> dict[str, Any]:
    """Read a model's card (no unpickling)."""
    path = _version_dir(version, models_dir) / config.MODEL_CARD
    if not path.is_file():
        raise ModelError(
            f"There is no model {version}.", hint="Run 'termdeposit models list' to see them."
        )
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"The card of model {version} is damaged (not valid JSON).",
            hint="Promote another version or retrain.",
        ) from exc
    if card.get("version") != version:
        raise ModelError(
            f"The card in folder {version} belongs to '{card.get('version')}'.",
            hint="The folder was renamed or copied by hand; retrain or restore it.",
        )
    return card


def load_model(version: str | None = None, models_dir: Path | None = None) -> LoadedModel:
    """Load a model (the production one by default), verifying its sha256 before unpickling.

    Raises:
        ModelError: no model yet, unknown version, changed artifact or card, or a file that
            is not a model.
    """
    version = version or production_version(models_dir)
    if version is None:
        raise ModelError(
            "There is no production model yet.",
            hint="Train one with 'termdeposit train' (or 'make run', which does it for you).",
        )
    folder = _version_dir(version, models_dir)
    card = read_card(version, models_dir)
    artifact = folder / config.MODEL_ARTIFACT
    if artifact.is_symlink() or not artifact.is_file():
        raise ModelError(
            f"Model {version} has no artifact file.", hint="Retrain or restore the model folder."
        )
    digest = _sha256(artifact)
    if digest != card.get("artifact_sha256"):
        raise _tampered(version, config.MODEL_ARTIFACT)
    verify_checksums(folder, version)
    try:
        pipeline = joblib.load(artifact)
    except Exception as exc:  # a verified file that still fails to unpickle: wrong libraries
        raise ModelError(
            f"Model {version} could not be opened ({type(exc).__name__}).",
            hint="It was probably saved with other library versions; retrain it.",
        ) from exc
    if not hasattr(pipeline, "predict_proba"):
        raise ModelError(f"Model {version} is not a scoring pipeline.", hint="Retrain it.")
    return LoadedModel(version=version, pipeline=pipeline, card=card, path=folder)


def _checksum_text(folder: Path) -> str:
    names = [
        n
        for n in (config.MODEL_ARTIFACT, config.MODEL_CARD, REFERENCE_FILE)
        if (folder / n).is_file()
    ]
    return "".join(f"{_sha256(folder / n)}  {n}\n" for n in names)


def _signature(text: str) -> str | None:
    key = os.environ.get("TERMDEPOSIT_SIGNING_KEY")
    if not key:
        return None
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def _write_checksums(folder: Path) -> None:
    text = _checksum_text(folder)
    (folder / CHECKSUM_FILE).write_text(text)
    signature = _signature(text)
    if signature:
        (folder / SIGNATURE_FILE).write_text(signature + "\n")


def _tampered(version: str, name: str) -> ModelError:
    return ModelError(
        f"Model {version} was changed after it was saved ({name}: checksum mismatch); "
        "it was not loaded.",
        hint="Restore the original files, promote another version, or retrain.",
    )


def verify_checksums(folder: Path, version: str) -> None:
    """Check every file of a model folder against its ``SHA256SUMS`` (and signature, if a
    signing key is set), before anything is unpickled.

    Raises:
        ModelError: a file was changed, added to the list or removed, or the signature is wrong.
    """
    listed = folder / CHECKSUM_FILE
    if not listed.is_file() or listed.is_symlink():
        raise ModelError(
            f"Model {version} has no checksum list; it was not loaded.",
            hint="Retrain it, or restore the model folder from a backup.",
        )
    recorded = listed.read_text()
    for line in recorded.splitlines():
        digest, _, name = line.partition("  ")
        path = folder / name
        if name not in (config.MODEL_ARTIFACT, config.MODEL_CARD, REFERENCE_FILE):
            raise _tampered(version, name)
        if path.is_symlink() or not path.is_file() or _sha256(path) != digest:
            raise _tampered(version, name)
    if recorded != _checksum_text(folder):
        raise _tampered(version, CHECKSUM_FILE)
    expected = _signature(recorded)
    if expected is not None:
        signature_file = folder / SIGNATURE_FILE
        found = signature_file.read_text().strip() if signature_file.is_file() else ""
        if not hmac.compare_digest(found, expected):
            raise ModelError(
                f"Model {version} is not signed with this installation's signing key; "
                "it was not loaded.",
                hint="Only load models trained here, or retrain it.",
            )


def list_versions(models_dir: Path | None = None) -> list[str]:
    """All saved versions, oldest first."""
    root = _root(models_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and VERSION_PATTERN.match(p.name)
        and (p / config.MODEL_CARD).is_file()
    )


def production_version(models_dir: Path | None = None) -> str | None:
    """The version the production pointer names, or None when there is none."""
    pointer = _root(models_dir) / config.PRODUCTION_POINTER
    if not pointer.is_file():
        return None
    version = pointer.read_text().strip()
    return check_version_name(version) if version else None


def _write_pointer(root: Path, version: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".pointer-")
    with os.fdopen(fd, "w") as handle:
        handle.write(version + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, root / config.PRODUCTION_POINTER)
    _sync_folder(root, files=False)


def audit_log(models_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every promotion and rollback, oldest first."""
    path = _root(models_dir) / AUDIT_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def promote(
    version: str,
    reason: str = "promoted by hand",
    models_dir: Path | None = None,
    user: str | None = None,
    action: str = "promote",
) -> dict[str, Any]:
    """Make ``version`` the production model (after verifying it loads); record who and why."""
    root = _root(models_dir)
    load_model(version, root)
    previous = production_version(root)
    entry = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "action": action,
        "version": version,
        "previous": previous,
        "user": user or _current_user(),
        "reason": reason,
    }
    _write_pointer(root, version)
    with open(root / AUDIT_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
    return entry


def rollback(
    models_dir: Path | None = None, reason: str = "rolled back by hand", user: str | None = None
) -> dict[str, Any]:
    """Restore the version that was in production before the current one."""
    root = _root(models_dir)
    current = production_version(root)
    history = [e for e in audit_log(root) if e["version"] == current and e.get("previous")]
    if current is None or not history:
        raise ModelError(
            "There is no earlier production model to roll back to.",
            hint="Promote a version by name with 'termdeposit models promote VERSION'.",
        )
    return promote(history[-1]["previous"], reason, root, user=user, action="rollback")


def production_at(when: dt.datetime, models_dir: Path | None = None) -> str | None:
    """Which version was in production at a given time (from the audit log)."""
    version = None
    for entry in audit_log(models_dir):
        if dt.datetime.fromisoformat(entry["at"]) <= when:
            version = entry["version"]
    return version


def _current_user() -> str:
    try:
        return os.environ.get("TERMDEPOSIT_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
