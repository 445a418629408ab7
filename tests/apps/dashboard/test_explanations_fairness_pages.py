"""The Explanations and Fairness pages, run in-process with AppTest as a user would use them.

Each figure a page shows is recomputed here by the library straight from the model and the
demo week, so a page that explains the wrong customer or shows a stale figure fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from app_support import HOME, save_copy
from app_support import run as _run
from app_support import text as _text
from streamlit.testing.v1 import AppTest

from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS
from termdeposit.data.cohort_file import validate_cohort
from termdeposit.decisions.economics import format_percent
from termdeposit.insight import explain, fairness
from termdeposit.modeling.predict import cohort_probabilities
from termdeposit.modeling.train import BLEND, FAMILY_LABELS
from termdeposit.services import forecasts

EXPLANATIONS = "pages/5_Explanations.py"
FAIRNESS = "pages/6_Fairness.py"
TIMEOUT = 300


def _metrics(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


@pytest.fixture(scope="module")
def week(production_model, week_cohort) -> pd.DataFrame:
    """Week 39 validated as the dashboard does, with the probability beside it (the cohort's
    week followed) and the model's own (``raw``)."""
    frame = validate_cohort(week_cohort.astype(str)).frame
    frame["probability"] = cohort_probabilities(production_model, frame)
    frame["raw"] = production_model.predict_proba(frame.loc[:, list(INPUT_COLUMNS)])
    return frame


def _open_with_demo(trained_version, page: str, demo_key: str) -> AppTest:
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    at.switch_page(page)
    _run(at)
    assert "No cohort has been scored yet" in _text(at)
    assert not at.error
    at.button(key=demo_key).click()
    return _run(at)


@pytest.fixture()
def explanations(trained_version) -> AppTest:
    """The Explanations page after the user took the demo week it offers."""
    return _open_with_demo(trained_version, EXPLANATIONS, "explain_demo")


@pytest.fixture()
def fairness_page(trained_version) -> AppTest:
    """The Fairness page after the user took the demo week it offers."""
    return _open_with_demo(trained_version, FAIRNESS, "fairness_demo")


def _customer_tab(at: AppTest) -> AppTest:
    """Open the "One customer" tab (tabs are drawn only when open)."""
    at.session_state["explain_tabs"] = "One customer (and what if)"
    return _run(at)


def test_explanations_explain_the_top_customer(explanations, production_model, week):
    at = explanations
    text = _text(at)
    assert production_model.version in text
    assert len(at.get("plotly_chart")) >= 3
    limit = explain.build_explainer(production_model).sample_limit
    if len(week) > limit:
        assert f"random sample of {limit:,} of them" in text
    else:
        assert f"All {len(week):,} customers explained" in text
    text = _text(_customer_tab(at))
    assert len(at.get("plotly_chart")) >= 2  # the waterfall and the curves of one input
    top = week.sort_values("probability", ascending=False, kind="stable").iloc[[0]]
    assert f"**Customer {top[ID_COLUMN].iloc[0]}** · rank 1 of 2,864" in text
    assert format_percent(float(top["probability"].iloc[0])) in text
    reasons = explain.reason_codes(production_model, top).iloc[0, 1:]
    shown = next(m.value for m in at.markdown if m.value.startswith("1. "))
    assert shown.splitlines() == [f"{i}. {r}" for i, r in enumerate(reasons, 1) if r]


def test_customer_found_by_rank_and_by_id(explanations, week):
    at = _customer_tab(explanations)
    tenth = week.sort_values("probability", ascending=False, kind="stable").iloc[9]
    at.number_input(key="explain_rank").set_value(10)
    _run(at)
    assert f"**Customer {tenth[ID_COLUMN]}** · rank 10 of" in _text(at)
    at.radio(key="explain_find").set_value("Customer id")
    _run(at)
    at.text_input(key="explain_id").set_value(str(tenth[ID_COLUMN]))
    _run(at)
    assert f"**Customer {tenth[ID_COLUMN]}** · rank 10 of" in _text(at)
    at.text_input(key="explain_id").set_value("nobody")
    _run(at)
    assert "There is no customer 'nobody' in this cohort" in _text(at)


def test_what_if_shows_the_models_new_score(explanations, production_model, week):
    at = _customer_tab(explanations)
    top = week.sort_values("probability", ascending=False, kind="stable").iloc[[0]]
    cid = str(top[ID_COLUMN].iloc[0])
    new = "failure" if top["poutcome"].iloc[0] != "failure" else "success"
    at.selectbox(key=f"whatif_{cid}_poutcome").set_value(new)
    at.number_input(key=f"whatif_{cid}_age").set_value(61)
    at.button(key=f"FormSubmitter:whatif_{cid}-Show the new score").click()
    _run(at)
    changed = top.copy()
    changed["poutcome"], changed["age"] = new, 61
    raw_after = float(production_model.predict_proba(changed.loc[:, list(INPUT_COLUMNS)])[0])
    expected = forecasts.what_if_probability(
        production_model.card,
        raw_after,
        float(top["raw"].iloc[0]),
        float(top["probability"].iloc[0]),
        len(week),
    )
    assert _metrics(at, "After the change") == [format_percent(expected)]
    assert _metrics(at, "Probability now") == [format_percent(float(top["probability"].iloc[0]))]
    assert "Outcome of the previous campaign from " in _text(at)


