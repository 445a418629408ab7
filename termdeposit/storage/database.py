"""The database under the store: engine, URL handling, transactions and shared query helpers.

SQLAlchemy 2.x Core on a SQLite file by default (no set-up) or PostgreSQL for a team
(``TERMDEPOSIT_DB_URL``). Every write is one transaction: a failure leaves nothing
half-written. Connection failures become :class:`StoreUnavailableError`, whose message never
shows the password of the URL.

Concurrency: on SQLite every transaction takes the write lock up front (``BEGIN IMMEDIATE``)
and waits for it, so concurrent writers queue instead of failing; on PostgreSQL inserts use
``ON CONFLICT DO NOTHING`` on natural keys (:func:`insert_ignore`), so overlapping writers store
each row once.

Every table of the store is declared on :data:`metadata`, next to the repository that reads
and writes it (``cohorts.py``, ``calllists.py``, ...); ``tables.py`` gathers them.
"""

from __future__ import annotations

import datetime as dt
import getpass
import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Select,
    Table,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from termdeposit.core.errors import TermDepositError

T = TypeVar("T")

#: Every table of the store (declared by the repositories, gathered in ``tables.py``).
metadata = MetaData()

#: The schema version products from before the migrations kept (1, 2); products since write 3
#: (see :mod:`~termdeposit.storage.migrations`), so that the older ones refuse the database.
schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("upgraded_at", DateTime(timezone=True), nullable=False),
)

#: Rows per INSERT batch and ids per IN (...) clause.
BATCH = 2000
#: Rows per ``executemany`` call (SQLite) when the prediction log writes a scored cohort
#: (PostgreSQL streams them with ``COPY``).
BULK_BATCH = 50_000

#: Query parameters of a database URL that can hold a credential (e.g. ``?password=``).
_SECRET_QUERY_WORDS = ("password", "secret", "token")


class StoreUnavailableError(TermDepositError):
    """The database of the prediction log cannot be reached or opened."""


def current_user() -> str:
    """Who is acting (``TERMDEPOSIT_USER`` or the login name), recorded with every write."""
    try:
        return (os.environ.get("TERMDEPOSIT_USER") or getpass.getuser())[:64]
    except (KeyError, OSError):
        return "unknown"


def now() -> dt.datetime:
    """The current time in UTC (every timestamp in the store is UTC)."""
    return dt.datetime.now(dt.UTC)


def utc(value: Any) -> dt.datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def safe_url(url: str) -> str:
    """The database URL with its password hidden, in the user part and in the query (for
    messages and logs)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "(unreadable database URL)"
    hidden = {
        key: "hidden"
        for key in parsed.query
        if any(word in key.lower() for word in _SECRET_QUERY_WORDS)
    }
    return parsed.update_query_dict(hidden).render_as_string(hide_password=True)


def batches(items: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size`` (one INSERT or IN (...) each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` into ``table`` in batches of :data:`BATCH` (inside the caller's
    transaction)."""
    for batch in batches(rows):
        conn.execute(table.insert(), list(batch))


def bulk_insert(
    conn: Connection, table: Table, columns: Sequence[str], values: Sequence[Iterable[Any]]
) -> None:
    """Insert many rows in the connection's open transaction, given column by column.

    SQLAlchemy's per-row work (a dictionary per row, parameter processing) cost more than the
    database's own: the rows go to the driver directly instead — ``executemany`` in batches of
    :data:`BULK_BATCH` on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL. Still one
    transaction: a failure rolls everything back. Driver errors come out as SQLAlchemy's
    (``IntegrityError`` for a repeated key), like every other write of the store.
    """
    driver = conn.connection.driver_connection
    names = ", ".join(f'"{c}"' for c in columns)
    rows = zip(*values, strict=True)
    dialect = conn.dialect
    if dialect.name == "postgresql":
        statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    else:
        marks = ", ".join("?" * len(columns))
        statement = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'
    try:
        if dialect.name == "postgresql":
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        elif dialect.name == "sqlite":
            cursor = driver.cursor()
            try:
                while batch := list(itertools.islice(rows, BULK_BATCH)):
                    cursor.executemany(statement, batch)
            finally:
                cursor.close()
        else:  # pragma: no cover - the store refuses other databases when it opens
            conn.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
    except dialect.dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dialect.dbapi.Error) from exc


def insert_ignore(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    keys: list[str],
    returning: Any = None,
) -> list[Any]:
    """INSERT rows, skipping those whose natural key exists; return the new rows' ``returning``.

    Uses ``ON CONFLICT (keys) DO NOTHING`` (SQLite and PostgreSQL), so concurrent writers never
    store a row twice.
    """
    if not rows:
        return []
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = module.insert(table).on_conflict_do_nothing(index_elements=keys)
    if returning is None:
        conn.execute(statement, rows)
        return []
    result = conn.execute(statement.returning(returning), rows)
    return [row[0] for row in result.fetchall()]


