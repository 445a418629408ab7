"""Tables added after the store's versioned schema, created on first use.

:mod:`termdeposit.storage.deliveries` and :mod:`termdeposit.storage.jobs` keep their tables in
their own ``MetaData`` and create them, if missing, the first time a store uses them
(``CREATE TABLE IF NOT EXISTS``, under the store's schema-upgrade advisory lock on PostgreSQL,
so two processes never race). Nothing else in the store changes, so these tables merge with a
later move of the schema upgrades (e.g. to Alembic): that move only has to adopt them.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pandas as pd
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from termdeposit.storage.store import Store

_LOCK = threading.Lock()
#: The advisory lock key the store takes while it upgrades its schema (see Store._upgrade).
_UPGRADE_LOCK_KEY = 727274


def ensure_tables(store: Store, metadata: MetaData) -> Store:
    """Create the tables of ``metadata`` in ``store`` unless they are there (once per store)."""
    done: set[int] = store.__dict__.setdefault("_extra_tables", set())
    if id(metadata) in done:
        return store
    with _LOCK:
        if id(metadata) in done:
            return store

        def work(conn: Connection) -> None:
            if store.dialect == "postgresql":
                conn.execute(text(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK_KEY})"))
            metadata.create_all(conn, checkfirst=True)

        store.transaction(work)
        done.add(id(metadata))
    return store


def as_utc(value: Any) -> dt.datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite hands back naive ones)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime) or value is pd.NaT:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
