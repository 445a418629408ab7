"""Alert delivery: a local webhook and a local mail server, retries, records, settings."""

from __future__ import annotations

import email
import json

import pytest
from delivery_support import free_port, mail_receiver, webhook_receiver

from termdeposit.core.config import AlertDeliverySettings, alert_delivery_settings
from termdeposit.core.errors import TermDepositError
from termdeposit.ops import alerting
from termdeposit.storage import store

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

PASSWORD = "mail-pass-7f3c2e"


@pytest.fixture()
def with_alerts(tmp_path):
    """A store holding one critical and one warning alert, and an info finding."""
    s = store.open_store(f"sqlite:///{tmp_path / 'ops.db'}")
    s.record_alerts(
        [
            {
                "rule": "auc_drop",
                "scope": "since cohort:1",
                "subject": "auc",
                "message": "2009-05 wk1: the model's ranking fell: AUC 0.52",
                "value": 0.52,
                "limit": 0.65,
                "severity": "critical",
            },
            {
                "rule": "input_drift",
                "scope": "since cohort:1",
                "subject": "customers",
                "message": "2009-05 wk1: the customers differ: poutcome (PSI 0.61)",
                "value": 0.61,
                "limit": 0.25,
                "severity": "warning",
            },
            {
                "rule": "economy",
                "scope": "since cohort:1",
                "subject": "economy",
                "message": "2009-05 wk1: for information, the economy moved",
                "value": 1.0,
                "limit": 0.05,
                "severity": "info",
            },
        ]
    )
    return s


def test_webhook_retries_with_backoff_and_records_the_delivery(with_alerts):
    waits: list[float] = []
    with webhook_receiver() as hook:
        hook.script = [500, 503]  # two failures, then the default 200
        settings = AlertDeliverySettings(webhook=hook.url, attempts=4, backoff=0.5)
        report = alerting.deliver_alerts(with_alerts, settings, sleep=waits.append)
        assert report.failed == [] and report.channels[0].alerts == 2
        assert waits == [0.5, 1.0], "waits double between tries"
        assert len(hook.bodies) == 3
        text = hook.bodies[-1]["text"]
        assert set(hook.bodies[-1]) == {"text"}, "the JSON Slack and Teams webhooks accept"
        assert "AUC 0.52" in text and "poutcome" in text and "[critical]" in text
        assert "economy moved" not in text, "information is not an alert"

        recorded = with_alerts.delivery_repo.deliveries()
        assert len(recorded) == 2 and set(recorded["status"]) == {"sent"}
        assert set(recorded["attempts"]) == {3}
        assert set(recorded["target"]) == {"the webhook at 127.0.0.1"}, "no path: it is a secret"

        again = alerting.deliver_alerts(with_alerts, settings, sleep=waits.append)
        assert again.channels[0].alerts == 0 and len(hook.bodies) == 3, "each alert once"


def test_webhook_refusal_is_recorded_and_retried_next_run(with_alerts):
    waits: list[float] = []
    with webhook_receiver() as hook:
        hook.status = 404
        settings = AlertDeliverySettings(webhook=hook.url, attempts=4, backoff=0.5)
        report = alerting.deliver_alerts(with_alerts, settings, sleep=waits.append)
        assert len(report.failed) == 1 and waits == [], "a 404 is not retried"
        assert "HTTP 404" in report.describe() and "next run tries again" in report.describe()
        recorded = with_alerts.delivery_repo.deliveries()
        assert set(recorded["status"]) == {"failed"} and "HTTP 404" in recorded["error"].iloc[0]
        assert hook.url not in report.describe()

        hook.status = 200
        report = alerting.deliver_alerts(with_alerts, settings, sleep=waits.append)
        assert report.failed == [] and report.channels[0].alerts == 2
        recorded = with_alerts.delivery_repo.deliveries()
        assert set(recorded["status"]) == {"sent"} and set(recorded["attempts"]) == {2}


def test_unreachable_webhook_gives_up_after_the_tries(with_alerts):
    waits: list[float] = []
    url = f"http://127.0.0.1:{free_port()}/hooks/abc-secret"
    settings = AlertDeliverySettings(webhook=url, attempts=3, backoff=2.0)
    report = alerting.deliver_alerts(with_alerts, settings, sleep=waits.append)
    assert waits == [2.0, 4.0] and report.failed[0].attempts == 3
    assert "could not be reached" in report.describe() and "abc-secret" not in report.describe()
    assert "abc-secret" not in with_alerts.delivery_repo.deliveries().to_string()