def insert_or_get(
    conn: Connection, table: Table, row: dict[str, Any], keys: list[str]
) -> tuple[int, bool]:
    """The ``id`` of the row of ``table`` with ``row``'s natural key, inserting ``row`` when
    there is none; and whether it was inserted now (safe against concurrent writers)."""
    inserted = insert_ignore(conn, table, [row], keys, returning=table.c.id)
    if inserted:
        return int(inserted[0]), True
    found = conn.execute(select(table.c.id).where(*key_match(table, row, keys))).scalar_one()
    return int(found), False


def key_match(table: Table, row: dict[str, Any], keys: list[str]) -> list[ColumnElement[bool]]:
    """Conditions selecting the row of ``table`` whose ``keys`` equal those of ``row``."""
    return [table.c[key] == row[key] for key in keys]


def select_in_batches(
    conn: Connection, query: Callable[[list[Any]], Select[Any]], keys: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Rows of ``query(batch)`` for consecutive batches of ``keys`` (an IN (...) each)."""
    found: list[tuple[Any, ...]] = []
    for batch in batches(keys, 500):
        found.extend(tuple(row) for row in conn.execute(query(list(batch))).fetchall())
    return found


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite or PostgreSQL), set up for the store's transactions.

    Raises:
        StoreUnavailableError: the URL cannot be read or names another kind of database.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a port that is not a number
        raise StoreUnavailableError(
            # The URL is not repeated: it may hold a password.
            "TERMDEPOSIT_DB_URL is not a database URL (it could not be read).",
            hint="Use e.g. sqlite:///data/termdeposit.db or "
            "postgresql+psycopg://user:password@host:5432/termdeposit.",
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL keeps every commit safe from a crash of the process (power loss
            # can lose the last commits, never corrupt the file) and spares an fsync per commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    raise StoreUnavailableError(
        f"The store supports SQLite and PostgreSQL, not '{backend}' ({safe_url(url)}).",
        hint="Point TERMDEPOSIT_DB_URL at a sqlite:/// file or a postgresql+psycopg:// server.",
    )


class Database:
    """One database: its engine and transactions, its schema brought up to date on first use.

    Args:
        url: SQLAlchemy URL of a SQLite file or a PostgreSQL database.
        upgrade: brings the schema up to date inside the transaction it is given (run once,
            before the first transaction; see :mod:`termdeposit.storage.migrations`).
    """

    def __init__(self, url: str, upgrade: Callable[[Connection], None]) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._upgrade = upgrade
        self._upgraded = False

    def check(self) -> None:
        """Connect and bring the schema up to date; raise a clear error when unreachable."""
        if not self._upgraded:
            self._guarded(self._migrate)
            self._upgraded = True

    def _migrate(self) -> None:
        """Run the schema upgrade in one transaction that waits for every other one.

        On SQLite foreign keys are switched off meanwhile (as SQLite advises for schema
        changes: rebuilding a table must not cascade-delete the rows that refer to it) and
        checked before the commit.
        """
        with self.engine.connect() as conn, self._foreign_keys_deferred(conn), conn.begin():
            self._upgrade(conn)
            if self.dialect == "sqlite":
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise TermDepositError(
                        f"Upgrading the database at {safe_url(self.url)} would leave "
                        f"{len(broken)} rows pointing at nothing; nothing was changed.",
                        hint="Report this to whoever maintains termdeposit.",
                    )

    @contextmanager
    def _foreign_keys_deferred(self, conn: Connection) -> Iterator[None]:
        if self.dialect != "sqlite":
            yield
            return
        raw = conn.connection.driver_connection
        raw.execute("PRAGMA foreign_keys=OFF")  # outside a transaction, or SQLite ignores it
        try:
            yield
        finally:
            raw.execute("PRAGMA foreign_keys=ON")

    def _guarded(self, work: Callable[[], T]) -> T:
        """Run ``work``; turn connection failures into a clear error."""
        try:
            return work()
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreUnavailableError(
                f"The prediction log database at {safe_url(self.url)} could not be used "
                f"({reason}).",
                hint="Start the database or fix TERMDEPOSIT_DB_URL. To score without logging, "
                "say so explicitly (--no-log on the command line).",
            ) from exc

    def _run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction; turn connection failures into a clear error."""

        def transaction() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return self._guarded(transaction)

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(conn)`` in one transaction of an up-to-date store (all or nothing)."""
        self.check()
        return self._run(work)

    def read(
        self,
        query: Any,
        params: dict[str, Any] | None = None,
        *,
        times: Sequence[str] = (),
        flags: Sequence[str] = (),
    ) -> pd.DataFrame:
        """Run a SELECT and return its rows as a DataFrame.

        Args:
            query: the SELECT (or text) to run.
            params: its bound parameters.
            times: timestamp columns, returned as aware UTC datetimes.
            flags: boolean columns, returned as ``bool`` (SQLite stores 0 / 1).
        """
        self.check()

        def work(conn: Connection) -> pd.DataFrame:
            result = conn.execute(query, params or {})
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

        frame = self._run(work)
        for column in times:
            if len(frame):
                frame[column] = frame[column].map(utc)
        for column in flags:
            frame[column] = frame[column].astype(bool)
        return frame
