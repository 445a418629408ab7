"""The bad-input corpus through the HTTP API: ``POST /score`` and ``POST /outcomes``.

Every corpus file (``fixtures/bad_inputs/``, see ``corpus_support``) is either accepted, or
refused with 4xx (never 500) and a JSON ``error`` holding the same message as the command
line; a refusal leaves every table of the database and the models folder unchanged. Outcomes
files are recorded all or nothing, and the same file twice is stored once.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from corpus_support import (
    CASES,
    CORPUS,
    OUTCOME_CASES,
    OUTCOMES,
    SMALL_COHORT,
    TEST_CHUNK_MB,
    case_id,
    cohort_refusal,
    grown_scores,
    large_variant,
    models_digest,
    outcomes_refusal,
    store_counts,
)
from fastapi.testclient import TestClient

from termdeposit.apps import api
from termdeposit.data.cohort_file import read_table

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def client(production_model):
    """One API for the module (it opens the database named by TERMDEPOSIT_DB_URL per call)."""
    with TestClient(api.create_app(token="")) as test_client:
        yield test_client


def _upload(name: str, data: bytes) -> dict:
    return {"file": (name, data, "application/octet-stream")}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_score_answers_every_bad_input(case, client, ops_db):
    before, models = store_counts(ops_db), models_digest()
    data = (CORPUS / case["file"]).read_bytes()
    answer = client.post("/score", files=_upload(case["file"], data))
    if case["accept"]:
        assert answer.status_code == 200, answer.text
        scored = pd.read_csv(io.BytesIO(answer.content), dtype=str, keep_default_na=False)
        assert len(scored) == case["rows"] and answer.headers["x-rows"] == str(case["rows"])
        assert store_counts(ops_db)["predictions"] == before["predictions"] + case["rows"]
    else:
        assert 400 <= answer.status_code < 500, answer.text
        body = answer.json()
        assert case["expect"].lower() in body["error"].lower(), body
        assert body["error"] == cohort_refusal(case["file"]), "the CLI's message"
        assert body["hint"], "the answer says what to do"
        assert "Traceback" not in answer.text
        assert store_counts(ops_db) == before
    assert models_digest() == models


@pytest.mark.parametrize(
    "case", [c for c in CASES if large_variant(c["file"]) is not None], ids=case_id
)
def test_score_answers_every_bad_input_above_the_chunk_size(case, client, ops_db, monkeypatch):
    """The same corpus grown past the chunk size: /score then scores it in chunks."""
    monkeypatch.setenv("TERMDEPOSIT_CHUNK_MB", TEST_CHUNK_MB)
    before, models = store_counts(ops_db), models_digest()
    data = large_variant(case["file"])
    answer = client.post("/score", files=_upload(case["file"], data))
    if case["accept"]:
        assert answer.status_code == 200, answer.text
        small = client.post(
            "/score?log=false", files=_upload(case["file"], (CORPUS / case["file"]).read_bytes())
        )
        scored = pd.read_csv(io.BytesIO(answer.content), keep_default_na=False)
        alone = pd.read_csv(io.BytesIO(small.content), keep_default_na=False)
        copies = len(scored) // len(alone)
        assert copies > 1 and len(scored) == copies * len(alone)
        assert scored["age"].tolist() == alone["age"].tolist() * copies
        expected = grown_scores(client.app.state.models.get(), case["file"], copies)
        np.testing.assert_allclose(scored["probability"].to_numpy(float), expected, rtol=1e-14)
        assert store_counts(ops_db)["predictions"] == before["predictions"] + len(scored)
    else:
        assert 400 <= answer.status_code < 500, answer.text
        body = answer.json()
        assert case["expect"].lower() in body["error"].lower(), body
        assert body["hint"] and "Traceback" not in answer.text
        assert store_counts(ops_db) == before
    assert models_digest() == models


def _post_outcomes(client: TestClient, name: str, cohort: str | None = None, **kwargs):
    form = {"cohort": cohort} if cohort is not None else None
    data = (OUTCOMES / name).read_bytes()
    return client.post("/outcomes", files=_upload(name, data), data=form, **kwargs)


def _check_rows_concerned(name: str, body: dict) -> None:
    """Every listed row is a row of the file, holding the customer id it names."""
    listed = body.get("rows_concerned", [])
    assert len(listed) == body.get("rows_concerned_total", 0)
    if not listed:
        return
    table = read_table((OUTCOMES / name).read_bytes(), name, kind="outcomes")
    ids = table.iloc[:, 0].astype(str).str.strip()
    for entry in listed:
        assert 2 <= entry["row"] <= len(table) + 1, entry
        if entry["customer_id"]:
            assert ids.iloc[entry["row"] - 2] == entry["customer_id"], entry


@pytest.mark.parametrize("case", OUTCOME_CASES, ids=case_id)
def test_outcomes_answers_every_outcomes_file(case, client, scored_small):
    if "before" in case:
        first = _post_outcomes(client, case["before"])
        assert first.status_code == 200, first.text
    before, models = store_counts(scored_small), models_digest()
    message = None if case["accept"] else outcomes_refusal(case, scored_small)
    answer = _post_outcomes(client, case["file"], case.get("cohort"))
    body = answer.json()
    if case["accept"]:
        assert answer.status_code == 200, answer.text
        assert case["expect"].lower() in body["message"].lower(), body
        assert (body["added"], body["unchanged"], body["cohorts"]) == (case["rows"], 0, [1])
        after = store_counts(scored_small)
        assert after["outcomes"] == before["outcomes"] + case["rows"]
        again = _post_outcomes(client, case["file"], case.get("cohort"))
        assert again.status_code == 200, again.text
        assert (again.json()["added"], again.json()["unchanged"]) == (0, case["rows"])
        assert "nothing changed" in again.json()["message"]
        assert store_counts(scored_small) == after
    else:
        assert 400 <= answer.status_code < 500, answer.text
        assert case["expect"].lower() in body["error"].lower(), body
        assert body["error"] == message, "the CLI's message"
        assert body["hint"], "the answer says what to do"
        _check_rows_concerned(case["file"], body)
        assert store_counts(scored_small) == before
    assert models_digest() == models


def test_outcomes_list_the_unknown_customers_with_their_rows(client, scored_small):
    answer = _post_outcomes(client, "unknown_customers.csv")
    assert answer.status_code == 422
    body = answer.json()
    assert body["problems"] == [
        {
            "field": "customer_id",
            "rows": "5, 6",
            "problem": "2 customer ids are not in any scored cohort: 'X-404', 'X-405'",
        }
    ]
    assert [(r["row"], r["customer_id"]) for r in body["rows_concerned"]] == [
        (5, "X-404"),
        (6, "X-405"),
    ]
    assert scored_small.outcomes().empty and scored_small.outcome_uploads().empty


def test_score_then_outcomes_twice_stores_them_once(client, ops_db):
    scored = client.post("/score", files=_upload(SMALL_COHORT.name, SMALL_COHORT.read_bytes()))
    assert scored.status_code == 200, scored.text
    assert list(ops_db.cohorts()["name"]) == [SMALL_COHORT.name]
    by_query = {"params": {"cohort": SMALL_COHORT.name}}
    first = _post_outcomes(client, "valid.csv", **by_query)
    assert first.status_code == 200, first.text
    assert first.json()["added"] == 5 and first.json()["cohorts"] == [1]
    counts = store_counts(ops_db)
    second = _post_outcomes(client, "valid.csv", **by_query)
    assert second.status_code == 200 and second.json()["added"] == 0
    assert store_counts(ops_db) == counts
    assert len(ops_db.outcomes()) == 5 and len(ops_db.outcome_uploads()) == 1
    stored = ops_db.outcomes().set_index("customer_id")
    assert stored.loc["C37097", "subscribed"] and not stored.loc["C37096", "subscribed"]
    assert not stored.loc["C37099", "called"]


def test_two_different_cohorts_are_refused(client, scored_small):
    answer = _post_outcomes(client, "valid.csv", "1", params={"cohort": "2010-11 wk4"})
    assert answer.status_code == 400
    assert "two different cohorts" in answer.json()["error"].lower()
    assert scored_small.outcomes().empty


def test_outcomes_need_the_token(production_model, scored_small):
    with TestClient(api.create_app(token="s3cret")) as test_client:
        refused = _post_outcomes(test_client, "valid.csv")
        assert refused.status_code == 401
        assert scored_small.outcomes().empty
        wrong = _post_outcomes(test_client, "valid.csv", headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert _post_outcomes(test_client, "valid.csv", headers=right).status_code == 200
        assert len(scored_small.outcomes()) == 5


def test_outcomes_endpoint_is_documented(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/outcomes"]["post"]
    assert "all or nothing" in operation["description"]
    assert any(p["name"] == "cohort" for p in operation["parameters"])
