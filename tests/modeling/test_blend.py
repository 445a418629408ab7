"""The average of the families: the right columns for each member, the exact blend formula,
settings built from the searched families, and its place among the training candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from termdeposit.core.schema import INPUT_COLUMNS, TARGET
from termdeposit.insight.fairness import without_inputs
from termdeposit.modeling.blend import BlendClassifier, dropped_inputs, macro_drop_positions
from termdeposit.modeling.train import (
    BLEND,
    FAMILY_LABELS,
    FamilyResult,
    blend_params,
    build_pipeline,
    family_label,
)

FOREST = {"n_estimators": 30, "max_depth": 6, "min_samples_leaf": 5, "n_jobs": 1}
BOOSTED = {"n_estimators": 40, "max_depth": 3, "n_jobs": 1}


@pytest.fixture(scope="module")
def rows(reference) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    sample = reference.sample(3_000, random_state=11)
    train, other = sample.iloc[:2_000], sample.iloc[2_000:]
    return train.loc[:, list(INPUT_COLUMNS)], train[TARGET].to_numpy(), other


def _blend(linear_macro: str = "nr.employed", **params):
    settings = {
        "clean__macro": "all",
        "clf__linear_drop": macro_drop_positions(linear_macro),
        **{f"clf__forest__{k}": v for k, v in FOREST.items()},
        **{f"clf__boosted__{k}": v for k, v in BOOSTED.items() if "clf__boosted" not in params},
        **params,
    }
    return build_pipeline(BLEND).set_params(**settings)


def test_drop_positions_name_the_four_rates_even_without_protected_inputs(rows):
    X, y, _ = rows
    positions = macro_drop_positions("nr.employed")
    expected = ["emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m"]
    fitted = _blend().fit(X, y)
    names = list(fitted.named_steps["prep"].get_feature_names_out())
    assert [names[p] for p in positions] == [f"num__{c}" for c in expected]
    assert macro_drop_positions("all") == ()
    assert dropped_inputs(positions) == expected and dropped_inputs(None) == []
    # The fairness twin drops age (a numeric input) and three categories after cleaning.
    twin = without_inputs(fitted).fit(X, y)
    twin_names = list(twin.named_steps["prep"].get_feature_names_out())
    assert "num__age" not in twin_names
    assert [twin_names[p] for p in positions] == [f"num__{c}" for c in expected]
    assert twin.named_steps["clf"].linear_.coef_.shape[1] == len(twin_names) - 4
    with pytest.raises(ValueError, match="macro"):
        macro_drop_positions("rates")


def test_members_are_the_three_families_on_their_own_inputs(rows):
    X, y, other = rows
    inputs = other.loc[:, list(INPUT_COLUMNS)]
    blend = _blend(clf__linear__C=0.3, clf__boosted_drop=macro_drop_positions("nr.employed"))
    blend.fit(X, y)
    regression = build_pipeline("logreg").set_params(clean__macro="nr.employed", clf__C=0.3)
    regression.fit(X, y)
    forest = build_pipeline("random_forest").set_params(
        clean__macro="all", **{f"clf__{k}": v for k, v in FOREST.items()}
    )
    forest.fit(X, y)
    boosted = build_pipeline("xgboost").set_params(
        clean__macro="nr.employed", **{f"clf__{k}": v for k, v in BOOSTED.items()}
    )
    boosted.fit(X, y)
    inner = blend.named_steps["clf"]
    assert inner.members == ("linear", "forest", "boosted")
    np.testing.assert_allclose(inner.linear_.coef_, regression.named_steps["clf"].coef_)
    p_lr = regression.predict_proba(inputs)[:, 1]
    p_rf = forest.predict_proba(inputs)[:, 1]
    p_xgb = boosted.predict_proba(inputs)[:, 1].astype(float)
    np.testing.assert_allclose(blend.predict_proba(inputs)[:, 1], (p_lr + p_rf + p_xgb) / 3)
    # The weight is the regression's share; the trees share the rest; classes add up to one.
    leaning = _blend(clf__linear__C=0.3, clf__weight=0.8).fit(X, y)
    boosted.set_params(clean__macro="all").fit(X, y)
    p_all = boosted.predict_proba(inputs)[:, 1].astype(float)
    proba = leaning.predict_proba(inputs)
    np.testing.assert_allclose(proba[:, 1], 0.8 * p_lr + 0.1 * p_rf + 0.1 * p_all)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(leaning.predict(inputs)) <= {0, 1}
    # Without XGBoost it is the regression + forest average, half and half.
    pair = _blend(clf__linear__C=0.3, clf__boosted=None).fit(X, y)
    assert pair.named_steps["clf"].members == ("linear", "forest")
    assert pair.named_steps["clf"].boosted_ is None
    np.testing.assert_allclose(pair.predict_proba(inputs)[:, 1], 0.5 * p_lr + 0.5 * p_rf)


def test_a_blend_saved_before_xgboost_could_join_still_loads_and_scores(rows):
    X, y, other = rows
    pair = _blend(clf__boosted=None).fit(X, y)
    inner = pair.named_steps["clf"]
    # The state a regression + forest average was pickled with before the XGBoost member.
    state = dict(inner.__getstate__())
    for key in ("boosted", "boosted_drop", "boosted_", "boosted_columns_"):
        del state[key]
    state["weight"] = 0.5
    old = BlendClassifier.__new__(BlendClassifier)
    old.__setstate__(state)
    assert old.members == ("linear", "forest") and old.boosted_ is None
    encoded = pair[:2].transform(other.loc[:, list(INPUT_COLUMNS)])
    np.testing.assert_array_equal(old.predict_proba(encoded), inner.predict_proba(encoded))


def test_bad_blend_settings_are_refused(rows):
    X, y, _ = rows
    with pytest.raises(ValueError, match="weight"):
        _blend(clf__weight=1.5).fit(X, y)
    with pytest.raises(ValueError, match="leave out"):
        BlendClassifier(linear_drop=(-40,)).fit(np.zeros((10, 3)), np.r_[[0] * 5, [1] * 5])


def _result(family: str, **params) -> FamilyResult:
    return FamilyResult(family, 0.7, 0.7, params, 1.0)


def test_blend_settings_come_from_the_searched_families():
    linear = _result("logreg", clf__C=0.02, clean__macro="nr.employed", smote__enabled=False)
    forest = _result("random_forest", clf__max_depth=8, clean__macro="all", smote__enabled=True)
    params = blend_params(linear, forest)
    assert params == {
        "clean__macro": "all",
        "smote__enabled": False,
        "clf__boosted": None,
        "clf__linear_drop": list(macro_drop_positions("nr.employed")),
        "clf__forest_drop": [],
        "clf__linear__C": 0.02,
        "clf__forest__max_depth": 8,
    }
    build_pipeline(BLEND).set_params(**params)  # every setting exists
    boosted = _result("xgboost", clf__max_depth=4, clean__macro="nr.employed")
    three = blend_params(linear, forest, boosted=boosted)
    assert three == {
        "clean__macro": "all",
        "smote__enabled": False,
        "clf__linear_drop": list(macro_drop_positions("nr.employed")),
        "clf__forest_drop": [],
        "clf__boosted_drop": list(macro_drop_positions("nr.employed")),
        "clf__linear__C": 0.02,
        "clf__forest__max_depth": 8,
        "clf__boosted__max_depth": 4,
    }
    build_pipeline(BLEND).set_params(**three)
    # One macro-economic input set can be given to both tree members.
    narrow_trees = blend_params(linear, forest, tree_macro="nr.employed", boosted=boosted)
    assert narrow_trees["clean__macro"] == "nr.employed"
    assert narrow_trees["clf__forest_drop"] == narrow_trees["clf__boosted_drop"] == []
    both_narrow = blend_params(
        _result("logreg", clean__macro="nr.employed", smote__enabled=True),
        _result("random_forest", clean__macro="nr.employed", smote__enabled=True),
    )
    assert both_narrow["clean__macro"] == "nr.employed"
    assert both_narrow["clf__linear_drop"] == both_narrow["clf__forest_drop"] == []
    # Averaged probabilities must share one scale: no SMOTE, no class weights in the members.
    assert both_narrow["smote__enabled"] is False
    weighted = blend_params(
        _result("logreg", clf__class_weight="balanced", clean__macro="all"),
        _result("random_forest", clean__macro="all"),
    )
    assert weighted["clf__linear__class_weight"] is None
    # The forest's inputs can be chosen again for the average.
    wide = blend_params(
        linear, _result("random_forest", clean__macro="nr.employed"), tree_macro="all"
    )
    assert wide["clean__macro"] == "all" and wide["clf__forest_drop"] == []
    forest_narrow = blend_params(
        _result("logreg", clean__macro="all"), _result("random_forest", clean__macro="nr.employed")
    )
    assert forest_narrow["clf__forest_drop"] == list(macro_drop_positions("nr.employed"))
    assert forest_narrow["clf__linear_drop"] == []
    assert "Random Forest" in FAMILY_LABELS[BLEND] and "XGBoost" in FAMILY_LABELS[BLEND]
    assert "XGBoost" not in family_label(BLEND, params)
    assert family_label(BLEND, three) == FAMILY_LABELS[BLEND]


def test_production_card_lists_the_blend_as_a_scored_candidate(production_model):
    card = production_model.card
    blend = next(f for f in card["families"] if f["family"] == BLEND)
    assert 0.5 < blend["cv_auc"] < 1 and 0.5 < blend["time_val_auc"] < 1
    searched = {f["family"]: f for f in card["families"]}
    assert blend["params"]["clf__linear__C"] == searched["logreg"]["params"]["clf__C"]
    assert (
        blend["params"]["clf__forest__max_depth"]
        == searched["random_forest"]["params"]["clf__max_depth"]
    )
    assert (
        blend["params"]["clf__boosted__max_depth"]
        == searched["xgboost"]["params"]["clf__max_depth"]
    )


def test_model_card_names_each_members_share_and_what_it_leaves_out():
    from termdeposit.modeling import train as train_module

    rates = ["emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m"]
    narrow = list(macro_drop_positions("nr.employed"))
    card = train_module._blend_card(
        {"clf__linear_drop": narrow, "clf__forest_drop": [], "clf__boosted_drop": narrow}
    )["blend"]
    assert card == {
        "logistic_regression": {"share": round(1 / 3, 6), "inputs_left_out": rates},
        "random_forest": {"share": round(1 / 3, 6), "inputs_left_out": []},
        "xgboost": {"share": round(1 / 3, 6), "inputs_left_out": rates},
    }
    pair = train_module._blend_card(
        {"clf__linear_drop": narrow, "clf__forest_drop": [], "clf__boosted": None}
    )["blend"]
    assert pair == {
        "logistic_regression": {"share": 0.5, "inputs_left_out": rates},
        "random_forest": {"share": 0.5, "inputs_left_out": []},
    }


def test_choices_follow_the_time_slice_with_near_ties_to_the_cv_score():
    from termdeposit.modeling.train import NEAR_TIE, _near_tie_choice

    assert _near_tie_choice({"a": (0.70, 0.66), "b": (0.65, 0.70)}) == "b"
    assert _near_tie_choice({"a": (0.70, 0.70 - NEAR_TIE / 2), "b": (0.65, 0.70)}) == "a"


def test_calibration_steps_up_only_for_a_clear_gain():
    from termdeposit.modeling.train import CALIBRATION_MIN_GAIN as GAIN
    from termdeposit.modeling.train import calibration_rule

    assert calibration_rule({"none": 0.010, "sigmoid": 0.0095, "isotonic": 0.0094}) == "none"
    assert calibration_rule({"none": 0.19, "sigmoid": 0.006, "isotonic": 0.006 - GAIN / 2}) == (
        "sigmoid"
    )
    assert calibration_rule({"none": 0.19, "sigmoid": 0.02, "isotonic": 0.006}) == "isotonic"
    assert calibration_rule({"none": 0.02, "sigmoid": 0.019, "isotonic": 0.01}) == "isotonic"
