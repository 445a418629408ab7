"""Monitoring: PSI, estimated AUC, periods, drift that ignores the economy, alert episodes with
minimum sizes, limits in words, weekly figures and the cron check."""

from __future__ import annotations

import datetime as dt
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
from termdeposit.core.labels import feature_label
from termdeposit.core.schema import INPUT_COLUMNS
from termdeposit.decisions.forecast import card_error, profit_range
from termdeposit.modeling.metrics import expected_calibration_error
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


def test_psi_beyond_chance_removes_what_small_samples_give_alone():
    rng = np.random.default_rng(0)
    population = rng.normal(size=200_000)
    reference = population[:5000]
    small = [monitoring.psi(reference, rng.choice(population, 30)) for _ in range(200)]
    assert np.mean(small) > 0.25, "30 rows from the same population look 'significant'"
    assert monitoring.chance_psi(30, 5000, 10) == pytest.approx(9 * (1 / 30 + 1 / 5000))
    corrected = [
        monitoring.psi_beyond_chance(reference, rng.choice(population, 30)) for _ in range(200)
    ]
    assert np.mean(corrected) < 0.1
    moved = monitoring.psi_beyond_chance(reference, rng.normal(1.0, 1.0, 2000))
    assert moved > 0.5, "a real shift stays"


def test_estimated_auc_matches_realised_auc_of_calibrated_scores():
    rng = np.random.default_rng(1)
    p = rng.beta(1.2, 6, 30_000)
    y = rng.random(len(p)) < p
    assert monitoring.estimated_auc(p) == pytest.approx(roc_auc_score(y, p), abs=0.01)
    tiny = np.array([0.9, 0.1])
    expected = (0.9 * 0.9) / (0.9 * 0.9 + 0.1 * 0.1)
    assert monitoring.estimated_auc(tiny) == pytest.approx(expected)
    assert monitoring.estimated_auc(np.array([0.0, 0.0, 1.0])) == pytest.approx(1.0)
    assert monitoring.mean_confidence(np.array([0.1, 0.6])) == pytest.approx(0.75)


def test_auc_within_weeks_its_error_and_the_calibration_chance_level():
    rng = np.random.default_rng(2)
    scores = rng.random(4000)
    y = rng.random(4000) < scores
    weeks = np.repeat([1, 2], 2000)
    pooled, positives, negatives = monitoring.within_period_auc(y, scores, weeks)
    by_week = [roc_auc_score(y[weeks == w], scores[weeks == w]) for w in (1, 2)]
    assert min(by_week) <= pooled <= max(by_week)
    assert (positives, negatives) == (int(y.sum()), int((~y).sum()))
    # a second week whose scores are all higher but ranked at random: across-week pairs would
    # make the pooled AUC look better than it is; within-week pairs do not
    shifted = np.r_[scores[:2000], scores[2000:] + 1.0]
    mixed = np.r_[y[:2000], rng.random(2000) < 0.9]
    within, _, _ = monitoring.within_period_auc(mixed, shifted, weeks)
    assert within < roc_auc_score(mixed, shifted)
    se = monitoring.auc_standard_error(0.75, 50, 450)
    assert 0.03 < se < 0.05
    assert monitoring.auc_standard_error(0.75, 500, 4500) < se / 2
    calibrated = rng.random(200)
    chance = monitoring.chance_calibration_error(calibrated)
    observed = [
        expected_calibration_error(rng.random(200) < calibrated, calibrated) for _ in range(300)
    ]
    assert np.mean(observed) == pytest.approx(chance, rel=0.35)


# -- drift on the reference data ------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_2008(reference):
    """Training reference of a model fitted on 2008: a sample with scores, and the rest."""
    year = reference[reference["year"] == 2008]
    model = build_pipeline("logreg").fit(year.loc[:, list(INPUT_COLUMNS)], year["y"])
    sample = year.sample(4000, random_state=0)
    sample = sample.assign(score=model.predict_proba(sample.loc[:, list(INPUT_COLUMNS)])[:, 1])
    return model, sample, year.drop(index=sample.index)


