"""The bad-input corpus through the CLI, and property-based tests of the scoring path.

Every file in ``tests/fixtures/bad_inputs/`` (see ``cases.json``) is either accepted and scored,
or refused with one message naming what is wrong; a refusal exits non-zero, writes no output
and leaves the models folder byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from termdeposit.cli import app
from termdeposit.modeling.predict import score_frame
from termdeposit.schema import CATEGORICAL_INPUTS, ID_COLUMN, NUMERIC_INPUTS, validate_cohort

CORPUS = Path(__file__).resolve().parent / "fixtures" / "bad_inputs"
CASES = json.loads((CORPUS / "cases.json").read_text())
runner = CliRunner()


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert sum(not c["accept"] for c in CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_cli_answers_every_bad_input(case, trained_version, tmp_path):
    models = Path(os.environ["TERMDEPOSIT_MODELS"])
    before = _tree_digest(models)
    out = tmp_path / "calls.csv"
    result = runner.invoke(app, ["score", str(CORPUS / case["file"]), "--out", str(out)])
    assert "Traceback" not in result.output
    if case["accept"]:
        assert result.exit_code == 0, result.output
        assert len(pd.read_csv(out)) == case["rows"]
    else:
        assert result.exit_code == 2, result.output
        assert case["expect"].lower() in result.output.lower()
        assert result.output.count("Error:") == 1
        assert not out.exists()
    assert _tree_digest(models) == before


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
