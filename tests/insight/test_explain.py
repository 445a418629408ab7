"""Explanations: SHAP additivity per family, one-hot aggregation, values and reasons in words."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold

from termdeposit.core import labels
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS, TARGET
from termdeposit.insight import explain
from termdeposit.insight.treeshap import ForestShap
from termdeposit.modeling.blend import macro_drop_positions
from termdeposit.modeling.train import build_pipeline

SMALL_PARAMS = {
    "logreg": {},
    "random_forest": {"clf__n_estimators": 25, "clf__max_depth": 6, "clf__n_jobs": 1},
    "xgboost": {"clf__n_estimators": 40, "clf__n_jobs": 1},
    "blend": {
        "clf__forest__n_estimators": 25,
        "clf__forest__max_depth": 6,
        "clf__forest__n_jobs": 1,
        "clf__boosted__n_estimators": 30,
        "clf__boosted__n_jobs": 1,
        "clf__linear_drop": macro_drop_positions("nr.employed"),
    },
    # The regression + forest average (no XGBoost member).
    "blend_pair": {
        "clf__forest__n_estimators": 25,
        "clf__forest__max_depth": 6,
        "clf__forest__n_jobs": 1,
        "clf__boosted": None,
        "clf__linear_drop": macro_drop_positions("nr.employed"),
    },
}


@pytest.fixture(scope="module")
def small(reference) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A few hundred rows to fit tiny pipelines on, and others to explain (both with y)."""
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(reference), 1300, replace=False))
    frame = reference.iloc[rows].reset_index(drop=True)
    return frame.iloc[:900].reset_index(drop=True), frame.iloc[900:].reset_index(drop=True)


def _fit(family: str, train: pd.DataFrame, macro: str = "all", calibrate: bool = False):
    pipeline = build_pipeline(family.removesuffix("_pair")).set_params(
        **SMALL_PARAMS[family], clean__macro=macro
    )
    if calibrate:
        pipeline = CalibratedClassifierCV(
            pipeline,
            method="sigmoid",
            cv=StratifiedKFold(3, shuffle=True, random_state=0),
            ensemble=False,
        )
    return pipeline.fit(train.loc[:, list(INPUT_COLUMNS)], train[TARGET].to_numpy())


@pytest.mark.parametrize(
    ("family", "calibrate"),
    [
        ("logreg", False),
        ("random_forest", False),
        ("xgboost", False),
        ("xgboost", True),
        ("logreg", True),
        ("blend", False),
        ("blend", True),
        ("blend_pair", False),
    ],
)
def test_base_value_plus_contributions_is_the_model_output(small, family, calibrate):
    train, rows = small
    artifact = _fit(family, train, calibrate=calibrate)
    explainer = explain.build_explainer(artifact, reference=train)
    explanation = explainer.explain(rows.iloc[:300])
    total = explanation.base_value + explanation.values.sum(axis=1).to_numpy()
    margin = explainer.model_output(rows.iloc[:300])
    np.testing.assert_allclose(total, margin, atol=1e-4)
    np.testing.assert_allclose(explanation.output, total)
    # The output is the explained model's own: its probability is the uncalibrated pipeline's.
    inner, calibrated = explain.underlying_pipeline(artifact)
    assert calibrated == calibrate and explainer.calibrated == calibrate
    inner_p = inner.predict_proba(rows.iloc[:300].loc[:, list(INPUT_COLUMNS)])[:, 1]
    probability = explain.to_probability(margin, explanation.scale)
    np.testing.assert_allclose(probability, inner_p, atol=1e-5)
    # One column per raw input the model uses: never a one-hot column.
    assert explanation.features == [c for c in INPUT_COLUMNS if c in explanation.features]
    assert len(explanation.features) == len(INPUT_COLUMNS)
    np.testing.assert_allclose(
        explainer.probability(rows.iloc[:5]),
        artifact.predict_proba(rows.iloc[:5].loc[:, list(INPUT_COLUMNS)])[:, 1],
    )


