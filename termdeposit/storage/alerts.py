"""Alerts raised by monitoring: one per rule, scope and subject, refreshed while it lasts,
acknowledged by a person."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.engine import Connection

from termdeposit.core.errors import TermDepositError
from termdeposit.storage.database import Database, current_user, insert_or_get, key_match, now
from termdeposit.storage.database import metadata as _metadata

alerts = Table(
    "alerts",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(32), nullable=False),
    Column("scope", String(64), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Float),
    Column("limit_value", Float),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", String(64)),
    UniqueConstraint("rule", "scope", "subject", name="uq_alert"),
)

#: What identifies an alert: the same rule, scope and subject is the same alert.
ALERT_KEY = ["rule", "scope", "subject"]


class AlertRepository:
    """Alerts: recorded (or refreshed), listed, acknowledged."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record_alerts(self, drafts: Sequence[dict[str, Any]]) -> pd.DataFrame:
        """Store alerts (rule, scope, subject, severity, message, value, limit).

        An alert already stored for the same rule, scope and subject is refreshed (value,
        message, last seen), not duplicated; its acknowledgement stays.

        Returns:
            The stored alerts matching the drafts (with id and acknowledgement).
        """
        stamp = now()

        def work(conn: Connection) -> list[int]:
            ids = []
            for draft in drafts:
                key = {name: draft[name] for name in ALERT_KEY}
                values = {
                    "severity": draft.get("severity", "warning"),
                    "message": draft["message"],
                    "value": _float_or_none(draft.get("value")),
                    "limit_value": _float_or_none(draft.get("limit")),
                    "last_seen_at": stamp,
                }
                alert_id, new = insert_or_get(
                    conn, alerts, {**key, "raised_at": stamp, **values}, ALERT_KEY
                )
                if not new:
                    conn.execute(
                        alerts.update().where(*key_match(alerts, key, ALERT_KEY)).values(**values)
                    )
                ids.append(alert_id)
            return ids

        ids = self.db.transaction(work)
        table = self.alerts(active_only=False)
        return table[table["id"].isin(ids)].reset_index(drop=True)

    def alerts(self, active_only: bool = True) -> pd.DataFrame:
        """Stored alerts, newest first; by default only those not acknowledged."""
        query = select(alerts).order_by(alerts.c.last_seen_at.desc(), alerts.c.id.desc())
        if active_only:
            query = query.where(alerts.c.acknowledged_at.is_(None))
        frame = self.db.read(query, times=["raised_at", "last_seen_at", "acknowledged_at"])
        return frame.rename(columns={"limit_value": "limit"})

    def acknowledge_alert(self, alert_id: int, user: str | None = None) -> None:
        """Mark an alert as seen and handled (it leaves the banner; cron checks pass it)."""

        def work(conn: Connection) -> None:
            result = conn.execute(
                alerts.update()
                .where(alerts.c.id == int(alert_id))
                .values(acknowledged_at=now(), acknowledged_by=user or current_user())
            )
            if result.rowcount == 0:
                raise TermDepositError(f"There is no alert {alert_id}.")

        self.db.transaction(work)


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value
