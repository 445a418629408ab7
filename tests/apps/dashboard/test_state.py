"""The dashboard's typed session state: defaults, types, round trips and the real session.

Most tests back the accessor with a plain dict (no Streamlit run needed); the last ones run a
tiny script in AppTest, so the accessor is also checked against Streamlit's own
``st.session_state`` under the key names the page tests seed.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from termdeposit.apps.dashboard.state import (
    KEY_BY_NAME,
    KEYS,
    PERSISTENT_DEFAULTS,
    RECOMMENDED,
    DashboardState,
    IssuedCallList,
    NoChoiceYetError,
)
from termdeposit.core.config import BusinessSettings, default_settings
from termdeposit.data.cohort_file import Cohort
from termdeposit.services.call_lists import CallListRequest


@pytest.fixture
def data() -> dict[str, object]:
    return {}


@pytest.fixture
def session(data: dict[str, object]) -> DashboardState:
    return DashboardState(data)


def test_key_names_are_the_session_state_names_tests_and_widgets_use() -> None:
    names = [key.name for key in KEYS]
    assert len(names) == len(set(names)), "each key is listed once"
    for name in (
        "settings",
        "cohort",
        "cohort_name",
        "cohort_sha256",
        "scored",
        "model_version",
        "threshold",
        "limit_to_capacity",
        "capacity_on",
        "capacity_agents",
        "capacity_calls_per_agent",
        "capacity_days",
        "choice_mode",
        "choice_value",
        "choice_note",
        "ops_cohort_id",
        "fairness_policy",
    ):
        assert name in KEY_BY_NAME
        assert KEY_BY_NAME[name].meaning
    persistent = {key.name for key in KEYS if key.persistent}
    assert persistent == {*PERSISTENT_DEFAULTS, "settings"}


def test_every_default_has_its_declared_type() -> None:
    for key in KEYS:
        assert isinstance(key.default_value(), key.types), key.name


def test_init_defaults_creates_the_persistent_keys_once(
    session: DashboardState, data: dict[str, object]
) -> None:
    assert session.init_defaults() is True
    assert data["settings"] == default_settings()
    assert data["threshold"] is None
    assert data["choice_mode"] == "recommended"
    assert data["limit_to_capacity"] is True
    assert (data["capacity_agents"], data["capacity_calls_per_agent"], data["capacity_days"]) == (
        10,
        40,
        5,
    )
    assert "ops_cohort_id" not in data, "on-demand keys are not created"
    data["threshold"] = 0.2
    assert session.init_defaults() is False, "only the first run is the first"
    assert data["threshold"] == 0.2, "existing values are kept"


def test_typed_reads_after_defaults(session: DashboardState) -> None:
    session.init_defaults()
    assert isinstance(session.settings, BusinessSettings)
    assert session.threshold is None
    assert session.choice_mode == RECOMMENDED
    assert session.pinned is False
    assert session.choice_value is None
    assert session.cohort is None and session.scored is None
    assert session.cohort_name is None and session.model_version is None
    assert session.cohort_id is None
    assert session.limit_to_capacity is True
    assert session.capacity_on is False
    assert session.capacity_form == (10, 40, 5)
    assert session.form_capacity() is None, "the form is off"
    assert session.fairness_policy is None
    assert session.issued_call_list is None
    assert session.score_without_log is False
    assert session.page_changed is True, "the first run draws a new page"


def test_reads_before_anything_is_written_give_the_defaults(session: DashboardState) -> None:
    assert session.settings == default_settings()
    assert session.choice_mode == "recommended"
    assert session.limit_to_capacity is True


def test_threshold_round_trip_and_no_choice_yet(
    session: DashboardState, data: dict[str, object]
) -> None:
    with pytest.raises(NoChoiceYetError):
        _ = session.chosen_threshold
    session.threshold = 0.125
    assert data["threshold"] == 0.125
    assert session.threshold == 0.125 == session.chosen_threshold
    data["threshold"] = 0.3  # what a test's at.session_state["threshold"] = 0.3 does
    assert session.chosen_threshold == 0.3
    assert isinstance(session.chosen_threshold, float)


def test_choice_round_trip(session: DashboardState, data: dict[str, object]) -> None:
    session.pin("calls", 500)
    assert (data["choice_mode"], data["choice_value"]) == ("calls", 500.0)
    assert isinstance(data["choice_value"], float)
    assert session.pinned is True
    session.pin(RECOMMENDED, None)
    assert (data["choice_mode"], data["choice_value"]) == ("recommended", None)
    assert session.pinned is False
    data["choice_mode"] = "budget"
    assert session.choice_mode == "budget"
    session.choice_mode = "threshold"
    assert data["choice_mode"] == "threshold"
    data["choice_mode"] = "everyone"
    with pytest.raises(ValueError, match="unknown choice mode"):
        _ = session.choice_mode


def test_settings_and_capacity_round_trip(
    session: DashboardState, data: dict[str, object]
) -> None:
    session.init_defaults()
    changed = replace(default_settings(), call_cost=8.0)
    session.settings = changed
    assert data["settings"] is changed
    session.capacity_on = True
    session.capacity_form = (3, 20, 2)
    assert (data["capacity_agents"], data["capacity_calls_per_agent"], data["capacity_days"]) == (
        3,
        20,
        2,
    )
    assert session.form_capacity() == 120
    session.limit_to_capacity = False
    assert data["limit_to_capacity"] is False


def test_cohort_round_trip(session: DashboardState, data: dict[str, object]) -> None:
    frame = pd.DataFrame({"customer_id": ["a", "b"], "probability": [0.1, 0.9]})
    cohort = Cohort(frame=frame)
    session.set_cohort(cohort, "2010-W40", "ab" * 32, frame, "v7")
    assert data["cohort"] is cohort and data["scored"] is frame
    assert (data["cohort_name"], data["cohort_sha256"], data["model_version"]) == (
        "2010-W40",
        "ab" * 32,
        "v7",
    )
    assert session.cohort is cohort and session.scored is frame
    assert (session.cohort_name, session.cohort_sha256, session.model_version) == (
        "2010-W40",
        "ab" * 32,
        "v7",
    )
    session.cohort_id = 12
    assert data["ops_cohort_id"] == 12 and session.cohort_id == 12


def test_one_off_values_are_taken_once(session: DashboardState, data: dict[str, object]) -> None:
    session.flash("models", "v3 is now in production.")
    assert data["_models_message"] == "v3 is now in production."
    assert session.take_flash("models") == "v3 is now in production."
    assert session.take_flash("models") is None
    assert session.take_flash("outcomes") is None

    session.request_reopen(42)
    assert data["_reopen_cohort"] == 42
    assert session.take_reopen_request() == 42
    assert session.take_reopen_request() is None

    session.mark_reopening()
    assert session.take_keep_choice() is True and session.take_keep_choice() is False
    assert session.take_reopened() is True and session.take_reopened() is False


def test_page_changes(session: DashboardState) -> None:
    session.enter_page("Call list")
    assert session.page_changed is True
    session.enter_page("Call list")
    assert session.page_changed is False
    session.enter_page("Fairness")
    assert session.page_changed is True


def test_shared_values_between_pages(session: DashboardState, data: dict[str, object]) -> None:
    session.fairness_policy = {"policy": "parity_same_calls", "attribute": "age band"}
    assert data["fairness_policy"] == {"policy": "parity_same_calls", "attribute": "age band"}

    request = CallListRequest(threshold=0.2)
    session.issued_call_list = IssuedCallList(request, "ab" * 32, "v7", 5)
    data["issued_call_list"] = tuple(data["issued_call_list"])  # as a plain tuple
    issued = session.issued_call_list
    assert isinstance(issued, IssuedCallList)
    assert issued[:3] == (request, "ab" * 32, "v7") and issued.list_id == 5

    seeds = session.ab_seeds
    seeds.setdefault("sha", 1234)
    assert data["ab_seed_drawn"] == {"sha": 1234}, "the seeds dict lives in the session"
    assert session.ab_seeds.setdefault("sha", 9) == 1234


def test_unknown_keys_are_refused(session: DashboardState) -> None:
    with pytest.raises(KeyError):
        session.set("treshold", 0.2)
    with pytest.raises(KeyError):
        session.get("treshold")


def test_widget_keys_are_reached_as_they_are(
    session: DashboardState, data: dict[str, object]
) -> None:
    assert session.widget("_w_threshold") is None
    session.set_widget("_w_threshold", 12.5)
    assert data["_w_threshold"] == 12.5 and session.widget("_w_threshold") == 12.5


def _script() -> None:
    import streamlit as st

    from termdeposit.apps.dashboard.state import session

    first = session.init_defaults()
    if session.threshold is None:
        session.threshold = 0.25
    session.pin("calls", 300)
    st.markdown(f"first={first} threshold={session.chosen_threshold} mode={session.choice_mode}")
    st.markdown(f"cost={session.settings.call_cost:g}")


def test_the_module_session_is_streamlits_session_state() -> None:
    at = AppTest.from_function(_script, default_timeout=30).run()
    assert not at.exception
    assert at.markdown[0].value == "first=True threshold=0.25 mode=calls"
    assert at.session_state["threshold"] == 0.25
    assert (at.session_state["choice_mode"], at.session_state["choice_value"]) == ("calls", 300.0)
    assert at.session_state["settings"] == default_settings()

    at.session_state["threshold"] = 0.4  # as the page tests seed it
    at.session_state["settings"] = replace(default_settings(), call_cost=7.0)
    at.run()
    assert not at.exception
    assert at.markdown[0].value == "first=False threshold=0.4 mode=calls"
    assert at.markdown[1].value == "cost=7"
