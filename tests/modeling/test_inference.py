"""The compiled small-batch scorer gives exactly what the scikit-learn pipeline gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import MinMaxScaler

from termdeposit.core.schema import INPUT_COLUMNS, TARGET
from termdeposit.modeling import inference
from termdeposit.modeling.blend import macro_drop_positions
from termdeposit.modeling.inference import _predict_sequential
from termdeposit.modeling.train import build_pipeline


@pytest.fixture(scope="module")
def sample(reference) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """4,000 training rows and 3,000 other rows (with unknowns, pdays 999 and others)."""
    rows = reference.sample(7_000, random_state=3)
    train, test = rows.iloc[:4_000], rows.iloc[4_000:]
    return train.loc[:, list(INPUT_COLUMNS)], train[TARGET].to_numpy(), test


def _fitted(family: str, calibration: str, X: pd.DataFrame, y: np.ndarray, **params) -> object:
    pipeline = build_pipeline(family)
    pipeline.set_params(**params)
    if calibration == "none":
        return pipeline.fit(X, y)
    wrapper = CalibratedClassifierCV(
        pipeline, method=calibration, cv=StratifiedKFold(3), ensemble=False
    )
    return wrapper.fit(X, y)


CASES = [
    ("logreg", "none", {"clean__macro": "all"}),
    ("logreg", "sigmoid", {"clean__macro": "nr.employed"}),
    ("logreg", "isotonic", {}),
    ("random_forest", "none", {"clf__n_estimators": 40, "clf__max_depth": 9}),
    ("random_forest", "isotonic", {"clf__n_estimators": 30, "clean__macro": "nr.employed"}),
    ("random_forest", "sigmoid", {"clf__n_estimators": 20, "clf__min_samples_leaf": 1}),
    ("xgboost", "none", {"clf__n_estimators": 50}),
    ("xgboost", "isotonic", {"clf__n_estimators": 40, "smote__enabled": True}),
    (
        "blend",
        "none",
        {
            "clf__forest__n_estimators": 30,
            "clf__forest__max_depth": 9,
            "clf__boosted__n_estimators": 30,
            "clf__boosted_drop": macro_drop_positions("nr.employed"),
        },
    ),
    (
        "blend",
        "isotonic",
        {
            "clf__forest__n_estimators": 20,
            "clf__boosted": None,
            "clf__linear_drop": macro_drop_positions("nr.employed"),
        },
    ),
    (
        "blend",
        "sigmoid",
        {
            "clean__macro": "nr.employed",
            "clf__forest__n_estimators": 20,
            "clf__boosted__n_estimators": 20,
            "smote__enabled": True,
        },
    ),
]


@pytest.mark.parametrize(("family", "calibration", "params"), CASES)
def test_compiled_equals_pipeline(family, calibration, params, sample):
    X, y, test = sample
    model = _fitted(family, calibration, X, y, **params)
    scorer = inference.CompiledScorer(model)
    inputs = test.loc[:, list(INPUT_COLUMNS)]
    expected = _predict_sequential(model, inputs)[:, 1]
    got = scorer.positive_proba(inputs)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    # one row at a time too (the API's usual batch; BLAS may round a lone row differently
    # from a batch, for the pipeline as for the compiled scorer)
    for i in range(0, 30):
        row = inputs.iloc[[i]]
        assert scorer.positive_proba(row)[0] == _predict_sequential(model, row)[0, 1]
    # batches small enough for the forests' Treelite engine
    size = inference.FOREST_ENGINE_MAX_ROWS
    for start in range(0, 3 * size, size):
        batch = inputs.iloc[start : start + size]
        np.testing.assert_array_equal(
            scorer.positive_proba(batch), _predict_sequential(model, batch)[:, 1]
        )


def test_forest_engine_rounds_inputs_like_scikit_learn(sample):
    """Inputs on, just below and just above every threshold (and between float32 values):
    Treelite's predictor gives the forest's own bits."""
    from joblib import parallel_config
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000, 6))
    y = (X[:, 0] + rng.normal(size=2_000) > 0).astype(int)
    forest = RandomForestClassifier(30, min_samples_leaf=2, random_state=0).fit(X, y)
    thresholds = np.concatenate([e.tree_.threshold[e.tree_.feature >= 0] for e in forest])
    edges = np.concatenate(
        [thresholds, np.nextafter(thresholds, np.inf), np.nextafter(thresholds, -np.inf)]
    )
    probe = rng.choice(edges, size=(3_000, 6))
    engine = inference._Forest(forest)
    with parallel_config(backend="sequential"):
        expected = forest.predict_proba(probe)[:, 1]
    np.testing.assert_array_equal(engine.positive_proba(probe), expected)


def test_large_batches_equal_the_pipeline_too(production_model, reference):
    """Above the forest-walk size, categories are looked up per distinct value and the forest
    is scikit-learn's own: still the pipeline's numbers, bit for bit."""
    inputs = reference.loc[:, list(INPUT_COLUMNS)].iloc[:6_000]
    scorer = inference.scorer_for(production_model.pipeline)
    assert scorer is not None
    np.testing.assert_array_equal(
        scorer.positive_proba(inputs),
        _predict_sequential(production_model.pipeline, inputs)[:, 1],
    )
    np.testing.assert_array_equal(
        scorer.encode(inputs),
        production_model.pipeline[:2].transform(inputs)
        if hasattr(production_model.pipeline, "steps")
        else production_model.pipeline.calibrated_classifiers_[0].estimator[:2].transform(inputs),
    )


def test_encoding_is_bit_identical(sample):
    X, y, test = sample
    model = _fitted("logreg", "none", X, y)
    scorer = inference.CompiledScorer(model)
    inputs = test.loc[:, list(INPUT_COLUMNS)]
    np.testing.assert_array_equal(scorer.encode(inputs), model[:2].transform(inputs))


def test_columns_as_plain_arrays(sample):
    """The API passes a dict of arrays, not a DataFrame: same result."""
    X, y, test = sample
    model = _fitted("random_forest", "none", X, y, clf__n_estimators=10)
    inputs = test.loc[:, list(INPUT_COLUMNS)].iloc[:50]
    columns = {c: inputs[c].to_numpy() for c in INPUT_COLUMNS}
    np.testing.assert_array_equal(
        inference.positive_proba(model, columns), _predict_sequential(model, inputs)[:, 1]
    )


def test_production_model_is_compiled(production_model, week_cohort):
    inputs = week_cohort.loc[:, list(INPUT_COLUMNS)]
    got = inference.positive_proba(production_model.pipeline, inputs)
    assert got is not None
    np.testing.assert_array_equal(
        got, _predict_sequential(production_model.pipeline, inputs)[:, 1]
    )


def test_unknown_steps_are_declined(sample):
    X, y, _ = sample
    model = _fitted("logreg", "none", X, y)
    model.steps[1][1].transformers_[1] = ("num", MinMaxScaler(), ["age"])
    with pytest.raises(inference.NotCompilableError):
        inference.CompiledScorer(model)
    assert inference.scorer_for(model) is None
    assert inference.positive_proba(model, X.iloc[:3]) is None


def test_missing_values_are_left_to_the_pipeline(sample):
    X, y, test = sample
    model = _fitted("logreg", "none", X, y)
    inputs = test.loc[:, list(INPUT_COLUMNS)].iloc[:5].copy()
    inputs["age"] = np.nan
    assert inference.positive_proba(model, inputs) is None
    assert inference.positive_proba(model, inputs.drop(columns=["age"])) is None


def test_unseen_category_encodes_as_zeros_like_the_pipeline(sample):
    X, y, test = sample
    model = _fitted("logreg", "none", X, y)
    inputs = test.loc[:, list(INPUT_COLUMNS)].iloc[:5].copy()
    inputs["job"] = "astronaut"
    np.testing.assert_array_equal(
        inference.CompiledScorer(model).encode(inputs), model[:2].transform(inputs)
    )
