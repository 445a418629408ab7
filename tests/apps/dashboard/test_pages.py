"""The dashboard's pages, run in-process with Streamlit's AppTest as a user would use them.

Every figure a page shows is compared with the library computing it independently (the model
scoring the same week, :mod:`termdeposit.decisions.economics` on its probabilities), so a page that
shows a stale, rounded-wrong or mis-selected number fails here.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from app_support import HOME, save_copy
from app_support import metric as _metric
from app_support import run as _run
from app_support import text as _text
from streamlit.testing.v1 import AppTest

from termdeposit.apps.dashboard.widgets import TABLE_ROWS
from termdeposit.core import config
from termdeposit.core.config import default_settings
from termdeposit.data.cohort_file import validate_cohort
from termdeposit.decisions import economics
from termdeposit.decisions.calllist import file_stem
from termdeposit.decisions.economics import format_count, format_money, format_percent
from termdeposit.modeling import registry
from termdeposit.modeling.predict import cohort_probabilities
from termdeposit.modeling.train import BLEND, FAMILY_LABELS
from termdeposit.services import forecasts

SCORE = "pages/1_Score_cohort.py"
THRESHOLD = "pages/2_Threshold_and_profit.py"
CALL_LIST = "pages/3_Call_list.py"
MODELS = "pages/4_Models.py"
DEMO_LABEL = "2009-05 wk2"  # week 39, the week of the ``week_cohort`` fixture
TIMEOUT = 180


@pytest.fixture()
def app(trained_version) -> AppTest:
    """A fresh session on the home page, with the session's trained production model."""
    return _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))


@pytest.fixture()
def demo(app) -> AppTest:
    """A session that has scored the demo week (week 39) on the Score cohort page."""
    app.switch_page(SCORE)
    app.session_state["score_source"] = "Use a demo week"  # open the demo tab
    _run(app)
    app.button(key="score_demo").click()
    return _run(app)


@pytest.fixture(scope="module")
def week_curve(production_model, week_cohort) -> economics.ThresholdCurve:
    """Week 39 scored straight by the model as one cohort (its week's rate followed), without
    the dashboard."""
    cohort = validate_cohort(week_cohort.astype(str))
    p = cohort_probabilities(production_model, cohort.frame)
    return economics.build_curve(p, cohort.frame["y"])


def test_home_page_shows_the_production_model(app, production_model):
    family = production_model.card["family_label"]
    assert f"The production model at a glance: {family}" in [h.value for h in app.subheader]
    assert _metric(app, "Default threshold") == format_percent(production_model.threshold, 2)
    auc = production_model.card["metrics"]["time"]["auc"]
    assert _metric(app, "Ranking quality (AUC)") == f"{auc:.3f}"
    assert "Where to start" in [h.value for h in app.subheader]
    assert not app.error


@pytest.mark.parametrize("missing", ["model", "data"])
def test_home_page_without_model_or_data_says_what_to_do(missing, tmp_path, monkeypatch):
    monkeypatch.setenv("TERMDEPOSIT_MODELS", str(tmp_path / "no-models"))
    if missing == "data":
        monkeypatch.setenv("TERMDEPOSIT_DATA", str(tmp_path / "no-data"))
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    assert "no production model yet" in at.warning[0].value
    button = "fetch" if missing == "data" else "train_first"
    assert at.button(key=button).label
    at.switch_page(SCORE)
    _run(at)
    assert "There is no production model yet" in at.error[0].value


