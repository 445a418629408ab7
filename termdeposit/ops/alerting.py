"""Alert delivery: tell people about new alerts, by chat webhook (Slack, Teams) and e-mail.

Settings come from the environment (:func:`~termdeposit.core.config.alert_delivery_settings`):
``TERMDEPOSIT_ALERT_WEBHOOK`` (an incoming-webhook URL of a Slack or Teams channel: the message
is JSON ``{"text": ...}``, which both accept), ``TERMDEPOSIT_SMTP_URL`` and
``TERMDEPOSIT_ALERT_EMAIL`` (e-mail through your mail server). Each channel gets one message per
run listing every active warning or critical alert it has not received yet; a failure is retried
with back-off (doubling waits), then recorded, and the next run tries again. Every delivery is
recorded in the store (:mod:`termdeposit.storage.deliveries`). The webhook URL and the mail
password are secrets: they are never logged, stored or printed; a delivery is described by the
webhook's host and the recipients only.
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd

from termdeposit.core.config import AlertDeliverySettings, alert_delivery_settings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.storage import deliveries
from termdeposit.storage.store import Store, open_store

log = get_logger("alerting")

WEBHOOK = "webhook"
EMAIL = "email"
#: Longest wait between two tries, in seconds.
MAX_BACKOFF = 300.0
SUBJECT_PREFIX = "termdeposit"


class DeliveryError(TermDepositError):
    """A channel refused a message (or could not be reached); ``permanent`` if retrying is vain."""

    def __init__(self, message: str, *, permanent: bool = False, wait: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.wait = wait


@dataclass(frozen=True)
class SmtpServer:
    """A mail server read from ``TERMDEPOSIT_SMTP_URL`` (password kept out of ``repr``)."""

    host: str
    port: int
    tls: str  # "ssl" (smtps), "starttls" or "none"
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """The server in words that hold no secret."""
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpServer:
    """Read ``smtp://user:password@host:port?starttls=true&from=alerts@bank.example``.

    ``smtps://`` connects with TLS from the start (port 465 by default); ``smtp://`` uses port
    587 with STARTTLS unless ``starttls=false`` (then port 25, plain: only for a relay on the
    same network). The sender defaults to ``termdeposit@<host>``.

    Raises:
        TermDepositError: not a mail server URL (the URL itself is not repeated: it may hold
            a password).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TermDepositError(
            "TERMDEPOSIT_SMTP_URL is not a mail server address (it could not be read).",
            hint="Use e.g. smtp://user:password@mail.bank.example:587?from=alerts@bank.example.",
        ) from exc
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise TermDepositError(
            "TERMDEPOSIT_SMTP_URL must start with smtp:// or smtps:// and name the mail server.",
            hint="Use e.g. smtp://user:password@mail.bank.example:587?from=alerts@bank.example.",
        )
    query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls", "true").strip().lower() not in ("false", "0", "no", "off")
    if parts.scheme == "smtps":
        tls, default_port = "ssl", 465
    elif starttls:
        tls, default_port = "starttls", 587
    else:
        tls, default_port = "none", 25
    host = parts.hostname
    return SmtpServer(
        host=host,
        port=port or default_port,
        tls=tls,
        sender=query.get("from", f"termdeposit@{host}"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def webhook_host(url: str) -> str:
    """The host of a webhook URL (the rest of a Slack or Teams webhook URL is its secret).

    Raises:
        TermDepositError: not an http(s) address (the URL itself is not repeated).
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise TermDepositError(
            "TERMDEPOSIT_ALERT_WEBHOOK is not a web address (it could not be read)."
        ) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TermDepositError(
            "TERMDEPOSIT_ALERT_WEBHOOK must be the https:// address of an incoming webhook.",
            hint="Copy it from the Slack app's or the Teams channel's incoming-webhook settings.",
        )
    return parts.hostname


# -- the message --------------------------------------------------------------------------------


def alert_text(alerts: pd.DataFrame, lines: list[str] | None = None) -> str:
    """The message: one line per alert (severity, message, id), then how to acknowledge."""
    count = len(alerts)
    header = f"{SUBJECT_PREFIX}: {count} new monitoring alert{'s' if count != 1 else ''}"
    body = [header, ""]
    for alert in alerts.itertuples(index=False):
        body.append(f"- [{alert.severity}] {alert.message} (alert {alert.id})")
    if lines:
        body += ["", *lines]
    body += [
        "",
        "See them on the dashboard's Monitoring page; acknowledge a handled alert there or with "
        "'termdeposit monitor --acknowledge ID'.",
    ]
    return "\n".join(body)


def subject_of(alerts: pd.DataFrame) -> str:
    """E-mail subject: how many alerts, and the worst severity."""
    worst = "critical" if (alerts["severity"] == "critical").any() else "warning"
    count = len(alerts)
    return f"{SUBJECT_PREFIX}: {count} new monitoring alert{'s' if count != 1 else ''} ({worst})"


# -- sending ------------------------------------------------------------------------------------


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def post_webhook(url: str, text: str, timeout: float = 10.0) -> None:
    """POST ``{"text": text}`` to a Slack or Teams incoming webhook.

    Raises:
        DeliveryError: the server refused it (permanent for 4xx other than 408 and 429) or
            could not be reached; the message never contains the URL.
    """
    data = json.dumps({"text": text}).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "termdeposit-alerts"},
    )
    host = webhook_host(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            answer.read(1024)
    except urllib.error.HTTPError as exc:
        code = exc.code
        retry = exc.headers.get("Retry-After") if exc.headers else None
        wait = float(retry) if retry and retry.strip().isdigit() else None
        permanent = 400 <= code < 500 and code not in (408, 429)
        raise DeliveryError(
            f"the webhook at {host} answered HTTP {code}", permanent=permanent, wait=wait
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(
            f"the webhook at {host} could not be reached ({_scrub(str(reason), [url])})"
        ) from None


def send_email(
    server: SmtpServer, recipients: tuple[str, ...], subject: str, text: str, timeout: float
) -> None:
    """Send a plain-text e-mail through ``server``.

    Raises:
        DeliveryError: the server refused it (permanent: bad login, recipients refused) or
            could not be reached; never with the password.
    """
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = server.sender
    message["To"] = ", ".join(recipients)
    message.set_content(text)
    secrets = [server.password or ""]
    try:
        if server.tls == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=timeout)
        with client:
            if server.tls == "starttls":
                client.starttls(context=ssl.create_default_context())
            if server.username:
                client.login(server.username, server.password or "")
            client.send_message(message)
    except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused) as exc:
        raise DeliveryError(
            f"the mail server {server.where} refused it ({_scrub(type(exc).__name__, secrets)})",
            permanent=True,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(
            f"the mail server {server.where} could not take it ({_scrub(str(exc), secrets)})"
        ) from None


def with_retries(
    send: Callable[[], None],
    attempts: int,
    backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, str | None]:
    """Call ``send`` until it works, at most ``attempts`` times, waiting backoff x 2^k between.

    Returns:
        (tries made, None when it worked or the last error).
    """
    error = None
    for attempt in range(1, attempts + 1):
        try:
            send()
            return attempt, None
        except DeliveryError as exc:
            error = exc.message
            log.warning("alert delivery try %d of %d failed: %s", attempt, attempts, error)
            if exc.permanent or attempt == attempts:
                return attempt, error
            wait = exc.wait if exc.wait is not None else backoff * 2 ** (attempt - 1)
            sleep(min(wait, MAX_BACKOFF))
    return attempts, error


# -- the use case -------------------------------------------------------------------------------


@dataclass
class ChannelReport:
    """What happened on one channel."""

    channel: str
    target: str
    alerts: int
    sent: bool
    attempts: int
    error: str | None = None

    def describe(self) -> str:
        """One line for the user."""
        if self.alerts == 0:
            return f"{self.channel}: nothing new to send"
        if self.sent:
            return f"{self.channel}: {self.alerts} alerts sent to {self.target}"
        return (
            f"{self.channel}: {self.alerts} alerts NOT sent to {self.target} after "
            f"{self.attempts} tries ({self.error}); the next run tries again"
        )


@dataclass
class DeliveryReport:
    """Every channel's result, and the channels that are not configured."""

    channels: list[ChannelReport]
    not_configured: list[str]

    @property
    def failed(self) -> list[ChannelReport]:
        """Channels whose message could not be sent."""
        return [c for c in self.channels if c.alerts and not c.sent]

    def describe(self) -> str:
        """A few lines for the user."""
        lines = [c.describe() for c in self.channels]
        if self.not_configured:
            lines.append("not configured: " + "; ".join(self.not_configured))
        return "\n".join(lines) if lines else "no delivery channel is configured"


def configured_channels(settings: AlertDeliverySettings) -> tuple[dict[str, tuple], list[str]]:
    """The channels set up in ``settings`` (name -> (target in words, send function maker)).

    Raises:
        TermDepositError: a setting is there but cannot be used (said in words, without it).
    """
    channels: dict[str, tuple] = {}
    missing = []
    if settings.webhook:
        host = webhook_host(settings.webhook)
        channels[WEBHOOK] = (f"the webhook at {host}", settings.webhook)
    else:
        missing.append("webhook (set TERMDEPOSIT_ALERT_WEBHOOK)")
    if settings.smtp_url and settings.email_to:
        server = parse_smtp_url(settings.smtp_url)
        target = f"{', '.join(settings.email_to)} via {server.where}"
        channels[EMAIL] = (target, server)
    elif settings.smtp_url or settings.email_to:
        raise TermDepositError(
            "E-mail alerts need both TERMDEPOSIT_SMTP_URL (the mail server) and "
            "TERMDEPOSIT_ALERT_EMAIL (the recipients); only one is set.",
            hint="Set the other one, or unset both to send no e-mail.",
        )
    else:
        missing.append("e-mail (set TERMDEPOSIT_SMTP_URL and TERMDEPOSIT_ALERT_EMAIL)")
    return channels, missing


def _sender(
    channel: str,
    where: str | SmtpServer,
    settings: AlertDeliverySettings,
    subject: str,
    text: str,
) -> Callable[[], None]:
    """A function that sends ``text`` once on ``channel`` (raising DeliveryError)."""
    if isinstance(where, SmtpServer):
        server = where

        def send_mail() -> None:
            send_email(server, settings.email_to, subject, text, settings.timeout)

        return send_mail
    url = where

    def send_post() -> None:
        post_webhook(url, text, settings.timeout)

    return send_post


def deliver_alerts(
    store: Store | None = None,
    settings: AlertDeliverySettings | None = None,
    sleep: Callable[[float], None] = time.sleep,
    lines: list[str] | None = None,
) -> DeliveryReport:
    """Send every channel the active alerts it has not received yet; record each delivery.

    Each channel gets one message. Before sending, the alerts are recorded as ``sending`` (a run
    killed while sending leaves them so, and the next run sends them again: at least once); after,
    as ``sent`` or ``failed`` with the tries made and the reason.

    Args:
        lines: extra lines for the message (e.g. the weekly run's summary).
    """
    store = store or open_store()
    settings = settings or alert_delivery_settings()
    channels, missing = configured_channels(settings)
    reports = []
    for channel, (target, where) in channels.items():
        pending = store.delivery_repo.undelivered_alerts(channel)
        if pending.empty:
            reports.append(ChannelReport(channel, target, 0, True, 0))
            continue
        ids = [int(i) for i in pending["id"]]
        message_id = hashlib.sha256(f"{channel}:{ids}".encode()).hexdigest()[:32]
        send = _sender(channel, where, settings, subject_of(pending), alert_text(pending, lines))
        store.delivery_repo.record_attempt(
            ids,
            channel=channel,
            target=target,
            status=deliveries.SENDING,
            attempts=0,
            message_id=message_id,
        )
        tries, error = with_retries(send, settings.attempts, settings.backoff, sleep)
        store.delivery_repo.record_attempt(
            ids,
            channel=channel,
            target=target,
            status=deliveries.FAILED if error else deliveries.SENT,
            attempts=tries,
            message_id=message_id,
            error=error,
        )
        if error:
            log.error(
                "%d alerts could not be sent by %s to %s: %s", len(ids), channel, target, error
            )
        else:
            log.info("%d alerts sent by %s to %s", len(ids), channel, target)
        reports.append(ChannelReport(channel, target, len(ids), error is None, tries, error))
    return DeliveryReport(reports, missing)


def send_test_message(settings: AlertDeliverySettings | None = None) -> DeliveryReport:
    """Send a test message on every configured channel (nothing is recorded)."""
    settings = settings or alert_delivery_settings()
    channels, missing = configured_channels(settings)
    text = (
        f"{SUBJECT_PREFIX}: a test message. Monitoring alerts will arrive here "
        "(no alert is active because of this message)."
    )
    reports = []
    for channel, (target, where) in channels.items():
        send = _sender(channel, where, settings, f"{SUBJECT_PREFIX}: test", text)
        tries, error = with_retries(send, 1, 0.0)
        reports.append(ChannelReport(channel, target, 1, error is None, tries, error))
    return DeliveryReport(reports, missing)
