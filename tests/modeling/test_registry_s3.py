"""Models in object storage (``TERMDEPOSIT_MODELS=s3://bucket/prefix``), against a local
S3-compatible server on 127.0.0.1: the same checksums, signatures, audit history, rollback and
pointer repair as a folder; a version appears whole or not at all; the pointer and the
journal are written with conditional puts, so a writer that lost a race changes nothing; a
promotion interrupted at any write is settled so that pointer and history agree.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from registry_support import (
    assert_pointer_and_audit_agree,
    planted_model_files,
    tiny_pipeline,
    tiny_versions,
)
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core import config
from termdeposit.modeling import model_storage, registry
from termdeposit.modeling.model_storage import ModelError, StorageConflictError


def _fs(url: str):
    storage = model_storage.open_storage(url)
    return storage.fs, storage.prefix


def test_a_real_pipeline_round_trips_through_object_storage(
    s3_models, production_model, reference
):
    card = {
        k: v
        for k, v in production_model.card.items()
        if k not in ("version", "created", "artifact_sha256")
    }
    version = registry.save_model(production_model.pipeline, card, production_model.reference())
    fs, prefix = _fs(s3_models)
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{prefix}/{version}"))
    assert names == sorted(
        [
            registry.SIGNATURE_FILE,
            registry.CHECKSUM_FILE,
            config.MODEL_ARTIFACT,
            config.MODEL_CARD,
            registry.REFERENCE_FILE,
        ]
    )
    registry.promote(version, "first model in the bucket")
    loaded = registry.load_model()
    rows = reference.head(300)
    assert loaded.version == version and str(loaded.path) == f"{s3_models}/{version}"
    assert np.allclose(loaded.predict_proba(rows), production_model.predict_proba(rows))
    assert loaded.has_reference()
    assert len(loaded.reference()) == len(production_model.reference())
    listed = CliRunner().invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(r["version"], r["production"]) for r in json.loads(listed.stdout)] == [
        (version, True)
    ]


def test_promote_and_rollback_walk_the_same_history_as_in_a_folder(s3_models):
    a, b, c, _ = tiny_versions(s3_models)
    assert registry.list_versions() == [a, b, c, "v20260104-000000"]
    stamps = set()
    for version in (a, b, c):
        registry.promote(version, f"put {version} in")
        stamps.add(registry.pointer_stamp())
    assert len(stamps) == 3, "every pointer write is seen by the API's hot reload"
    runner = CliRunner()
    first = runner.invoke(app, ["models", "rollback", "--reason", "bad week"])
    assert first.exit_code == 0 and f"{b} is in production again" in first.output
    second = runner.invoke(app, ["models", "rollback", "--reason", "still bad"])
    assert second.exit_code == 0 and f"{a} is in production again" in second.output
    assert runner.invoke(app, ["models", "rollback"]).exit_code == 2
    assert [e["action"] for e in registry.audit_log()] == [
        "promote",
        "promote",
        "promote",
        "rollback",
        "rollback",
    ]
    fs, prefix = _fs(s3_models)
    records = sorted(fs.ls(f"{prefix}/{model_storage.AUDIT_PREFIX}"))
    assert len(records) == 5 * 2, "one intent and one outcome object per change"
    assert registry.load_model().version == a
    assert_pointer_and_audit_agree(s3_models)


def test_tampered_unsigned_and_planted_models_are_refused(s3_models, tmp_path):
    (a,) = tiny_versions(s3_models, 1)
    registry.promote(a, "first")
    fs, prefix = _fs(s3_models)
    # A changed artifact.
    artifact = f"{prefix}/{a}/{config.MODEL_ARTIFACT}"
    data = bytearray(fs.cat_file(artifact))
    data[40] ^= 0xFF
    fs.pipe_file(artifact, bytes(data))
    with pytest.raises(ModelError, match="changed after it was saved"):
        registry.load_model(a)
    # A stranger's pickle with recomputed checksums, planted under a version name.
    marker = tmp_path / "marker"
    planted = "v20990101-000001"
    for name, content in planted_model_files(planted, marker).items():
        fs.pipe_file(f"{prefix}/{planted}/{name}", content)
    assert planted in registry.list_versions()
    result = CliRunner().invoke(app, ["models", "promote", planted])
    assert result.exit_code == 2 and f"Model {planted} is not signed" in result.output
    with pytest.raises(ModelError, match="not signed"):
        registry.load_model(planted)
    assert not marker.exists(), "the stranger's code ran"


def test_a_half_written_version_is_invisible_and_a_name_is_taken_once(s3_models, monkeypatch):
    (a,) = tiny_versions(s3_models, 1)
    fs, prefix = _fs(s3_models)
    half = "v20990101-000003"
    fs.pipe_file(f"{prefix}/{half}/{config.MODEL_ARTIFACT}", b"half a model")
    fs.pipe_file(f"{prefix}/{half}/{config.MODEL_CARD}", json.dumps({"version": half}).encode())
    assert registry.list_versions() == [a], "no checksum list yet: not a version"
    assert registry.new_version(s3_models) != half
    with pytest.raises(ModelError, match="already exists"):
        registry.save_model(tiny_pipeline(), {}, version=a)
    # Two saves of one name at the same moment: the commit marker is create-only.
    storage = model_storage.open_storage(s3_models)
    marker = f"{prefix}/{a}/{registry.CHECKSUM_FILE}"
    before = fs.cat_file(marker)
    monkeypatch.setattr(storage, "version_exists", lambda version: False)
    with pytest.raises(ModelError, match="saved by another process at the same moment"):
        storage.save_version(a, [(registry.CHECKSUM_FILE, b"0" * 64 + b"  best_model.pkl\n")])
    assert fs.cat_file(marker) == before
    assert registry.load_model(a).version == a


def test_a_writer_that_lost_a_race_changes_nothing(s3_models):
    a, b, c, _ = tiny_versions(s3_models)
    registry.promote(a, "first")
    storage = model_storage.open_storage(s3_models)
    stale = storage.read_pointer()
    _, position = storage.journal()
    registry.promote(b, "the other writer was faster")
    with pytest.raises(StorageConflictError):
        storage.write_pointer(c, stale)
    with pytest.raises(StorageConflictError):
        storage.append({"id": "late", "state": "pending"}, position)
    assert registry.production_version() == b
    assert_pointer_and_audit_agree(s3_models)


class _Stopped(BaseException):
    """The process stops here (nothing after it runs, as with a kill)."""


@pytest.mark.parametrize("stop_before_put", [1, 2, 3, 4])
def test_a_promotion_stopped_at_any_write_is_settled(s3_models, monkeypatch, stop_before_put):
    a, b, _, _ = tiny_versions(s3_models)
    registry.promote(a, "first")
    storage = model_storage.open_storage(s3_models)
    real_put = model_storage.ObjectStore._put
    puts = {"n": 0}

    def put_then_stop(self, key, data, **conditions):
        puts["n"] += 1
        if puts["n"] == stop_before_put:
            raise _Stopped
        return real_put(self, key, data, **conditions)

    monkeypatch.setattr(model_storage.ObjectStore, "_put", put_then_stop)
    if stop_before_put <= 3:  # intent, pointer, done: three conditional puts
        with pytest.raises(_Stopped):
            registry.promote(b, "stopped half-way")
    else:
        registry.promote(b, "not stopped")
    monkeypatch.setattr(model_storage.ObjectStore, "_put", real_put)

    if stop_before_put in (2, 3):  # an unfinished record is left to its writer for a while
        with pytest.raises(ModelError, match="under way"):
            registry.promote(a, "too early")
    monkeypatch.setattr(model_storage, "PENDING_GRACE_SECONDS", -1.0)
    registry.settle(s3_models)
    expected = a if stop_before_put <= 2 else b
    assert assert_pointer_and_audit_agree(storage) == expected
    if expected == b:
        assert registry.rollback()["version"] == a
    else:
        with pytest.raises(ModelError, match="no earlier"):
            registry.rollback()
    assert_pointer_and_audit_agree(storage)


def test_a_damaged_pointer_in_object_storage_is_reported_and_repaired(s3_models):
    a, b, _, _ = tiny_versions(s3_models)
    registry.promote(a, "first")
    fs, prefix = _fs(s3_models)
    fs.pipe_file(f"{prefix}/{config.PRODUCTION_POINTER}", b"../../etc\n")
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0
    assert "is damaged: it holds '../../etc'" in listed.stderr and s3_models in listed.stderr
    assert runner.invoke(app, ["models", "rollback"]).exit_code == 2
    repaired = runner.invoke(app, ["models", "promote", b, "--reason", "repair"])
    assert repaired.exit_code == 0 and "damaged pointer" in repaired.output
    assert registry.load_model().version == b
    assert_pointer_and_audit_agree(s3_models)