def test_demo_week_is_scored_once_and_kept(demo, week_curve, monkeypatch):
    assert _metric(demo, "Customers") == "2,864"
    assert _metric(demo, "Expected subscriptions") == format_count(week_curve.expected[-1], 1)
    assert demo.session_state["cohort_name"] == DEMO_LABEL
    assert any("'y'" in i.value and "ignored for scoring" in i.value for i in demo.info)
    from termdeposit.apps.dashboard import scoring

    calls = []
    original = scoring.score_with_progress
    monkeypatch.setattr(
        scoring, "score_with_progress", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    for page in (THRESHOLD, CALL_LIST, SCORE):
        demo.switch_page(page)
        _run(demo)
    demo.session_state["score_source"] = "Use a demo week"
    _run(demo)
    demo.button(key="score_demo").click()
    _run(demo)
    assert calls == [] and len(demo.session_state["scored"]) == 2864


def test_uploaded_csv_is_scored_with_its_ids(app, week_cohort):
    app.switch_page(SCORE)
    _run(app)
    data = week_cohort.drop(columns=["y"]).to_csv(index=False, sep=";").encode()
    app.file_uploader(key="cohort_upload").upload("week39.csv", data, "text/csv")
    _run(app)
    assert not app.error
    assert _metric(app, "Customers") == "2,864"
    assert app.session_state["cohort_name"] == "week39.csv"
    scored = app.session_state["scored"]
    assert scored["customer_id"].tolist() == week_cohort["customer_id"].tolist()
    assert not any("'y'" in i.value for i in app.info)

    app.session_state["score_source"] = "Use a demo week"
    _run(app)
    app.button(key="score_demo").click()
    _run(app)
    _run(app)  # the file still in the uploader must not replace the demo week
    assert app.session_state["cohort_name"] == DEMO_LABEL


def _header_only(week_cohort: pd.DataFrame) -> bytes:
    return (",".join(week_cohort.columns) + "\n").encode()


BAD_UPLOADS = {
    "wrong type": (
        "report.pdf",
        lambda w: b"%PDF-1.4 not a cohort",
        "'report.pdf' is a PDF document, not a CSV or Excel file.",
    ),
    "empty": ("empty.csv", lambda w: b"", "is empty"),
    "garbage": ("cohort.csv", lambda w: bytes(range(256)) * 40, "binary data"),
    "header only": ("cohort.csv", _header_only, "The file has no customers"),
    "missing columns": (
        "cohort.csv",
        lambda w: w.drop(columns=["age", "job"]).to_csv(index=False).encode(),
        "The file cannot be scored",
    ),
    "too large": ("cohort.csv", lambda w: w.to_csv(index=False).encode(), "the limit is 0.1 MB"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_gives_a_clear_message_and_scores_nothing(case, app, week_cohort, monkeypatch):
    name, make, message = BAD_UPLOADS[case]
    if case == "too large":
        monkeypatch.setattr(config, "MAX_UPLOAD_MB", 0.1)
    app.switch_page(SCORE)
    _run(app)
    app.file_uploader(key="cohort_upload").upload(name, make(week_cohort), "text/csv")
    _run(app)
    assert message in app.error[0].value
    assert app.session_state["scored"] is None
    if case == "missing columns":
        problems = app.dataframe[0].value
        assert list(problems.columns) == ["column", "rows", "problem"]
        assert {"age", "job"} <= set(problems["column"])


def test_threshold_page_shows_exactly_what_economics_computes(
    demo, week_curve, production_model, week_cohort
):
    demo.switch_page(THRESHOLD)
    _run(demo)
    settings = default_settings()
    recommended = economics.recommended_threshold(week_curve, settings)
    assert demo.session_state["threshold"] == recommended
    assert demo.slider(key="_w_threshold").value == pytest.approx(round(100 * recommended, 1))
    demo.slider(key="_w_threshold").set_value(20.0)
    _run(demo)
    assert demo.session_state["choice_mode"] == "threshold"
    s = economics.summary_at(week_curve, settings, 0.2)
    assert _metric(demo, "Calls") == format_count(s.calls)
    assert _metric(demo, "Expected subscriptions") == format_count(s.expected_subscriptions, 1)
    assert _metric(demo, "Call cost") == format_money(s.cost)
    assert _metric(demo, "Expected revenue") == format_money(s.expected_revenue)
    assert _metric(demo, "Expected profit") == format_money(s.expected_profit)
    assert _metric(demo, "Uplift vs calling all") == economics.format_signed_money(
        s.uplift_vs_everyone
    )
    assert _metric(demo, "Uplift vs random calls") == economics.format_signed_money(
        s.uplift_vs_random
    )
    assert _metric(demo, "Realised profit") == format_money(s.realised_profit)
    assert demo.number_input(key="_w_threshold_number").value == pytest.approx(20.0)
    assert demo.number_input(key="_w_calls").value == s.calls
    assert demo.number_input(key="_w_budget").value == pytest.approx(s.cost)
    # the range of the expected profit and the recommendation, as the forecasts service says
    forecaster = forecasts.cohort_forecaster(production_model.card, week_curve)
    money = forecaster.profit(s.calls, settings)
    shown = next(m for m in demo.metric if m.label == "Expected profit")
    assert shown.delta == f"80% range {format_money(money.low)} to {format_money(money.high)}"
    assert money.low < s.expected_profit < money.high
    advice = forecasts.recommendation(forecaster, settings)
    assert any(advice.text in i.value and "Recommendation" in i.value for i in demo.info)
    week = forecasts.week_forecast(
        production_model.card, validate_cohort(week_cohort.astype(str)).frame
    )
    assert any(f"forecast at {format_percent(week.rate)}" in c.value for c in demo.caption)

    demo.number_input(key="_w_threshold_number").set_value(15.0)
    _run(demo)
    assert demo.slider(key="_w_threshold").value == pytest.approx(15.0)
    assert _metric(demo, "Calls") == format_count(economics.calls_at(week_curve, 0.15))

    demo.button(key="thr_optimal").click()
    _run(demo)
    assert demo.session_state["threshold"] == recommended
    assert _metric(demo, "Expected profit") == format_money(
        economics.summary_at(week_curve, settings, recommended).expected_profit
    )

    demo.sidebar.number_input(key="_w_call_cost").set_value(10.0)
    _run(demo)
    dearer = replace(settings, call_cost=10.0)
    moved = economics.recommended_threshold(week_curve, dearer)
    assert demo.session_state["threshold"] == moved != recommended
    calls = economics.calls_at(week_curve, moved)
    assert _metric(demo, "Call cost") == format_money(10.0 * calls)
    assert "Cost per call changed: the most profitable choice is applied" in _text(demo)
    assert len(demo.get("plotly_chart")) == 1  # only the open tab is drawn


def test_capacity_changes_the_selection(demo, week_curve):
    demo.switch_page(THRESHOLD)
    _run(demo)
    demo.number_input(key="_w_threshold_number").set_value(0.0)
    _run(demo)
    assert _metric(demo, "Calls") == "2,864"
    demo.sidebar.checkbox(key="_w_capacity_on").check()
    _run(demo)
    demo.sidebar.number_input(key="_w_capacity_agents").set_value(1)
    demo.sidebar.number_input(key="_w_capacity_calls_per_agent").set_value(10)
    demo.sidebar.number_input(key="_w_capacity_days").set_value(5)
    _run(demo)
    assert demo.session_state["settings"].capacity == 50
    assert any("can make **50** calls" in w.value for w in demo.warning)
    assert _metric(demo, "Calls") == "50"
    best_50 = economics.summarise(week_curve, default_settings(), 50, 0.0)
    assert _metric(demo, "Expected subscriptions") == format_count(
        best_50.expected_subscriptions, 1
    )
    demo.checkbox(key="_w_limit_to_capacity").uncheck()
    _run(demo)
    assert _metric(demo, "Calls") == "2,864"
    demo.button(key="thr_capacity").click()
    _run(demo)
    fits = economics.capacity_threshold(week_curve, 50)
    assert demo.session_state["threshold"] == fits
    assert _metric(demo, "Calls") == format_count(economics.calls_at(week_curve, fits))
    demo.switch_page(CALL_LIST)
    _run(demo)
    assert demo.session_state["settings"].capacity == 50


@pytest.fixture()
def downloads(monkeypatch) -> list[dict]:
    """Record the arguments of every download button the pages draw (in any container)."""
    from streamlit.delta_generator import DeltaGenerator

    seen: list[dict] = []
    original = DeltaGenerator.download_button

    def recording(self, label, data, file_name=None, *args, **kwargs):
        seen.append({"label": label, "data": data, "file_name": file_name})
        return original(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    return seen


def test_call_list_page_lists_removes_and_offers_both_files(demo, week_curve, downloads):
    demo.switch_page(CALL_LIST)
    _run(demo)
    calls = economics.calls_at(week_curve, 0.05)
    assert f"**{format_count(calls)} customers to call, all chosen by the model.**" in _text(demo)
    stem = file_stem(DEMO_LABEL, demo.session_state["model_version"])
    assert stem.startswith("call_list_2009-05-wk2_v")
    latest = downloads[-3:]
    assert [d["file_name"] for d in latest] == [
        f"{stem}.csv",
        f"{stem}.xlsx",
        f"{stem}_dialler.csv",
    ]
    assert latest[0]["label"] == f"Download CSV ({format_count(calls)} customers)"
    csv_rows = latest[0]["data"]().decode("utf-8-sig").strip().splitlines()
    assert len(csv_rows) == calls + 1

    top = demo.session_state["scored"].sort_values("rank")["customer_id"].head(3).tolist()
    dnc = ("customer_id\n" + "\n".join([*top, "NOT-A-CUSTOMER"]) + "\n").encode()
    demo.file_uploader(key="do_not_call_upload").upload("dnc.csv", dnc, "text/csv")
    _run(demo)
    assert "removed **3** of them" in _text(demo)
    assert f"**{format_count(calls - 3)} customers to call, all chosen by the model.**" in _text(
        demo
    )
    table = demo.dataframe[0].value
    assert len(table) == min(calls - 3, TABLE_ROWS) and not set(top) & set(table["Customer id"])
    if calls - 3 > TABLE_ROWS:
        assert f"Showing the first {format_count(TABLE_ROWS)} of {format_count(calls - 3)}" in (
            _text(demo)
        )
    assert table["Chance of subscribing"].iloc[0] == pytest.approx(
        100 * round(week_curve.probabilities[3], 4)
    )

    demo.text_input(key="list_search").input(table["Customer id"].iloc[5])
    _run(demo)
    assert len(demo.dataframe[0].value) == 1
    assert downloads[-3]["label"] == "Download CSV (1 customers)"
    assert format_percent(0.05, 2) in demo.expander[0].label


def test_models_page_promotes_and_rolls_back(models_copy, production_model):
    second = save_copy(production_model)
    first = registry.production_version()
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    at.switch_page(MODELS)
    _run(at)
    assert f"Production model `{first}`" in [h.value for h in at.subheader]
    assert len(at.get("plotly_chart")) == 3
    assert any("time hold-out" in c.value for c in at.caption)
    versions = next(d.value for d in at.dataframe if "Version" in d.value)
    assert set(versions["Version"]) == {first, second}
    candidates = next(d.value for d in at.dataframe if "Family" in d.value)
    chosen = production_model.card["family_label"] + " (chosen)"
    assert chosen in list(candidates["Family"])
    assert FAMILY_LABELS[BLEND] in " ".join(candidates["Family"])

    at.button(key="models_promote").click()
    _run(at)
    assert "Give your name and a reason" in at.error[0].value
    assert registry.production_version() == first

    at.text_input(key="models_user").input("Ana")
    at.text_input(key="models_reason").input("same model, checking the switch")
    at.selectbox(key="models_target").select(second)
    at.button(key="models_promote").click()
    _run(at)
    assert registry.production_version() == second
    entry = registry.audit_log()[-1]
    assert entry["user"] == "Ana" and entry["reason"] == "same model, checking the switch"
    assert f"{second} is now in production" in at.success[0].value

    at.button(key="models_rollback").click()
    _run(at)
    assert registry.production_version() == first
    assert registry.audit_log()[-1]["action"] == "rollback"


def test_models_page_explains_and_repairs_a_damaged_pointer(models_copy, production_model):
    version = registry.production_version()
    (models_copy / "PRODUCTION").write_bytes(b"../../etc\n")
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    home = " ".join(e.value for e in at.error)
    assert "is damaged: it holds '../../etc'" in home and "Open the **Models** page" in home
    assert "train_first" not in [b.key for b in at.button], "a damaged pointer is not 'no model'"
    at.switch_page(MODELS)
    _run(at)
    errors = " ".join(e.value for e in at.error)
    warnings = " ".join(w.value for w in at.warning)
    for shown in (errors, warnings):
        assert "The production pointer" in shown and "'../../etc'" in shown, shown
        assert "not a model version name" in shown
    assert "press **Promote**" in warnings
    assert at.button(key="models_rollback").disabled
    at.text_input(key="models_user").input("Ana")
    at.text_input(key="models_reason").input("repair the pointer")
    at.selectbox(key="models_target").select(version)
    at.button(key="models_promote").click()
    _run(at)
    assert registry.production_version() == version
    assert "the damaged pointer was replaced" in at.success[0].value
    assert f"Production model `{version}`" in [h.value for h in at.subheader]
    assert registry.audit_log()[-1]["replaced_pointer"] == "../../etc"
