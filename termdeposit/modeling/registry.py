"""Versioned models: save, verify, load, list, promote, roll back and trust.

A model is a folder ``<version>/`` (under ``TERMDEPOSIT_MODELS``: a local folder or an
``s3://bucket/prefix``) holding the pipeline artifact (``best_model.pkl``), its card
(``model_card.json``), a small reference sample of training rows (``reference.parquet``, for
drift and explanations), the checksum list ``SHA256SUMS`` and ``SIGNATURE``. The pointer file
``PRODUCTION`` names the production version; the audit journal records every promotion,
rollback and trust decision. :mod:`termdeposit.modeling.model_storage` says how each write is
made atomic in a folder and in object storage.

**Loading a model cannot run a stranger's code: models are signed.** Unpickling runs code, so
a model is unpickled only after (1) every file matches ``SHA256SUMS`` and (2) ``SIGNATURE`` is
the HMAC-SHA256 of that list with this installation's key (:mod:`~termdeposit.modeling.signing`:
a random key created on first use and kept outside the models folder). The artifact is read
once into memory, verified and unpickled from those same bytes. A model saved elsewhere, or
before signing existed, is refused until someone vouches for it with
``termdeposit models trust VERSION --reason ...`` (recorded in the audit journal), which signs
it with the local key. skops was measured as the alternative (skops 0.16,
``benchmarks/bench_model_format.py``, the product's pipelines fitted on 6,000 rows): it loads
every one with identical scores, but only with 12 trusted types for the calibrated average
(imblearn's Pipeline, BankCleaner, OptionalSMOTE, BlendClassifier, XGBClassifier and its
Booster, scikit-learn's private ``_CalibratedClassifier``, ``_SigmoidCalibration`` and
``Tree``, ``StratifiedKFold``, ``make_column_selector``, ``numpy.number``) and 15 for a
recalibrated model; that list would have to follow every new estimator and library upgrade,
the files are 1.3x to 3.7x joblib's and load 4-7x slower, and a well-formed file of the
wrong model still loads. A signature proves where the file came from, which covers the
swapped model too, so signing is what guards loading; skops stays a possible second layer.

**A trustworthy history: the audit entry is written ahead of the pointer change.** A
promotion or rollback, holding the registry lock, (1) appends a *pending* record (who, why,
from which version to which), (2) moves the pointer atomically, (3) appends *done*. Every
registry open first settles an unfinished record left by a process killed half-way: *done* if
the pointer had moved, *abandoned* if not. The history (:func:`audit_log`) is the records
that were done, so whenever a kill strikes, pointer and history agree once the registry is
opened again. In object storage the same three steps are conditional writes (see
model_storage), and an unfinished record younger than two minutes is left to its writer.

Rollback walks back through that history: promotions push a version, rollbacks pop one, so
promote A, B, C then rollback, rollback gives B, then A; a rollback never goes forward. A
damaged pointer (empty, garbage, not a version name) is reported in words by
:func:`pointer_status` and repaired by promoting a version by name.

Size: The registry's promises (checksums, signature, audit entry ahead of the pointer, rollback
through history) are one protocol under one lock; how files are written (model_storage.py) and
signed (signing.py) are already modules of their own.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import io
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from termdeposit.core import config
from termdeposit.core.logs import get_logger
from termdeposit.modeling import signing
from termdeposit.modeling.card import ModelCard
from termdeposit.modeling.model_storage import (
    AUDIT_FILE,
    STALE_DEBRIS_SECONDS,
    LocalFolder,
    ModelError,
    ObjectStore,
    Pointer,
    Storage,
    StorageConflictError,
    open_storage,
)

__all__ = [
    "AUDIT_FILE",
    "CHECKSUM_FILE",
    "REFERENCE_FILE",
    "SIGNATURE_FILE",
    "STALE_DEBRIS_SECONDS",
    "VERSION_PATTERN",
    "LoadedModel",
    "ModelError",
    "PointerStatus",
    "audit_log",
    "check_version_name",
    "list_versions",
    "load_model",
    "new_version",
    "pointer_stamp",
    "pointer_status",
    "production_at",
    "production_version",
    "promote",
    "read_card",
    "read_reference",
    "rollback",
    "save_model",
    "settle",
    "trust",
]

log = get_logger("registry")

VERSION_PATTERN = re.compile(r"^v\d{8}-\d{6}(?:-\d+)?(?:-[a-z0-9]+)?$")
REFERENCE_FILE = "reference.parquet"
CHECKSUM_FILE = "SHA256SUMS"
#: HMAC-SHA256 of SHA256SUMS with this installation's signing key.
SIGNATURE_FILE = "SIGNATURE"
#: Files a model folder may hold under the checksum list, in the order they are listed.
MODEL_FILES = (config.MODEL_ARTIFACT, config.MODEL_CARD, REFERENCE_FILE)
#: Journal actions that do not move the production pointer.
TRUST = "trust"
REPAIR_HINT = (
    "Run 'termdeposit models list' to see the saved versions, then put one in production "
    'by name: termdeposit models promote VERSION --reason "repair the pointer" (or use '
    "Promote on the dashboard's Models page)."
)
#: Seconds between two looks for an interrupted promotion in object storage.
REMOTE_SETTLE_SECONDS = 30.0

ModelsLocation = Path | str | Storage | None


@dataclass
class LoadedModel:
    """A verified, unpickled pipeline with its card.

    ``card`` is the card as saved (a JSON document, checksummed); read it through ``info``,
    its typed view (:class:`~termdeposit.modeling.card.ModelCard`).
    """

    version: str
    pipeline: Any
    card: dict[str, Any]
    path: Path | str
    storage: Any = field(default=None, repr=False, compare=False)

    @property
    def info(self) -> ModelCard:
        """The card, typed."""
        return ModelCard.from_dict(self.card)

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        """Probability of subscribing for each row (the positive class)."""
        return self.pipeline.predict_proba(frame)[:, 1]

    @property
    def threshold(self) -> float:
        """The default decision threshold recorded in the card."""
        return self.info.default_threshold

    def has_reference(self) -> bool:
        """Whether a training reference sample was saved beside the artifact."""
        return (
            _storage(self.storage or self.path).read_file(self.version, REFERENCE_FILE) is not None
        )

    def reference(self) -> pd.DataFrame:
        """Training reference sample (inputs, score, y) saved beside the artifact."""
        return read_reference(self.version, self.storage or self.path)


@dataclass(frozen=True)
class PointerStatus:
    """What the production pointer says, and what is wrong with it, in words.

    Attributes:
        version: the production version, when the pointer names one.
        problem: why the pointer cannot be used (damaged, empty, names no saved model), or a
            disagreement with the audit history; None when all is well or there is no pointer.
        exists: whether there is a pointer at all.
    """

    version: str | None
    problem: str | None = None
    exists: bool = False

    @property
    def hint(self) -> str | None:
        """What to do about the problem."""
        return REPAIR_HINT if self.problem else None


def _storage(models_dir: ModelsLocation) -> Storage:
    if isinstance(models_dir, (LocalFolder, ObjectStore)):
        return models_dir
    return open_storage(models_dir)


def _local_root(storage: Storage) -> Path | None:
    return storage.root if isinstance(storage, LocalFolder) else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def check_version_name(version: str) -> str:
    """Refuse names that are not model versions (and so cannot escape the models folder)."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise ModelError(
            f"'{version}' is not a model version name.",
            hint="Version names look like v20261125-114512; run 'termdeposit models list'.",
        )
    return version


