"""The choice of whom to call as a manager makes it (AppTest): it follows the money until
pinned, three linked controls, a warning with the amount for a losing pin, work that survives a
reload (address and stored cohorts), scenarios, the group policy and the report buttons.

Every figure is compared with :mod:`termdeposit.decisions.economics` on the same week scored
straight by the model.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from app_support import HOME
from app_support import metric as _metric
from app_support import run as _run
from app_support import text as _text
from streamlit.testing.v1 import AppTest

from termdeposit.apps.dashboard.alerts import alerts_sentence
from termdeposit.core.config import default_settings
from termdeposit.data.cohort_file import validate_cohort
from termdeposit.decisions import economics
from termdeposit.decisions.economics import format_count, format_money
from termdeposit.modeling.predict import cohort_probabilities

SCORE = "pages/1_Score_cohort.py"
THRESHOLD = "pages/2_Threshold_and_profit.py"
SCENARIOS = "pages/2_Threshold_scenarios.py"
FAIRNESS = "pages/6_Fairness.py"
TIMEOUT = 180


@pytest.fixture()
def demo(trained_version, ops_db) -> AppTest:
    """A session (own database) that scored the demo week 39 and opened Threshold & profit."""
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    at.switch_page(SCORE)
    at.session_state["score_source"] = "Use a demo week"
    _run(at)
    at.button(key="score_demo").click()
    _run(at)
    at.switch_page(THRESHOLD)
    return _run(at)


@pytest.fixture(scope="module")
def week_curve(production_model, week_cohort) -> economics.ThresholdCurve:
    """The week's curve from the probabilities the product shows (the week's rate followed)."""
    cohort = validate_cohort(week_cohort.astype(str))
    p = cohort_probabilities(production_model, cohort.frame)
    return economics.build_curve(p, cohort.frame["y"])


def _array(values) -> list:
    """A chart's data array, decoded when plotly sent it as typed binary."""
    if isinstance(values, dict):
        raw = base64.b64decode(values["bdata"])
        return np.frombuffer(raw, dtype=np.dtype(values["dtype"])).tolist()
    return list(values)


def test_a_new_cohort_gets_the_recommended_choice_and_says_so(demo, week_curve):
    best = economics.recommended_threshold(week_curve, default_settings())
    assert demo.session_state["threshold"] == best
    assert demo.session_state["choice_mode"] == "recommended"
    assert "New cohort: the most profitable choice is applied" in _text(demo)


def test_value_and_capacity_changes_move_the_choice(demo, week_curve):
    demo.sidebar.number_input(key="_w_call_cost").set_value(10.0)
    demo.sidebar.number_input(key="_w_subscription_value").set_value(50.0)
    _run(demo)
    settings = replace(default_settings(), call_cost=10.0, subscription_value=50.0)
    best = economics.recommended_threshold(week_curve, settings)
    assert demo.session_state["threshold"] == best
    summary = economics.summary_at(week_curve, settings, best)
    assert _metric(demo, "Expected profit") == format_money(summary.expected_profit)
    assert "subscription value changed: the most profitable choice is applied" in _text(demo)
    assert not [w for w in demo.warning if "pinned" in w.value]

    demo.sidebar.checkbox(key="_w_capacity_on").check()
    _run(demo)
    for key, value in (("agents", 1), ("calls_per_agent", 10), ("days", 3)):
        demo.sidebar.number_input(key=f"_w_capacity_{key}").set_value(value)
    _run(demo)
    capped = economics.recommended_calls(week_curve, settings, 30)
    assert capped <= 30
    assert _metric(demo, "Calls") == format_count(capped)
    assert "within the capacity" in _text(demo)
    assert "Capacity changed" in _text(demo)
    demo.session_state["threshold_charts"] = "Calls"  # the charts honour the capacity too
    _run(demo)
    spec = json.loads(demo.get("plotly_chart")[0].proto.spec)
    calls = _array(next(t["y"] for t in spec["data"] if t.get("name") == "Calls"))
    assert max(calls) == 30 and min(calls) > 0


