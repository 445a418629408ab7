"""ForestShap: the same SHAP values as shap.TreeExplainer (path-dependent), much faster."""

from __future__ import annotations

import numpy as np
import pytest
import shap
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from termdeposit.insight import treeshap
from termdeposit.insight.treeshap import ForestShap

TOLERANCE = 1e-9


def _data(rows: int = 500, numeric: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns, a one-hot group of four and two binary flags; y depends on all kinds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, numeric))
    group = np.eye(4)[rng.integers(0, 4, rows)]
    flags = rng.integers(0, 2, size=(rows, 2)).astype(float)
    X = np.column_stack([x, group, flags])
    # A band on x0 (split on twice on one path), an interaction and a one-hot effect.
    score = 1.5 * (np.abs(x[:, 0]) < 0.7) + x[:, 1] * flags[:, 0] + group[:, 2] - 0.5 * x[:, 2]
    y = (score + rng.normal(scale=0.7, size=rows) > 0.6).astype(int)
    return X, y


def _shap_reference(forest, X: np.ndarray, class_index: int = 1) -> tuple[np.ndarray, float]:
    explainer = shap.TreeExplainer(forest)
    values = np.asarray(explainer.shap_values(X, check_additivity=False))[..., class_index]
    return values, float(np.ravel(explainer.expected_value)[class_index])


def _repeats_a_feature(forest) -> bool:
    """True when some root-to-leaf path splits on the same feature more than once."""
    for estimator in forest.estimators_:
        tree = estimator.tree_
        stack = [(0, ())]
        while stack:
            node, seen = stack.pop()
            if tree.children_left[node] < 0:
                continue
            feature = int(tree.feature[node])
            if feature in seen:
                return True
            seen = (*seen, feature)
            stack += [(tree.children_left[node], seen), (tree.children_right[node], seen)]
    return False


def _check(forest, X: np.ndarray, **options) -> ForestShap:
    """ForestShap equals shap's values and expected value, and adds up to predict_proba."""
    explainer = ForestShap(forest, **options)
    values = explainer.shap_values(X)
    class_index = options.get("class_index", 1)
    reference, expected = _shap_reference(forest, X, class_index)
    assert values.shape == (len(X), X.shape[1]) and values.dtype == np.float64
    np.testing.assert_allclose(values, reference, rtol=0, atol=TOLERANCE)
    assert explainer.expected_value == pytest.approx(expected, abs=TOLERANCE)
    total = explainer.expected_value + values.sum(axis=1)
    np.testing.assert_allclose(total, forest.predict_proba(X)[:, class_index], rtol=0, atol=1e-9)
    return explainer


FORESTS = {
    "depth 4, bootstrap": dict(max_depth=4),
    "no depth limit, leaf 1": dict(max_depth=None, min_samples_leaf=1),
    "stumps": dict(max_depth=1),
    "depth 14, no bootstrap": dict(max_depth=14, min_samples_leaf=1, bootstrap=False),
    "balanced classes": dict(max_depth=8, class_weight="balanced", max_features=0.5),
}


@pytest.mark.parametrize("params", FORESTS.values(), ids=FORESTS.keys())
def test_values_equal_shap_tree_explainer_with_and_without_tables(params):
    X, y = _data()
    forest = RandomForestClassifier(n_estimators=15, random_state=1, **params).fit(X, y)
    rows = _data(rows=120, seed=5)[0]
    with_tables = _check(forest, rows)
    assert with_tables.n_table_leaves == with_tables.n_leaves > 0
    without = _check(forest, rows, table_bytes=0)  # every leaf by quadrature
    assert without.n_table_leaves == 0 and without.table_nbytes == 0
    if params.get("max_depth") != 1:
        assert _repeats_a_feature(forest)


def test_sample_weights_other_class_and_extra_trees():
    X, y = _data(seed=2)
    weights = np.random.default_rng(3).uniform(0.2, 3.0, len(y))
    forest = RandomForestClassifier(n_estimators=10, max_depth=7, random_state=0)
    forest.fit(X, y, sample_weight=weights)
    _check(forest, X[:100])
    _check(forest, X[:100], class_index=0, table_bytes=0)
    extra = ExtraTreesClassifier(n_estimators=10, max_depth=9, random_state=0).fit(X, y)
    _check(extra, X[:100])


