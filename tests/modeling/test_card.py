"""The model card, typed: every reader sees the same fields, old cards read with defaults."""

from __future__ import annotations

import pytest

from termdeposit.modeling import registry
from termdeposit.modeling.card import ModelCard


def test_the_trained_card_reads_typed(trained_version):
    raw = registry.read_card(trained_version)
    card = ModelCard.from_dict(raw)
    assert card.version == trained_version == raw["version"]
    assert card.family == raw["family"] and card.family_label == raw["family_label"]
    assert card.metric("time", "auc") == raw["metrics"]["time"]["auc"]
    assert card.metric("random", "ece") == raw["metrics"]["random"]["ece"]
    assert card.metric("time", "no such metric") is None
    assert card.default_threshold == raw["default_threshold"]
    assert (
        card.features_used == tuple(raw["features_used"]) and "duration" not in card.features_used
    )
    assert card.params == raw["params"] and card.created_day == raw["created"][:10]
    assert card.families and all(f.cv_auc is not None for f in card.families)
    assert registry.load_model(trained_version).info == card
    with pytest.raises(AttributeError):
        card.metrcs  # noqa: B018 - a misspelt field fails loudly instead of reading None


def test_a_card_from_an_earlier_version_reads_with_empty_sections():
    old = {"version": "v1", "family": "logreg", "metrics": {"time": {"auc": 0.7}}}
    card = ModelCard.from_dict(old)
    assert card.family_label == "logreg" and card.metric("time", "auc") == 0.7
    assert card.fairness is None and card.base_rate is None and card.params is None
    assert card.base_version == "v1" and card.calibration_method == "none"
    recalibrated = ModelCard.from_dict({**old, "recalibration": {"base_version": "v0"}})
    assert recalibrated.base_version == "v0"