def test_one_hot_columns_are_summed_back_to_their_input(small):
    """For a linear model, SHAP of an encoded column is coef x (x - background mean)."""
    train, rows = small
    pipeline = _fit("logreg", train, macro="nr.employed")
    explainer = explain.build_explainer(pipeline, reference=train)
    explanation = explainer.explain(rows.iloc[:50])
    prep = pipeline[:2]
    encoded = pd.DataFrame(
        prep.transform(rows.iloc[:50]), columns=prep[-1].get_feature_names_out()
    )
    background = prep.transform(train).mean(axis=0)
    coef = pipeline.named_steps["clf"].coef_[0]
    by_column = (encoded - background) * coef
    job_columns = [c for c in encoded.columns if c.startswith("cat__job_")]
    assert len(job_columns) == 11  # eleven known jobs ('unknown' becomes the mode)
    np.testing.assert_allclose(
        explanation.values["job"], by_column[job_columns].sum(axis=1), atol=1e-10
    )
    np.testing.assert_allclose(
        explanation.values["pdays"],
        by_column["num__pdays"] + by_column["num__never_contacted"],
        atol=1e-10,
    )
    # The four macro inputs the model does not use get no column at all.
    assert "euribor3m" not in explanation.features
    assert explanation.features[-1] == "nr.employed"
    assert len(explanation.features) == 15


@pytest.fixture(scope="module")
def rf(small):
    train, rows = small
    artifact = _fit("random_forest", train)
    return explain.build_explainer(artifact, reference=train), rows


def test_values_are_described_in_words_against_training_customers(rf):
    explainer, _ = rf
    euribor = explainer.reference["euribor3m"]
    low_value = float(np.quantile(euribor, 0.1))
    high_value = float(np.quantile(euribor, 0.95))
    assert explainer.describe("euribor3m", 1.3) == "3-month Euribor rate = 1.3 (low)"
    assert explainer.describe("euribor3m", low_value).endswith("(low)")
    assert explainer.describe("euribor3m", high_value).endswith("(high)")
    assert explainer.describe("pdays", 999) == "Last contact in an earlier campaign = never"
    assert explainer.describe("pdays", 6) == "Last contact in an earlier campaign = 6 days ago"
    outcome = "Outcome of the previous campaign = success"
    assert explainer.describe("poutcome", "success") == outcome
    mode = explainer.modes["job"]
    assert explainer.describe("job", "unknown") == f"Job = unknown (read as {mode})"
    assert explainer.describe("contact", "cellular") == "Contact phone = mobile"
    assert explain.effect_words(0.2) == "raises the score"
    assert explain.effect_words(-0.2) == "lowers the score"


def test_contributions_table_reads_as_sentences(rf):
    explainer, rows = rf
    explanation = explainer.explain(rows.iloc[:3])
    table = explain.contributions(explainer, explanation, 1)
    assert table["contribution"].abs().is_monotonic_decreasing
    for sentence, value in zip(table["sentence"], table["contribution"], strict=True):
        effect = explain.effect_words(value)
        assert sentence.endswith(effect) and " = " in sentence


def test_reason_codes_are_deterministic_words_that_raise_the_score(rf):
    explainer, rows = rf
    frame = rows.iloc[:120]
    first = explain.reason_codes(None, frame, explainer=explainer)
    again = explain.reason_codes(None, frame.iloc[::-1], explainer=explainer)
    assert list(first.columns) == [ID_COLUMN, "reason_1", "reason_2", "reason_3"]
    assert first[ID_COLUMN].tolist() == frame[ID_COLUMN].tolist()
    pd.testing.assert_frame_equal(
        first, again.iloc[::-1].reset_index(drop=True), check_index_type=False
    )
    names = {labels.FEATURE_LABELS[c] for c in INPUT_COLUMNS}
    context = {labels.FEATURE_LABELS[c] for c in explain.CONTEXT_INPUTS}
    explanation = explainer.explain(frame)
    for i, row in first.iterrows():
        table = explain.contributions(explainer, explanation, i)
        keep = (table["contribution"] > 0) & ~table["feature"].isin(explain.CONTEXT_INPUTS)
        expected = table.loc[keep].head(3)
        reasons = [r for r in row.iloc[1:] if r]
        assert reasons == [s.removesuffix(" raises the score") for s in expected["sentence"]]
        for reason in reasons:
            label = reason.split(" = ")[0]
            assert label in names and label not in context
            assert re.fullmatch(r"[A-Z0-9][\w ().,-]+ = .+", reason)
    with_context = explain.reason_codes(None, frame, explainer=explainer, include_context=True)
    assert with_context.shape == first.shape


