"""Versioned models: round trip, tamper refusal, traversal, promotion and rollback."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from termdeposit.core import config
from termdeposit.modeling import registry
from termdeposit.modeling.registry import ModelError


def test_round_trip_loads_the_same_pipeline(production_model, models_copy, reference):
    version = production_model.version
    loaded = registry.load_model(version)
    rows = reference.head(200)
    assert np.allclose(
        loaded.predict_proba(rows), production_model.predict_proba(rows), atol=1e-12
    )
    card = loaded.card
    for key in (
        "version",
        "created",
        "data_sha256",
        "rows",
        "features_used",
        "family",
        "params",
        "families",
        "metrics",
        "default_threshold",
        "libraries",
        "artifact_sha256",
    ):
        assert key in card, key
    assert card["data_sha256"] == config.RAW_FILE_SHA256


def test_changed_artifact_is_refused(models_copy, trained_version):
    artifact = models_copy / trained_version / config.MODEL_ARTIFACT
    data = bytearray(artifact.read_bytes())
    data[100] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="changed after it was saved"):
        registry.load_model(trained_version)


def test_changed_card_is_refused(models_copy, trained_version):
    card_path = models_copy / trained_version / config.MODEL_CARD
    card = json.loads(card_path.read_text())
    card["artifact_sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="checksum"):
        registry.load_model(trained_version)
    card_path.write_text("{not json")
    with pytest.raises(ModelError, match="damaged"):
        registry.load_model(trained_version)


@pytest.mark.parametrize(
    "name", ["../etc", "v1/../../x", "/tmp/x", "latest", "v20261125-000000/../.."]
)
def test_version_names_cannot_escape(models_copy, name):
    with pytest.raises(ModelError, match="not a model version"):
        registry.load_model(name)


def test_symlink_out_of_models_is_refused(models_copy, trained_version, tmp_path):
    outside = tmp_path / "outside"
    (models_copy / trained_version).rename(outside)
    os.symlink(outside, models_copy / trained_version)
    with pytest.raises(ModelError, match="link"):
        registry.load_model(trained_version)


def test_promote_and_rollback(models_copy, trained_version, production_model):
    second = registry.save_model(
        production_model.pipeline, dict(production_model.card), version="v29990101-000000"
    )
    assert registry.list_versions() == [trained_version, second]
    registry.promote(second, "better challenger")
    assert registry.production_version() == second
    entry = registry.rollback(reason="bad week")
    assert registry.production_version() == trained_version
    assert entry["action"] == "rollback" and entry["reason"] == "bad week"
    actions = [e["action"] for e in registry.audit_log()]
    assert actions[-2:] == ["promote", "rollback"]


def test_rollback_without_history(tmp_path, monkeypatch):
    monkeypatch.setenv("TERMDEPOSIT_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match="no earlier"):
        registry.rollback()
    with pytest.raises(ModelError, match="no production model"):
        registry.load_model()


def test_not_a_pipeline_is_refused(models_copy, production_model):
    version = registry.save_model({"not": "a model"}, {"x": 1}, version="v29990101-000001")
    with pytest.raises(ModelError, match="not a scoring pipeline"):
        registry.load_model(version)


def test_any_changed_card_field_is_refused(models_copy, trained_version):
    card_path = models_copy / trained_version / config.MODEL_CARD
    card = json.loads(card_path.read_text())
    card["metrics"]["time"]["auc"] = 0.99
    card_path.write_text(json.dumps(card, indent=2))
    with pytest.raises(ModelError, match="model_card.json: checksum mismatch"):
        registry.load_model(trained_version)


def test_missing_checksum_list_is_refused(models_copy, trained_version):
    (models_copy / trained_version / registry.CHECKSUM_FILE).unlink()
    with pytest.raises(ModelError, match="no checksum list"):
        registry.load_model(trained_version)


def test_signing_key_requires_a_matching_signature(models_copy, production_model, monkeypatch):
    monkeypatch.setenv("TERMDEPOSIT_SIGNING_KEY", "s3cret")
    with pytest.raises(ModelError, match="not signed"):
        registry.load_model(production_model.version)
    signed = registry.save_model(
        production_model.pipeline, dict(production_model.card), version="v29990101-000002"
    )
    assert registry.load_model(signed).version == signed
    monkeypatch.setenv("TERMDEPOSIT_SIGNING_KEY", "another key")
    with pytest.raises(ModelError, match="not signed"):
        registry.load_model(signed)


def test_old_leftovers_of_killed_saves_are_removed_recent_ones_kept(models_copy):
    import os
    import time

    stale_dir = models_copy / ".staging-killed"
    stale_dir.mkdir()
    (stale_dir / "best_model.pkl").write_bytes(b"half")
    stale_file = models_copy / ".pointer-killed"
    stale_file.write_text("v1\n")
    old = time.time() - registry.STALE_DEBRIS_SECONDS - 60
    for path in (stale_dir / "best_model.pkl", stale_dir, stale_file):
        os.utime(path, (old, old))
    fresh = models_copy / ".staging-in-progress"
    fresh.mkdir()
    before = registry.list_versions()
    version = registry.save_model({"not": "a model"}, {"x": 1}, version="v29990101-000002")
    assert not stale_dir.exists() and not stale_file.exists()
    assert fresh.is_dir()  # another save may be writing it right now
    assert registry.list_versions() == [*before, version]
