"""Retraining, the promotion gate, rollback, the audit log, recalibration and ingest."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest
from store_support import sha
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core.errors import CohortValidationError, TermDepositError
from termdeposit.core.schema import INPUT_COLUMNS
from termdeposit.data.cohort_file import validate_cohort
from termdeposit.insight.explain import underlying_pipeline
from termdeposit.modeling import registry
from termdeposit.modeling.metrics import expected_calibration_error
from termdeposit.modeling.predict import score_frame
from termdeposit.modeling.train import build_pipeline
from termdeposit.ops import retrain
from termdeposit.storage import store


@pytest.fixture()
def ops_store(tmp_path, monkeypatch) -> store.Store:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", url)
    return store.open_store(url)


def garbage_version(reference: pd.DataFrame, seed: int = 0) -> str:
    """An honest bad model: logistic regression fitted on 300 rows with shuffled labels."""
    rows = reference.sample(300, random_state=seed)
    labels = np.random.default_rng(seed).permutation(rows["y"].to_numpy())
    model = build_pipeline("logreg").fit(rows.loc[:, list(INPUT_COLUMNS)], labels)
    card = {
        "family": "logreg",
        "family_label": "Logistic Regression (shuffled labels)",
        "default_threshold": 0.05,
        "metrics": {},
    }
    return registry.save_model(model, card)


def test_score_maps():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.01, 0.3, 5000)
    y = (rng.random(5000) < np.clip(raw * 2.5, 0, 1)).astype(int)
    shifted = retrain.ScoreMap.fit("intercept", raw, y)
    assert shifted.slope == 1.0 and shifted(raw).mean() == pytest.approx(y.mean(), abs=1e-6)
    platt = retrain.ScoreMap.fit("platt", raw, y)
    assert expected_calibration_error(y, platt(raw)) < expected_calibration_error(y, raw) / 3
    iso = retrain.ScoreMap.fit("isotonic", raw, y)
    assert np.all(np.diff(iso(np.sort(raw))) >= 0)
    with pytest.raises(TermDepositError, match="both kinds"):
        retrain.ScoreMap.fit("platt", raw, np.zeros(5000))


def _log_weeks(s, model, reference, weeks):
    for week in weeks:
        frame = validate_cohort(
            reference.loc[reference["week"] == week, ["customer_id", *INPUT_COLUMNS]].astype(str)
        ).frame
        scored = score_frame(model, frame)
        log = s.log_scoring(
            scored,
            file_sha256=sha(f"week{week}"),
            model_version=model.version,
            threshold=model.threshold,
            week_label=f"week {week}",
        )
        truth = reference.loc[reference["week"] == week, ["customer_id", "y"]]
        s.record_outcomes(
            pd.DataFrame(
                {
                    "cohort_id": log.cohort_id,
                    "customer_id": truth["customer_id"],
                    "called": True,
                    "subscribed": truth["y"].astype(bool),
                }
            ),
            file_sha256=sha(f"outcomes{week}"),
            name=f"o{week}.csv",
        )


def test_recalibration_follows_the_base_rate(models_copy, ops_store, reference):
    production = registry.load_model()
    _log_weeks(ops_store, production, reference, [96, 97, 98, 99, 100])
    rows = ops_store.training_rows()
    raw = production.predict_proba(rows.loc[:, list(INPUT_COLUMNS)])
    assert raw.mean() < rows["y"].mean() - 0.1, "2010 outcomes: the old scale is far too low"

    result = retrain.recalibrate("platt", min_rows=300, store=ops_store)

    assert result.promoted and registry.production_version() == result.version
    assert result.check["how"] == "fitted without the latest cohort, judged on it"
    assert result.check["ece_after"] < result.check["ece_before"]
    loaded = registry.load_model()
    assert isinstance(loaded.pipeline, retrain.RecalibratedModel)
    mapped = loaded.predict_proba(rows.loc[:, list(INPUT_COLUMNS)])
    assert abs(mapped.mean() - rows["y"].mean()) < abs(raw.mean() - rows["y"].mean()) / 3
    inner, calibrated = underlying_pipeline(loaded.pipeline)
    assert calibrated and hasattr(inner, "named_steps")
    card = loaded.card["recalibration"]
    assert card["base_version"] == production.version
    assert card["rows"] == result.rows and 300 <= result.rows < len(rows)  # latest cohorts only
    assert loaded.reference()["score"].mean() > production.reference()["score"].mean()

    again = retrain.recalibrate(
        "intercept", min_rows=300, force=True, reason="test", store=ops_store
    )
    assert registry.load_model().card["recalibration"]["base_version"] == production.version
    assert again.base_version == result.version
    actions = retrain.audit_table(ops_store)["action"].tolist()
    assert actions.count("recalibrate") == 2


def test_gate_promotes_better_refuses_worse_and_rollback_restores(
    models_copy, ops_store, reference
):
    weak = garbage_version(reference)
    retrain.promote(weak, "a weak champion for the test", ops_store)

    better = retrain.retrain(
        "quick", ("logreg",), recent_weeks=4, min_rows=600, store=ops_store, reference=reference
    )
    assert better.promoted and not better.forced
    challenger = better.comparison.challenger
    assert registry.production_version() == challenger
    assert better.comparison.challenger_metrics["auc"] > better.comparison.champion_metrics["auc"]
    card = registry.read_card(challenger)
    assert card["fitted_on"]["rows"] == len(reference), "refitted on every row"
    retraining = card["retraining"]
    assert "rolling origin" in retraining["rule"] and len(retraining["origins"]) == 3
    assert retraining["champion"] == weak
    assert "as is" in retraining["champion_judged_by"], "the weak champion's card has no config"
    assert all(o["fitted_rows"] < len(reference) for o in retraining["origins"])
    assert better.comparison.rows == sum(o["rows"] for o in retraining["origins"])

    data = retrain.training_data(ops_store, reference, 4, 600)
    worse = garbage_version(reference, seed=1)
    refused = retrain.decide(retrain.compare(worse, data), store=ops_store)
    assert not refused.promoted and registry.production_version() == challenger
    with pytest.raises(TermDepositError, match="needs a reason"):
        retrain.decide(retrain.compare(worse, data), force=True, store=ops_store)
    time.sleep(1.1)  # the audit log keeps whole seconds
    before_force = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    forced = retrain.decide(
        retrain.compare(worse, data), force=True, reason="drill", store=ops_store
    )
    assert forced.promoted and forced.forced and registry.production_version() == worse

    retrain.rollback("drill over", ops_store)
    assert registry.production_version() == challenger

    audit = retrain.audit_table(ops_store)
    assert audit["action"].tolist()[-4:] == ["promote", "refused", "promote", "rollback"]
    assert "forced" in audit.iloc[-2]["reason"] and audit.iloc[-3]["version"] == worse
    entry = retrain.production_at(before_force, ops_store)
    assert entry["version"] == challenger and entry["action"] == "promote"


def test_ingest_is_all_or_nothing_and_feeds_training(ops_store, reference, tmp_path):
    week = reference.loc[reference["week"] == 60, ["customer_id", *INPUT_COLUMNS, "y"]].copy()
    week["y"] = week["y"].map({1: "yes", 0: "no"})
    data = week.to_csv(index=False).encode()
    result = retrain.ingest(data, "drop60.csv", "2009-09 wk5", store=ops_store)
    assert result.new_cohort and result.added == result.rows == len(week)
    assert retrain.ingest(data, "drop60.csv", store=ops_store).added == 0
    assert len(ops_store.training_rows()) == len(week)

    broken = week.copy()
    broken.loc[broken.index[3], "y"] = ""
    with pytest.raises(CohortValidationError, match="needs its outcome"):
        retrain.ingest(broken.to_csv(index=False).encode(), "broken.csv", store=ops_store)
    assert len(ops_store.cohorts()) == 1

    window = retrain.training_data(ops_store, reference, recent_weeks=1, min_rows=10)
    assert window.outcome_rows == len(week) and len(window.window) == len(week)
    assert "cohorts with outcomes" in window.window_label


def test_cli_refuses_force_without_reason(ops_store):
    runner = CliRunner()
    refused = runner.invoke(app, ["retrain", "--force"])
    assert refused.exit_code == 2 and "needs a reason" in refused.output


def test_retrain_on_outcomes_that_reverse_a_pattern_learns_it(models_copy, ops_store, reference):
    """Customers whose previous campaign succeeded subscribe about two times in three in the
    reference data. Data drops where they mostly did not must move the challenger: it is fitted
    on the recorded outcomes (the learning loop), and judged at rolling origins."""
    champion = registry.load_model()
    success = reference[reference["poutcome"] == "success"]
    for copy in range(3):
        drop = success.loc[:, ["customer_id", *INPUT_COLUMNS]].copy()
        drop["customer_id"] = [f"drop{copy}-{i}" for i in range(len(drop))]
        drop["y"] = np.where(success["y"].to_numpy() == 1, "no", "yes")  # the pattern reversed
        retrain.ingest(drop.to_csv(index=False).encode(), f"drop{copy}.csv", store=ops_store)

    decision = retrain.retrain(
        "quick", ("logreg",), recent_weeks=1, min_rows=600, store=ops_store, reference=reference
    )
    challenger = registry.load_model(decision.comparison.challenger)
    card = challenger.card
    assert card["fitted_on"]["rows"] == len(reference) + 3 * len(success)
    assert card["fitted_on"]["sources"]["data_drops_and_recorded_outcomes"] == 3 * len(success)
    assert list(card["fitted_on"]["rows_by_week"])[-3:] == ["cohort 1", "cohort 2", "cohort 3"]
    assert card["base_rate"]["weeks"] == 119 + 3
    inputs = success.loc[:, list(INPUT_COLUMNS)]
    before = champion.predict_proba(inputs).mean()
    after = challenger.predict_proba(inputs).mean()
    assert after < before - 0.1, (before, after)
    others = reference[reference["poutcome"] != "success"].sample(2000, random_state=0)
    moved = challenger.predict_proba(others.loc[:, list(INPUT_COLUMNS)]).mean()
    assert abs(moved - champion.predict_proba(others.loc[:, list(INPUT_COLUMNS)]).mean()) < 0.05
    assert [o["weeks"] for o in card["retraining"]["origins"]] == [
        "cohort 1 to cohort 1",
        "cohort 2 to cohort 2",
        "cohort 3 to cohort 3",
    ]