def new_version(models_dir: ModelsLocation = None, now: dt.datetime | None = None) -> str:
    """A new, sortable version name (UTC timestamp), unique within the models folder."""
    now = now or dt.datetime.now(dt.UTC)
    base = "v" + now.strftime("%Y%m%d-%H%M%S")
    storage = _storage(models_dir)
    version, n = base, 1
    while storage.version_exists(version):
        n += 1
        version = f"{base}-{n}"
    return version


# -- saving --------------------------------------------------------------------------------------


def _dump(pipeline: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer, compress=3)
    return buffer.getvalue()


def _checksum_text(files: dict[str, bytes]) -> str:
    return "".join(f"{_sha256(files[n])}  {n}\n" for n in MODEL_FILES if n in files)


def save_model(
    pipeline: Any,
    card: dict[str, Any],
    reference: pd.DataFrame | None = None,
    models_dir: ModelsLocation = None,
    version: str | None = None,
) -> str:
    """Write a new, signed model version all at once; return its version.

    The card gains ``version``, ``created``, ``artifact`` and ``artifact_sha256``.

    Raises:
        ModelError: the version exists already.
        SigningKeyError: the signing key cannot be read or created.
    """
    storage = _storage(models_dir)
    key = signing.signing_key(_local_root(storage))
    version = check_version_name(version or new_version(storage))
    files = {config.MODEL_ARTIFACT: _dump(pipeline)}
    card = {
        **card,
        "version": version,
        "created": card.get("created") or _now(),
        "artifact": config.MODEL_ARTIFACT,
        "artifact_sha256": _sha256(files[config.MODEL_ARTIFACT]),
    }
    if reference is not None:
        buffer = io.BytesIO()
        reference.to_parquet(buffer, index=False)
        files[REFERENCE_FILE] = buffer.getvalue()
        card["reference_sha256"] = _sha256(files[REFERENCE_FILE])
    files[config.MODEL_CARD] = json.dumps(card, indent=2, default=str).encode()
    checksums = _checksum_text(files)
    storage.save_version(
        version,
        [
            *((n, files[n]) for n in MODEL_FILES if n in files),
            (SIGNATURE_FILE, (signing.sign(checksums, key) + "\n").encode()),
            (CHECKSUM_FILE, checksums.encode()),  # last: a version's commit marker
        ],
    )
    return version


