"""Versioned models: round trip, tamper refusal, traversal, signing and trust, promotion,
rollback through the history, the damaged pointer, interrupted promotions settled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from registry_support import (
    assert_pointer_and_audit_agree,
    plant_model,
    tiny_pipeline,
    tiny_versions,
)
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core import config
from termdeposit.modeling import registry
from termdeposit.modeling.registry import ModelError
from termdeposit.modeling.signing import SigningKeyError


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


# -- tiny models: history, rollback, the pointer, signing ----------------------------------------


@pytest.fixture()
def tiny(tmp_path, monkeypatch) -> tuple[Path, list[str]]:
    """A models folder of four tiny signed versions (the product's own folder for the test)."""
    models = tmp_path / "models"
    monkeypatch.setenv("TERMDEPOSIT_MODELS", str(models))
    return models, tiny_versions(models)


def test_rollback_walks_back_through_the_history_and_never_forward(tiny):
    models, (a, b, c, d) = tiny
    for version in (a, b, c):
        registry.promote(version, f"put {version} in")
    assert registry.rollback(reason="bad week")["version"] == b
    assert registry.production_version() == b
    second = registry.rollback(reason="worse")
    assert (second["version"], second["previous"]) == (a, b)
    assert registry.production_version() == a
    with pytest.raises(ModelError, match="no earlier production model"):
        registry.rollback()
    assert registry.production_version() == a
    registry.promote(d, "new challenger")
    assert registry.rollback()["version"] == a  # back to what was in production before d
    actions = [(e["action"], e["version"]) for e in registry.audit_log()]
    assert actions == [
        ("promote", a),
        ("promote", b),
        ("promote", c),
        ("rollback", b),
        ("rollback", a),
        ("promote", d),
        ("rollback", a),
    ]
    assert_pointer_and_audit_agree(models)


def test_rollback_through_the_command_line_goes_back_twice(tiny):
    models, (a, b, c, _) = tiny
    runner = CliRunner()
    for version in (a, b, c):
        assert runner.invoke(app, ["models", "promote", version]).exit_code == 0
    first = runner.invoke(app, ["models", "rollback", "--reason", "bad week"])
    assert first.exit_code == 0 and f"{b} is in production again" in first.output
    second = runner.invoke(app, ["models", "rollback", "--reason", "still bad"])
    assert second.exit_code == 0 and f"{a} is in production again" in second.output
    third = runner.invoke(app, ["models", "rollback"])
    assert third.exit_code == 2 and "no earlier production model" in third.output
    assert registry.production_version() == a


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"../../etc\n", "'../../etc', which is not a model version name"),
        (b"\x00\xff\xfe\x80garbage\x07", "which is not a model version name"),
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"v20990101-000000\n", "names v20990101-000000, but there is no such model"),
    ],
)
def test_a_damaged_pointer_is_reported_in_words_and_repaired_by_promote(tiny, raw, words):
    models, (a, b, _, _) = tiny
    registry.promote(a, "first")
    (models / config.PRODUCTION_POINTER).write_bytes(raw)
    runner = CliRunner()

    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert a in listed.stdout and "*" not in listed.stdout  # nothing marked as production
    assert "Warning: The production pointer" in listed.stderr and words in listed.stderr
    assert "termdeposit models promote VERSION" in listed.stderr
    as_json = runner.invoke(app, ["models", "list", "--json"])
    assert [r["version"] for r in json.loads(as_json.stdout)][:2] == [a, b]
    assert words in as_json.stderr

    if not raw.startswith(b"v2099"):  # a pointer to a missing model still names a version
        with pytest.raises(ModelError, match="The production pointer") as caught:
            registry.production_version()
        assert "promote VERSION" in caught.value.hint
    rolled = runner.invoke(app, ["models", "rollback"])
    assert rolled.exit_code == 2
    assert "models promote VERSION" in rolled.output and "Traceback" not in rolled.output

    repaired = runner.invoke(app, ["models", "promote", b, "--reason", "repair the pointer"])
    assert repaired.exit_code == 0, repaired.output
    assert registry.production_version() == b and registry.pointer_status().problem is None
    assert registry.load_model().version == b
    assert registry.audit_log()[-1]["version"] == b
    assert_pointer_and_audit_agree(models)


def test_a_pointer_changed_by_hand_is_reported_and_rollback_refuses_to_guess(tiny):
    models, (a, b, c, _) = tiny
    registry.promote(a, "first")
    registry.promote(b, "second")
    (models / config.PRODUCTION_POINTER).write_text(c + "\n")
    status = registry.pointer_status()
    assert status.version == c and "changed outside the product" in status.problem
    with pytest.raises(ModelError, match="not clear what to roll back to"):
        registry.rollback()
    registry.promote(c, "make it official")
    assert registry.pointer_status().problem is None
    assert registry.rollback()["version"] == b


