"""Alert deliveries: every message about an alert sent by webhook or e-mail, recorded.

One row per alert and channel: whether the alert reached the channel (``sent``), is being sent
(``sending``: a run stopped half-way leaves it so, and the next run sends it again) or could not
be sent (``failed``, with the reason; the next run tries again). ``target`` says where it went
in words that hold no secret (a webhook's host, the e-mail recipients), never a URL or password.
The table is created by migration ``0003_weekly_job``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from termdeposit.storage.alerts import alerts
from termdeposit.storage.database import Database, now, utc
from termdeposit.storage.database import metadata as _metadata

alert_deliveries = Table(
    "alert_deliveries",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("target", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("message_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    UniqueConstraint("alert_id", "channel", name="uq_alert_delivery"),
)

SENDING = "sending"
SENT = "sent"
FAILED = "failed"
#: Alert severities that are delivered (``info`` findings go to the weekly report only).
DELIVERED_SEVERITIES = ("warning", "critical")


class DeliveryRepository:
    """Deliveries of alerts: which alerts a channel has not had yet, and every attempt."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def undelivered_alerts(self, channel: str) -> pd.DataFrame:
        """Active warning/critical alerts not yet sent on ``channel``, oldest first."""
        query = (
            select(alerts)
            .outerjoin(
                alert_deliveries,
                and_(
                    alert_deliveries.c.alert_id == alerts.c.id,
                    alert_deliveries.c.channel == channel,
                ),
            )
            .where(
                alerts.c.acknowledged_at.is_(None),
                alerts.c.severity.in_(DELIVERED_SEVERITIES),
                (alert_deliveries.c.status.is_(None)) | (alert_deliveries.c.status != SENT),
            )
            .order_by(alerts.c.raised_at, alerts.c.id)
        )
        return self.db.read(query).rename(columns={"limit_value": "limit"})

    def record_attempt(
        self,
        alert_ids: Sequence[int],
        *,
        channel: str,
        target: str,
        status: str,
        attempts: int,
        message_id: str,
        error: str | None = None,
    ) -> None:
        """Record where the delivery of some alerts on one channel stands (one transaction).

        A row already there for an alert and channel is updated: its attempts add up, its
        status and error are replaced.
        """
        stamp = now()
        rows = [
            {
                "alert_id": int(alert_id),
                "channel": channel,
                "target": target[:255],
                "status": status,
                "attempts": int(attempts),
                "error": error,
                "message_id": message_id,
                "created_at": stamp,
                "finished_at": None if status == SENDING else stamp,
            }
            for alert_id in alert_ids
        ]
        if not rows:
            return
        module = postgresql if self.db.dialect == "postgresql" else sqlite

        def work(conn: Connection) -> None:
            statement = module.insert(alert_deliveries)
            statement = statement.on_conflict_do_update(
                index_elements=["alert_id", "channel"],
                set_={
                    "target": statement.excluded.target,
                    "status": statement.excluded.status,
                    "attempts": alert_deliveries.c.attempts + statement.excluded.attempts,
                    "error": statement.excluded.error,
                    "message_id": statement.excluded.message_id,
                    "finished_at": statement.excluded.finished_at,
                },
            )
            conn.execute(statement, rows)

        self.db.transaction(work)

    def deliveries(self) -> pd.DataFrame:
        """Every recorded delivery, oldest first."""
        frame = self.db.read(select(alert_deliveries).order_by(alert_deliveries.c.id))
        for column in ("created_at", "finished_at"):
            if len(frame):
                frame[column] = frame[column].map(utc)
        return frame