def test_a_pinned_losing_choice_is_warned_with_the_amount(demo, week_curve):
    demo.sidebar.number_input(key="_w_call_cost").set_value(10.0)
    demo.sidebar.number_input(key="_w_subscription_value").set_value(50.0)
    _run(demo)
    demo.number_input(key="_w_threshold_number").set_value(5.0)
    _run(demo)
    settings = replace(default_settings(), call_cost=10.0, subscription_value=50.0)
    pinned = economics.summary_at(week_curve, settings, 0.05)
    gap = economics.shortfall(pinned)
    assert gap is not None and gap.amount > 0
    warnings = [w.value for w in demo.warning if "Your pinned choice" in w.value]
    assert len(warnings) == 1 and format_money(gap.amount) in warnings[0]
    assert "You pinned the threshold" in _text(demo)

    demo.sidebar.number_input(key="_w_call_cost").set_value(12.0)
    _run(demo)
    assert demo.session_state["threshold"] == 0.05, "a pinned threshold stays pinned"
    assert "your pinned threshold is kept" in _text(demo)

    demo.button(key="thr_optimal").click()
    _run(demo)
    assert demo.session_state["choice_mode"] == "recommended"
    assert not [w for w in demo.warning if "Your pinned choice" in w.value]


@pytest.mark.parametrize(
    ("key", "value", "mode"), [("_w_calls", 500, "calls"), ("_w_budget", 1234.0, "budget")]
)
def test_calls_and_budget_controls_agree_with_the_threshold(demo, week_curve, key, value, mode):
    demo.number_input(key=key).set_value(value)
    _run(demo)
    settings = default_settings()
    choice = economics.resolve_choice(week_curve, settings, mode, value)
    assert demo.session_state["choice_mode"] == mode
    assert demo.session_state["threshold"] == choice.threshold
    assert _metric(demo, "Calls") == format_count(choice.calls)
    assert demo.number_input(key="_w_calls").value == choice.calls
    assert demo.number_input(key="_w_budget").value == pytest.approx(choice.budget)
    assert demo.number_input(key="_w_threshold_number").value == pytest.approx(
        100 * choice.threshold
    )
    if mode == "budget":
        assert choice.budget <= value


def test_settings_and_cohort_survive_a_reload(demo, week_curve):
    demo.sidebar.number_input(key="_w_call_cost").set_value(8.0)
    _run(demo)
    demo.number_input(key="_w_calls").set_value(300)
    _run(demo)
    params = dict(demo.query_params)
    assert params["cost"] == "8" and params["pick"] == "calls:300" and params["cohort"]

    fresh = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    fresh.switch_page(THRESHOLD)
    for name, value in params.items():
        fresh.query_params[name] = value
    _run(fresh)
    assert fresh.session_state["cohort_name"] == demo.session_state["cohort_name"]
    assert fresh.session_state["settings"].call_cost == 8.0
    assert fresh.session_state["choice_mode"] == "calls"
    settings = replace(default_settings(), call_cost=8.0)
    choice = economics.resolve_choice(week_curve, settings, "calls", 300)
    assert _metric(fresh, "Calls") == format_count(choice.calls)
    assert fresh.session_state["scored"]["y"].notna().all(), "a demo week keeps its outcomes"


def test_recent_cohorts_reopen_an_uploaded_cohort(trained_version, ops_db, week_cohort):
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    at.switch_page(SCORE)
    _run(at)
    data = week_cohort.drop(columns=["y"]).to_csv(index=False, sep=";").encode()
    at.file_uploader(key="cohort_upload").upload("week39.csv", data, "text/csv")
    _run(at)
    first = at.session_state["scored"]

    again = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    again.switch_page(SCORE)
    again.session_state["score_source"] = "Reopen a recent cohort"
    _run(again)
    assert "week39.csv" in again.selectbox(key="recent_cohort").options[0]
    again.button(key="reopen_cohort").click()
    _run(again)
    assert again.session_state["cohort_name"] == "week39.csv"
    pd.testing.assert_series_equal(
        again.session_state["scored"]["probability"], first["probability"]
    )


