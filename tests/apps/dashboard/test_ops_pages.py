"""The operations pages (Outcomes, Monitoring, Backtest) and their hooks in the other pages.

Each test uses its own database; figures on the pages are compared with the library.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from app_support import HOME, PROJECT_ROOT
from app_support import metric as _metric
from app_support import run as _run
from streamlit.testing.v1 import AppTest

from termdeposit.decisions import abtest
from termdeposit.decisions.economics import format_money
from termdeposit.ops import monitoring
from termdeposit.ops.backtest import BacktestConfig, run_backtest
from termdeposit.services.outcomes import outcomes_file, simulated_outcomes

SCORE = "pages/1_Score_cohort.py"
CALL_LIST = "pages/3_Call_list.py"
MODELS = "pages/4_Models.py"
OUTCOMES = "pages/7_Outcomes.py"
MONITORING = "pages/8_Monitoring.py"
BACKTEST = "pages/9_Backtest.py"
TIMEOUT = 240


@pytest.fixture()
def scored_demo(ops_db) -> AppTest:
    """A session that scored the demo week 39 on the Score cohort page (and so logged it)."""
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    at.switch_page(SCORE)
    at.session_state["score_source"] = "Use a demo week"
    _run(at)
    at.button(key="score_demo").click()
    return _run(at)


def test_app_scoring_is_logged_and_the_call_list_draws_a_holdout(scored_demo, ops_db):
    cohorts = ops_db.cohorts()
    assert list(cohorts["week_label"]) == ["2009-05 wk2"] and cohorts.iloc[0]["rows"] == 2864
    run = ops_db.scoring_runs().iloc[0]
    assert run["source"] == "app" and len(ops_db.predictions(int(run["id"]))) == 2864

    scored_demo.switch_page(CALL_LIST)
    _run(scored_demo)
    scored_demo.number_input(key="ab_share").set_value(10.0)
    scored_demo.text_input(key="ab_seed").input("11")
    _run(scored_demo)
    scored_demo.button(key="ab_issue").click()
    _run(scored_demo)
    assert any(
        "recorded for monitoring with its A/B hold-out group (seed 11)" in s.value
        for s in scored_demo.success
    )
    lists = ops_db.call_lists()
    assert len(lists) == 1 and lists.iloc[0]["ab_seed"] == 11 and lists.iloc[0]["ab_share"] == 0.1
    members = ops_db.call_list_members(int(lists.iloc[0]["id"]))
    assert (members["group"] == "holdout").sum() == round(0.1 * 2864)


def test_a_list_issued_before_a_reload_is_shown_as_recorded(scored_demo, ops_db):
    """A new session (a browser reload) on the same cohort and settings finds the list it
    issued in the store, instead of offering to issue it as if it were new."""
    scored_demo.switch_page(CALL_LIST)
    _run(scored_demo)
    scored_demo.button(key="ab_issue").click()
    _run(scored_demo)
    list_id = int(ops_db.call_lists().iloc[0]["id"])

    reloaded = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    reloaded.switch_page(SCORE)
    reloaded.session_state["score_source"] = "Use a demo week"
    _run(reloaded)
    reloaded.button(key="score_demo").click()
    _run(reloaded)
    reloaded.switch_page(CALL_LIST)
    _run(reloaded)
    assert any(f"Call list {list_id} recorded for monitoring" in s.value for s in reloaded.success)
    assert not [c for c in reloaded.caption if "Not yet recorded" in c.value]

    reloaded.sidebar.number_input(key="_w_call_cost").set_value(7.0)  # another list now
    _run(reloaded)
    assert not [s for s in reloaded.success if "recorded for monitoring" in s.value]
    assert len(ops_db.call_lists()) == 1


def test_outcomes_page_records_refuses_and_shows_the_ab_test(
    scored_demo, ops_db, reference, production_model
):
    scored = scored_demo.session_state["scored"]
    plan = abtest.plan_holdout(
        scored["customer_id"], scored["probability"], scored["probability"] >= 0.05, 0.2, 5
    )
    sha = ops_db.cohorts().iloc[0]["file_sha256"]
    from termdeposit.core.config import default_settings

    abtest.issue_call_list(
        plan,
        file_sha256=sha,
        model_version=production_model.version,
        threshold=0.05,
        settings=default_settings(),
        store=ops_db,
    )
    at = scored_demo
    at.switch_page(OUTCOMES)
    _run(at)
    bad = b"customer_id,called,subscribed\nNOBODY,yes,no\n"
    at.file_uploader(key="outcomes_upload").upload("bad.csv", bad, "text/csv")
    _run(at)
    at.button(key="outcomes_record").click()
    _run(at)
    assert any("NOBODY" in e.value for e in at.error) and ops_db.outcomes().empty

    called = plan.members.loc[plan.members["call"], "customer_id"]
    good = outcomes_file(simulated_outcomes(called, reference))
    at.file_uploader(key="outcomes_upload").upload("week39.csv", good, "text/csv")
    _run(at)
    at.button(key="outcomes_record").click()
    _run(at)
    assert any(f"Recorded {len(called)} new outcomes" in s.value for s in at.success)
    result = abtest.ab_results(ops_db, 1)
    assert _metric(at, "Uplift per customer (model − business as usual)") == format_money(
        result.uplift_per_customer, 2
    )
    assert any(result.counts in m.value for m in at.markdown), "the counts, in words"
    assert "drawn at random from the" in result.counts
    warned = [w.value for w in at.warning if "too small to tell" in w.value]
    assert bool(warned) == (result.warning is not None)


def test_monitoring_page_alerts_banner_acknowledge_and_limits(ops_db, production_model, reference):
    from termdeposit.core.schema import INPUT_COLUMNS
    from termdeposit.data.cohort_file import validate_cohort
    from termdeposit.modeling.predict import score_frame

    frame = validate_cohort(  # the 2,058 customers of 2010 as one cohort
        reference.loc[reference["year"] == 2010, ["customer_id", *INPUT_COLUMNS]].astype(str)
    ).frame
    ops_db.log_scoring(
        score_frame(production_model, frame),
        file_sha256="f" * 64,
        model_version=production_model.version,
        threshold=production_model.threshold,
        week_label="2010",
    )
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    at.switch_page(MONITORING)
    _run(at)
    expected = monitoring.run_monitor(ops_db)
    stored = ops_db.alerts()
    warnings = stored[stored["severity"] != "info"]
    assert len(warnings) == len(expected.active) > 0
    assert len(expected.information) > 0, "the 2010 economy lies outside what the model saw"
    assert _metric(at, "Latest cohort") == "2010"
    assert _metric(at, "Score spread PSI (beyond chance)") == f"{expected.drift.score_psi:.3f}"
    infos = [i.value for i in at.info if "For information" in i.value]
    assert infos and "economy moved outside what the model saw" in infos[0]

    at.switch_page(SCORE)
    _run(at)
    banner = [w.value for w in [*at.warning, *at.error] if w.value.startswith("Monitoring: ")]
    assert banner, "every page shows the alerts banner"
    counted = re.findall(r"(\d+) (?:critical alert|warning)", banner[0])
    assert sum(int(n) for n in counted) == len(warnings), "information is not in the banner"
    assert "context_range" not in banner[0] and "score_drift" not in banner[0]

    at.switch_page(MONITORING)
    _run(at)
    first = int(warnings.iloc[0]["id"])
    at.button(key=f"ack_{first}").click()
    _run(at)
    assert first not in ops_db.alerts()["id"].tolist()

    form_inputs = [n for n in at.number_input if n.label == "AUC among the called below"]
    form_inputs[0].set_value(0.8)
    at.button[[b.label for b in at.button].index("Save the limits")].click()
    _run(at)
    assert monitoring.load_limits(ops_db).auc_min == pytest.approx(0.8)


def test_backtest_page_matches_the_library(ops_db, reference):
    at = _run(AppTest.from_file(str(PROJECT_ROOT / BACKTEST), default_timeout=TIMEOUT))
    first = [n for n in at.number_input if n.label == "First week"][0]
    last = [n for n in at.number_input if n.label == "Last week"][0]
    first.set_value(38)
    last.set_value(41)
    at.button[[b.label for b in at.button].index("Run the backtest")].click()
    _run(at)
    expected = run_backtest(reference, BacktestConfig(first_week=38, last_week=41))
    assert _metric(at, "Profit with the model") == format_money(expected.profit_model)
    assert _metric(at, "Profit calling everyone") == format_money(expected.profit_call_all)
    assert len(at.get("plotly_chart")) == 1


def test_models_page_shows_the_audit_log(ops_db, models_copy):
    at = _run(AppTest.from_file(str(PROJECT_ROOT / MODELS), default_timeout=TIMEOUT))
    assert "Audit log" in [h.value for h in at.subheader]
    table = at.dataframe[-1].value
    assert isinstance(table, pd.DataFrame) and "promote" in set(table["Action"])


def test_unreachable_log_stops_scoring_unless_the_user_chooses(trained_version, monkeypatch):
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", "postgresql+psycopg://app:x@127.0.0.1:9/none")
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    at.switch_page(SCORE)
    at.session_state["score_source"] = "Use a demo week"
    _run(at)
    at.button(key="score_demo").click()
    _run(at)
    assert any("could not be used" in e.value for e in at.error)
    assert at.session_state["scored"] is None, "no scores without the log unless chosen"
    at.checkbox(key="ops_score_without_log").check()
    _run(at)
    at.button(key="score_demo").click()
    _run(at)
    assert len(at.session_state["scored"]) == 2864
    assert any("prediction log is off" in w.value for w in at.warning)
