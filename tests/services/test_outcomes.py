"""The feedback loop: reading outcome files, recording them all or nothing, concurrently."""

from __future__ import annotations

import multiprocessing as mp

import pandas as pd
import pytest
from store_support import scored_week, sha
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.services.outcomes import (
    OutcomesError,
    outcomes_file,
    read_outcomes,
    record_feedback,
    simulated_outcomes,
)
from termdeposit.storage import store


def csv_bytes(text: str) -> bytes:
    return text.strip().encode("utf-8") + b"\n"


@pytest.fixture()
def logged(db_url, reference):  # noqa: F811 (the fixture imported above)
    """A store holding two logged weeks (40 and 41); returns (store, week 40, week 41)."""
    s = store.open_store(db_url)
    w40, w41 = scored_week(reference, 40), scored_week(reference, 41, seed=1)
    s.log_scoring(
        w40, file_sha256=sha("w40"), model_version="v1", threshold=0.5, week_label="wk40"
    )
    s.log_scoring(
        w41, file_sha256=sha("w41"), model_version="v1", threshold=0.5, week_label="wk41"
    )
    return s, w40, w41


def test_read_outcomes_understands_loose_files():
    frame = read_outcomes(
        csv_bytes(
            """
Customer ID;Contacted;Y
C1;yes;no
C2;1;TRUE
C3;no;
C2;yes;yes
"""
        ),
        "outcomes.csv",
    )
    assert list(frame["customer_id"]) == ["C1", "C2", "C3"]
    assert list(frame["called"]) == [True, True, False]
    assert list(frame["subscribed"]) == [False, True, False]
    assert frame.attrs["repeated_rows"] == 1


def test_read_outcomes_lists_every_problem_with_rows():
    with pytest.raises(OutcomesError) as caught:
        read_outcomes(
            csv_bytes(
                """
customer_id,called,subscribed
C1,yes,maybe
,yes,no
C3,yes,
C4,yes,no
C4,yes,yes
"""
            )
        )
    problems = {(p.column, p.rows): p.problem for p in caught.value.problems}
    assert "expected yes or no, found 'maybe'" in problems[("subscribed", "2")]
    assert problems[("customer_id", "3")] == "blank customer id"
    assert "blank for a called customer" in problems[("subscribed", "4")]
    assert "different outcomes: 'C4'" in problems[("customer_id", "5, 6")]
    assert set(caught.value.details["row"]) == {2, 3, 4, 5, 6}
    with pytest.raises(OutcomesError, match="needs the columns"):
        read_outcomes(csv_bytes("id,result\nC1,yes"))


def test_unknown_ids_are_listed_and_nothing_is_stored(logged):
    s, w40, _ = logged
    ids = list(w40["customer_id"][:3]) + ["X-404", "X-405"]
    data = csv_bytes("customer_id,called,subscribed\n" + "\n".join(f"{i},yes,no" for i in ids))
    with pytest.raises(OutcomesError) as caught:
        record_feedback(data, "o.csv", store=s)
    assert "2 customer ids are not in any scored cohort: 'X-404', 'X-405'" in str(caught.value)
    assert list(caught.value.details["customer_id"]) == ["X-404", "X-405"]
    assert s.outcomes().empty and s.outcome_uploads().empty