def test_two_scenarios_compared_side_by_side(demo, week_curve):
    demo.text_input(key="scenario_name").input("Cheap calls")
    demo.button[[b.label for b in demo.button].index("Save the scenario")].click()
    _run(demo)
    demo.sidebar.number_input(key="_w_call_cost").set_value(10.0)
    demo.sidebar.number_input(key="_w_subscription_value").set_value(50.0)
    _run(demo)
    demo.text_input(key="scenario_name").input("Dear calls")
    demo.button[[b.label for b in demo.button].index("Save the scenario")].click()
    _run(demo)
    demo.switch_page(SCENARIOS)
    _run(demo)
    demo.selectbox(key="scenario_a").select("Cheap calls")
    demo.selectbox(key="scenario_b").select("Dear calls")
    _run(demo)
    table = demo.dataframe[0].value
    cheap = economics.Scenario("Cheap calls", 5.0, 100.0, None, "recommended", 0.0)
    dear = economics.Scenario("Dear calls", 10.0, 50.0, None, "recommended", 0.0)
    expected = economics.compare_scenarios(week_curve, [cheap, dear])
    assert list(table.loc["Calls"]) == [format_count(c) for c in expected["calls"]]
    assert list(table.loc["Expected profit"]) == [
        format_money(x) for x in expected["expected_profit"]
    ]
    overlap = int(expected["calls"].min())
    assert table.loc["Customers on both lists"].iloc[1].startswith(format_count(overlap))
    assert "80% range of the profit" in table.index


def test_fairness_policy_choice_is_kept_for_the_call_list(demo):
    demo.switch_page(FAIRNESS)
    _run(demo)
    assert demo.session_state["fairness_policy"] is None
    demo.radio(key="fairness_policy_choice").set_value("parity_same_calls")
    _run(demo)
    assert demo.session_state["fairness_policy"] == {
        "policy": "parity_same_calls",
        "attribute": demo.session_state["fairness_attribute"],
    }
    assert any("Per-group thresholds by" in i.value for i in demo.info)


def test_home_offers_the_report(demo):
    demo.switch_page("streamlit_app.py")
    _run(demo)
    labels = [b.proto.label for b in demo.get("download_button")]
    assert labels == ["Download the report (HTML)", "Download the report (PDF)"]


def test_alerts_are_one_sentence_by_severity():
    active = pd.DataFrame(
        {
            "severity": ["critical", "warning", "warning", "warning"],
            "rule": ["auc_low", "context_range", "context_range", "input_drift"],
            "message": ["2026-W49: a", "2026-W49: b", "2026-W49: c", "2026-W49: d"],
        }
    )
    text = alerts_sentence(active)
    assert text.startswith("Monitoring: 1 critical alert (the ranking")
    assert "3 warnings (the week's economy is outside" in text
    assert "2026-W49" in text
    assert "_" not in text, "no rule codes"


@pytest.mark.parametrize(
    ("threshold", "capacity"), [(0.05, None), (0.05, 100), (0.0, 2000), (0.3, 1)]
)
def test_fast_called_mask_calls_the_same_customers_as_the_list(
    production_model, week_cohort, threshold, capacity
):
    from termdeposit.apps.dashboard.insight_cache import fast_called_mask
    from termdeposit.decisions.calllist import called_mask
    from termdeposit.modeling.predict import score_frame

    scored = score_frame(production_model, validate_cohort(week_cohort.astype(str)).frame)
    fast = fast_called_mask(scored, threshold, capacity)
    assert (fast == called_mask(scored, threshold, capacity)).all()
    assert fast.sum() > 0
