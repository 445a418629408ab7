"""Helpers for registry tests: tiny signed models (fast to save, load and promote), a model
planted by a stranger, and the check that the production pointer and the audit history agree.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier

from termdeposit.modeling import registry


def tiny_pipeline(rate: float = 0.25) -> DummyClassifier:
    """A fitted classifier with predict_proba (scores every row ``rate``)."""
    y = [1] * int(rate * 8) + [0] * (8 - int(rate * 8))
    return DummyClassifier(strategy="prior").fit(np.zeros((8, 1)), y)


def tiny_versions(models: Any, count: int = 4) -> list[str]:
    """Save ``count`` tiny signed versions in a models location (a folder or a URL)."""
    return [
        registry.save_model(
            tiny_pipeline(0.125 * (i + 1)),
            {"family": "dummy", "profile": "test", "metrics": {}},
            models_dir=models,
            version=f"v2026010{i + 1}-000000",
        )
        for i in range(count)
    ]


class Payload:
    """Unpickling this writes a marker file: the code a stranger's model could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.write_text, (self.marker, "a stranger's code ran"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def planted_model_files(version: str, marker: Path) -> dict[str, bytes]:
    """A stranger's model: a pickle that runs code, with a card and a checksum list that all
    match (recomputed as an attacker would), and no valid signature."""
    artifact = pickle.dumps(Payload(marker))
    card = json.dumps(
        {
            "version": version,
            "family": "xgboost",
            "profile": "full",
            "artifact": "best_model.pkl",
            "artifact_sha256": _sha(artifact),
            "metrics": {"random": {"auc": 0.99}, "time": {"auc": 0.99}},
        }
    ).encode()
    checksums = f"{_sha(artifact)}  best_model.pkl\n{_sha(card)}  model_card.json\n".encode()
    return {"best_model.pkl": artifact, "model_card.json": card, "SHA256SUMS": checksums}


def plant_model(models: Path, version: str, marker: Path, signature: bytes | None = None) -> Path:
    """Write a stranger's model folder into a local models folder."""
    folder = models / version
    folder.mkdir(parents=True)
    for name, data in planted_model_files(version, marker).items():
        (folder / name).write_bytes(data)
    if signature is not None:
        (folder / registry.SIGNATURE_FILE).write_bytes(signature)
    return folder


def assert_pointer_and_audit_agree(models: Any) -> str | None:
    """The pointer names the version the audit history last put in production (after the
    registry settled any interrupted change); returns that version."""
    history = registry.audit_log(models)
    production = registry.production_version(models)
    moves = [e for e in history if e["action"] != "trust"]
    expected = moves[-1]["version"] if moves else None
    assert production == expected, (production, moves[-3:])
    status = registry.pointer_status(models)
    assert status.problem is None, status.problem
    return production