# -- reading and verifying ----------------------------------------------------------------------


def read_card(version: str, models_dir: ModelsLocation = None) -> dict[str, Any]:
    """Read a model's card (no unpickling)."""
    data = _storage(models_dir).read_file(check_version_name(version), config.MODEL_CARD)
    if data is None:
        raise ModelError(
            f"There is no model {version}.", hint="Run 'termdeposit models list' to see them."
        )
    try:
        card = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"The card of model {version} is damaged (not valid JSON).",
            hint="Promote another version or retrain.",
        ) from exc
    if not isinstance(card, dict) or card.get("version") != version:
        found = card.get("version") if isinstance(card, dict) else None
        raise ModelError(
            f"The card in folder {version} belongs to '{found}'.",
            hint="The folder was renamed or copied by hand; retrain or restore it.",
        )
    return card


def _tampered(version: str, name: str) -> ModelError:
    return ModelError(
        f"Model {version} was changed after it was saved ({name}: checksum mismatch); "
        "it was not loaded.",
        hint="Restore the original files, promote another version, or retrain.",
    )


def _checked_files(storage: Storage, version: str) -> tuple[dict[str, bytes], str]:
    """Every file of a version checked against its ``SHA256SUMS`` (nothing unpickled): the
    files' bytes and the list's text."""
    listed = storage.read_file(version, CHECKSUM_FILE)
    if listed is None:
        raise ModelError(
            f"Model {version} has no checksum list; it was not loaded.",
            hint="Retrain it, or restore the model folder from a backup.",
        )
    text = listed.decode("utf-8", errors="replace")
    files: dict[str, bytes] = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if name not in MODEL_FILES or name in files:
            raise _tampered(version, name or CHECKSUM_FILE)
        data = storage.read_file(version, name)
        if data is None or _sha256(data) != digest:
            raise _tampered(version, name)
        files[name] = data
    present = storage.file_names(version) & set(MODEL_FILES)
    if present != set(files) or text != _checksum_text(files):
        raise _tampered(version, CHECKSUM_FILE)
    return files, text


def _trust_hint(version: str) -> str:
    return (
        "Loading a model runs the code inside it, so only models signed by this installation "
        "are loaded. If you know where this one comes from (trained here before models were "
        "signed, or with another signing key), vouch for it: termdeposit models trust "
        f'{version} --reason "...". Otherwise retrain.'
    )