def test_add_reasons_puts_them_after_the_decision():
    table = pd.DataFrame(
        {ID_COLUMN: ["a", "b"], "rank": [1, 2], "decision": ["x", "x"], "age": [30, 40]}
    )
    reasons = pd.DataFrame(
        {ID_COLUMN: ["b"], "reason_1": ["Age = 40 (typical)"], "reason_2": [""]}
    )
    out = explain.add_reasons(table, reasons)
    assert list(out.columns) == [ID_COLUMN, "rank", "decision", "reason_1", "reason_2", "age"]
    assert out["reason_1"].tolist() == ["", "Age = 40 (typical)"]


def test_large_cohorts_are_explained_on_a_stated_fixed_sample(rf):
    explainer, rows = rf
    first = explain.explain_sample(explainer, rows, limit=100)
    again = explain.explain_sample(explainer, rows, limit=100)
    assert len(first) == 100 and first.sampled_from == len(rows)
    assert first.ids.tolist() == again.ids.tolist()
    whole = explain.explain_sample(explainer, rows.iloc[:80], limit=100)
    assert whole.sampled_from is None and len(whole) == 80
    chunked = explain.explain_in_chunks(explainer, rows.iloc[:250], chunk_rows=100)
    np.testing.assert_allclose(
        chunked.values.to_numpy(), explainer.explain(rows.iloc[:250]).values.to_numpy()
    )