def test_a_strangers_pickle_never_runs_at_promote_or_load(tiny, tmp_path):
    models, (a, _, _, _) = tiny
    registry.promote(a, "first")
    marker = tmp_path / "marker"
    unsigned = "v20990101-000001"
    forged = "v20990101-000002"
    plant_model(models, unsigned, marker)
    plant_model(models, forged, marker, signature=b"0" * 64 + b"\n")
    runner = CliRunner()
    for version in (unsigned, forged):
        result = runner.invoke(app, ["models", "promote", version])
        assert result.exit_code == 2, result.output
        assert f"Model {version} is not signed" in result.output
        assert f"termdeposit models trust {version}" in result.output
        with pytest.raises(ModelError, match="not signed"):
            registry.load_model(version)
        assert not marker.exists(), "the stranger's code ran"
    (models / config.PRODUCTION_POINTER).write_text(unsigned + "\n")  # planted as production
    with pytest.raises(ModelError, match="not signed"):
        registry.load_model()
    assert not marker.exists()
    assert registry.audit_log()[-1]["version"] == a

    # The payload is real: once someone vouches for the model, loading runs it.
    trusted = runner.invoke(app, ["models", "trust", unsigned, "--reason", "test: run it"])
    assert trusted.exit_code == 0, trusted.output
    with pytest.raises(ModelError, match="not a scoring pipeline"):
        registry.load_model(unsigned)
    assert marker.read_text() == "a stranger's code ran"


def test_a_model_signed_elsewhere_loads_once_trusted_and_trust_is_audited(tiny):
    models, (a, b, _, _) = tiny
    registry.promote(a, "first")
    (models / b / registry.SIGNATURE_FILE).unlink()  # saved before models were signed
    with pytest.raises(ModelError, match=f"Model {b} is not signed"):
        registry.load_model(b)
    result = CliRunner().invoke(app, ["models", "trust", b])
    assert result.exit_code == 2  # --reason is required
    entry = registry.trust(b, "trained by us before signing", user="ops lead")
    assert registry.load_model(b).version == b
    last = registry.audit_log()[-1]
    assert (last["action"], last["version"], last["user"]) == ("trust", b, "ops lead")
    assert last["reason"] == "trained by us before signing" and last["id"] == entry["id"]
    assert registry.production_version() == a  # trusting moves nothing
    with pytest.raises(ModelError, match="no earlier"):
        registry.rollback()
    # A file changed after it was trusted is refused again.
    (models / b / config.MODEL_CARD).write_text("{}")
    with pytest.raises(ModelError, match="checksum|belongs to"):
        registry.trust(b, "again")


def test_the_signing_key_is_created_on_first_save_outside_the_models_folder(tmp_path, monkeypatch):
    key_file = tmp_path / "config" / "termdeposit" / "signing.key"
    monkeypatch.setenv("TERMDEPOSIT_KEY_FILE", str(key_file))
    models = tmp_path / "models"
    assert not key_file.exists()
    version = tiny_versions(models, 1)[0]
    assert key_file.is_file() and key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert len(key) == 64
    for path in models.rglob("*"):
        assert not path.is_file() or key.encode() not in path.read_bytes(), path
    assert registry.load_model(version, models).version == version
    # A new key (the old one lost): the model is refused until trusted again.
    key_file.unlink()
    with pytest.raises(ModelError, match="not signed with this installation's signing key"):
        registry.load_model(version, models)
    # A key kept inside the models folder is refused.
    monkeypatch.setenv("TERMDEPOSIT_KEY_FILE", str(models / "signing.key"))
    with pytest.raises(SigningKeyError, match="inside the models folder"):
        registry.save_model(tiny_pipeline(), {}, models_dir=models)


def test_an_interrupted_promotion_is_settled_when_the_registry_is_opened(tiny):
    models, (a, b, c, _) = tiny
    registry.promote(a, "first")
    journal = models / registry.AUDIT_FILE

    def pending(version: str, previous: str) -> str:
        return json.dumps(
            {
                "id": f"id-{version}",
                "state": "pending",
                "at": "2026-12-01T10:00:00+00:00",
                "action": "promote",
                "version": version,
                "previous": previous,
                "user": "killed",
                "reason": "killed half-way",
            }
        )

    # Killed after the intent, before the pointer moved: recorded as abandoned.
    with open(journal, "a") as handle:
        handle.write(pending(b, a) + "\n")
    assert registry.production_version() == a
    assert [e["version"] for e in registry.audit_log()] == [a]
    assert json.loads(journal.read_text().splitlines()[-1])["state"] == "abandoned"
    # Killed after the pointer moved, before "done" was written: recorded as done.
    with open(journal, "a") as handle:
        handle.write(pending(c, a) + "\n")
    (models / config.PRODUCTION_POINTER).write_text(c + "\n")
    assert [e["version"] for e in registry.audit_log()] == [a, c]
    assert registry.rollback()["version"] == a
    # A torn last line (killed while writing it) is ignored, then cut off by the next writer.
    with open(journal, "a") as handle:
        handle.write('{"id": "torn", "state": "pend')
    assert [e["version"] for e in registry.audit_log()] == [a, c, a]
    registry.promote(b, "after the torn line")
    assert all(json.loads(line) for line in journal.read_text().splitlines())
    assert_pointer_and_audit_agree(models)


def test_bootstrap_says_what_to_do_with_a_production_model_saved_before_signing(tiny):
    models, (a, _, _, _) = tiny
    registry.promote(a, "first")
    runner = CliRunner()
    assert f"Model: {a} in production (verified)." in runner.invoke(app, ["bootstrap"]).output
    (models / a / registry.SIGNATURE_FILE).unlink()
    result = runner.invoke(app, ["bootstrap"])
    assert result.exit_code == 0, result.output
    assert f"{a} is in production but cannot be used" in result.output
    assert f"termdeposit models trust {a}" in result.output
    assert registry.list_versions() == tiny[1], "nothing was trained or changed"
