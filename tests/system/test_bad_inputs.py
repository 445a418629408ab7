"""The bad-input corpus through the CLI, and property-based tests of the scoring path.

Every file in ``tests/fixtures/bad_inputs/`` (see ``cases.json``) is either accepted and scored,
or refused with one message naming what is wrong; a refusal exits non-zero, writes no output
and leaves the database and the models folder unchanged. The outcomes corpus
(``bad_inputs/outcomes/``) goes through ``termdeposit feedback`` the same way. The dashboard
and the API answer the same corpus in ``tests/apps/dashboard/test_bad_inputs_app.py`` and
``tests/system/test_bad_inputs_api.py``.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pytest
from corpus_support import (
    CASES,
    CORPUS,
    OUTCOME_CASES,
    OUTCOMES,
    case_id,
    cohort_refusal,
    models_digest,
    outcomes_refusal,
    store_counts,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core.schema import CATEGORICAL_INPUTS, ID_COLUMN, NUMERIC_INPUTS
from termdeposit.data.cohort_file import validate_cohort
from termdeposit.modeling.predict import score_frame

runner = CliRunner()


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert sum(not c["accept"] for c in CASES) >= 30
    assert len(OUTCOME_CASES) >= 20
    assert sum(not c["accept"] for c in OUTCOME_CASES) >= 15
    for case in [*CASES, *OUTCOME_CASES]:
        assert case["expect"] or case["accept"], case
        if case["expect"]:
            assert case["expect"].lower() not in case["file"].lower(), "the name would match"
    for case in OUTCOME_CASES:
        assert (OUTCOMES / case["file"]).is_file(), case


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_cli_answers_every_bad_input(case, ops_db, tmp_path):
    before, models = store_counts(ops_db), models_digest()
    out = tmp_path / "calls.csv"
    result = runner.invoke(app, ["score", str(CORPUS / case["file"]), "--out", str(out)])
    assert "Traceback" not in result.output
    if case["accept"]:
        assert result.exit_code == 0, result.output
        assert len(pd.read_csv(out)) == case["rows"]
        assert store_counts(ops_db)["predictions"] == before["predictions"] + case["rows"]
    else:
        assert result.exit_code == 2, result.output
        assert case["expect"].lower() in result.output.lower()
        assert result.output.count("Error:") == 1
        assert f"Error: {cohort_refusal(case['file'])}\n" in result.output
        assert not out.exists()
        assert store_counts(ops_db) == before
    assert models_digest() == models


def _feedback(name: str, cohort: str | None = None):
    options = ["--cohort", cohort] if cohort is not None else []
    return runner.invoke(app, ["feedback", str(OUTCOMES / name), *options])


@pytest.mark.parametrize("case", OUTCOME_CASES, ids=case_id)
def test_cli_answers_every_outcomes_file(case, scored_small):
    if "before" in case:
        first = _feedback(case["before"])
        assert first.exit_code == 0, first.output
    before, models = store_counts(scored_small), models_digest()
    message = None if case["accept"] else outcomes_refusal(case, scored_small)
    result = _feedback(case["file"], case.get("cohort"))
    assert "Traceback" not in result.output
    assert case["expect"].lower() in result.output.lower(), result.output
    if case["accept"]:
        assert result.exit_code == 0, result.output
        after = store_counts(scored_small)
        assert after["outcomes"] == before["outcomes"] + case["rows"]
        assert after["outcome_uploads"] == before["outcome_uploads"] + 1
        again = _feedback(case["file"], case.get("cohort"))
        assert again.exit_code == 0 and "nothing changed" in again.output, again.output
        assert store_counts(scored_small) == after
    else:
        assert result.exit_code == 2, result.output
        assert result.output.count("Error:") == 1
        assert f"Error: {message}\n" in result.output
        assert store_counts(scored_small) == before
    assert models_digest() == models


def test_cli_refuses_a_million_columns(trained_version, tmp_path):
    source = tmp_path / "wide.csv"
    source.write_text(",".join(["c"] * 1_000_000) + "\n1\n")
    result = runner.invoke(app, ["score", str(source), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "far too many columns" in result.output


def test_formula_ids_are_neutralised_in_the_scored_file(trained_version, tmp_path):
    out = tmp_path / "calls.csv"
    result = runner.invoke(app, ["score", str(CORPUS / "formula_ids.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    ids = pd.read_csv(out, dtype=str)[ID_COLUMN].tolist()
    assert all(not i.startswith(("=", "+", "-", "@", "\t")) for i in ids)
    assert '\'=HYPERLINK("http://x","a")' in ids


def _cohort_rows() -> st.SearchStrategy[pd.DataFrame]:
    columns = {}
    for name, (low, high, whole) in NUMERIC_INPUTS.items():
        columns[name] = (
            st.integers(int(low), int(high))
            if whole
            else st.floats(low, high, allow_nan=False, allow_infinity=False)
        )
    for name, allowed in CATEGORICAL_INPUTS.items():
        columns[name] = st.sampled_from(allowed)
    row = st.fixed_dictionaries(columns)
    ids = st.text(string.ascii_letters + string.digits + "=+-@ ", min_size=1, max_size=12)
    return st.lists(st.tuples(ids, row), min_size=1, max_size=40, unique_by=lambda t: t[0].strip())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_cohort_rows())
def test_any_valid_cohort_scores(production_model, rows):
    frame = pd.DataFrame([{ID_COLUMN: i, **r} for i, r in rows]).astype(str)
    if frame[ID_COLUMN].str.strip().eq("").any():
        return
    cohort = validate_cohort(frame)
    scored = score_frame(production_model, cohort.frame, threshold=0.1)
    assert len(scored) == len(frame)
    assert scored[ID_COLUMN].tolist() == frame[ID_COLUMN].str.strip().tolist()
    probabilities = scored["probability"].to_numpy()
    assert (
        np.all((probabilities >= 0) & (probabilities <= 1)) and not np.isnan(probabilities).any()
    )
    assert sorted(scored["rank"]) == list(range(1, len(frame) + 1))