def test_recording_is_idempotent_and_conflicts_are_refused(logged):
    s, w40, w41 = logged
    first = outcomes_file(
        pd.DataFrame(
            {
                "customer_id": w40["customer_id"][:50],
                "called": True,
                "subscribed": [i % 5 == 0 for i in range(50)],
            }
        )
    )
    result = record_feedback(first, "week40.csv", store=s)
    assert (result.added, result.unchanged, result.cohorts) == (50, 0, [1])
    again = record_feedback(first, "week40.csv", store=s)
    assert again.added == 0 and "nothing changed" in again.summary()
    assert len(s.outcomes()) == 50 and len(s.outcome_uploads()) == 1

    changed = pd.read_csv(pd.io.common.BytesIO(first), dtype=str)
    changed.loc[0, "subscribed"] = "no" if changed.loc[0, "subscribed"] == "yes" else "yes"
    changed.loc[60] = [w41["customer_id"].iloc[0], "yes", "yes"]
    with pytest.raises(OutcomesError) as caught:
        record_feedback(changed.to_csv(index=False).encode(), "fix.csv", store=s)
    assert "differ from those recorded earlier" in str(caught.value)
    assert "recorded earlier as called=yes" in caught.value.details.iloc[0]["problem"]
    assert len(s.outcomes()) == 50, "the new week-41 row must not be stored either"

    rows = s.training_rows()
    assert len(rows) == 50 and rows["y"].sum() == 10
    assert list(rows["customer_id"]) == list(w40["customer_id"][:50])


def test_ids_in_several_cohorts_need_the_cohort(db_url, reference):  # noqa: F811
    s = store.open_store(db_url)
    week = scored_week(reference, 40)
    s.log_scoring(week, file_sha256=sha("a"), model_version="v1", threshold=0.5, week_label="a")
    s.log_scoring(week, file_sha256=sha("b"), model_version="v1", threshold=0.5, week_label="b")
    data = csv_bytes(f"customer_id,called,subscribed\n{week['customer_id'].iloc[0]},yes,yes")
    with pytest.raises(OutcomesError, match="in several cohorts"):
        record_feedback(data, store=s)
    result = record_feedback(data, cohort="b", store=s)
    assert result.cohorts == [2]
    with pytest.raises(OutcomesError, match="not in cohort 1"):
        record_feedback(csv_bytes("customer_id,called,subscribed\nZZ,yes,no"), cohort="a", store=s)


def _upload(url: str, data: bytes, start, results) -> None:
    store._STORES.clear()  # a forked child must not reuse the parent's connections
    start.wait()
    try:
        results.put(record_feedback(data, "part.csv", store=store.open_store(url)).added)
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(repr(exc))


def test_concurrent_uploads_store_every_outcome_once(logged, db_url):  # noqa: F811
    s, w40, _ = logged
    ids = list(w40["customer_id"][:400])
    truth = pd.DataFrame(
        {"customer_id": ids, "called": True, "subscribed": [i % 7 == 0 for i in range(400)]}
    )
    parts = [truth.iloc[0:250], truth.iloc[150:400], truth.iloc[100:300], truth.iloc[0:400]]
    context = mp.get_context("fork")
    start, results = context.Barrier(len(parts)), context.Queue()
    workers = [
        context.Process(target=_upload, args=(db_url, outcomes_file(p), start, results))
        for p in parts
    ]
    for worker in workers:
        worker.start()
    added = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert all(isinstance(a, int) for a in added), added
    stored = s.outcomes()
    assert sum(added) == 400, added
    assert len(stored) == 400 and stored["customer_id"].is_unique
    merged = stored.merge(truth, on="customer_id", suffixes=("", "_truth"))
    assert (merged["subscribed"] == merged["subscribed_truth"]).all()


def test_cli_feedback(logged, db_url, reference, tmp_path, monkeypatch):  # noqa: F811
    _, w40, _ = logged
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", db_url)
    good = tmp_path / "outcomes.csv"
    good.write_bytes(outcomes_file(simulated_outcomes(w40["customer_id"][:20], reference)))
    runner = CliRunner()
    first = runner.invoke(app, ["feedback", str(good)])
    assert first.exit_code == 0 and "Recorded 20 new outcomes" in first.output
    assert "nothing changed" in runner.invoke(app, ["feedback", str(good)]).output
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,called,subscribed\nNOPE-1,yes,no\n")
    refused = runner.invoke(app, ["feedback", str(bad)])
    assert refused.exit_code == 2 and "NOPE-1" in refused.output