def _check_signature(storage: Storage, version: str, checksums: str) -> None:
    key = signing.signing_key(_local_root(storage))
    found = storage.read_file(version, SIGNATURE_FILE)
    if found is None:
        raise ModelError(
            f"Model {version} is not signed; it was not loaded.", hint=_trust_hint(version)
        )
    if not signing.signature_matches(checksums, found.decode("ascii", "replace"), key):
        raise ModelError(
            f"Model {version} is not signed with this installation's signing key; it was "
            "not loaded.",
            hint=_trust_hint(version),
        )


def load_model(version: str | None = None, models_dir: ModelsLocation = None) -> LoadedModel:
    """Load a model (the production one by default), verifying its checksums and signature
    before unpickling.

    Raises:
        ModelError: no model yet, unknown version, changed or unsigned files, or a file that
            is not a model.
    """
    storage = _storage(models_dir)
    version = version or production_version(storage)
    if version is None:
        raise ModelError(
            "There is no production model yet.",
            hint="Train one with 'termdeposit train' (or 'make run', which does it for you).",
        )
    card = read_card(version, storage)
    files, checksums = _checked_files(storage, version)
    if config.MODEL_ARTIFACT not in files:
        raise ModelError(
            f"Model {version} has no artifact file.", hint="Retrain or restore the model folder."
        )
    if _sha256(files[config.MODEL_ARTIFACT]) != card.get("artifact_sha256"):
        raise _tampered(version, config.MODEL_ARTIFACT)
    _check_signature(storage, version, checksums)
    try:
        pipeline = joblib.load(io.BytesIO(files[config.MODEL_ARTIFACT]))
    except Exception as exc:  # a verified file that still fails to unpickle: wrong libraries
        raise ModelError(
            f"Model {version} could not be opened ({type(exc).__name__}).",
            hint="It was probably saved with other library versions; retrain it.",
        ) from exc
    if not hasattr(pipeline, "predict_proba"):
        raise ModelError(f"Model {version} is not a scoring pipeline.", hint="Retrain it.")
    where: Path | str = (
        storage.root / version if isinstance(storage, LocalFolder) else f"{storage.url}/{version}"
    )
    return LoadedModel(version=version, pipeline=pipeline, card=card, path=where, storage=storage)


def read_reference(version: str, models_dir: ModelsLocation = None) -> pd.DataFrame:
    """The training reference sample (inputs, score, y) saved with a version, checked against
    the model's checksum list (read without unpickling anything)."""
    storage = _storage(models_dir)
    data = storage.read_file(check_version_name(version), REFERENCE_FILE)
    if data is None:
        raise ModelError(
            f"Model {version} has no training reference sample, so drift cannot be measured "
            "and explanations have no background rows.",
            hint="Models trained with 'termdeposit train' or 'retrain' have one.",
        )
    listed = (storage.read_file(version, CHECKSUM_FILE) or b"").decode("utf-8", "replace")
    if f"{_sha256(data)}  {REFERENCE_FILE}\n" not in listed:
        raise _tampered(version, REFERENCE_FILE)
    return pd.read_parquet(io.BytesIO(data))


def list_versions(models_dir: ModelsLocation = None) -> list[str]:
    """All saved versions, oldest first."""
    storage = _storage(models_dir)
    marker = CHECKSUM_FILE if storage.remote else config.MODEL_CARD
    return sorted(v for v in storage.version_names(marker) if VERSION_PATTERN.match(v))


