"""Scoring a file while its prediction log is written: the same log as logging the finished
file, and nothing logged when anything fails."""

from __future__ import annotations

import errno

import pandas as pd
import pytest

from termdeposit.data import fast_csv
from termdeposit.data.dataset import make_cohort
from termdeposit.modeling import predict
from termdeposit.services import logged_scoring
from termdeposit.storage import store


def _small_chunks(*args, **kwargs):
    """``score_file`` with chunks of 700 rows (the week has 2,864 customers)."""
    return predict.score_file(*args, chunk_rows=700, **kwargs)


@pytest.fixture()
def cohort_file(reference, tmp_path):
    path = tmp_path / "week39.csv"
    make_cohort(reference, 39).to_csv(path, index=False)
    return path


def _logged_inputs(s: store.Store, cohort_id: int) -> pd.DataFrame:
    return s.cohort_inputs(cohort_id).set_index("customer_id").sort_index()


@pytest.mark.parametrize("chunked", [False, True])
def test_log_written_while_scoring_equals_logging_the_output(
    db_url, production_model, cohort_file, tmp_path, monkeypatch, chunked
):
    monkeypatch.setattr(logged_scoring, "score_file", _small_chunks)  # several chunks
    live = store.open_store(db_url)
    out = tmp_path / "scored.csv"
    summary, logged = logged_scoring.score_file_logged(
        live, production_model, cohort_file, out, force_chunked=chunked
    )
    assert logged.new_cohort and logged.new_scoring and logged.rows == summary.rows == 2864

    # The same output logged the old way, from the finished file, in another database.
    other = store.open_store(f"sqlite:///{tmp_path / 'from-file.db'}")
    reference_log = store.log_scored_output(
        other,
        out,
        cohort_file,
        model_version=production_model.version,
        threshold=production_model.threshold,
        top_n=None,
    )
    ours = live.predictions(logged.scoring_id).set_index("customer_id").sort_index()
    theirs = other.predictions(reference_log.scoring_id).set_index("customer_id").sort_index()
    pd.testing.assert_frame_equal(ours, theirs)
    pd.testing.assert_frame_equal(
        _logged_inputs(live, logged.cohort_id), _logged_inputs(other, reference_log.cohort_id)
    )
    assert live.cohorts()["file_sha256"].tolist() == other.cohorts()["file_sha256"].tolist()
    assert int(live.scoring_runs()["calls"].iloc[0]) == summary.calls


def test_scoring_failing_midway_logs_nothing(
    db_url, production_model, cohort_file, tmp_path, monkeypatch
):
    real = fast_csv.csv_bytes
    calls = {"n": 0}

    def failing(frame, header=True):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real(frame, header=header)

    monkeypatch.setattr(fast_csv, "csv_bytes", failing)
    monkeypatch.setattr(logged_scoring, "score_file", _small_chunks)
    s = store.open_store(db_url)
    with pytest.raises(OSError, match="No space left"):
        logged_scoring.score_file_logged(
            s, production_model, cohort_file, tmp_path / "out.csv", force_chunked=True
        )
    assert s.cohorts().empty and s.scoring_runs().empty


def test_log_failing_stops_scoring_with_the_logs_error(
    production_model, cohort_file, tmp_path, monkeypatch
):
    s = store.open_store(f"sqlite:///{tmp_path / 'log.db'}")
    chunks = {"n": 0}
    real_put = logged_scoring._Handover.put

    def counting(self, chunk):
        chunks["n"] += 1
        return real_put(self, chunk)

    def broken(*args, **kwargs):
        raise store.StoreUnavailableError("The prediction log database is down (injected).")

    monkeypatch.setattr(logged_scoring._Handover, "put", counting)
    monkeypatch.setattr(store.Store, "log_scoring", broken)
    monkeypatch.setattr(logged_scoring, "score_file", _small_chunks)
    with pytest.raises(store.StoreUnavailableError, match="injected"):
        logged_scoring.score_file_logged(
            s, production_model, cohort_file, tmp_path / "out.csv", force_chunked=True
        )
    assert chunks["n"] <= 4, "scoring stopped once the log had failed (5 chunks in all)"
