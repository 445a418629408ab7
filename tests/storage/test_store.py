"""The operations store on SQLite and on a real PostgreSQL server.

PostgreSQL tests carry the ``postgres`` marker and read ``TERMDEPOSIT_TEST_PG_URL``
(``scripts/start_test_postgres.sh`` starts a server and prints it); when the marker is selected
and the URL is missing they fail, never skip. Each PostgreSQL test works in its own schema.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from store_support import scored_week, sha
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS
from termdeposit.data.dataset import make_cohort
from termdeposit.storage import store


def test_same_file_is_one_cohort_and_inputs_round_trip(db_url, reference):
    s = store.open_store(db_url)
    scored = scored_week(reference, 40)
    first = s.log_scoring(scored, file_sha256=sha("w40"), model_version="v1", threshold=0.5)
    again = s.log_scoring(scored, file_sha256=sha("w40"), model_version="v1", threshold=0.5)
    other_rule = s.log_scoring(scored, file_sha256=sha("w40"), model_version="v1", threshold=0.2)

    assert first.new_cohort and first.new_scoring and first.rows == len(scored)
    assert again.cohort_id == first.cohort_id and not again.new_cohort and not again.new_scoring
    assert other_rule.cohort_id == first.cohort_id and other_rule.new_scoring
    assert len(s.cohorts()) == 1 and int(s.cohorts().iloc[0]["rows"]) == len(scored)
    assert len(s.scoring_runs(first.cohort_id)) == 2
    logged = s.predictions(first.scoring_id).set_index("customer_id")
    assert len(logged) == len(scored)
    expected = scored.set_index(ID_COLUMN)
    np.testing.assert_allclose(logged.loc[expected.index, "probability"], expected["probability"])
    assert (logged.loc[expected.index, "decision"] == (expected["probability"] >= 0.5)).all()
    back = s.cohort_inputs(first.cohort_id)
    pd.testing.assert_frame_equal(
        back.loc[:, list(INPUT_COLUMNS)].reset_index(drop=True),
        scored.loc[:, list(INPUT_COLUMNS)].reset_index(drop=True),
        check_dtype=False,
    )


def test_failed_write_leaves_nothing(db_url, reference):
    """A duplicate id in the second chunk of a file aborts the whole log, cohort included."""
    s = store.open_store(db_url)
    scored = scored_week(reference, 40)
    chunks = [scored.iloc[:300], pd.concat([scored.iloc[300:], scored.iloc[:1]])]
    with pytest.raises(TermDepositError, match="more than once"):
        s.log_scoring(iter(chunks), file_sha256=sha("dup"), model_version="v1", threshold=0.5)
    assert s.cohorts().empty
    assert s.read(sa.select(sa.func.count()).select_from(store.predictions)).iloc[0, 0] == 0
    with pytest.raises(TermDepositError, match="lacks columns"):
        s.log_scoring(
            scored.drop(columns=["age"]), file_sha256=sha("x"), model_version="v1", threshold=0.5
        )
    assert s.cohorts().empty


def test_alerts_settings_and_promotions(db_url):
    s = store.open_store(db_url)
    draft = {
        "rule": "input_drift",
        "scope": "cohort:1",
        "subject": "age",
        "message": "m1",
        "value": 0.3,
        "limit": 0.25,
    }
    first = s.record_alerts([draft])
    second = s.record_alerts([{**draft, "message": "m2", "value": 0.4}])
    assert first.iloc[0]["id"] == second.iloc[0]["id"]
    assert len(s.alerts()) == 1 and s.alerts().iloc[0]["message"] == "m2"
    s.acknowledge_alert(int(first.iloc[0]["id"]), user="ops")
    assert s.alerts().empty and s.alerts(active_only=False).iloc[0]["acknowledged_by"] == "ops"
    with pytest.raises(TermDepositError, match="no alert"):
        s.acknowledge_alert(999)

    s.set_setting("alert_limits", {"auc_min": 0.7})
    s.set_setting("alert_limits", {"auc_min": 0.8})
    assert s.get_setting("alert_limits") == {"auc_min": 0.8}
    assert s.get_setting("missing", "default") == "default"

    when = "2026-05-01T10:00:00+00:00"
    for _ in range(2):
        s.record_promotion(
            action="promote",
            version="v20260501-100000",
            previous=None,
            reason="first",
            user="ana",
            at=when,
        )
    table = s.promotions()
    assert len(table) == 1 and table.iloc[0]["user"] == "ana"


def test_unreachable_database_gives_a_clear_error():
    url = "postgresql+psycopg://app:secret@127.0.0.1:9/termdeposit"
    with pytest.raises(store.StoreUnavailableError) as caught:
        store.open_store(url)
    message = str(caught.value)
    assert "could not be used" in message and "--no-log" in message
    assert "secret" not in message and "***" in message
    with pytest.raises(store.StoreUnavailableError, match="not a database URL"):
        store.open_store("nonsense")


def test_cli_score_logs_and_refuses_silently_skipping(
    production_model, reference, tmp_path, monkeypatch
):
    cohort = tmp_path / "week41.csv"
    week = make_cohort(reference, 41)
    week.to_csv(cohort, index=False)
    out = tmp_path / "scored.csv"
    runner = CliRunner()

    monkeypatch.setenv("TERMDEPOSIT_DB_URL", "postgresql+psycopg://app:x@127.0.0.1:9/nothing")
    down = runner.invoke(app, ["score", str(cohort), "--out", str(out)])
    assert down.exit_code == 2 and "could not be used" in down.output
    assert not out.exists()
    chosen = runner.invoke(app, ["score", str(cohort), "--out", str(out), "--no-log"])
    assert chosen.exit_code == 0, chosen.output
    assert out.exists() and "NOT logged" in chosen.output

    db = tmp_path / "log.db"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", f"sqlite:///{db}")
    logged = runner.invoke(app, ["score", str(cohort), "--out", str(out), "--week-label", "wk41"])
    assert logged.exit_code == 0, logged.output
    s = store.open_store(f"sqlite:///{db}")
    cohorts = s.cohorts()
    assert list(cohorts["week_label"]) == ["wk41"] and cohorts.iloc[0]["rows"] == len(week)
    run = s.scoring_runs().iloc[0]
    assert run["model_version"] == production_model.version
    assert run["threshold"] == pytest.approx(production_model.threshold)
    written = pd.read_csv(out)
    logged_scores = s.predictions(int(run["id"])).set_index("customer_id")
    np.testing.assert_allclose(
        logged_scores.loc[written[ID_COLUMN], "probability"], written["probability"], rtol=1e-9
    )
    again = runner.invoke(app, ["score", str(cohort), "--out", str(out)])
    assert "scored before" in again.output and len(s.cohorts()) == 1