def trust(
    version: str, reason: str, models_dir: ModelsLocation = None, user: str | None = None
) -> dict[str, Any]:
    """Vouch for a model that is not signed by this installation: sign it with the local key
    after checking its files against its checksum list; the decision is recorded in the audit
    journal (who, why). Nothing is unpickled.

    Raises:
        ModelError: no reason given, unknown version, or files that do not match their list.
    """
    if not reason or not reason.strip():
        raise ModelError(
            "Say why this model can be trusted (it goes into the audit log).",
            hint='For example: --reason "trained by us on 2026-11-25, before signing".',
        )
    storage = _storage(models_dir)
    read_card(version, storage)
    _, checksums = _checked_files(storage, version)
    key = signing.signing_key(_local_root(storage))
    with storage.exclusive():
        records, position = _settled_journal(storage)
        entry = _intent(TRUST, version, None, reason.strip(), user)
        entry["checksums_sha256"] = _sha256(checksums.encode())
        storage.append(entry, position)
        storage.replace_file(
            version, SIGNATURE_FILE, (signing.sign(checksums, key) + "\n").encode()
        )
        _finish(storage, entry, position + 1)
    log.info("model %s trusted by %s", version, entry["user"])
    return _public(entry)


# -- the production pointer and the audit journal -----------------------------------------------


def _shown(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    clean = "".join(c if c.isprintable() and c != "\ufffd" else "?" for c in text)
    return clean[:40] + ("..." if len(clean) > 40 else "")


def _status_of(storage: Storage, pointer: Pointer, check_exists: bool = True) -> PointerStatus:
    if pointer.raw is None:
        return PointerStatus(None)
    where = f"The production pointer ({config.PRODUCTION_POINTER} in {storage.label})"
    name = pointer.raw.decode("utf-8", errors="replace").strip()
    if not name:
        return PointerStatus(None, f"{where} is empty, so no model is in production.", True)
    if not VERSION_PATTERN.match(name):
        return PointerStatus(
            None,
            f"{where} is damaged: it holds '{_shown(pointer.raw)}', which is not a model "
            "version name, so no model is in production.",
            True,
        )
    if check_exists and storage.read_file(name, config.MODEL_CARD) is None:
        return PointerStatus(
            name, f"{where} names {name}, but there is no such model in {storage.label}.", True
        )
    return PointerStatus(name, None, True)


def pointer_status(models_dir: ModelsLocation = None) -> PointerStatus:
    """The production pointer checked: the version it names, or what is wrong with it (damaged,
    empty, naming no saved model, or disagreeing with the audit history), in words."""
    storage = _storage(models_dir)
    _settle_if_changed(storage)
    status = _status_of(storage, storage.read_pointer())
    if status.problem or status.version is None:
        return status
    records, _ = storage.journal()
    stack = _production_stack(_effective(records))
    if stack and stack[-1] != status.version and _pending(records) is None:
        return PointerStatus(
            status.version,
            f"The production pointer names {status.version}, but the audit history's last "
            f"change put {stack[-1]} in production: the pointer was changed outside the product.",
            True,
        )
    return status


def production_version(models_dir: ModelsLocation = None) -> str | None:
    """The version the production pointer names, or None when there is none.

    Raises:
        ModelError: the pointer is damaged (what is wrong and how to repair it, in words).
    """
    storage = _storage(models_dir)
    _settle_if_changed(storage)
    status = _status_of(storage, storage.read_pointer(), check_exists=False)
    if status.problem:
        raise ModelError(status.problem, hint=REPAIR_HINT)
    return status.version


def pointer_stamp(models_dir: ModelsLocation = None) -> Any:
    """A value that changes whenever the production pointer is written (for hot reloading)."""
    return _storage(models_dir).pointer_stamp()


def _intent(
    action: str, version: str, previous: str | None, reason: str, user: str | None
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "state": "pending",
        "at": _now(),
        "action": action,
        "version": version,
        "previous": previous,
        "user": user or _current_user(),
        "reason": reason,
    }


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "state"}