def test_a_larger_forest_gets_a_proportionally_smaller_sample(rf, monkeypatch):
    explainer, _ = rf
    work = explainer.shap_explainer.work_per_row
    assert work > 0
    assert explainer.sample_limit == explain.SAMPLE_LIMITS["random_forest"]  # a small forest
    monkeypatch.setattr(explain, "FOREST_WORK_FOR_FULL_SAMPLE", work // 4)
    limit = explainer.sample_limit  # a quarter of the full sample, in hundreds
    assert limit % 100 == 0 and 2_400 <= limit <= 2_500
    monkeypatch.setattr(explain, "FOREST_WORK_FOR_FULL_SAMPLE", 1)
    assert explainer.sample_limit == explain.MIN_FOREST_SAMPLE


def test_boosted_trees_count_in_the_sample_size(small):
    train, _ = small
    X, y = train.loc[:, list(INPUT_COLUMNS)], train[TARGET].to_numpy()
    stump = build_pipeline("xgboost").set_params(clf__n_estimators=1, clf__max_depth=1).fit(X, y)
    # One tree, two leaves at depth 1.
    expected = explain.BOOSTED_WORK_PER_TREE + 2 * explain.BOOSTED_WORK_PER_SQUARED_DEPTH
    assert explain.boosted_work_per_row(stump.named_steps["clf"]) == expected
    small_model = explain.build_explainer(_fit("xgboost", train), reference=train)
    assert small_model.sample_limit == explain.SAMPLE_LIMITS["xgboost"]
    deep = build_pipeline("xgboost").set_params(
        clf__n_estimators=300, clf__max_depth=8, clf__min_child_weight=0, clf__n_jobs=1
    )
    explainer = explain.build_explainer(deep.fit(X, y), reference=train)
    work = explain.boosted_work_per_row(explainer.classifier)
    assert work > explain.FOREST_WORK_FOR_FULL_SAMPLE
    scaled = int(10_000 * explain.FOREST_WORK_FOR_FULL_SAMPLE / work) // 100 * 100
    assert explainer.sample_limit == max(explain.MIN_FOREST_SAMPLE, scaled) < 10_000
    # In the average, the forest's and XGBoost's costs add up.
    blend = explain.build_explainer(_fit("blend", train), reference=train)
    inner = blend.classifier
    assert blend.shap_explainer.work_per_row == (
        ForestShap(inner.forest_).work_per_row + explain.boosted_work_per_row(inner.boosted_)
    )


def test_what_if_changes_the_score_and_says_what_changed(rf):
    explainer, rows = rf
    customer = rows.iloc[[0]]
    result = explain.what_if(explainer, customer, {"poutcome": "success", "age": 70})
    assert result.changes[0].startswith("Outcome of the previous campaign from ")
    assert result.changes[1].startswith("Age from ")
    after = customer.copy()
    after["poutcome"], after["age"] = "success", 70
    assert result.probability_after == pytest.approx(explainer.probability(after)[0])
    assert result.probability_before == pytest.approx(explainer.probability(customer)[0])
    row = result.table.set_index("feature").loc["poutcome"]
    assert row["after"] == "success"
    assert result.after.base_value + result.after.values.sum(axis=1).iloc[0] == pytest.approx(
        explainer.model_output(after)[0], abs=1e-4
    )
    with pytest.raises(TermDepositError):
        explain.what_if(explainer, customer, {"duration": 100})


def test_dependence_data_bands_pdays_and_keeps_numbers(rf):
    explainer, rows = rf
    explanation = explainer.explain(rows.iloc[:200])
    pdays = explain.dependence_data(explainer, explanation, "pdays")
    assert pdays["categorical"].all()
    assert set(pdays["value"]) <= {
        "never contacted",
        "within a week",
        "1-2 weeks ago",
        "over 2 weeks ago",
    }
    age = explain.dependence_data(explainer, explanation, "age")
    assert not age["categorical"].any()
    np.testing.assert_array_equal(age["value"], rows["age"].iloc[:200].to_numpy(float))
    levels = explain.colour_levels(explainer, explanation)
    assert levels["job"].isna().all() and levels["age"].between(0, 1).all()


def test_production_model_explanation_adds_up(production_model, week_cohort):
    explainer = explain.build_explainer(production_model)
    frame = week_cohort.iloc[:200]
    explanation = explainer.explain(frame)
    np.testing.assert_allclose(
        explanation.base_value + explanation.values.sum(axis=1).to_numpy(),
        explainer.model_output(frame),
        atol=1e-4,
    )
    np.testing.assert_allclose(
        explainer.probability(frame), production_model.predict_proba(frame), atol=1e-12
    )
    assert explain.importance(explanation)["mean_abs"].is_monotonic_decreasing


def test_unknown_model_family_is_refused():
    from sklearn.tree import DecisionTreeClassifier

    with pytest.raises(TermDepositError, match="not available"):
        explain.family_of(DecisionTreeClassifier())


def test_waterfall_runs_from_the_base_value_to_the_customer(rf):
    from termdeposit.insight import plots

    explainer, rows = rf
    explanation = explainer.explain(rows.iloc[:1])
    table = explain.contributions(explainer, explanation)
    figure = plots.shap_waterfall(
        table, explanation.base_value, float(explanation.output[0]), explanation.scale, top=5
    )
    bars = figure.data[0]
    assert bars.y[0] == "Average customer" and bars.y[-1] == "This customer"
    assert bars.x[0] == pytest.approx(explanation.base_value)
    assert bars.x[-1] == pytest.approx(explanation.output[0])
    assert len(bars.y) == 5 + 1 + 2  # five inputs, "N other inputs", the two ends
    assert sum(bars.x[1:-1]) == pytest.approx(explanation.output[0] - explanation.base_value)
