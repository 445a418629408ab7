"""The bad-input corpus through the dashboard (AppTest): the Score cohort and Outcomes pages.

Every corpus file (``fixtures/bad_inputs/``, see ``corpus_support``) is uploaded on the real
page, as a user would. A refused file shows exactly one error box with the same message as
the command line and the API, no exception, and leaves every table of the database and the
models folder unchanged; an accepted cohort is scored with all its rows, accepted outcomes
are recorded once (the same file again changes nothing).
"""

from __future__ import annotations

import pytest
from app_support import HOME
from app_support import metric as _metric
from app_support import run as _run
from corpus_support import (
    CASES,
    CORPUS,
    OUTCOME_CASES,
    OUTCOMES,
    SCORED_WEEK,
    case_id,
    cohort_refusal,
    grown_scores,
    large_variant,
    models_digest,
    outcomes_refusal,
    store_counts,
)
from streamlit.testing.v1 import AppTest

from termdeposit.decisions.economics import format_count

SCORE = "pages/1_Score_cohort.py"
OUTCOMES_PAGE = "pages/7_Outcomes.py"
TIMEOUT = 120


def _open(page: str) -> AppTest:
    """A new session (as a user opening the dashboard) on ``page``."""
    at = _run(AppTest.from_file(HOME, default_timeout=TIMEOUT))
    at.switch_page(page)
    return _run(at)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_score_page_answers_every_bad_input(case, ops_db):
    at = _open(SCORE)
    assert not at.error and at.session_state["scored"] is None
    before, models = store_counts(ops_db), models_digest()
    data = (CORPUS / case["file"]).read_bytes()
    at.file_uploader(key="cohort_upload").upload(case["file"], data, "application/octet-stream")
    _run(at)
    errors = [e.value for e in at.error]
    if case["accept"]:
        assert errors == []
        assert len(at.session_state["scored"]) == case["rows"]
        assert _metric(at, "Customers") == format_count(case["rows"])
        assert f"Cohort: {case['file']}" in [h.value for h in at.subheader]
        assert store_counts(ops_db)["predictions"] == before["predictions"] + case["rows"]
    else:
        assert len(errors) == 1, errors
        assert case["expect"].lower() in errors[0].lower(), errors[0]
        assert errors[0].split("\n\n")[0] == cohort_refusal(case["file"]), "the CLI's message"
        assert at.session_state["scored"] is None
        assert store_counts(ops_db) == before
    assert models_digest() == models


@pytest.mark.parametrize(
    "case", [c for c in CASES if large_variant(c["file"]) is not None], ids=case_id
)
def test_score_page_answers_every_bad_input_above_the_chunk_size(case, ops_db, production_model):
    """The corpus grown past the chunk size (rows repeated): the same answers, and the scores
    of the grown cohort as the product scores it whole."""
    small_scores = None
    if case["accept"]:
        at = _open(SCORE)
        data = (CORPUS / case["file"]).read_bytes()
        at.file_uploader(key="cohort_upload").upload(case["file"], data, "text/csv")
        small_scores = _run(at).session_state["scored"]["probability"].tolist()
    at = _open(SCORE)
    before, models = store_counts(ops_db), models_digest()
    data = large_variant(case["file"])
    at.file_uploader(key="cohort_upload").upload(f"large-{case['file']}", data, "text/csv")
    _run(at)
    errors = [e.value for e in at.error]
    if case["accept"]:
        assert errors == []
        scored = at.session_state["scored"]
        copies = len(scored) // len(small_scores)
        assert copies > 1 and len(scored) == copies * len(small_scores)
        expected = grown_scores(production_model, case["file"], copies)
        assert scored["probability"].tolist() == expected.tolist()
        assert store_counts(ops_db)["predictions"] == before["predictions"] + len(scored)
    else:
        assert len(errors) == 1, errors
        assert case["expect"].lower() in errors[0].lower(), errors[0]
        assert at.session_state["scored"] is None
        assert store_counts(ops_db) == before
    assert models_digest() == models


def _record(at: AppTest, name: str) -> AppTest:
    """Upload an outcomes file on the Outcomes page and press the record button."""
    data = (OUTCOMES / name).read_bytes()
    at.file_uploader(key="outcomes_upload").upload(name, data, "application/octet-stream")
    _run(at)
    at.button(key="outcomes_record").click()
    return _run(at)


@pytest.mark.parametrize("case", OUTCOME_CASES, ids=case_id)
def test_outcomes_page_answers_every_outcomes_file(case, scored_small):
    at = _open(OUTCOMES_PAGE)
    assert not at.error
    if "cohort" in case:
        choice = at.selectbox(key="outcomes_cohort")
        offered = [label for label in choice.options if f": {case['cohort']} (" in label]
        if case["cohort"] != SCORED_WEEK:
            # The page offers only scored cohorts: one never scored cannot be chosen at all.
            assert offered == [], choice.options
            return
        assert len(offered) == 1, choice.options
        choice.select(int(offered[0].split(":", 1)[0]))  # the options are cohort ids
        _run(at)
        assert at.selectbox(key="outcomes_cohort").value == 1
    if "before" in case:
        first = _record(at, case["before"])
        assert not first.error and first.success, [e.value for e in first.error]
    before, models = store_counts(scored_small), models_digest()
    message = None if case["accept"] else outcomes_refusal(case, scored_small)
    _record(at, case["file"])
    errors = [e.value for e in at.error]
    if case["accept"]:
        assert errors == []
        assert any(case["expect"].lower() in s.value.lower() for s in at.success), at.success
        after = store_counts(scored_small)
        assert after["outcomes"] == before["outcomes"] + case["rows"]
        at.button(key="outcomes_record").click()  # the same file again
        _run(at)
        assert any("nothing changed" in s.value for s in at.success)
        assert store_counts(scored_small) == after
    else:
        assert len(errors) == 1, errors
        assert case["expect"].lower() in errors[0].lower(), errors[0]
        assert errors[0].split("\n\n")[0] == message, "the CLI's message"
        assert not at.success
        assert store_counts(scored_small) == before
    assert models_digest() == models