def _pending(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last record whose outcome was never written (its process was killed or is busy)."""
    settled = {r.get("id") for r in records if r.get("state") in ("done", "abandoned")}
    pending = None
    for record in records:
        if record.get("state") == "pending" and record.get("id") not in settled:
            pending = record
    return pending


def _effective(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history: records that were done (and those written before records had states)."""
    done = {r.get("id") for r in records if r.get("state") == "done"}
    return [
        _public(r)
        for r in records
        if (r.get("state") is None and "version" in r and "action" in r)
        or (r.get("state") == "pending" and r.get("id") in done)
    ]


def _production_stack(history: list[dict[str, Any]]) -> list[str]:
    """Versions that were in production, the current one last: a promotion pushes, a rollback
    pops (so rolling back again goes further back, never forward)."""
    stack: list[str] = []
    for entry in history:
        if entry.get("action") == TRUST:
            continue
        version = entry["version"]
        if entry.get("action") == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != version:
                stack.append(version)  # an older log whose rollbacks went elsewhere
            continue
        if not stack and entry.get("previous"):
            stack.append(entry["previous"])
        if not stack or stack[-1] != version:
            stack.append(version)
    return stack


def _took_effect(storage: Storage, record: dict[str, Any]) -> bool:
    version = str(record.get("version"))
    if record.get("action") == TRUST:
        try:
            _check_signature(storage, version, _checked_files(storage, version)[1])
        except ModelError:
            return False
        return True
    raw = storage.read_pointer().raw
    return raw is not None and raw.decode("utf-8", "replace").strip() == version


def _settle_locked(storage: Storage) -> None:
    """Write the outcome of a record left unfinished by a killed process (lock held)."""
    for _ in range(5):
        records, position = storage.journal()
        pending = _pending(records)
        if pending is None or not storage.pending_is_stale(pending):
            return
        happened = _took_effect(storage, pending)
        if not happened and storage.remote and pending.get("action") != TRUST:
            # Fence: rewrite the pointer as it is, so the interrupted writer's conditional
            # write (If-Match the old ETag) can no longer land after it is called abandoned.
            pointer = storage.read_pointer()
            try:
                if pointer.raw is not None:
                    storage.write_pointer(pointer.raw.decode("utf-8", "replace").strip(), pointer)
            except StorageConflictError:
                continue
        outcome = "done" if happened else "abandoned"
        try:
            storage.append(
                {
                    "id": pending.get("id"),
                    "state": outcome,
                    "at": _now(),
                    "note": "settled when the registry was next opened (the process that "
                    "started it stopped half-way)",
                },
                position,
            )
        except StorageConflictError:
            continue
        log.warning(
            "an interrupted %s of %s was found and recorded as %s",
            pending.get("action"),
            pending.get("version"),
            outcome,
        )
        return


def settle(models_dir: ModelsLocation = None) -> None:
    """Settle a promotion, rollback or trust left unfinished by a killed process, so that the
    pointer and the audit history agree (done automatically whenever the registry is read)."""
    storage = _storage(models_dir)
    with storage.exclusive():
        _settle_locked(storage)


_SETTLED: dict[int, Any] = {}
_SETTLED_LOCK = threading.Lock()


def _settle_if_changed(storage: Storage) -> None:
    """Settle unfinished records when the journal changed since the last look (a folder), or
    every :data:`REMOTE_SETTLE_SECONDS` (object storage). A read-only folder is only read."""
    if storage.remote:
        stamp: Any = int(time.monotonic() // REMOTE_SETTLE_SECONDS)
    else:
        stamp = storage.journal_stamp()
    with _SETTLED_LOCK:
        if _SETTLED.get(id(storage)) == stamp:
            return
    try:
        records, _ = storage.journal()
        if _pending(records) is not None:
            with storage.exclusive(wait=0) as held:
                if not held:  # its writer is still at work: look again next time
                    return
                _settle_locked(storage)
    except OSError as exc:  # a read-only models folder: reading still works
        log.warning("could not settle the audit journal in %s: %s", storage.label, exc)
        return
    with _SETTLED_LOCK:
        _SETTLED[id(storage)] = stamp


def _settled_journal(storage: Storage) -> tuple[list[dict[str, Any]], int]:
    """The journal after settling (lock held); refuses while another change is under way."""
    _settle_locked(storage)
    records, position = storage.journal()
    if _pending(records) is not None:
        raise ModelError(
            "Another promotion or rollback of these models is under way.",
            hint="Wait a minute and try again.",
        )
    return records, position


def _finish(storage: Storage, entry: dict[str, Any], position: int) -> None:
    """Write the outcome ``done`` of an intent (another process may have settled it first)."""
    try:
        storage.append({"id": entry["id"], "state": "done", "at": _now()}, position)
    except StorageConflictError:
        records, _ = storage.journal()
        if entry["id"] not in {r.get("id") for r in _effective(records)}:
            raise ModelError(
                "The promotion was interrupted and recorded as not done.",
                hint="Check with 'termdeposit models list' and promote again if needed.",
            ) from None


def _change_pointer(
    storage: Storage, version: str, reason: str, user: str | None, action: str
) -> dict[str, Any]:
    """Intent, pointer, outcome (lock held; the version was verified by the caller)."""
    _, position = _settled_journal(storage)
    pointer = storage.read_pointer()
    status = _status_of(storage, pointer, check_exists=False)
    entry = _intent(action, version, status.version, reason, user)
    if status.problem and pointer.raw is not None:
        entry["replaced_pointer"] = _shown(pointer.raw)
    storage.append(entry, position)
    try:
        storage.write_pointer(version, pointer)
    except StorageConflictError:
        storage.append({"id": entry["id"], "state": "abandoned", "at": _now()}, position + 1)
        raise ModelError(
            "Another process changed the production model at the same moment.",
            hint="Check with 'termdeposit models list' and try again.",
        ) from None
    _finish(storage, entry, position + 1)
    return _public(entry)


def audit_log(models_dir: ModelsLocation = None) -> list[dict[str, Any]]:
    """Every promotion, rollback and trust decision that took effect, oldest first."""
    storage = _storage(models_dir)
    _settle_if_changed(storage)
    return _effective(storage.journal()[0])


def promote(
    version: str,
    reason: str = "promoted by hand",
    models_dir: ModelsLocation = None,
    user: str | None = None,
    action: str = "promote",
) -> dict[str, Any]:
    """Make ``version`` the production model (after verifying it loads); record who and why.

    Also repairs a damaged pointer (the entry keeps what it held under ``replaced_pointer``).
    """
    storage = _storage(models_dir)
    check_version_name(version)
    with storage.exclusive():
        load_model(version, storage)
        return _change_pointer(storage, version, reason, user, action)


def rollback(
    models_dir: ModelsLocation = None, reason: str = "rolled back by hand", user: str | None = None
) -> dict[str, Any]:
    """Put back the version that was in production before the current one (repeated rollbacks
    go further back through the history)."""
    storage = _storage(models_dir)
    with storage.exclusive():
        records, _ = _settled_journal(storage)
        status = _status_of(storage, storage.read_pointer(), check_exists=False)
        if status.problem:
            raise ModelError(
                f"{status.problem} There is nothing to roll back from.",
                hint="Choose the production model by name instead: 'termdeposit models list' "
                "shows the versions, 'termdeposit models promote VERSION' puts one in "
                "production.",
            )
        stack = _production_stack(_effective(records))
        current = status.version
        if current is not None and stack and stack[-1] != current:
            raise ModelError(
                f"The production pointer names {current}, but the audit history says "
                f"{stack[-1]} is in production (the pointer was changed outside the product), "
                "so it is not clear what to roll back to.",
                hint="Put the right model in production by name: "
                "termdeposit models promote VERSION.",
            )
        if current is None or len(stack) < 2:
            raise ModelError(
                "There is no earlier production model to roll back to.",
                hint="Promote a version by name with 'termdeposit models promote VERSION'.",
            )
        target = stack[-2]
        load_model(target, storage)
        return _change_pointer(storage, target, reason, user, "rollback")


def production_at(when: dt.datetime, models_dir: ModelsLocation = None) -> str | None:
    """Which version was in production at a given time (from the audit history)."""
    version = None
    for entry in audit_log(models_dir):
        if entry.get("action") != TRUST and dt.datetime.fromisoformat(entry["at"]) <= when:
            version = entry["version"]
    return version


def _current_user() -> str:
    try:
        return os.environ.get("TERMDEPOSIT_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
