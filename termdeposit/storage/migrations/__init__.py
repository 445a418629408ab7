"""Schema migrations of the store (Alembic), run by the product when it opens a database.

The revisions live in ``versions/``: ``0001_baseline`` is the schema as the product made it
before Alembic (its "schema version 2"); each later revision changes it one step. On
:func:`~termdeposit.storage.store.open_store` the schema is brought to the newest revision
(:func:`upgrade`), inside one transaction that waits for any other process doing the same:

- an empty database gets every revision in order;
- a database made before Alembic (a ``schema_info`` table, version 1 or 2, no
  ``alembic_version``) is adopted without touching its rows: version 1 first gets the A/B
  hold-out as the old product added it, then the database is stamped at the baseline and
  upgraded from there;
- a database at a revision this product does not know (made by a newer product) is refused.

A new revision: declare the table or column in its repository module, then
``alembic -c termdeposit/storage/migrations/alembic.ini revision --autogenerate --rev-id
0003_what -m "What changes"`` on a database at the newest revision (``TERMDEPOSIT_DB_URL``),
and read what it wrote (ids of at most 32 characters; on SQLite most alterations are batch
steps that rebuild the table, which is safe here: foreign keys are off while migrations run).

``0002_refuse_old_products`` writes version 3 into ``schema_info``: products from before
Alembic read that table, and refuse a database newer than the version 2 they know instead of
writing to a schema they do not understand.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection

from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.storage.database import now, safe_url, schema_info

log = get_logger("store")

#: The folder of env.py and versions/ (packaged with the code; no alembic.ini needed).
LOCATION = Path(__file__).resolve().parent
#: The revision equal to the schema the product made before Alembic (schema version 2).
BASELINE = "0001_baseline"
#: Key of the advisory lock that serialises schema upgrades on a PostgreSQL server.
_PG_LOCK = 727274


def alembic_config(connection: Connection | None = None, location: Path = LOCATION) -> Config:
    """An Alembic configuration for the store's migrations, without an ini file; migrations
    run on ``connection`` (inside its transaction) when one is given."""
    config = Config()
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script(location: Path = LOCATION) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(location=location))


def head(location: Path = LOCATION) -> str:
    """The newest revision (the schema this product writes)."""
    newest = _script(location).get_current_head()
    if newest is None:  # pragma: no cover - the package always has revisions
        raise TermDepositError("The store's migrations are missing from this installation.")
    return newest


def current_revision(conn: Connection) -> str | None:
    """The revision of the database (None: never migrated by Alembic)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(conn: Connection, location: Path = LOCATION) -> None:
    """Bring the schema of the database at ``conn`` to :func:`head`, inside ``conn``'s open
    transaction; a process doing the same meanwhile is waited for, then finds nothing to do.

    Raises:
        TermDepositError: the database was made by a newer product, or is not recognised.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK})"))
    # On SQLite the transaction began with BEGIN IMMEDIATE: it holds the write lock already.
    revision = current_revision(conn)
    newest = head(location)
    if revision == newest:
        return
    if revision is None:
        _adopt_pre_alembic(conn, location)
    elif not _knows(revision, location):
        _refuse_newer(conn, f"revision {revision}")
    log.info("upgrading the store schema to revision %s", newest)
    command.upgrade(alembic_config(conn, location), "head")


def _knows(revision: str, location: Path) -> bool:
    return any(script.revision == revision for script in _script(location).walk_revisions())


def legacy_version(conn: Connection) -> int:
    """The schema version a product from before Alembic recorded (0: none)."""
    if not conn.dialect.has_table(conn, schema_info.name):
        return 0
    return int(conn.execute(select(func.max(schema_info.c.version))).scalar() or 0)


def _adopt_pre_alembic(conn: Connection, location: Path) -> None:
    """Stamp a database made before Alembic at the baseline (version 1 first gets what
    version 2 added); an empty database is left for the revisions to fill."""
    version = legacy_version(conn)
    if version == 0:
        return
    if version not in (1, 2):
        raise TermDepositError(
            f"The database at {_where(conn)} says it was made with migrations (schema version "
            f"{version}) but records no revision; nothing was changed.",
            hint="Restore it from a backup, or ask whoever maintains termdeposit.",
        )
    if version == 1:
        log.info("upgrading the store schema from version 1 to 2 (the A/B hold-out)")
        _version_1_to_2(conn)
    log.info("adopting a store made before migrations (schema version %d)", version)
    command.stamp(alembic_config(conn, location), BASELINE)


def _version_1_to_2(conn: Connection) -> None:
    """Schema version 2 as the product before Alembic added it: the A/B hold-out (share and
    seed on call lists, who is in which group)."""
    conn.execute(text("ALTER TABLE call_lists ADD COLUMN ab_share FLOAT NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE call_lists ADD COLUMN ab_seed INTEGER"))
    frozen = MetaData()
    Table("call_lists", frozen, Column("id", Integer, primary_key=True))
    Table(
        "call_list_members",
        frozen,
        Column("call_list_id", ForeignKey("call_lists.id", ondelete="CASCADE"), primary_key=True),
        Column("customer_id", String(128), primary_key=True),
        Column("grp", String(8), nullable=False),
        Column("to_call", Boolean, nullable=False),
        Column("probability", Float, nullable=False),
    ).create(conn)
    conn.execute(schema_info.insert().values(version=2, upgraded_at=now()))


def _refuse_newer(conn: Connection, found: str) -> None:
    raise TermDepositError(
        f"The database at {_where(conn)} has {found}, newer than this product understands "
        f"({head()}).",
        hint="Upgrade termdeposit on this machine.",
    )


def _where(conn: Connection) -> str:
    """The database's URL for a message (password hidden)."""
    return safe_url(conn.engine.url.render_as_string(hide_password=False))
