"""Scoring: decisions, ranks, file scoring (whole and chunked) and evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from termdeposit.core.errors import CohortValidationError, TermDepositError
from termdeposit.data.cohort_file import load_cohort
from termdeposit.modeling.predict import (
    DECISION_YES,
    call_list,
    decisions,
    ranks_of,
    score_file,
    score_frame,
)


def test_ranks_and_decisions():
    p = np.array([0.1, 0.9, 0.5, 0.9])
    assert ranks_of(p).tolist() == [4, 1, 3, 2]
    assert decisions(p, threshold=0.5).tolist() == [False, True, True, True]
    assert decisions(p, top_n=2).tolist() == [False, True, False, True]
    with pytest.raises(TermDepositError):
        decisions(p, threshold=1.5)


def test_score_frame_keeps_ids_and_order(production_model, week_cohort):
    cohort = load_cohort(week_cohort.to_csv(index=False).encode())
    scored = score_frame(production_model, cohort.frame, threshold=0.2)
    assert scored["customer_id"].tolist() == week_cohort["customer_id"].tolist()
    assert ((scored["probability"] >= 0.2) == (scored["decision"] == DECISION_YES)).all()
    calls = call_list(scored)
    assert calls["probability"].is_monotonic_decreasing
    assert calls["rank"].tolist() == list(range(1, len(calls) + 1))


def test_chunked_file_scoring_equals_whole(production_model, week_cohort, tmp_path):
    source = tmp_path / "cohort.csv"
    week_cohort.drop(columns=["y"]).to_csv(source, index=False, sep=";")
    whole = score_file(production_model, source, tmp_path / "a.csv", threshold=0.15)
    chunked = score_file(
        production_model,
        source,
        tmp_path / "b.csv",
        threshold=0.15,
        chunk_rows=500,
        force_chunked=True,
    )
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    assert whole.calls == chunked.calls and chunked.chunked
    assert a["rank"].min() == 1 and a["rank"].max() == len(week_cohort)


def test_chunked_scoring_reports_row_numbers_and_leaves_no_file(
    production_model, week_cohort, tmp_path
):
    bad = week_cohort.drop(columns=["y"]).astype(str)
    bad.loc[1200, "age"] = "old"
    source = tmp_path / "bad.csv"
    bad.to_csv(source, index=False)
    with pytest.raises(CohortValidationError) as info:
        score_file(
            production_model, source, tmp_path / "out.csv", chunk_rows=500, force_chunked=True
        )
    assert info.value.problems[0].rows == "1202"
    assert not (tmp_path / "out.csv").exists()
    assert not list(tmp_path.glob(".*part"))