def test_email_through_a_local_mail_server(with_alerts):
    with mail_receiver("alerts", PASSWORD) as mail:
        settings = AlertDeliverySettings(
            smtp_url=mail.url("alerts", PASSWORD),
            email_to=("ops@bank.test", "lead@bank.test"),
            attempts=2,
            backoff=0.0,
        )
        report = alerting.deliver_alerts(with_alerts, settings, sleep=lambda s: None)
        assert report.failed == [] and mail.logins == ["alerts"]
        assert len(mail.messages) == 1
        envelope = mail.messages[0]
        assert envelope.rcpt_tos == ["ops@bank.test", "lead@bank.test"]
        message = email.message_from_bytes(envelope.content)
        assert message["From"] == "alerts@bank.test"
        assert message["Subject"] == "termdeposit: 2 new monitoring alerts (critical)"
        assert "AUC 0.52" in message.get_payload(decode=True).decode()
        recorded = with_alerts.delivery_repo.deliveries()
        assert set(recorded["channel"]) == {"email"} and set(recorded["status"]) == {"sent"}
        target = recorded["target"].iloc[0]
        assert "ops@bank.test" in target and PASSWORD not in target

    wrong = AlertDeliverySettings(
        smtp_url=f"smtp://alerts:wrong@127.0.0.1:{free_port()}?starttls=false",
        email_to=("ops@bank.test",),
        attempts=2,
        backoff=0.0,
    )
    with_alerts.record_alerts(
        [
            {
                "rule": "calibration",
                "scope": "since cohort:2",
                "subject": "calibration",
                "message": "off",
                "severity": "warning",
            }
        ]
    )
    report = alerting.deliver_alerts(with_alerts, wrong, sleep=lambda s: None)
    assert report.failed and "could not take it" in report.describe()


def test_wrong_mail_password_is_refused_at_once(with_alerts):
    with mail_receiver("alerts", PASSWORD) as mail:
        settings = AlertDeliverySettings(
            smtp_url=mail.url("alerts", "not-the-password"),
            email_to=("ops@bank.test",),
            attempts=3,
            backoff=1.0,
        )
        waits: list[float] = []
        report = alerting.deliver_alerts(with_alerts, settings, sleep=waits.append)
        assert report.failed and waits == [] and mail.messages == []
        assert "refused" in report.describe() and "not-the-password" not in report.describe()


def test_settings_from_the_environment_and_in_words(monkeypatch):
    monkeypatch.setenv("TERMDEPOSIT_ALERT_WEBHOOK", "https://hooks.slack.com/services/T/B/x")
    monkeypatch.setenv("TERMDEPOSIT_SMTP_URL", "smtps://u:p%40ss@mail.bank.test?from=a@b.test")
    monkeypatch.setenv("TERMDEPOSIT_ALERT_EMAIL", "ops@bank.test; lead@bank.test")
    settings = alert_delivery_settings()
    assert settings.email_to == ("ops@bank.test", "lead@bank.test")
    assert "hooks.slack.com" not in repr(settings) and "p%40ss" not in repr(settings)
    server = alerting.parse_smtp_url(settings.smtp_url)
    assert (server.host, server.port, server.tls, server.password) == (
        "mail.bank.test",
        465,
        "ssl",
        "p@ss",
    )
    assert "p@ss" not in repr(server)
    assert alerting.parse_smtp_url("smtp://mail.bank.test").tls == "starttls"
    assert alerting.parse_smtp_url("smtp://mail.bank.test").port == 587

    with pytest.raises(TermDepositError, match="smtp:// or smtps://") as caught:
        alerting.parse_smtp_url("http://user:secret-pw@mail")
    assert "secret-pw" not in str(caught.value)
    with pytest.raises(TermDepositError, match="https:// address") as caught:
        alerting.webhook_host("hooks.slack.com/services/secret-part")
    assert "secret-part" not in str(caught.value)
    with pytest.raises(TermDepositError, match="need both"):
        alerting.configured_channels(AlertDeliverySettings(email_to=("a@b.test",)))
    monkeypatch.setenv("TERMDEPOSIT_ALERT_ATTEMPTS", "three")
    with pytest.raises(TermDepositError, match="whole number"):
        alert_delivery_settings()


def test_nothing_configured_says_so(with_alerts):
    report = alerting.deliver_alerts(with_alerts, AlertDeliverySettings())
    assert report.channels == [] and "TERMDEPOSIT_ALERT_WEBHOOK" in report.describe()
    assert with_alerts.delivery_repo.deliveries().empty


def test_payload_is_json_with_text_only(with_alerts):
    with webhook_receiver() as hook:
        alerting.post_webhook(hook.url, "hello")
        assert hook.bodies == [{"text": "hello"}]
        assert json.dumps(hook.bodies[0]) == '{"text": "hello"}'
