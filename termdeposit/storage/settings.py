"""Settings shared by everyone using the store (e.g. the alert limits), as JSON values."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Column, DateTime, String, Table, Text, select
from sqlalchemy.engine import Connection

from termdeposit.storage.database import Database, current_user, now
from termdeposit.storage.database import metadata as _metadata

settings_table = Table(
    "settings",
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("user", String(64), nullable=False),
)


class SettingsRepository:
    """Named settings: read with a default, replaced whole."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A stored setting (JSON value), or ``default``."""
        frame = self.db.read(select(settings_table.c.value).where(settings_table.c.key == key))
        return default if frame.empty else json.loads(str(frame.iloc[0, 0]))

    def set_setting(self, key: str, value: Any, user: str | None = None) -> None:
        """Store a setting (JSON value), replacing the previous one."""
        payload = json.dumps(value)

        def work(conn: Connection) -> None:
            conn.execute(settings_table.delete().where(settings_table.c.key == key))
            conn.execute(
                settings_table.insert().values(
                    key=key, value=payload, updated_at=now(), user=user or current_user()
                )
            )

        self.db.transaction(work)