def test_long_paths_use_the_quadrature_and_a_partial_budget_mixes_both_ways():
    """Paths with more features than a table may hold, and a budget that fits only some."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 30))
    y = (rng.random(2000) < 0.3).astype(int)  # noise: deep trees, paths of up to ~20 features
    forest = RandomForestClassifier(n_estimators=4, max_features=0.5, random_state=0).fit(X, y)
    explainer = _check(forest, X[:60])
    assert explainer._leaf_n.max() > treeshap.MAX_TABLE_FEATURES
    assert 0 < explainer.n_table_leaves < explainer.n_leaves
    # One row goes through the quadrature without the loops over a block's rows.
    by_block = ForestShap(forest, table_bytes=0).shap_values(X[:60])
    one = _check(forest, X[7:8], table_bytes=0).shap_values(X[7:8])
    np.testing.assert_allclose(one, by_block[7:8], rtol=0, atol=1e-15)
    budget = explainer.table_nbytes // 3
    partial = _check(forest, X[:60], table_bytes=budget)
    assert 0 < partial.n_table_leaves < explainer.n_table_leaves
    assert partial.table_nbytes <= budget


def test_missing_values_follow_the_trees_missing_branch():
    X, y = _data(seed=6)
    X[::7, 0] = np.nan  # the forest learns where missing values go
    forest = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(X, y)
    rows = X[:80].copy()
    rows[::3, 1] = np.nan  # never missing in training: goes to the larger child
    _check(forest, rows)
    _check(forest, rows, table_bytes=0)


def test_one_row_no_rows_and_threads_give_the_same_values():
    X, y = _data()
    forest = RandomForestClassifier(n_estimators=12, max_depth=9, random_state=0).fit(X, y)
    rows = _data(rows=700, seed=8)[0]
    single = ForestShap(forest, n_threads=1).shap_values(rows)
    threaded = ForestShap(forest, n_threads=2).shap_values(rows)
    np.testing.assert_array_equal(single, threaded)
    explainer = ForestShap(forest)
    one = explainer.shap_values(rows[3:4])
    np.testing.assert_array_equal(one, single[3:4])
    _check(forest, rows[3:4])
    empty = explainer.shap_values(np.empty((0, rows.shape[1])))
    assert empty.shape == (0, rows.shape[1])
    np.testing.assert_array_equal(explainer.shap_values(rows.astype(np.float32)), single)


def test_inputs_are_compared_in_float32_as_scikit_learn_does():
    """A float64 input equal to a threshold that its float32 rounding exceeds goes right."""
    X, y = _data()
    forest = RandomForestClassifier(n_estimators=5, max_depth=5, random_state=0).fit(X, y)
    tree = forest.estimators_[0].tree_
    row = X[:1].copy()
    # Thresholds are midpoints of float32 values: some round up when cast to float32.
    splits = np.flatnonzero(
        (tree.children_left >= 0) & (tree.threshold.astype(np.float32) > tree.threshold)
    )
    assert splits.size
    row[0, tree.feature[splits[0]]] = tree.threshold[splits[0]]
    _check(forest, row)
    _check(forest, row, table_bytes=0)


def test_trees_that_are_a_single_leaf_explain_nothing():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(60), rng.normal(size=60)])
    y = (rng.random(60) < 0.4).astype(int)
    forest = RandomForestClassifier(n_estimators=8, max_depth=2, random_state=0).fit(X, y)
    stumps = RandomForestClassifier(n_estimators=4, max_features=1, random_state=0)
    stumps.fit(np.ones((60, 1)), y)  # a constant input: every tree is its root
    explainer = _check(stumps, np.ones((3, 1)))
    np.testing.assert_array_equal(explainer.shap_values(np.ones((3, 1))), 0.0)
    _check(stumps, np.ones((3, 1)), table_bytes=0)
    _check(forest, X[:20])


def test_bad_inputs_are_refused():
    X, y = _data(rows=200)
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    explainer = ForestShap(forest)
    with pytest.raises(ValueError, match="shape"):
        explainer.shap_values(X[:, :-1])
    with pytest.raises(ValueError, match="shape"):
        explainer.shap_values(X[0])  # one row must be given as a (1, n) matrix
    with pytest.raises(TypeError):
        ForestShap(RandomForestClassifier())
    with pytest.raises(ValueError, match="class_index"):
        ForestShap(forest, class_index=2)


def test_explanations_of_a_random_forest_pipeline_equal_shap_after_one_hot_summing(reference):
    """explain.py's random forest path: shap.TreeExplainer's values, summed per input."""
    from termdeposit.core.schema import INPUT_COLUMNS, TARGET
    from termdeposit.insight import explain
    from termdeposit.modeling.train import build_pipeline

    frame = reference.sample(1100, random_state=0).reset_index(drop=True)
    train, rows = frame.iloc[:800], frame.iloc[800:]
    pipeline = build_pipeline("random_forest").set_params(
        clf__n_estimators=20, clf__max_depth=10, clf__min_samples_leaf=2, clf__n_jobs=1
    )
    pipeline.fit(train.loc[:, list(INPUT_COLUMNS)], train[TARGET].to_numpy())
    explainer = explain.build_explainer(pipeline, reference=train)
    assert isinstance(explainer.shap_explainer, ForestShap)
    explanation = explainer.explain(rows)
    values, expected = _shap_reference(explainer.classifier, explainer.matrix(rows))
    np.testing.assert_allclose(
        explanation.values.to_numpy(), values @ explainer.aggregation, rtol=0, atol=TOLERANCE
    )
    assert explanation.base_value == pytest.approx(expected, abs=TOLERANCE)
    np.testing.assert_allclose(
        explanation.output, explainer.model_output(rows), rtol=0, atol=TOLERANCE
    )