def _expected_report(week: pd.DataFrame, threshold: float, attribute: str):
    called = week["probability"].to_numpy() >= threshold
    return fairness.group_report(week, week["probability"], called, attribute, week["y"])


def test_fairness_page_shows_the_librarys_figures(fairness_page, production_model, week):
    at = fairness_page
    threshold = production_model.threshold
    report = _expected_report(week, threshold, "age band")
    assert _metrics(at, "Demographic parity ratio")[0] == f"{report.dp_ratio:.2f}"
    assert _metrics(at, "Demographic parity difference") == [format_percent(report.dp_difference)]
    assert _metrics(at, "Equalized odds difference") == [format_percent(report.eo_difference)]
    assert "95% interval" in _text(at)
    table = at.dataframe[0].value
    assert table["Customers"].tolist() == report.table["size"].tolist()
    np.testing.assert_allclose(table["Share called"], 100 * report.table["selection_rate"])
    assert table["Judgement"].tolist() == report.table["status"].tolist()
    calls = int((week["probability"] >= threshold).sum())
    assert _metrics(at, "Calls")[0] == f"{calls:,}"
    assert at.button(key="fairness_blind").label.startswith("Train it and compare")

    at.selectbox(key="fairness_attribute").set_value("marital")
    _run(at)
    marital = _expected_report(week, threshold, "marital")
    assert _metrics(at, "Demographic parity ratio")[0] == f"{marital.dp_ratio:.2f}"
    for group in marital.too_small:
        assert group in _text(at)


def test_fairness_page_shows_the_model_cards_section(fairness_page, production_model):
    section = production_model.card["fairness"]
    text = _text(fairness_page)
    assert section["computed_on"] in text
    ratio = section["attributes"]["age band"]["demographic_parity_ratio"]
    assert f"parity ratio {ratio}" in text


@pytest.fixture()
def blend_production(models_copy, production_model, reference):
    """A small average of the three families promoted to production in a private models folder."""
    from termdeposit.modeling import registry
    from termdeposit.modeling.blend import macro_drop_positions
    from termdeposit.modeling.train import build_pipeline

    params = {
        "clean__macro": "all",
        "clf__linear_drop": list(macro_drop_positions("nr.employed")),
        "clf__forest__n_estimators": 30,
        "clf__forest__max_depth": 7,
        "clf__forest__n_jobs": 1,
        "clf__boosted__n_estimators": 40,
        "clf__boosted__n_jobs": 1,
    }
    rows = reference.iloc[:30_000]
    pipeline = build_pipeline(BLEND).set_params(**params)
    pipeline.fit(rows.loc[:, list(INPUT_COLUMNS)], rows["y"].to_numpy())
    version = save_copy(
        production_model,
        pipeline,
        models_copy,
        family=BLEND,
        family_label=FAMILY_LABELS[BLEND],
        params=params,
    )
    registry.promote(version, reason="blend page test", models_dir=models_copy)
    return registry.load_model(version, models_copy)


def test_an_averaged_model_is_explained_and_its_blind_twin_trained(blend_production, week_cohort):
    model = blend_production
    at = _open_with_demo(None, EXPLANATIONS, "explain_demo")
    assert not at.exception and not at.error
    text = _text(at)
    assert model.version in text and FAMILY_LABELS[BLEND] in text
    assert "probability points" in text
    text = _text(_customer_tab(at))
    frame = validate_cohort(week_cohort.astype(str)).frame
    frame["probability"] = cohort_probabilities(model, frame)
    top = frame.sort_values("probability", ascending=False, kind="stable").iloc[[0]]
    assert f"**Customer {top[ID_COLUMN].iloc[0]}** · rank 1 of 2,864" in text
    reasons = explain.reason_codes(model, top).iloc[0, 1:]
    shown = next(m.value for m in at.markdown if m.value.startswith("1. "))
    assert shown.splitlines() == [f"{i}. {r}" for i, r in enumerate(reasons, 1) if r]

    fair = _open_with_demo(None, FAIRNESS, "fairness_demo")
    fair.button(key="fairness_blind").click()
    _run(fair)
    assert not fair.exception and not fair.error
    assert "without" in _text(fair)
