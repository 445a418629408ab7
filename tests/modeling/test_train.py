"""Training: leakage guard, quality on both hold-outs, probabilities, behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from termdeposit.core.schema import INPUT_COLUMNS
from termdeposit.modeling.features import BankCleaner, build_preprocessor
from termdeposit.modeling.train import (
    PROFILES,
    OptionalSMOTE,
    build_pipeline,
    make_splits,
    search_space,
)


def _inner(pipeline):
    return (
        pipeline.calibrated_classifiers_[0].estimator
        if hasattr(pipeline, "calibrated_classifiers_")
        else pipeline
    )


def test_duration_never_enters_the_features(production_model, reference):
    assert "duration" not in production_model.card["features_used"]
    assert "duration" in production_model.card["features_excluded"]
    inner = _inner(production_model.pipeline)
    names = (
        inner[:-2].get_feature_names_out()
        if hasattr(inner[:-2], "get_feature_names_out")
        else inner.named_steps["prep"].get_feature_names_out()
    )
    assert not any("duration" in str(n) for n in names)
    rows = reference.head(300)
    shuffled = rows.assign(
        duration=np.random.default_rng(0).permutation(rows["duration"].to_numpy())
    )
    assert np.allclose(
        production_model.predict_proba(rows),
        production_model.predict_proba(shuffled),
        atol=1e-12,
    )


def test_leakage_guard_fails_if_duration_were_an_input(monkeypatch, reference):
    from termdeposit.modeling import train as train_module

    monkeypatch.setattr(train_module, "INPUT_COLUMNS", (*INPUT_COLUMNS, "duration"))
    with pytest.raises(AssertionError, match="leakage"):
        train_module.train(reference.head(500), profile="quick")


def test_quick_profile_reaches_the_targets(production_model):
    metrics = production_model.card["metrics"]
    assert metrics["random"]["auc"] >= 0.79
    assert metrics["time"]["auc"] >= 0.72
    assert metrics["random"]["ece"] <= 0.03
    card = production_model.card
    assert {f["family"] for f in card["families"]} == {
        "logreg",
        "random_forest",
        "xgboost",
        "blend",
    }
    assert card["selection"]["chosen"] == card["family"]
    assert card["calibration"]["method"] in {"none", "sigmoid", "isotonic"}


def test_splits_never_mix_holdouts_into_selection():
    y = np.r_[np.zeros(900), np.ones(100)].astype(int)
    np.random.default_rng(1).shuffle(y)
    splits = make_splits(y)
    assert len(splits.holdout_time) == 200 and splits.holdout_time[0] == 800
    assert len(splits.holdout_random) == 200
    assert not set(splits.selection) & set(splits.holdout_time)
    assert not set(splits.selection) & set(splits.holdout_random)
    assert abs(y[splits.holdout_random].mean() - 0.1) < 0.01


def test_probabilities_in_unit_interval_and_row_order_invariant(production_model, reference):
    rows = reference.sample(2000, random_state=3)
    scores = production_model.predict_proba(rows)
    assert scores.shape == (2000,) and np.all((scores >= 0) & (scores <= 1))
    shuffled = rows.sample(frac=1.0, random_state=4)
    again = pd.Series(production_model.predict_proba(shuffled), index=shuffled.index)
    assert np.allclose(again.loc[rows.index].to_numpy(), scores)


@pytest.mark.parametrize("column, delta", [("euribor3m", 0.25), ("nr.employed", 10.0)])
def test_small_macro_changes_do_not_flip_scores_wildly(production_model, reference, column, delta):
    rows = reference.sample(1000, random_state=5)
    base = production_model.predict_proba(rows)
    moved = production_model.predict_proba(rows.assign(**{column: rows[column] + delta}))
    assert np.median(np.abs(moved - base)) < 0.05
    assert np.max(np.abs(moved - base)) < 0.5


def test_cleaner_replaces_unknown_by_training_mode_and_keeps_default():
    frame = pd.DataFrame({c: ["x"] * 4 for c in INPUT_COLUMNS})
    for c in (
        "age",
        "campaign",
        "previous",
        "emp.var.rate",
        "cons.price.idx",
        "cons.conf.idx",
        "euribor3m",
        "nr.employed",
    ):
        frame[c] = 1.0
    frame["pdays"] = [999.0, 3.0, 999.0, 45.0]
    frame["job"] = ["admin.", "admin.", "unknown", "student"]
    frame["default"] = ["no", "unknown", "unknown", "no"]
    cleaner = BankCleaner().fit(frame)
    out = cleaner.transform(frame)
    assert cleaner.modes_["job"] == "admin."
    assert out["job"].tolist() == ["admin.", "admin.", "admin.", "student"]
    assert out["default"].tolist() == ["no", "unknown", "unknown", "no"]
    assert out["never_contacted"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert out["pdays"].tolist() == [30.0, 3.0, 30.0, 30.0]
    reduced = BankCleaner(macro="nr.employed").fit(frame).transform(frame)
    assert "euribor3m" not in reduced and "nr.employed" in reduced


def test_scoring_uses_modes_learned_at_training(production_model, reference):
    inner = _inner(production_model.pipeline)
    modes = inner.named_steps["clean"].modes_
    assert modes["job"] == "admin." and modes["marital"] == "married"


def test_optional_smote_switch():
    X = np.r_[np.zeros((20, 2)), np.ones((5, 2))] + np.random.default_rng(0).normal(size=(25, 2))
    y = np.r_[np.zeros(20), np.ones(5)].astype(int)
    off_X, off_y = OptionalSMOTE(enabled=False).fit_resample(X, y)
    assert len(off_y) == 25
    on_X, on_y = OptionalSMOTE(enabled=True, k_neighbors=3, random_state=0).fit_resample(X, y)
    assert on_y.sum() == 20 and len(on_y) == 40


def test_every_family_builds_and_has_a_search_space():
    for family in ("logreg", "random_forest", "xgboost"):
        pipe = build_pipeline(family)
        assert [name for name, _ in pipe.steps] == ["clean", "prep", "smote", "clf"]
        space = search_space(family, PROFILES["quick"])
        assert "smote__enabled" in space and all(k in pipe.get_params() for k in space)
    with pytest.raises(ValueError):
        build_pipeline("svm")
    assert build_preprocessor() is not build_preprocessor()


@pytest.mark.parametrize("families", [("svm",), ("blend",), ("logreg", "trees"), ()])
def test_unknown_families_are_refused_before_any_work(reference, families):
    from termdeposit.core.errors import TermDepositError
    from termdeposit.modeling import train as train_module

    with pytest.raises(TermDepositError, match="model family") as info:
        train_module.train(reference.head(500), profile="quick", families=families)
    assert "logreg, random_forest, xgboost" in info.value.hint


def test_production_artifact_is_fitted_on_every_row_and_its_card_lists_them(
    production_model, reference
):
    """The learning loop: the saved artifact is the chosen configuration refitted on every row
    known at its date (here the reference data: the session's store holds no outcomes), and the
    card lists every week with its rows; the weekly rate model is fitted on every week."""
    card = production_model.card
    fitted = card["fitted_on"]
    assert fitted["rows"] == len(reference) == card["rows"]["fit_artifact"]
    by_week = reference.groupby("week", sort=True).size()
    labels = reference.groupby("week", sort=True)["week_label"].first()
    assert fitted["rows_by_week"] == {labels[w]: int(n) for w, n in by_week.items()}
    assert list(fitted["rows_by_week"]) == list(labels)  # in time order
    assert fitted["weeks"] == 119 and fitted["first_week"] == labels.iloc[0]
    assert fitted["last_week"] == labels.iloc[-1]
    assert fitted["sources"] == {
        "reference_data": len(reference),
        "data_drops_and_recorded_outcomes": 0,
    }
    rate = card["base_rate"]
    assert rate["weeks"] == 119 and rate["rows"] == len(reference)
    assert rate["last_week"] == labels.iloc[-1] and 0 < rate["sigma"] < 2
    # the time hold-out was scored by a twin fitted before it, not by the artifact
    assert card["rows"]["fit_time_twin"] + card["rows"]["holdout_time"] == len(reference)
    assert "time_following_week" in card["metrics"]


def test_time_holdout_following_each_week_meets_the_targets(production_model):
    """Scored week by week as production runs (each week's rate model fitted on the weeks
    before it), the time hold-out is ranked and calibrated (issue targets: AUC >= 0.75,
    ECE <= 0.05)."""
    followed = production_model.card["metrics"]["time_following_week"]
    raw = production_model.card["metrics"]["time"]
    assert followed["ece"] <= 0.05 < raw["ece"]
    assert followed["auc"] >= 0.75
