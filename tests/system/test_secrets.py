"""Secrets never reach a log, a message, an output file, a model file or the database.

The API token, the model signing key, database passwords, the alert webhook's URL (its path
is the channel's secret) and the mail server's password are set to distinctive values; the
product then scores through the command line and the API, registers and promotes a signed
model, delivers alerts (webhook, e-mail, the weekly job) and fails on purpose (wrong token,
unreachable / unreadable / wrongly authenticated databases, a wrong mail password, an
unreachable webhook). Every log record (at DEBUG, every logger), everything printed, every HTTP
answer, every file written under the test's folders and every row of the database is then
searched for the secret values.
"""

from __future__ import annotations

import json
import logging
import os
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa
from delivery_support import free_port, mail_receiver, webhook_receiver
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from store_support import PG_ENV
from typer.testing import CliRunner

from termdeposit.apps import api
from termdeposit.apps.cli import app
from termdeposit.core.schema import INPUT_COLUMNS
from termdeposit.modeling import registry
from termdeposit.storage import store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TOKEN = f"api-token-{uuid.uuid4().hex}"
SIGNING_KEY = f"signing-key-{uuid.uuid4().hex}"
DB_PASSWORD = f"db-password-{uuid.uuid4().hex}"
WEBHOOK_TOKEN = f"webhook-token-{uuid.uuid4().hex}"
MAIL_PASSWORD = f"mail-password-{uuid.uuid4().hex}"


def _bad_db_urls() -> dict[str, str]:
    """Database URLs holding DB_PASSWORD that cannot be used, each failing another way."""
    urls = {
        "unreachable": f"postgresql+psycopg://app:{DB_PASSWORD}@127.0.0.1:9/termdeposit",
        "password in the query": f"postgresql+psycopg://app@127.0.0.1:9/td?password={DB_PASSWORD}",
        "port not a number": f"postgresql+psycopg://app:{DB_PASSWORD}@127.0.0.1:fivefour/td",
        "not a URL": f"postgres ql://app:{DB_PASSWORD}@127.0.0.1/termdeposit",
    }
    if os.environ.get(PG_ENV):
        real = make_url(os.environ[PG_ENV]).set(password=DB_PASSWORD)
        urls["wrong password"] = real.render_as_string(hide_password=False)
    return urls


def _records(cohort: pd.DataFrame, rows: int) -> list[dict]:
    values = json.loads(cohort.loc[:, list(INPUT_COLUMNS)].head(rows).to_json(orient="records"))
    return [{"customer_id": f"SEC{i:04d}", **v} for i, v in enumerate(values)]


@pytest.fixture()
def all_logs(caplog):
    """Every log record of every logger at DEBUG (the project's logger does not propagate)."""
    project = logging.getLogger("termdeposit")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="termdeposit")
    project.addHandler(caplog.handler)
    yield caplog
    project.removeHandler(caplog.handler)


