"""Monitoring: PSI, estimated AUC, drift alerts, weekly figures and the cron check."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from store_support import sha
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core.config import default_settings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import INPUT_COLUMNS
from termdeposit.decisions.forecast import card_error, profit_range
from termdeposit.modeling.train import build_pipeline
from termdeposit.ops import monitoring
from termdeposit.services.outcomes import outcomes_file, record_feedback, simulated_outcomes
from termdeposit.storage import store


def test_psi_on_hand_made_distributions():
    same = np.repeat(["a", "b"], 50)
    assert monitoring.psi(same, same) == 0.0
    shifted = np.array(["a"] * 80 + ["b"] * 20)
    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert monitoring.psi(same, shifted) == pytest.approx(by_hand)
    # numbers: deciles of 0..999 as bins; all new values above the top decile edge
    reference = np.arange(1000.0)
    assert monitoring.psi(reference, reference) == pytest.approx(0.0)
    top = np.full(100, 2000.0)
    nine_empty = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert monitoring.psi(reference, top) == pytest.approx(
        nine_empty + (1 - 0.1) * math.log(1 / 0.1), rel=1e-6
    )
    assert [monitoring.psi_band(v) for v in (0.05, 0.1, 0.25, 0.26)] == [
        "stable",
        "moderate",
        "moderate",
        "significant",
    ]


def test_estimated_auc_matches_realised_auc_of_calibrated_scores():
    rng = np.random.default_rng(1)
    p = rng.beta(1.2, 6, 30_000)
    y = rng.random(len(p)) < p
    assert monitoring.estimated_auc(p) == pytest.approx(roc_auc_score(y, p), abs=0.01)
    # exact on a tiny case: pairs (0.9 pos-weight, 0.1 neg-weight) ...
    tiny = np.array([0.9, 0.1])
    expected = (0.9 * 0.9) / (0.9 * 0.9 + 0.1 * 0.1)
    assert monitoring.estimated_auc(tiny) == pytest.approx(expected)
    assert monitoring.estimated_auc(np.array([0.0, 0.0, 1.0])) == pytest.approx(1.0)
    assert monitoring.mean_confidence(np.array([0.1, 0.6])) == pytest.approx(0.75)


@pytest.fixture(scope="module")
def reference_2008(reference):
    """Training reference of a model fitted on 2008: a sample with scores, and the rest."""
    year = reference[reference["year"] == 2008]
    model = build_pipeline("logreg").fit(year.loc[:, list(INPUT_COLUMNS)], year["y"])
    sample = year.sample(4000, random_state=0)
    sample = sample.assign(score=model.predict_proba(sample.loc[:, list(INPUT_COLUMNS)])[:, 1])
    return model, sample, year.drop(index=sample.index)


def _drift(model, reference, current):
    scores = model.predict_proba(current.loc[:, list(INPUT_COLUMNS)])[:, 1]
    return monitoring.drift_report(current, scores, reference, cohort_id=7, model_version="v")


def test_2010_cohort_raises_drift_alerts_and_unshifted_one_does_not(reference, reference_2008):
    model, sample, rest = reference_2008
    limits = monitoring.AlertLimits()

    unshifted = _drift(model, sample, rest.sample(1500, random_state=1))
    assert unshifted.table.query("kind == 'customer'")["psi"].max() < 0.1
    assert monitoring.drift_alerts(unshifted, limits, "2008 sample") == []

    shifted = _drift(model, sample, reference[reference["year"] == 2010])
    alerts = monitoring.drift_alerts(shifted, limits, "2010")
    rules = {(a["rule"], a["subject"]) for a in alerts}
    assert {("input_drift", "poutcome"), ("input_drift", "pdays"), ("drift_share", "inputs")} <= (
        rules
    )
    assert ("context_range", "nr.employed") in rules and ("score_drift", "score") in rules
    assert all(a["scope"] == "cohort:7" for a in alerts)


def test_outcome_rules():
    limits = monitoring.AlertLimits(conversion_drop=0.25, auc_min=0.7, ece_max=0.1)
    week = pd.Series(
        {
            "cohort_id": 3,
            "week_label": "wk3",
            "trailing_conversion": 0.20,
            "conversion": 0.14,
            "auc": 0.62,
            "calibration_error": 0.15,
        }
    )
    rules = {a["rule"] for a in monitoring.outcome_alerts(week, limits)}
    assert rules == {"conversion_drop", "auc_low", "calibration"}
    fine = week.copy()
    fine[["conversion", "auc", "calibration_error"]] = [0.16, 0.8, 0.02]
    assert monitoring.outcome_alerts(fine, limits) == []


def test_limits_are_stored_and_checked(tmp_path):
    s = store.open_store(f"sqlite:///{tmp_path / 'ops.db'}")
    assert monitoring.load_limits(s) == monitoring.AlertLimits()
    changed = monitoring.update_limits({"auc_min": "0.7", "watched_inputs": "age, job"}, s)
    assert monitoring.load_limits(s) == changed
    assert changed.auc_min == 0.7 and changed.watched_inputs == ("age", "job")
    with pytest.raises(TermDepositError, match="no alert limit 'auc'"):
        monitoring.update_limits({"auc": "1"}, s)
    with pytest.raises(TermDepositError, match="Unknown watched inputs: month"):
        monitoring.update_limits({"watched_inputs": "month"}, s)
    assert monitoring.load_limits(s) == changed


def test_weekly_figures_expected_then_realised_and_the_cron_check(
    production_model, reference, tmp_path, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", url)
    s = store.open_store(url)
    from termdeposit.data.cohort_file import validate_cohort
    from termdeposit.modeling.predict import score_frame

    for week, label in ((38, "2009-05 wk1"), (110, "2010-10 wk1")):
        frame = validate_cohort(
            reference.loc[reference["week"] == week, ["customer_id", *INPUT_COLUMNS]].astype(str)
        ).frame
        scored = score_frame(production_model, frame)
        s.log_scoring(
            scored,
            file_sha256=sha(label),
            model_version=production_model.version,
            threshold=production_model.threshold,
            week_label=label,
        )
    before = monitoring.weekly_table(s)
    assert list(before["week_label"]) == ["2009-05 wk1", "2010-10 wk1"]
    assert not before["has_outcomes"].any() and "profit" not in before
    first = before.iloc[0]
    plan = monitoring.cohort_plan(s, 1)
    p = plan.members["probability"].to_numpy()
    called = plan.members["call"].to_numpy()
    assert first["expected_subscriptions"] == pytest.approx(p[called].sum())
    assert first["estimated_auc"] == pytest.approx(monitoring.estimated_auc(p))
    # the cohort's week-level error (its size) and the card's range percentiles
    error = card_error(production_model.card, len(p))
    planned = profit_range(p[called], error.sigma, default_settings(), error.levels)
    assert first["expected_profit_low"] == pytest.approx(planned.low)
    assert first["expected_profit_high"] == pytest.approx(planned.high)
    assert first["expected_profit_low"] < first["expected_profit"] < first["expected_profit_high"]

    calls = plan.members.loc[plan.members["call"], "customer_id"]
    record_feedback(outcomes_file(simulated_outcomes(calls, reference)), store=s)
    after = monitoring.weekly_table(s).iloc[0]
    truth = reference.set_index("customer_id").loc[calls, "y"]
    assert after["calls_made"] == len(calls) and after["subscribers"] == truth.sum()
    assert after["profit"] == pytest.approx(100 * truth.sum() - 5 * len(calls))
    inside = after["expected_profit_of_called_low"] <= after["profit"]
    inside &= after["profit"] <= after["expected_profit_of_called_high"]
    assert after["profit_within_range"] == inside
    assert after["auc"] == pytest.approx(
        roc_auc_score(truth, plan.members.set_index("customer_id").loc[calls, "probability"])
    )

    runner = CliRunner()
    checked = runner.invoke(app, ["monitor", "--check"])
    assert checked.exit_code == 1, checked.output
    assert "2010-10 wk1" in checked.output and "context" in checked.output
    printed = json.loads(runner.invoke(app, ["monitor", "--json"]).stdout)
    assert {"weekly", "drift", "alerts"} <= set(printed)
    assert printed["drift"]["cohort_id"] == 2 and len(printed["weekly"]) == 2
    active = s.alerts()
    assert len(active) == len(printed["alerts"]), "a second run refreshes, not duplicates"
    ack = ["monitor", "--check"] + [f"--acknowledge={i}" for i in active["id"]]
    assert runner.invoke(app, ack).exit_code == 0
