"""The command line end to end: every command a user types, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core.schema import INPUT_COLUMNS

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_weeks_lists_119_weeks():
    result = _run("weeks", "--json")
    assert result.exit_code == 0
    weeks = json.loads(result.stdout)
    assert len(weeks) == 119 and sum(w["rows"] for w in weeks) == 41188


def test_make_cohort_then_score(tmp_path, trained_version):
    cohort = tmp_path / "cohort.csv"
    result = _run("make-cohort", "--week", "39", "--out", str(cohort))
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(cohort, dtype={"customer_id": str})
    assert len(frame) == 2864 and "y" not in frame and "duration" not in frame

    out = tmp_path / "calls.csv"
    result = _run("score", str(cohort), "--out", str(out), "--top", "100")
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out, dtype={"customer_id": str})
    assert scored["customer_id"].tolist() == frame["customer_id"].tolist()
    assert (scored["decision"] == "call").sum() == 100
    top = scored.sort_values("rank").head(100)
    assert top["decision"].eq("call").all()
    assert "100 to call" in result.stdout
    # the forecast: the week's rate, the calls' expected profit with its range, the advice
    from termdeposit.core.config import default_settings
    from termdeposit.modeling import registry
    from termdeposit.modeling.predict import DECISION_YES
    from termdeposit.services.forecasts import cohort_outlook

    model = registry.load_model(trained_version)
    outlook = cohort_outlook(
        model,
        scored["probability"].to_numpy(),
        default_settings(),
        called=(scored["decision"] == DECISION_YES).to_numpy(),
        frame=frame,
    )
    assert outlook.calls == 100 and outlook.chosen.low < outlook.chosen.high
    for line in outlook.lines():
        assert line in result.stdout
    assert "forecast at" in result.stdout and "80% range" in result.stdout
    assert "Recommendation: " in result.stdout


def test_score_with_threshold_and_bad_file(tmp_path, trained_version):
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,age\n1,abc\n")
    result = runner.invoke(app, ["score", str(bad), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert "missing column" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.csv").exists()
    result = runner.invoke(app, ["score", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "no file" in result.output


def test_evaluate_json_matches_the_card(trained_version):
    result = _run("evaluate", "--json")
    assert result.exit_code == 0
    figures = json.loads(result.stdout)
    for key in (
        "version",
        "auc_random",
        "auc_time",
        "ap_random",
        "ap_time",
        "brier_random",
        "ece_random",
        "lift_top10",
    ):
        assert key in figures
    from termdeposit.modeling import registry

    card = registry.read_card(trained_version)
    assert figures["auc_time"] == pytest.approx(card["metrics"]["time"]["auc"], abs=1e-4)
    assert figures["auc_random"] == pytest.approx(card["metrics"]["random"]["auc"], abs=2e-3)


def test_models_commands(models_copy, trained_version):
    result = _run("models", "list", "--json")
    rows = json.loads(result.stdout)
    assert rows[0]["version"] == trained_version and rows[0]["production"]
    result = runner.invoke(app, ["models", "promote", "../../etc"])
    assert result.exit_code == 2 and "not a model version" in result.output
    result = runner.invoke(app, ["models", "rollback"])
    assert result.exit_code == 2 and "no earlier" in result.output
    show = _run("models", "show")
    assert json.loads(show.stdout)["version"] == trained_version


def test_console_script_exits_non_zero_without_traceback(tmp_path):
    env = {**os.environ, "TERMDEPOSIT_MODELS": str(tmp_path / "empty")}
    bad = tmp_path / "x.csv"
    bad.write_bytes(b"\x00\x01garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "termdeposit.apps.cli", "score", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no production model" in proc.stderr.lower() and "Traceback" not in proc.stderr


def test_fetch_data_when_present_verifies(tmp_path):
    result = _run("fetch-data")
    assert result.exit_code == 0 and "verified" in result.stdout


def _drop(reference, week: int) -> bytes:
    rows = reference.loc[reference["week"] == week, ["customer_id", *INPUT_COLUMNS, "y"]].copy()
    rows["y"] = rows["y"].map({1: "yes", 0: "no"})
    return rows.to_csv(index=False).encode()


def test_ingest_tells_the_week_from_the_rows_never_from_today(tmp_path, monkeypatch, reference):
    from termdeposit.storage import store

    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", url)
    first = tmp_path / "drop56.csv"  # week 56: September 2009, no year anywhere
    first.write_bytes(_drop(reference, 56))
    refused = runner.invoke(app, ["ingest", str(first)])
    assert refused.exit_code == 2
    assert "cannot be told from its rows" in refused.output and "--week-label" in refused.output
    assert store.open_store(url).cohorts().empty, "nothing stored under today's week"

    named = tmp_path / "drop_2009-09.csv"
    named.write_bytes(_drop(reference, 56))
    done = _run("ingest", str(named))
    assert done.exit_code == 0
    assert "week 2009-09 wk1 (from the rows' calendar and the year in the file name)" in (
        done.output
    )
    later = tmp_path / "drop57.csv"  # the next week: the calendar continues
    later.write_bytes(_drop(reference, 57))
    assert "week 2009-09 wk2 (from the rows' calendar and the calendar continued from week " in (
        _run("ingest", str(later)).output
    )
    new_year = tmp_path / "drop85.csv"  # May 2010: the month index drops by more than 6
    new_year.write_bytes(_drop(reference, 85))
    assert "week 2010-05 wk1" in _run("ingest", str(new_year)).output
    given = tmp_path / "drop90.csv"
    given.write_bytes(_drop(reference, 90))
    assert (
        "week 2010-06 wk9 (given)"
        in _run("ingest", str(given), "--week-label", "2010-06 wk9").output
    )
    labels = store.open_store(url).cohorts()["week_label"].tolist()
    assert labels[:2] == ["2009-09 wk1", "2009-09 wk2"] and labels[-1] == "2010-06 wk9"


def test_monitor_refuses_an_auc_limit_of_3_in_words(tmp_path, monkeypatch):
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", f"sqlite:///{tmp_path / 'ops.db'}")
    result = runner.invoke(app, ["monitor", "--set", "auc_min=3"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "auc_min cannot be 3: it is an AUC, between 0.5 (no better than chance) and 1" in (
        result.output
    )
    fine = runner.invoke(app, ["monitor", "--set", "auc_min=0.7"])
    assert fine.exit_code == 0 and '"auc_min": 0.7' in fine.output