def _database_text(url: str) -> str:
    """Every row of every table of the store, as text."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tables = store.metadata.tables
        assert {"alert_deliveries", "job_steps", "job_locks"} <= set(tables)
        parts = [repr(conn.execute(sa.select(table)).fetchall()) for table in tables.values()]
    engine.dispose()
    return "\n".join(parts)


def test_secrets_never_appear_in_logs_outputs_or_data(
    db_url,  # noqa: F811
    models_copy,
    production_model,
    week_cohort,
    reference,
    tmp_path,
    monkeypatch,
    all_logs,
    capfd,
):
    monkeypatch.setenv("TERMDEPOSIT_API_TOKEN", TOKEN)
    monkeypatch.setenv("TERMDEPOSIT_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", db_url)
    seen: list[str] = []  # everything shown to a user or a client

    # Register and promote a model signed with the key.
    card = {
        k: v
        for k, v in production_model.card.items()
        if k not in ("version", "created", "artifact_sha256")
    }
    version = registry.save_model(production_model.pipeline, card, production_model.reference())
    registry.promote(version, "signed model", user="ops")
    assert (models_copy / version / registry.SIGNATURE_FILE).is_file()
    assert registry.load_model().version == version

    # The command line: score (logged), list and show models.
    runner = CliRunner()
    cohort = tmp_path / "week39.csv"
    week_cohort.drop(columns="y").to_csv(cohort, index=False)
    scored = runner.invoke(app, ["score", str(cohort), "--out", str(tmp_path / "scored.csv")])
    assert scored.exit_code == 0, scored.output
    for args in (["models", "list"], ["models", "show"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        seen.append(result.output)

    # The API with the token, without it and with a wrong one.
    records = _records(week_cohort, 20)
    good = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(api.create_app()) as client:
        answers = [
            client.get("/health"),
            client.get("/model", headers=good),
            client.post("/predict", json=records, headers=good),
            client.post("/score", files={"file": ("w.csv", cohort.read_bytes())}, headers=good),
            client.post("/predict", json=records),
            client.post("/predict", json=records, headers={"Authorization": "Bearer wrong"}),
            client.post("/predict", json=records, headers={"Authorization": f"Bearer {TOKEN}x"}),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 401, 401, 401]
    seen += [a.text + json.dumps(dict(a.headers)) for a in answers[:2] + answers[4:]]
    seen.append(json.dumps(dict(answers[2].headers)) + json.dumps(dict(answers[3].headers)))

    # Databases that cannot be used, through the command line, the API and the library.
    for name, bad in _bad_db_urls().items():
        monkeypatch.setenv("TERMDEPOSIT_DB_URL", bad)
        failed = runner.invoke(app, ["score", str(cohort), "--out", str(tmp_path / "no.csv")])
        assert failed.exit_code == 2, (name, failed.output)
        assert "database" in failed.output, (name, failed.output)
        seen.append(failed.output)
        with TestClient(api.create_app()) as client:
            refused = client.post("/predict", json=records, headers=good)
        assert refused.status_code == 503, (name, refused.text)
        seen.append(refused.text)
        with pytest.raises(store.StoreUnavailableError) as caught:
            store.open_store(bad)
        seen.append(f"{caught.value} {caught.value.hint}")
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", db_url)

    # Alert delivery: by webhook (its URL holds the channel's token) and by e-mail (a password),
    # by hand and by the weekly job, then failing (a wrong password, an unreachable webhook).
    ops = store.open_store(db_url)
    alert = {"rule": "auc_drop", "subject": "auc", "message": "AUC fell", "severity": "critical"}
    ops.record_alerts([{**alert, "scope": "since cohort:1"}])
    monkeypatch.setenv("TERMDEPOSIT_ALERT_ATTEMPTS", "2")
    monkeypatch.setenv("TERMDEPOSIT_ALERT_BACKOFF", "0")
    with (
        webhook_receiver(path=f"/services/T0/{WEBHOOK_TOKEN}") as hook,
        mail_receiver("alerts", MAIL_PASSWORD) as mail,
    ):
        monkeypatch.setenv("TERMDEPOSIT_ALERT_WEBHOOK", hook.url)
        monkeypatch.setenv("TERMDEPOSIT_SMTP_URL", mail.url("alerts", MAIL_PASSWORD))
        monkeypatch.setenv("TERMDEPOSIT_ALERT_EMAIL", "ops@bank.test")
        for args in (["deliver-alerts", "--test"], ["deliver-alerts"]):
            sent = runner.invoke(app, args)
            assert sent.exit_code == 0, sent.output
            seen.append(sent.output)
        assert len(hook.bodies) == 2 and len(mail.messages) == 2
        drops = tmp_path / "drops"
        drops.mkdir()
        (drops / "week39_2009.csv").write_bytes(cohort.read_bytes())
        ops.record_alerts([{**alert, "scope": "since cohort:2"}])
        weekly = runner.invoke(
            app, ["weekly", "--drops", str(drops), "--outbox", str(tmp_path / "outbox")]
        )
        assert weekly.exit_code == 0, weekly.output
        assert len(hook.bodies) == 3 and len(mail.messages) == 3
        seen.append(weekly.output)
        ops.record_alerts([{**alert, "scope": "since cohort:3"}])
        monkeypatch.setenv("TERMDEPOSIT_SMTP_URL", mail.url("alerts", f"{MAIL_PASSWORD}-old"))
        monkeypatch.setenv(
            "TERMDEPOSIT_ALERT_WEBHOOK", f"http://127.0.0.1:{free_port()}/services/{WEBHOOK_TOKEN}"
        )
        failed = runner.invoke(app, ["deliver-alerts"])
        assert failed.exit_code == 1 and "refused" in failed.output, failed.output
        assert "could not be reached" in failed.output
        seen.append(failed.output)
    assert set(ops.delivery_repo.deliveries()["status"]) == {"sent", "failed"}

    # Where secrets could leak to.
    printed = capfd.readouterr()
    logs = all_logs.text
    assert logs.strip(), "the logs were captured"
    files = {
        str(path): path.read_bytes().decode("utf-8", "replace")
        for path in tmp_path.rglob("*")
        if path.is_file()
    }
    assert any(registry.AUDIT_FILE in name for name in files) and len(files) > 10
    database = _database_text(db_url)
    assert "SEC0000" in database, "the API's predictions were logged"

    secrets = {
        "API token": TOKEN,
        "signing key": SIGNING_KEY,
        "database password": DB_PASSWORD,
        "webhook token": WEBHOOK_TOKEN,
        "mail password": MAIL_PASSWORD,
    }
    parsed = make_url(db_url)
    if parsed.password:  # the working server's URL and its user:password part
        secrets["database URL"] = db_url
        secrets["database credentials"] = f"{parsed.username}:{parsed.password}@"
    places = {
        "logs": logs,
        "printed": printed.out + printed.err,
        "shown to users and clients": "\n".join(seen),
        "database rows": database,
        **files,
    }
    leaks = [
        (what, where)
        for what, value in secrets.items()
        for where, text in places.items()
        if value in text
    ]
    assert not leaks, leaks
    # The failures did say which database, with the password hidden.
    assert "app:***@127.0.0.1:9" in "\n".join(seen)
    assert "password=hidden" in "\n".join(seen)
