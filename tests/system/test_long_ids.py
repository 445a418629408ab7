"""One id contract on every front door, SQLite and PostgreSQL: at most 128 characters, printable.

Before: the store's id columns hold 128 characters, the command line had no limit and the API
allowed 200. On PostgreSQL a 300-character id ended in ``StringDataRightTruncation``, with a
traceback printing the SQL and the customer's inputs; ``/predict`` with 129 characters answered
500; SQLite stored such ids silently. Now the contract refuses them when the file or the records
are validated, with one message, and nothing is stored; an id of exactly 128 characters goes
through every table it is written to (prediction log, cohort customers, outcomes) unchanged.
"""

from __future__ import annotations

import pandas as pd
import pytest
from corpus_support import SMALL_COHORT, models_digest, store_counts
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from termdeposit.apps import api
from termdeposit.apps.cli import app
from termdeposit.core.schema import ID_COLUMN, ID_MAX_LENGTH
from termdeposit.storage import store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()
LONGEST = "L" * (ID_MAX_LENGTH - 5) + "-end."
TOO_LONG = "T" * 300


@pytest.fixture()
def database(db_url, monkeypatch, trained_version):
    """The store every front door uses for this test: SQLite, or a PostgreSQL schema."""
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", db_url)
    return store.open_store(db_url)


def _cohort(tmp_path, new_id: str):  # noqa: ANN001
    path = tmp_path / "cohort.csv"
    path.write_text(SMALL_COHORT.read_text().replace("C37097", new_id))
    return path


def test_the_longest_id_goes_through_every_table(database, tmp_path):
    assert len(LONGEST) == ID_MAX_LENGTH
    scored = runner.invoke(
        app, ["score", str(_cohort(tmp_path, LONGEST)), "--out", str(tmp_path / "calls.csv")]
    )
    assert scored.exit_code == 0, scored.output
    assert LONGEST in set(database.predictions(1)[ID_COLUMN])
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(f"customer_id,called,subscribed\n{LONGEST},yes,yes\n")
    recorded = runner.invoke(app, ["feedback", str(outcomes)])
    assert recorded.exit_code == 0, recorded.output
    stored = database.outcomes().set_index(ID_COLUMN)
    assert stored.loc[LONGEST, "subscribed"]


def test_a_longer_id_is_refused_by_every_front_door_and_nothing_is_stored(
    database, tmp_path, production_model
):
    before, models = store_counts(database), models_digest()
    out = tmp_path / "calls.csv"
    cli = runner.invoke(app, ["score", str(_cohort(tmp_path, TOO_LONG)), "--out", str(out)])
    assert cli.exit_code == 2, cli.output
    assert "customer id longer than 128 characters" in cli.output and "(rows 3)" in cli.output
    for leak in ("Traceback", "INSERT", "StringDataRightTruncation", "self-employed"):
        assert leak not in cli.output
    assert not out.exists()

    with TestClient(api.create_app(token="")) as client:
        data = _cohort(tmp_path, TOO_LONG).read_bytes()
        answer = client.post("/score", files={"file": ("cohort.csv", data, "text/csv")})
        assert answer.status_code == 422
        assert answer.json()["problems"][0]["field"] == ID_COLUMN
        records = pd.read_csv(SMALL_COHORT, dtype={ID_COLUMN: str}).head(1)
        record = records.to_dict(orient="records")[0]
        for length, status in ((ID_MAX_LENGTH + 1, 422), (len(TOO_LONG), 422)):
            answer = client.post("/predict", json=[{**record, ID_COLUMN: "P" * length}])
            assert answer.status_code == status, answer.text
            assert "longer than 128 characters" in answer.json()["problems"][0]["problem"]
        outcomes = f"customer_id,called,subscribed\n{TOO_LONG},yes,no\n".encode()
        answer = client.post("/outcomes", files={"file": ("o.csv", outcomes, "text/csv")})
        assert answer.status_code == 422
        assert answer.json()["rows_concerned"] == [
            {"row": 2, ID_COLUMN: TOO_LONG, "problem": "customer id longer than 128 characters"}
        ]
    assert store_counts(database) == before
    assert models_digest() == models

    with TestClient(api.create_app(token="")) as client:
        answer = client.post("/predict", json=[{**record, ID_COLUMN: LONGEST}])
        assert answer.status_code == 200 and answer.json()["logged"] is True
    runs = database.scoring_runs()
    logged = database.predictions(int(runs["id"].max()))
    assert logged[ID_COLUMN].tolist() == [LONGEST]
