"""The HTTP API: health, model card, predictions, file scoring, errors, token, model reload."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from termdeposit.apps import api
from termdeposit.core.config import default_settings
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS
from termdeposit.data.cohort_file import validate_cohort
from termdeposit.data.fast_csv import csv_bytes
from termdeposit.modeling import inference, registry
from termdeposit.modeling.predict import DECISION_NO, DECISION_YES, score_file, score_frame
from termdeposit.services.forecasts import cohort_outlook

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _records(cohort: pd.DataFrame, rows: int, prefix: str = "A") -> list[dict[str, object]]:
    rows_json = cohort.loc[:, list(INPUT_COLUMNS)].head(rows).to_json(orient="records")
    return [{"customer_id": f"{prefix}{i:04d}", **r} for i, r in enumerate(json.loads(rows_json))]


@pytest.fixture()
def client(production_model):
    with TestClient(api.create_app(token="")) as test_client:
        yield test_client


def test_health_and_model_card(client, production_model):
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["model_version"] == production_model.version
    card = client.get("/model").json()
    assert card["version"] == production_model.version
    assert "metrics" in card


def test_predict_matches_the_pipeline(client, production_model, week_cohort):
    records = _records(week_cohort, 25)
    answer = client.post("/predict", json=records)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["logged"] is True
    frame = validate_cohort(pd.DataFrame(records).astype(str)).frame
    # a list of records is not a week's cohort: each gets the model's own probability
    probabilities = inference.predict_proba(production_model, frame.loc[:, list(INPUT_COLUMNS)])
    got = pd.DataFrame(body["predictions"])
    assert got["customer_id"].tolist() == frame[ID_COLUMN].tolist()
    assert np.array_equal(got["probability"].to_numpy(), probabilities)
    calls = probabilities >= production_model.threshold
    assert got["decision"].tolist() == [DECISION_YES if c else DECISION_NO for c in calls]
    whole = score_frame(production_model, frame)["probability"].to_numpy()
    assert not np.allclose(whole, probabilities), "scored as a cohort, they follow its week"
    assert set(got["model_version"]) == {production_model.version}


def test_direct_record_reading_equals_the_cohort_contract(week_cohort):
    """The per-request shortcut (no text round trip) gives what validate_cohort gives."""
    records = [api.CustomerRecord.model_validate(r) for r in _records(week_cohort, 40)]
    direct = api._typed_records(records)
    assert direct is not None
    contract = validate_cohort(api._text_records(records), row_offset=-1).frame
    pd.testing.assert_frame_equal(
        api.columns_frame(direct), contract.loc[:, [ID_COLUMN, *INPUT_COLUMNS]], check_dtype=False
    )
    assert api.columns_frame(direct).dtypes.equals(
        api.columns_frame(api.records_columns(records)).dtypes
    )
    # A value the shortcut cannot vouch for goes through the contract, which explains it.
    odd = [api.CustomerRecord.model_validate({**_records(week_cohort, 1)[0], "age": "forty"})]
    assert api._typed_records(odd) is None
    with pytest.raises(api.CohortValidationError, match="cannot be scored"):
        api.records_columns(odd)


def test_predict_logs_to_the_prediction_log(client, week_cohort):
    from termdeposit.storage.store import open_store

    records = _records(week_cohort, 3, prefix="LOG")
    assert client.post("/predict", json=records).json()["logged"] is True
    store = open_store()
    runs = store.scoring_runs()
    api_runs = runs[runs["source"] == "api"]
    logged = pd.concat([store.predictions(int(i)) for i in api_runs["id"]])
    assert {"LOG0000", "LOG0001", "LOG0002"} <= set(logged["customer_id"])


def test_threshold_and_fallback_validation(client, week_cohort):
    record = _records(week_cohort, 1)[0]
    messy = {**record, "age": str(int(record["age"])), "job": f"  {record['job'].upper()} "}
    strict = client.post("/predict?log=false&threshold=1", json=[record]).json()
    loose = client.post("/predict?log=false&threshold=0", json=[messy]).json()
    assert strict["predictions"][0]["decision"] == DECISION_NO
    assert loose["predictions"][0]["decision"] == DECISION_YES
    assert loose["predictions"][0]["probability"] == strict["predictions"][0]["probability"]


def test_records_without_ids_get_row_ids(client, week_cohort):
    records = [{k: v for k, v in r.items() if k != ID_COLUMN} for r in _records(week_cohort, 2)]
    body = client.post("/predict?log=false", json=records).json()
    assert [p["customer_id"] for p in body["predictions"]] == ["row-00001", "row-00002"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"age": 200}, "age", "out of range"),
        ({"job": "pilot"}, "job", "never seen in training"),
        ({"pdays": "soon"}, "pdays", "expected a number"),
        ({"campaign": 2.5}, "campaign", "whole number"),
        ({"age": None}, "age", "valid"),
        ({"nr.employed": [1]}, "nr.employed", "valid"),
    ],
)
def test_bad_records_answer_422_naming_field_and_record(client, week_cohort, change, field, words):
    records = _records(week_cohort, 2)
    records[1] = {**records[1], **change}
    answer = client.post("/predict", json=records)
    assert answer.status_code == 422
    problems = answer.json()["problems"]
    assert any(p["field"] == field and p["records"] == "2" for p in problems), problems
    assert any(words in p["problem"] for p in problems), problems
    assert "Traceback" not in answer.text


def test_missing_field_duplicate_ids_and_malformed_bodies(client, week_cohort):
    records = _records(week_cohort, 2)
    missing = client.post("/predict", json=[{k: v for k, v in records[0].items() if k != "loan"}])
    assert missing.status_code == 422
    assert missing.json()["problems"][0]["field"] == "loan"
    twice = client.post("/predict", json=[records[0], records[0]])
    assert twice.status_code == 422
    assert twice.json()["problems"][0]["field"] == ID_COLUMN
    json_type = {"content-type": "application/json"}
    for body in (b"{not json", b'{"a": 1}', b"[]"):
        answer = client.post("/predict", content=body, headers=json_type)
        assert 400 <= answer.status_code < 500
        assert answer.json()["error"]


def test_record_limit(client, week_cohort):
    records = _records(week_cohort, 1) * (api.MAX_RECORDS + 1)
    assert client.post("/predict", json=records).status_code == 413


def test_files_over_the_upload_limit_are_refused_before_reading(client, monkeypatch):
    from termdeposit.core import config

    monkeypatch.setattr(config, "MAX_UPLOAD_MB", 1)
    big = b"customer_id,age\n" + b"C1,41\n" * 200_000  # 1.2 MB
    for path in ("/score", "/outcomes"):
        answer = client.post(path, files={"file": ("big.csv", big, "text/csv")})
        assert answer.status_code == 413, (path, answer.text)
        assert "limit of one upload" in answer.json()["error"]


def test_score_upload_equals_the_cli_output(client, week_cohort, production_model, tmp_path):
    source = tmp_path / "week.csv"
    source.write_bytes(csv_bytes(week_cohort))
    cli_out = tmp_path / "cli.csv"
    score_file(production_model, source, cli_out)
    answer = client.post("/score", files={"file": ("week.csv", source.read_bytes(), "text/csv")})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["x-model-version"] == production_model.version
    assert answer.headers["x-rows"] == str(len(week_cohort))
    assert answer.content == cli_out.read_bytes()
    # the forecast, as the forecasts service computes it from the same cohort
    scored = pd.read_csv(cli_out, dtype={"customer_id": str})
    outlook = cohort_outlook(
        production_model,
        scored["probability"].to_numpy(),
        default_settings(),
        called=(scored["decision"] == DECISION_YES).to_numpy(),
        frame=validate_cohort(week_cohort.astype(str)).frame,
    )
    assert float(answer.headers["x-expected-profit"]) == pytest.approx(
        outlook.chosen.expected, abs=0.01
    )
    low, high = (float(answer.headers[f"x-expected-profit-{k}"]) for k in ("low", "high"))
    assert low < float(answer.headers["x-expected-profit"]) < high
    assert answer.headers["x-recommendation"] == outlook.recommendation.choice
    assert float(answer.headers["x-week-rate-forecast"]) == pytest.approx(
        outlook.week.rate, abs=1e-5
    )
    summary = client.post(
        "/score",
        params={"summary": "true", "log": "false"},
        files={"file": ("week.csv", source.read_bytes(), "text/csv")},
    )
    assert summary.status_code == 200, summary.text
    data = summary.json()
    assert data["rows"] == len(week_cohort)
    assert data["recommendation"]["text"] == outlook.recommendation.text
    assert data["expected_profit"]["low"] == pytest.approx(low, abs=0.01)


def test_score_bad_files(client):
    garbage = client.post("/score", files={"file": ("x.csv", b"\x00\x01\x02" * 50, "text/csv")})
    assert garbage.status_code == 400
    assert "binary" in garbage.json()["error"]
    wrong = client.post("/score", files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})
    assert wrong.status_code == 422
    assert wrong.json()["problems"][0]["field"] == "age"
    both = client.post(
        "/score?threshold=0.1&top=5", files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")}
    )
    assert both.status_code == 400


def test_unreachable_log_answers_503_unless_opted_out(production_model, week_cohort, monkeypatch):
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", "postgresql+psycopg://u:p@127.0.0.1:9/none")
    records = _records(week_cohort, 1, prefix="DOWN")
    with TestClient(api.create_app(token="")) as test_client:
        refused = test_client.post("/predict", json=records)
        assert refused.status_code == 503
        assert "log=false" in refused.json()["hint"]
        allowed = test_client.post("/predict?log=false", json=records)
        assert allowed.status_code == 200
        assert allowed.json()["logged"] is False


def test_bearer_token(production_model, week_cohort):
    with TestClient(api.create_app(token="s3cret")) as test_client:
        assert test_client.get("/health").status_code == 200
        assert test_client.get("/model").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert test_client.get("/model", headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert test_client.get("/model", headers=right).status_code == 200
        records = _records(week_cohort, 1)
        answer = test_client.post("/predict?log=false", json=records, headers=right)
        assert answer.status_code == 200


def test_promotion_is_picked_up_without_restart(models_copy, production_model, monkeypatch):
    monkeypatch.setattr("termdeposit.apps.api.models.POINTER_CHECK_SECONDS", 0.0)
    with TestClient(api.create_app(token="")) as test_client:
        assert test_client.get("/health").json()["model_version"] == production_model.version
        card = {k: v for k, v in production_model.card.items() if k != "version"}
        newer = registry.save_model(production_model.pipeline, card, models_dir=models_copy)
        registry.promote(newer, "test: API reload", models_dir=models_copy)
        assert test_client.get("/health").json()["model_version"] == newer


def test_without_a_model_the_api_says_so(tmp_path, monkeypatch, week_cohort):
    monkeypatch.setenv("TERMDEPOSIT_MODELS", str(tmp_path / "empty"))
    with TestClient(api.create_app(token="")) as test_client:
        assert test_client.get("/health").status_code == 503
        answer = test_client.post("/predict?log=false", json=_records(week_cohort, 1))
        assert answer.status_code == 503
        assert "no production model" in answer.json()["error"].lower()


def test_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/health", "/model", "/predict", "/score"} <= set(schema["paths"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_uvicorn_process(production_model, week_cohort, tmp_path):
    port = _free_port()
    env = {**os.environ, "TERMDEPOSIT_API_TOKEN": ""}
    command = [sys.executable, "-m", "termdeposit.apps.cli", "serve-api", "--port", str(port)]
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, Path(tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                    health = json.load(answer)
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the API did not start within 60 s"
                time.sleep(0.3)
        assert health["model_version"] == production_model.version
        request = urllib.request.Request(
            f"{base}/predict?log=false",
            data=json.dumps(_records(week_cohort, 2)).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = json.load(answer)
        assert [p["customer_id"] for p in body["predictions"]] == ["A0000", "A0001"]
        bad = urllib.request.Request(
            f"{base}/predict", data=b"[{}]", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=30)
        assert refused.value.code == 422
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
