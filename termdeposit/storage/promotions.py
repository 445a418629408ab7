"""The audit trail of model promotions: who promoted, rolled back or was refused which model
version, when and why (a copy of the registry's own log, kept with the rest of operations)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Column, DateTime, Integer, String, Table, Text, UniqueConstraint, select

from termdeposit.modeling import registry
from termdeposit.storage.database import Database, current_user, insert_ignore, now, utc
from termdeposit.storage.database import metadata as _metadata

promotions = Table(
    "promotions",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(16), nullable=False),
    Column("version", String(64), nullable=False),
    Column("previous", String(64)),
    Column("user", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", Text),
    UniqueConstraint("at", "action", "version", name="uq_promotion"),
)

#: What identifies a promotion decision (recording it again adds nothing).
PROMOTION_KEY = ["at", "action", "version"]


class PromotionRepository:
    """Promotion decisions: recorded one by one or copied from the registry's log."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record_promotion(
        self,
        *,
        action: str,
        version: str,
        previous: str | None,
        reason: str,
        user: str | None = None,
        at: dt.datetime | str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a promotion decision (promote, rollback, refused, ...); idempotent."""
        row = _promotion_row(
            at=utc(at) or now().replace(microsecond=0),
            action=action,
            version=version,
            previous=previous,
            user=user or current_user(),
            reason=reason,
            details=details,
        )
        self.db.transaction(lambda conn: insert_ignore(conn, promotions, [row], PROMOTION_KEY))

    def sync_promotions(self, models_dir: Path | None = None) -> int:
        """Copy the registry's audit log (promotions.jsonl) into the store; return rows added."""
        rows = [
            _promotion_row(
                at=utc(e["at"]),
                action=e.get("action", "promote"),
                version=e["version"],
                previous=e.get("previous"),
                user=str(e.get("user", "unknown")),
                reason=e.get("reason", ""),
            )
            for e in registry.audit_log(models_dir)
        ]
        if not rows:
            return 0
        added = self.db.transaction(
            lambda conn: insert_ignore(
                conn, promotions, rows, PROMOTION_KEY, returning=promotions.c.id
            )
        )
        return len(added)

    def promotions(self) -> pd.DataFrame:
        """Every recorded promotion decision, oldest first."""
        return self.db.read(
            select(promotions).order_by(promotions.c.at, promotions.c.id), times=["at"]
        )


def _promotion_row(
    *,
    at: dt.datetime | None,
    action: str,
    version: str,
    previous: str | None,
    user: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A row of the promotions table."""
    return {
        "at": at,
        "action": action,
        "version": version,
        "previous": previous,
        "user": user[:64],
        "reason": reason,
        "details": json.dumps(details, default=str) if details else None,
    }