def _scored(model, rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(probability=model.predict_proba(rows.loc[:, list(INPUT_COLUMNS)])[:, 1])


def test_2010_customers_drift_and_an_unshifted_sample_does_not(reference, reference_2008):
    model, sample, rest = reference_2008
    limits = monitoring.AlertLimits()
    unshifted = monitoring.drift_report(_scored(model, rest.sample(1500, random_state=1)), sample)
    assert unshifted.judged
    assert unshifted.table.query("kind == 'customer'")["psi_beyond_chance"].max() < 0.1
    assert not any(c.crossed for c in monitoring.drift_checks(unshifted, 0, limits))

    shifted = monitoring.drift_report(
        _scored(model, reference[reference["year"] == 2010]), sample, label="2010"
    )
    checks = {(c.rule, c.subject): c for c in monitoring.drift_checks(shifted, 0, limits)}
    for name in ("poutcome", "pdays"):
        assert checks[("input_drift", name)].crossed
    assert checks[("input_drift", "share of inputs")].crossed
    economy = checks[("economy", "economy")]
    assert economy.crossed and economy.severity == "info"
    assert feature_label("nr.employed") in economy.message and "the model saw" in economy.message


def test_the_economy_moving_every_score_is_not_score_drift(reference, reference_2008):
    """The same customers in a week whose economy moved: every score moves together, so the
    scores' level shifts (raw PSI) but their spread does not: no score drift."""
    model, sample, rest = reference_2008
    week = rest.sample(1500, random_state=3).copy()
    for column, value in (("nr.employed", 5017.5), ("euribor3m", 1.2), ("emp.var.rate", -1.8)):
        week[column] = value
    report = monitoring.drift_report(_scored(model, week), sample, label="economy moved")
    raw = monitoring.psi(sample["score"], _scored(model, week)["probability"])
    assert raw > 0.25, "the old score PSI would have fired"
    assert report.score_psi < monitoring.PSI_MODERATE
    assert abs(report.score_level) > 0.3, "the level shift is reported (information)"
    rules = {
        c.rule for c in monitoring.drift_checks(report, 0, monitoring.AlertLimits()) if c.crossed
    }
    assert rules == {"economy"}


def _period(key: str, frame: pd.DataFrame, version: str = "v", outcomes: bool = False):
    called = np.where(outcomes, 1.0, np.nan) * np.ones(len(frame))
    subscribed = frame["y"].astype(float).to_numpy() if outcomes else called
    data = frame.assign(
        cohort_id=int(key.split(":")[1]),
        group="model",
        call=True,
        called=called,
        subscribed=subscribed,
    ).reset_index(drop=True)
    return monitoring.Period(key, key, [int(key.split(":")[1])], data, version)


def test_minimum_size_pooling_and_one_alert_per_episode(reference, reference_2008):
    model, sample, rest = reference_2008
    limits = monitoring.AlertLimits()
    references = {"v": sample}.__getitem__
    calm = [
        _period(f"cohort:{i}", _scored(model, rest.sample(400, random_state=i))) for i in range(3)
    ]
    late = reference[reference["year"] == 2010]
    tiny = _period("cohort:10", _scored(model, late.sample(40, random_state=0)))
    # 40 very different customers alone: pooled with the calm weeks, no alert
    assessment = monitoring.assess([*calm, tiny], references, limits)
    report = assessment.drift[-1]
    assert report.weeks == 2 and report.rows == 440 and report.judged
    assert not [d for d in assessment.alerts() if d["rule"] == "input_drift"]
    # the same shift on enough rows, lasting three weeks: one alert, refreshed
    shifted = [
        _period(f"cohort:{20 + i}", _scored(model, late.sample(300, random_state=i)))
        for i in range(3)
    ]
    assessment = monitoring.assess([*calm, *shifted], references, limits)
    drift = [d for d in assessment.alerts() if d["rule"] == "input_drift"]
    assert len(drift) == 1 and drift[0]["open"] and drift[0]["scope"] == "since cohort:20"
    assert f"{feature_label('poutcome')} (PSI" in drift[0]["message"]
    assert "steady" in drift[0]["message"]
    assert drift[0]["message"].startswith("cohort:22: "), "refreshed with the latest week"
    assert "(since cohort:20)" in drift[0]["message"], "the episode says when it started"
    # back to normal: the episode ends; a later shift is a new alert
    back = [
        _period(f"cohort:{30 + i}", _scored(model, rest.sample(600, random_state=40 + i)))
        for i in range(2)
    ]
    again = _period("cohort:40", _scored(model, late.sample(600, random_state=9, replace=True)))
    assessment = monitoring.assess([*calm, *shifted, *back, again], references, limits)
    drift = [d for d in assessment.alerts() if d["rule"] == "input_drift"]
    assert [d["open"] for d in drift] == [False, True]
    assert drift[1]["scope"] == "since cohort:40"
    # causality: a longer history does not change the earlier weeks' drift checks
    shorter = monitoring.assess([*calm, *shifted], references, limits)
    longer = assessment.table()
    head = longer[longer["index"] < len(calm) + len(shifted)]
    head = head[head["rule"].isin(["input_drift", "score_drift"])].reset_index(drop=True)
    short = shorter.table()
    short = short[short["rule"].isin(["input_drift", "score_drift"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(head.drop(columns="breach"), short.drop(columns="breach"))


def test_outcome_rules_need_enough_outcomes_and_a_clear_fall(reference, reference_2008):
    model, sample, rest = reference_2008
    limits = monitoring.AlertLimits(auc_min=0.7, min_outcomes=100)
    references = {"v": sample}.__getitem__
    good = rest.sample(1500, random_state=5)
    rng = np.random.default_rng(5)
    good = good.assign(  # scores that rank well: the outcome plus noise
        probability=np.clip(0.05 + 0.3 * good["y"] + rng.normal(0, 0.1, len(good)), 0.01, 0.99)
    )
    assert roc_auc_score(good["y"], good["probability"]) > 0.9
    noise = good.copy()
    noise["probability"] = np.random.default_rng(0).permutation(noise["probability"].to_numpy())
    # 60 outcomes of a model that ranks at random: too few to judge
    few = _period("cohort:2", noise.head(60), outcomes=True)
    checks = monitoring.assess([_period("cohort:1", good, outcomes=True), few], references, limits)
    auc = [c for c in checks.checks if c.rule == "auc_drop" and c.period == "cohort:2"][0]
    assert auc.window_start == 0, "pooled with the week before to reach 100 outcomes"
    assert not any(d["rule"] == "auc_drop" for d in checks.alerts())
    # 1,500 outcomes ranked at random: the AUC clearly fell, one critical alert
    weeks = [_period("cohort:1", good, outcomes=True), _period("cohort:2", noise, outcomes=True)]
    alerts = monitoring.assess(weeks, references, limits).alerts()
    auc_alerts = [d for d in alerts if d["rule"] == "auc_drop"]
    assert len(auc_alerts) == 1 and auc_alerts[0]["severity"] == "critical"
    assert "95% interval" in auc_alerts[0]["message"] and auc_alerts[0]["value"] < 0.6
    # conversion: a week whose subscribers vanish, against the trailing weeks
    dry = good.assign(y=0)
    dry.loc[dry.index[:20], "y"] = 1
    weeks = [
        _period("cohort:1", good, outcomes=True),
        _period("cohort:2", dry, outcomes=True),
    ]
    rules = {d["rule"] for d in monitoring.assess(weeks, references, limits).alerts()}
    assert "conversion_drop" in rules


def test_limits_are_stored_and_checked_in_words(tmp_path):
    s = store.open_store(f"sqlite:///{tmp_path / 'ops.db'}")
    assert monitoring.load_limits(s) == monitoring.AlertLimits()
    changed = monitoring.update_limits(
        {"auc_min": "0.7", "watched_inputs": "age, job", "min_rows": "300"}, s
    )
    assert monitoring.load_limits(s) == changed
    assert changed.auc_min == 0.7 and changed.watched_inputs == ("age", "job")
    assert changed.min_rows == 300 and isinstance(changed.min_rows, int)
    with pytest.raises(TermDepositError, match="no alert limit 'auc'"):
        monitoring.update_limits({"auc": "1"}, s)
    with pytest.raises(TermDepositError, match="Unknown watched inputs: month"):
        monitoring.update_limits({"watched_inputs": "month"}, s)
    with pytest.raises(TermDepositError, match=r"auc_min cannot be 3: it is an AUC, between 0.5"):
        monitoring.update_limits({"auc_min": "3"}, s)
    with pytest.raises(TermDepositError, match="drifted_share cannot be 30: it is a share"):
        monitoring.update_limits({"drifted_share": "30"}, s)
    with pytest.raises(TermDepositError, match="min_rows cannot be 12.5"):
        monitoring.update_limits({"min_rows": "12.5"}, s)
    with pytest.raises(TermDepositError, match="must be a number"):
        monitoring.update_limits({"ece_max": "ten percent"}, s)
    assert monitoring.load_limits(s) == changed, "a refused change changes nothing"


def test_cli_refuses_an_auc_limit_of_3(tmp_path, monkeypatch):
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", f"sqlite:///{tmp_path / 'ops.db'}")
    result = CliRunner().invoke(app, ["monitor", "--set", "auc_min=3"])
    assert result.exit_code == 2
    assert "auc_min cannot be 3" in result.output and "between 0.5" in result.output
    assert "Traceback" not in result.output


def _log_week(s, production_model, reference, week: int, label: str, source: str = "cli"):
    from termdeposit.data.cohort_file import validate_cohort
    from termdeposit.modeling.predict import score_frame

    frame = validate_cohort(
        reference.loc[reference["week"] == week, ["customer_id", *INPUT_COLUMNS]].astype(str)
    ).frame
    return s.log_scoring(
        score_frame(production_model, frame),
        file_sha256=sha(label),
        model_version=production_model.version,
        threshold=production_model.threshold,
        week_label=label,
        source=source,
    )


def test_api_records_roll_into_one_weekly_period(production_model, reference, tmp_path):
    s = store.open_store(f"sqlite:///{tmp_path / 'ops.db'}")
    week = reference[reference["week"] == 39]
    from termdeposit.data.cohort_file import validate_cohort
    from termdeposit.modeling.predict import score_frame

    for i in range(5):  # five /predict requests of a few records each
        rows = week.iloc[i * 3 : i * 3 + 3].loc[:, ["customer_id", *INPUT_COLUMNS]].astype(str)
        s.log_scoring(
            score_frame(production_model, validate_cohort(rows).frame),
            file_sha256=sha(f"api {i}"),
            model_version=production_model.version,
            threshold=0.05,
            name="API requests",
            source="api",
        )
    periods = monitoring.load_periods(s)
    iso = dt.datetime.now(dt.UTC).isocalendar()
    assert len(periods) == 1 and periods[0].rows == 15 and len(periods[0].cohort_ids) == 5
    assert periods[0].key == f"api:{iso.year}-W{iso.week:02d}"
    table = monitoring.weekly_table(s)
    assert len(table) == 1 and table.iloc[0]["customers"] == 15
    result = monitoring.run_monitor(s)
    assert result.drift is not None and not result.drift.judged, "15 records: too few to judge"
    assert result.active.empty


def test_weekly_figures_expected_then_realised_and_the_cron_check(
    production_model, reference, tmp_path, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", url)
    s = store.open_store(url)
    for week, label in ((38, "2009-05 wk1"), (110, "2010-10 wk1")):
        _log_week(s, production_model, reference, week, label)
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
    first_run = monitoring.run_monitor(s)
    info = first_run.information
    assert len(info) and (info["rule"] == "economy").all(), "the 2010 economy is information"
    printed = json.loads(runner.invoke(app, ["monitor", "--json"]).stdout)
    assert {"weekly", "drift", "alerts"} <= set(printed)
    assert printed["drift"]["cohort_id"] == 2 and len(printed["weekly"]) == 2
    assert printed["drift"]["weeks"] == 2, "7 customers of 2010-10 pooled with the week before"
    stored = s.alerts(active_only=False)
    assert len(stored) == len(first_run.alerts), "a second run refreshes, not duplicates"
    checked = runner.invoke(app, ["monitor", "--check"])
    active = first_run.active
    assert checked.exception is None or isinstance(checked.exception, SystemExit)
    assert checked.exit_code == (1 if len(active) else 0), checked.output
    assert "economy moved outside what the model saw" in checked.output
    ack = ["monitor", "--check"] + [f"--acknowledge={i}" for i in active["id"]]
    assert runner.invoke(app, ack).exit_code == 0
