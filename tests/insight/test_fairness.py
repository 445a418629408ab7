"""Fairness: age bands, group metrics against a hand-computed example, intervals, parity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import false_positive_rate, selection_rate, true_positive_rate

from termdeposit.core.config import BusinessSettings
from termdeposit.core.schema import INPUT_COLUMNS, TARGET
from termdeposit.insight import fairness
from termdeposit.modeling.card import ModelCard
from termdeposit.modeling.train import build_pipeline


def test_age_band_edges():
    ages = [17, 24, 25, 34, 35, 44, 45, 54, 55, 64, 65, 98]
    assert fairness.age_band(ages).tolist() == [
        "<25",
        "<25",
        "25–34",
        "25–34",
        "35–44",
        "35–44",
        "45–54",
        "45–54",
        "55–64",
        "55–64",
        "65+",
        "65+",
    ]


def _block(job: str, n: int, called: int, subscribers: int, hits: int, score: float):
    """``n`` customers of one job: ``called`` of them called, ``subscribers`` subscribed,
    ``hits`` of the subscribers among the called."""
    called_flags = [1] * called + [0] * (n - called)
    y = [1] * hits + [0] * (called - hits) + [1] * (subscribers - hits)
    y += [0] * (n - len(y))
    return pd.DataFrame({"job": job, "called": called_flags, "y": y, "score": score})


@pytest.fixture()
def example() -> pd.DataFrame:
    """Hand-made: admin. 40 customers, blue-collar 50, student 10 (too small to judge).

    admin.:      20 of 40 called (0.5); 10 subscribers, 8 of them called -> TPR 0.8,
                 FPR 12 / 30 = 0.4, precision 8 / 20 = 0.4
    blue-collar: 10 of 50 called (0.2); 10 subscribers, 5 called -> TPR 0.5,
                 FPR 5 / 40 = 0.125, precision 5 / 10 = 0.5
    student:     10 of 10 called (1.0): too small, left out of the headline figures.
    Parity difference 0.5 - 0.2 = 0.3, ratio 0.2 / 0.5 = 0.4 (blue-collar flagged);
    equalized odds difference max(0.8 - 0.5, 0.4 - 0.125) = 0.3.
    """
    return pd.concat(
        [
            _block("admin.", 40, 20, 10, 8, 0.30),
            _block("blue-collar", 50, 10, 10, 5, 0.10),
            _block("student", 10, 10, 4, 4, 0.60),
        ],
        ignore_index=True,
    )


def test_group_metrics_match_the_hand_computed_example(example):
    report = fairness.group_report(
        example, example["score"], example["called"], "job", example["y"]
    )
    table = report.table
    assert list(table.index) == ["admin.", "blue-collar", "student"]
    assert table["size"].tolist() == [40, 50, 10]
    np.testing.assert_allclose(table["selection_rate"], [0.5, 0.2, 1.0])
    np.testing.assert_allclose(table["mean_score"], [0.3, 0.1, 0.6])
    np.testing.assert_allclose(table["tpr"], [0.8, 0.5, 1.0])
    np.testing.assert_allclose(table["fpr"], [0.4, 0.125, 1.0])
    np.testing.assert_allclose(table["precision"], [0.4, 0.5, 0.4])
    np.testing.assert_allclose(table["ratio_to_best"].iloc[:2], [1.0, 0.4])
    assert report.judged == ["admin.", "blue-collar"]
    assert report.best_group == "admin."
    assert report.dp_difference == pytest.approx(0.3)
    assert report.dp_ratio == pytest.approx(0.4)
    assert report.eo_difference == pytest.approx(0.3)
    assert report.flagged == ["blue-collar"]
    assert report.too_small == ["student"]
    assert table["status"].tolist() == ["ok", "below four-fifths", "too small to judge"]
    assert report.calls == 40 and report.size == 100


def test_without_outcomes_only_calls_are_compared(example):
    report = fairness.group_report(example, example["score"], example["called"], "job")
    assert not report.has_outcomes and report.eo_difference is None
    assert "tpr" not in report.table
    assert report.dp_ratio == pytest.approx(0.4)
    partly = example["y"].astype(float).where(example.index % 2 == 0)
    report = fairness.group_report(example, example["score"], example["called"], "job", partly)
    assert report.table["outcomes_known"].tolist() == [20, 25, 5]


def test_weighted_metrics_equal_fairlearn_with_unit_weights(example):
    y, called = example["y"].to_numpy(), example["called"].to_numpy()
    ones = np.ones(len(y))
    assert fairness.weighted_selection_rate(y, called, ones) == pytest.approx(
        selection_rate(y, called)
    )
    assert fairness.weighted_true_positive_rate(y, called, ones) == pytest.approx(
        true_positive_rate(y, called)
    )
    assert fairness.weighted_false_positive_rate(y, called, ones) == pytest.approx(
        false_positive_rate(y, called)
    )


def test_bootstrap_intervals_surround_the_estimates(example):
    report = fairness.group_report(
        example, example["score"], example["called"], "job", example["y"]
    )
    with_ci = fairness.add_intervals(
        report, example, example["called"], example["y"], n_boot=100, seed=1
    )
    table = with_ci.table
    judged = table.loc[report.judged]
    assert (judged["selection_low"] <= judged["selection_rate"]).all()
    assert (judged["selection_rate"] <= judged["selection_high"]).all()
    assert (judged["selection_high"] - judged["selection_low"] > 0.05).all()
    assert np.isnan(table.loc["student", "selection_low"])
    low, high = with_ci.intervals["dp_ratio"]
    assert low < 0.4 < high
    low, high = with_ci.intervals["dp_difference"]
    assert low < 0.3 < high
    low, high = with_ci.intervals["eo_difference"]
    assert low < 0.3 < high
    # Same seed, same intervals.
    again = fairness.bootstrap_intervals(
        example, example["called"], report, example["y"], n_boot=100, seed=1
    )
    assert again["dp_ratio"] == with_ci.intervals["dp_ratio"]


def test_intervals_narrow_as_the_cohort_grows(example):
    big = pd.concat([example] * 16, ignore_index=True)
    small = fairness.group_report(example, example["score"], example["called"], "job")
    large = fairness.group_report(big, big["score"], big["called"], "job")
    a = fairness.bootstrap_intervals(example, example["called"], small, n_boot=100)
    b = fairness.bootstrap_intervals(big, big["called"], large, n_boot=100)
    width = lambda bounds: bounds[1] - bounds[0]  # noqa: E731
    assert width(b["dp_difference"]) < 0.5 * width(a["dp_difference"])


def test_parity_calls_the_same_share_of_every_group_and_finds_the_best_share():
    """admin.: 20 at 0.2 and 20 at 0.01; blue-collar: 10 at 0.2 and 40 at 0.01.

    A call costs 5 and a subscription is worth 100: a 0.2 customer earns 15, a 0.01 one loses
    4. Calls are whole customers (share x size, rounded): the best common share is the first
    that reaches all 20 good admin. customers, 48.8% (19.52 -> 20), where blue-collar gets
    24.4 -> 24 calls, its 10 good and 14 bad: 300 + 150 - 56 = 394.
    """
    frame = pd.DataFrame(
        {"job": ["admin."] * 40 + ["blue-collar"] * 50},
    )
    scores = np.array([0.2] * 20 + [0.01] * 20 + [0.2] * 10 + [0.01] * 40)
    settings = BusinessSettings(call_cost=5, subscription_value=100)
    groups = fairness.groups_of(frame, "job")
    assert fairness.best_parity_rate(scores, groups, settings) == pytest.approx(0.488)
    called = fairness.parity_calls(scores, groups, 0.3)
    assert called[:40].sum() == 12 and called[40:].sum() == 15
    chosen = scores >= 0.1
    policies = fairness.price_of_fairness(frame, scores, chosen, "job", settings)
    as_chosen, same_calls, best = policies
    assert as_chosen.calls == 30 and as_chosen.expected_profit == pytest.approx(450)
    assert as_chosen.report.dp_ratio == pytest.approx(0.4)
    assert same_calls.calls == 30
    # A third of each group, in whole customers: 13.3 -> 13 of 40 and 16.7 -> 17 of 50.
    np.testing.assert_allclose(same_calls.report.table["selection_rate"], [13 / 40, 17 / 50])
    assert best.calls == 44 and best.expected_profit == pytest.approx(394)
    assert best.report.dp_ratio == pytest.approx(0.48 / 0.5)
    assert best.thresholds.tolist() == [pytest.approx(0.2), pytest.approx(0.01)]
    assert as_chosen.realised_profit is None


def test_realised_profit_uses_known_outcomes(example):
    settings = BusinessSettings(call_cost=5, subscription_value=100)
    policies = fairness.price_of_fairness(
        example, example["score"], example["called"], "job", settings, example["y"]
    )
    # Called: 8 + 5 + 4 subscribers among 40 calls.
    assert policies[0].realised_profit == pytest.approx(100 * 17 - 5 * 40)


def test_unknown_grouping_is_refused(example):
    from termdeposit.core.errors import TermDepositError

    with pytest.raises(TermDepositError, match="not a grouping"):
        fairness.groups_of(example, "income")


@pytest.fixture(scope="module")
def small_history(reference) -> pd.DataFrame:
    """2,000 customers in time order (every 20th row), enough to fit a small model."""
    return reference.iloc[::20].iloc[:2000].reset_index(drop=True)


def test_model_without_protected_inputs_never_sees_them(small_history):
    pipeline = build_pipeline("logreg")
    blind = fairness.without_inputs(pipeline).fit(
        small_history.loc[:, list(INPUT_COLUMNS)], small_history[TARGET]
    )
    names = list(blind.named_steps["prep"].get_feature_names_out())
    assert "num__age" not in names and not [n for n in names if n.startswith("cat__marital")]
    assert "num__campaign" in names and "cat__job_management" in names
    assert [s for s, _ in blind.steps] == ["clean", "drop", "prep", "smote", "clf"]


def test_compare_without_protected_reports_both_models(small_history):
    class Model:  # the parts of a LoadedModel the comparison reads
        card = {"random_state": 0}
        info = ModelCard.from_dict(card)
        pipeline = build_pipeline("logreg").fit(
            small_history.iloc[:1600].loc[:, list(INPUT_COLUMNS)],
            small_history[TARGET].iloc[:1600],
        )

    settings = BusinessSettings(call_cost=5, subscription_value=100)
    result = fairness.compare_without_protected(Model(), small_history, settings)
    assert result.rows_fit == 1600 and result.rows_holdout == 400
    assert list(result.table.index) == ["Production model", "Without age and marital"]
    assert result.table["auc"].between(0.5, 1).all()
    holdout = small_history.iloc[1600:]
    p = Model.pipeline.predict_proba(holdout.loc[:, list(INPUT_COLUMNS)])[:, 1]
    called = p >= settings.break_even
    row = result.table.loc["Production model"]
    assert row["calls"] == called.sum()
    assert row["realised_profit"] == pytest.approx(
        100 * holdout[TARGET].to_numpy()[called].sum() - 5 * called.sum()
    )
    assert set(result.fairness["attribute"]) == {"age band", "marital"}


def test_card_section_is_json_and_matches_the_group_report(small_history):
    pipeline = build_pipeline("logreg").fit(
        small_history.iloc[:1600].loc[:, list(INPUT_COLUMNS)], small_history[TARGET].iloc[:1600]
    )
    holdout = small_history.iloc[1600:]
    section = fairness.card_section(pipeline, holdout, 0.1)
    json.dumps(section, allow_nan=False)
    assert set(section["attributes"]) == set(fairness.DEFAULT_ATTRIBUTES)
    p = pipeline.predict_proba(holdout.loc[:, list(INPUT_COLUMNS)])[:, 1]
    report = fairness.group_report(holdout, p, p >= 0.1, "age band", holdout[TARGET])
    age = section["attributes"]["age band"]
    assert age["demographic_parity_ratio"] == pytest.approx(report.dp_ratio, abs=1e-4)
    assert age["groups"]["25–34"]["size"] == int(report.table.loc["25–34", "size"])
    assert section["calls"] == int((p >= 0.1).sum()) and section["rows"] == 400


def test_selection_chart_draws_the_four_fifths_line(example):
    from termdeposit.insight import plots

    report = fairness.group_report(example, example["score"], example["called"], "job")
    figure = plots.group_selection_chart(report.table, "Job", fairness.FOUR_FIFTHS, 0.5)
    assert figure.layout.shapes[0].y0 == pytest.approx(0.4)
    names = {trace.name for trace in figure.data}
    assert {"Below four-fifths", "Too small to judge"} <= names
