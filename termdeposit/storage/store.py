"""The operations store: cohorts, predictions, call lists, outcomes, alerts and promotions.

SQLAlchemy 2.x Core on a SQLite file by default (no set-up) or PostgreSQL for a team
(``TERMDEPOSIT_DB_URL``). The schema carries a version number and is upgraded in place, in
one transaction, the first time a newer product opens an older database (see
:data:`MIGRATIONS`). Every write is one transaction: a failure leaves nothing half-written.
The same cohort file (same sha256) is one cohort however often it is uploaded or scored.

Concurrency: on SQLite every transaction takes the write lock up front (``BEGIN IMMEDIATE``)
and waits for it, so concurrent writers queue instead of failing; on PostgreSQL inserts use
``ON CONFLICT DO NOTHING`` on natural keys, so overlapping uploads store each row once.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import itertools
import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    event,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError

from termdeposit.core import config
from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS

log = get_logger("store")

#: The schema version this code writes; older databases are upgraded to it when opened.
SCHEMA_VERSION = 2
#: Rows per INSERT batch and ids per IN (...) clause.
BATCH = 2000
#: Rows per ``executemany`` call (SQLite) or per block of ``COPY`` (PostgreSQL) when the
#: prediction log writes a scored cohort.
BULK_BATCH = 50_000

metadata = MetaData()

schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("upgraded_at", DateTime(timezone=True), nullable=False),
)

cohorts = Table(
    "cohorts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("file_sha256", String(64), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("week_label", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),
    Column("user", String(64), nullable=False),
)

cohort_customers = Table(
    "cohort_customers",
    metadata,
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("row_number", Integer, nullable=False),
    Column("inputs", Text, nullable=False),
)

scorings = Table(
    "scorings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("threshold", Float),
    Column("top_n", Integer),
    Column("calls", Integer, nullable=False),
    Column("source", String(16), nullable=False),
    Column("user", String(64), nullable=False),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("cohort_id", "model_version", "rule", name="uq_scoring"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("scoring_id", ForeignKey("scorings.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("probability", Float, nullable=False),
    Column("decision", Boolean, nullable=False),
    Column("rank", Integer, nullable=False),
)


def _call_list_columns() -> list[Column]:
    """Columns of a call list as in schema version 1."""
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
        Column("model_version", String(64), nullable=False),
        Column("threshold", Float),
        Column("call_cost", Float, nullable=False),
        Column("subscription_value", Float, nullable=False),
        Column("capacity", Integer),
        Column("rows", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("user", String(64), nullable=False),
    ]


call_lists = Table(
    "call_lists",
    metadata,
    *_call_list_columns(),
    Column("ab_share", Float, nullable=False, server_default="0"),
    Column("ab_seed", Integer),
)

call_list_members = Table(
    "call_list_members",
    metadata,
    Column("call_list_id", ForeignKey("call_lists.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("grp", String(8), nullable=False),
    Column("to_call", Boolean, nullable=False),
    Column("probability", Float, nullable=False),
)

outcome_uploads = Table(
    "outcome_uploads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("file_sha256", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("added", Integer, nullable=False),
    Column("unchanged", Integer, nullable=False),
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Column("user", String(64), nullable=False),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("called", Boolean, nullable=False),
    Column("subscribed", Boolean, nullable=False),
    Column("upload_id", ForeignKey("outcome_uploads.id"), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
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

promotions = Table(
    "promotions",
    metadata,
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

settings_table = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("user", String(64), nullable=False),
)

#: Tables of schema version 1 (call lists without the A/B hold-out).
_V1_TABLES = (
    "schema_info",
    "cohorts",
    "cohort_customers",
    "scorings",
    "predictions",
    "outcome_uploads",
    "outcomes",
    "alerts",
    "promotions",
    "settings",
)


def _v1_metadata() -> MetaData:
    """Schema version 1, as first released (used to create or upgrade old databases)."""
    old = MetaData()
    for name in _V1_TABLES:
        metadata.tables[name].to_metadata(old)
    Table("call_lists", old, *_call_list_columns())
    return old


def _migrate_to_1(conn: Connection) -> None:
    """Version 1: cohorts, predictions, call lists, outcomes, alerts, promotions, settings."""
    _v1_metadata().create_all(conn)


def _migrate_to_2(conn: Connection) -> None:
    """Version 2: the A/B hold-out (share and seed on call lists, who is in which group)."""
    conn.execute(text("ALTER TABLE call_lists ADD COLUMN ab_share FLOAT NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE call_lists ADD COLUMN ab_seed INTEGER"))
    call_list_members.create(conn)


#: In-place upgrades: version -> function that brings version - 1 to it.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _migrate_to_1, 2: _migrate_to_2}


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


def _utc(value: Any) -> dt.datetime | None:
    """SQLite hands back naive datetimes: mark them as the UTC they were stored as."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


#: Query parameters of a database URL that can hold a credential (e.g. ``?password=``).
_SECRET_QUERY_WORDS = ("password", "secret", "token")


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


def _batches(items: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class ScoringLog:
    """What :meth:`Store.log_scoring` stored.

    Attributes:
        cohort_id: the cohort (one per distinct file).
        scoring_id: the scoring run (one per cohort, model version and decision rule).
        new_cohort: False when the same file had been seen before.
        new_scoring: False when this exact scoring was already logged (nothing was added).
        rows: customers in the cohort.
    """

    cohort_id: int
    scoring_id: int
    new_cohort: bool
    new_scoring: bool
    rows: int


class Store:
    """Access to the operations database. Use :func:`open_store` to get one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self.dialect = self.engine.dialect.name
        self._upgraded = False

    # -- set-up ---------------------------------------------------------------------------

    def check(self) -> Store:
        """Connect and bring the schema up to date; raise a clear error when unreachable."""
        if not self._upgraded:
            self._run(self._upgrade)
            self._upgraded = True
        return self

    def schema_version(self) -> int:
        """The schema version of the database (0 for an empty one)."""
        return self._run(_read_version)

    def _upgrade(self, conn: Connection) -> None:
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        version = _read_version(conn)
        if version > SCHEMA_VERSION:
            raise TermDepositError(
                f"The database at {safe_url(self.url)} has schema version {version}, newer "
                f"than this product understands ({SCHEMA_VERSION}).",
                hint="Upgrade termdeposit on this machine.",
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            log.info("upgrading the store schema to version %d", target)
            MIGRATIONS[target](conn)
            _write_version(conn, target)

    def _run(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work`` in one transaction; turn connection failures into a clear error."""
        try:
            with self.engine.begin() as conn:
                return work(conn)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreUnavailableError(
                f"The prediction log database at {safe_url(self.url)} could not be used "
                f"({reason}).",
                hint="Start the database or fix TERMDEPOSIT_DB_URL. To score without logging, "
                "say so explicitly (--no-log on the command line).",
            ) from exc

    def transaction(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work(conn)`` in one transaction of an up-to-date store (all or nothing)."""
        self.check()
        return self._run(work)

    def read(self, query: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a SELECT and return its rows as a DataFrame."""
        self.check()

        def work(conn: Connection) -> pd.DataFrame:
            result = conn.execute(query, params or {})
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

        return self._run(work)

    # -- cohorts and predictions -----------------------------------------------------------------

    def log_scoring(
        self,
        scored: pd.DataFrame | Mapping[str, Any] | Iterable[pd.DataFrame],
        *,
        file_sha256: str,
        model_version: str,
        threshold: float | None = None,
        top_n: int | None = None,
        name: str | None = None,
        week_label: str | None = None,
        source: str = "cli",
        user: str | None = None,
    ) -> ScoringLog:
        """Log one scoring of a cohort file, in one transaction.

        Args:
            scored: one row per customer with ``customer_id``, ``probability``, ``decision``
                (True / "call" = to call), ``rank`` (optional) and the 19 inputs
                (the frame :func:`~termdeposit.modeling.predict.score_frame` returns), the same
                as a mapping of column name to values (the API's small batches, no pandas), or
                an iterable of such frames (chunks of a large file, ranks over the whole file).
            file_sha256: sha256 of the uploaded file's bytes: the same file is one cohort.
            model_version: the version that scored it.
            threshold / top_n: the decision rule used (one of them).
            name: file name shown in lists (default: the hash prefix).
            week_label: which week the cohort is for (default: the ISO week of today).
            source: ``app``, ``cli`` or ``api``.

        Returns:
            Which cohort and scoring run the predictions belong to. Scoring the same file with
            the same model and rule again adds nothing (``new_scoring`` is False).

        Raises:
            TermDepositError: missing columns, duplicate ids, or a known file whose customers
                differ; nothing is stored.
        """
        if not isinstance(file_sha256, str) or len(file_sha256) != 64:
            raise TermDepositError(
                "A cohort must be identified by the sha256 of its file (64 hex characters)."
            )
        if threshold is None and top_n is None:
            raise TermDepositError("Say which decision rule was used: a threshold or a top N.")
        chunks = [scored] if isinstance(scored, pd.DataFrame | Mapping) else scored
        user = user or current_user()
        rule = f"top {int(top_n)}" if top_n is not None else f"threshold {float(threshold):.6f}"
        stamp = now()

        def work(conn: Connection) -> ScoringLog:
            cohort_id = scoring_id = None
            new_cohort = new_scoring = False
            total = calls = 0
            for raw in chunks:
                frame = _prepared_scoring(raw)  # plain lists: no pandas per row
                if cohort_id is None:
                    cohort_id, new_cohort = self._ensure_cohort(
                        conn, file_sha256, name, week_label, source, user, stamp
                    )
                    scoring_id, new_scoring = self._ensure_scoring(
                        conn, cohort_id, model_version, rule, threshold, top_n, source, user, stamp
                    )
                if new_cohort:
                    self._insert_customers(conn, cohort_id, frame.ids, frame.inputs, total)
                if new_scoring:
                    _bulk_insert(
                        conn,
                        predictions,
                        ("scoring_id", "customer_id", "probability", "decision", "rank"),
                        (
                            itertools.repeat(scoring_id, len(frame.ids)),
                            frame.ids,
                            frame.probability,
                            frame.decision,
                            frame.rank,
                        ),
                    )
                total += len(frame.ids)
                calls += int(np.count_nonzero(frame.decision))
            if cohort_id is None:
                raise TermDepositError("There are no scored customers to log.")
            self._finish_cohort(conn, cohort_id, new_cohort, total)
            if new_scoring:
                conn.execute(
                    scorings.update().where(scorings.c.id == scoring_id).values(calls=calls)
                )
            return ScoringLog(cohort_id, scoring_id, new_cohort, new_scoring, total)

        try:
            return self.transaction(work)
        except IntegrityError as exc:
            raise TermDepositError(
                "The scored cohort has the same customer id more than once; nothing was logged.",
                hint="Give every customer a distinct id.",
            ) from exc

    def _ensure_cohort(
        self,
        conn: Connection,
        file_sha256: str,
        name: str | None,
        week_label: str | None,
        source: str,
        user: str,
        stamp: dt.datetime,
    ) -> tuple[int, bool]:
        """Return the cohort of this file hash and whether it was created now (rows 0)."""
        iso = stamp.isocalendar()
        inserted = _insert_ignore(
            conn,
            self.dialect,
            cohorts,
            [
                {
                    "file_sha256": file_sha256,
                    "name": (name or f"file {file_sha256[:12]}")[:255],
                    "week_label": (week_label or f"{iso.year}-W{iso.week:02d}")[:64],
                    "rows": 0,
                    "uploaded_at": stamp,
                    "source": source,
                    "user": user,
                }
            ],
            ["file_sha256"],
            returning=cohorts.c.id,
        )
        if inserted:
            return int(inserted[0]), True
        found = conn.execute(
            select(cohorts.c.id).where(cohorts.c.file_sha256 == file_sha256)
        ).scalar_one()
        return int(found), False

    def _finish_cohort(self, conn: Connection, cohort_id: int, new: bool, rows: int) -> None:
        """Record the size of a new cohort, or check a known one has the same size."""
        if new:
            conn.execute(cohorts.update().where(cohorts.c.id == cohort_id).values(rows=rows))
            return
        stored = conn.execute(select(cohorts.c.rows).where(cohorts.c.id == cohort_id)).scalar_one()
        if stored != rows:
            raise TermDepositError(
                f"This file was logged before with {stored} customers, now {rows}.",
                hint="The same file must give the same customers; nothing was stored.",
            )

    def _insert_customers(
        self, conn: Connection, cohort_id: int, ids: list[str], inputs: list[str], offset: int
    ) -> None:
        """Store the customers of a new cohort with their inputs (JSON, see _inputs_json)."""
        _bulk_insert(
            conn,
            cohort_customers,
            ("cohort_id", "customer_id", "row_number", "inputs"),
            (
                itertools.repeat(cohort_id, len(ids)),
                ids,
                range(offset, offset + len(ids)),
                inputs,
            ),
        )

    def _ensure_scoring(
        self,
        conn: Connection,
        cohort_id: int,
        model_version: str,
        rule: str,
        threshold: float | None,
        top_n: int | None,
        source: str,
        user: str,
        stamp: dt.datetime,
    ) -> tuple[int, bool]:
        """Return the scoring run (cohort, model, rule) and whether it was created now."""
        inserted = _insert_ignore(
            conn,
            self.dialect,
            scorings,
            [
                {
                    "cohort_id": cohort_id,
                    "model_version": model_version,
                    "rule": rule,
                    "threshold": None if threshold is None else float(threshold),
                    "top_n": None if top_n is None else int(top_n),
                    "calls": 0,
                    "source": source,
                    "user": user,
                    "scored_at": stamp,
                }
            ],
            ["cohort_id", "model_version", "rule"],
            returning=scorings.c.id,
        )
        if inserted:
            return int(inserted[0]), True
        found = conn.execute(
            select(scorings.c.id).where(
                scorings.c.cohort_id == cohort_id,
                scorings.c.model_version == model_version,
                scorings.c.rule == rule,
            )
        ).scalar_one()
        return int(found), False

    def cohorts(self) -> pd.DataFrame:
        """Every cohort, oldest first: id, name, week label, rows, uploaded at, hash."""
        frame = self.read(select(cohorts).order_by(cohorts.c.id))
        if len(frame):
            frame["uploaded_at"] = frame["uploaded_at"].map(_utc)
        return frame

    def find_cohort(self, ref: str | int) -> dict[str, Any]:
        """A cohort by id, week label, file name or sha256 (prefix of 8+ characters).

        Raises:
            TermDepositError: no cohort, or several, match.
        """
        table = self.cohorts()
        key = str(ref).strip()
        if table.empty:
            raise TermDepositError(
                "No cohort has been scored yet.",
                hint="Score the week's cohort first ('termdeposit score' or the Score page).",
            )
        match = table[
            (table["id"].astype(str) == key)
            | (table["week_label"] == key)
            | (table["name"] == key)
            | (table["file_sha256"].str.startswith(key.lower()) & (len(key) >= 8))
        ]
        if len(match) != 1:
            listing = ", ".join(
                f"{r.id} ({r.week_label}, {r.name})" for r in table.tail(8).itertuples()
            )
            raise TermDepositError(
                f"{'No' if match.empty else 'More than one'} cohort matches '{key}'.",
                hint=f"Give the cohort's id or week label; the latest are: {listing}.",
            )
        return match.iloc[0].to_dict()

    def cohort_inputs(self, cohort_id: int) -> pd.DataFrame:
        """The customers of a cohort with their 19 inputs (typed as when scored)."""
        raw = self.read(
            select(cohort_customers.c.customer_id, cohort_customers.c.inputs)
            .where(cohort_customers.c.cohort_id == int(cohort_id))
            .order_by(cohort_customers.c.row_number)
        )
        return _inputs_frame(raw)

    def scoring_runs(self, cohort_id: int | None = None) -> pd.DataFrame:
        """Scoring runs (newest last), optionally of one cohort."""
        query = select(scorings).order_by(scorings.c.id)
        if cohort_id is not None:
            query = query.where(scorings.c.cohort_id == int(cohort_id))
        return self.read(query)

    def predictions(self, scoring_id: int) -> pd.DataFrame:
        """The logged predictions of one scoring run, in rank order."""
        frame = self.read(
            select(
                predictions.c.customer_id,
                predictions.c.probability,
                predictions.c.decision,
                predictions.c.rank,
            )
            .where(predictions.c.scoring_id == int(scoring_id))
            .order_by(predictions.c.rank)
        )
        frame["decision"] = frame["decision"].astype(bool)
        return frame

    def fingerprint(self) -> tuple[str, ...]:
        """Values that change whenever anything monitoring depends on changes (for caches)."""

        def work(conn: Connection) -> tuple[str, ...]:
            queries = [
                select(func.count()).select_from(table)
                for table in (cohorts, scorings, call_lists, outcomes, alerts)
            ]
            queries += [
                select(func.count()).where(alerts.c.acknowledged_at.is_not(None)),
                select(func.max(settings_table.c.updated_at)),
            ]
            return tuple(str(conn.execute(q).scalar()) for q in queries)

        return self.transaction(work)

    # -- call lists ------------------------------------------------------------------------------

    def record_call_list(
        self,
        *,
        cohort_id: int,
        model_version: str,
        members: pd.DataFrame,
        threshold: float | None,
        call_cost: float,
        subscription_value: float,
        capacity: int | None = None,
        ab_share: float = 0.0,
        ab_seed: int | None = None,
        user: str | None = None,
    ) -> int:
        """Record a call list as issued: every customer with group, to-call flag and score.

        Args:
            members: ``customer_id``, ``group`` (``model`` or ``holdout``), ``call`` (bool),
                ``probability``: one row per customer of the cohort.

        Returns:
            The call list's id.
        """
        stamp = now()

        def work(conn: Connection) -> int:
            known = conn.execute(
                select(func.count()).where(cohort_customers.c.cohort_id == int(cohort_id))
            ).scalar_one()
            if known == 0:
                raise TermDepositError(
                    f"There is no logged cohort {cohort_id}.",
                    hint="Score the cohort first: the call list is made from its scores.",
                )
            list_id = conn.execute(
                call_lists.insert()
                .values(
                    cohort_id=int(cohort_id),
                    model_version=model_version,
                    threshold=None if threshold is None else float(threshold),
                    call_cost=float(call_cost),
                    subscription_value=float(subscription_value),
                    capacity=capacity,
                    rows=int(members["call"].sum()),
                    created_at=stamp,
                    user=user or current_user(),
                    ab_share=float(ab_share),
                    ab_seed=ab_seed,
                )
                .returning(call_lists.c.id)
            ).scalar_one()
            rows = [
                {
                    "call_list_id": list_id,
                    "customer_id": str(cid),
                    "grp": str(group),
                    "to_call": bool(call),
                    "probability": float(p),
                }
                for cid, group, call, p in zip(
                    members[ID_COLUMN],
                    members["group"],
                    members["call"],
                    members["probability"],
                    strict=True,
                )
            ]
            for batch in _batches(rows):
                conn.execute(call_list_members.insert(), list(batch))
            return int(list_id)

        return self.transaction(work)

    def call_lists(self, cohort_id: int | None = None) -> pd.DataFrame:
        """Call lists issued (oldest first), optionally for one cohort."""
        query = select(call_lists).order_by(call_lists.c.id)
        if cohort_id is not None:
            query = query.where(call_lists.c.cohort_id == int(cohort_id))
        return self.read(query)

    def call_list_members(self, call_list_id: int) -> pd.DataFrame:
        """Customers of a call list with their group, to-call flag and probability."""
        frame = self.read(
            select(
                call_list_members.c.customer_id,
                call_list_members.c.grp.label("group"),
                call_list_members.c.to_call.label("call"),
                call_list_members.c.probability,
            ).where(call_list_members.c.call_list_id == int(call_list_id))
        )
        frame["call"] = frame["call"].astype(bool)
        return frame.rename(columns={"customer_id": ID_COLUMN})

    # -- outcomes --------------------------------------------------------------------------------

    def customer_cohorts(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        """For each given customer id, the cohorts it belongs to (customer_id, cohort_id)."""
        ids = [str(c) for c in customer_ids]

        def work(conn: Connection) -> pd.DataFrame:
            parts = []
            for batch in _batches(ids, 500):
                result = conn.execute(
                    select(cohort_customers.c.customer_id, cohort_customers.c.cohort_id).where(
                        cohort_customers.c.customer_id.in_(list(batch))
                    )
                )
                parts.extend(result.fetchall())
            return pd.DataFrame(parts, columns=[ID_COLUMN, "cohort_id"])

        return self.transaction(work)

    def record_outcomes(
        self,
        rows: pd.DataFrame,
        *,
        file_sha256: str,
        name: str,
        user: str | None = None,
        check: Callable[[pd.DataFrame], None] | None = None,
    ) -> dict[str, int]:
        """Store outcomes (cohort_id, customer_id, called, subscribed) all or nothing.

        A row already stored with the same values is left alone; a row stored with other
        values is a conflict. ``check(conflicts)`` is called inside the transaction with the
        conflicting rows (stored and new values) and must raise to abort; by default any
        conflict raises. Concurrent uploads with overlapping rows store each row once.

        Returns:
            ``rows``, ``added`` and ``unchanged`` counts.
        """
        return self.transaction(
            lambda conn: self._write_outcomes(
                conn, rows, file_sha256=file_sha256, name=name, user=user, check=check
            )
        )

    def ingest_labelled(
        self,
        customers: pd.DataFrame,
        outcome_rows: pd.DataFrame,
        *,
        file_sha256: str,
        name: str,
        week_label: str | None = None,
        user: str | None = None,
    ) -> tuple[int, bool, int]:
        """Store a labelled data drop as a cohort plus its outcomes, in one transaction.

        Args:
            customers: ``customer_id`` and the 19 inputs.
            outcome_rows: ``customer_id``, ``called``, ``subscribed``.

        Returns:
            (cohort id, whether the cohort is new, outcomes added).
        """
        user = user or current_user()

        def work(conn: Connection) -> tuple[int, bool, int]:
            cohort_id, new = self._ensure_cohort(
                conn, file_sha256, name, week_label, "ingest", user, now()
            )
            if new:
                ids = [str(i) for i in customers[ID_COLUMN].tolist()]
                self._insert_customers(conn, cohort_id, ids, _inputs_json(customers), 0)
            self._finish_cohort(conn, cohort_id, new, len(customers))
            counts = self._write_outcomes(
                conn,
                outcome_rows.assign(cohort_id=cohort_id),
                file_sha256=file_sha256,
                name=name,
                user=user,
            )
            return cohort_id, new, counts["added"]

        return self.transaction(work)

    def _write_outcomes(
        self,
        conn: Connection,
        rows: pd.DataFrame,
        *,
        file_sha256: str,
        name: str,
        user: str | None = None,
        check: Callable[[pd.DataFrame], None] | None = None,
    ) -> dict[str, int]:
        """Write outcomes inside an open transaction (see :meth:`record_outcomes`).

        A row already stored with the same values is left alone; a row stored with other
        values is a conflict. ``check(conflicts)`` is called inside the transaction with the
        conflicting rows (stored and new values) and must raise to abort; by default any
        conflict raises. Concurrent uploads with overlapping rows store each row once.

        Returns:
            ``rows``, ``added`` and ``unchanged`` counts.
        """
        user = user or current_user()
        stamp = now()
        wanted = rows.loc[:, ["cohort_id", ID_COLUMN, "called", "subscribed"]].copy()
        wanted["cohort_id"] = wanted["cohort_id"].astype(int)
        wanted[ID_COLUMN] = wanted[ID_COLUMN].astype(str)

        def stored_rows(conn: Connection) -> pd.DataFrame:
            keys = list(zip(wanted["cohort_id"], wanted[ID_COLUMN], strict=True))
            found = []
            for batch in _batches(keys, 500):
                result = conn.execute(
                    select(
                        outcomes.c.cohort_id,
                        outcomes.c.customer_id,
                        outcomes.c.called,
                        outcomes.c.subscribed,
                    ).where(tuple_(outcomes.c.cohort_id, outcomes.c.customer_id).in_(list(batch)))
                )
                found.extend(result.fetchall())
            return pd.DataFrame(
                found, columns=["cohort_id", ID_COLUMN, "stored_called", "stored_subscribed"]
            )

        def conflicts_of(conn: Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
            merged = wanted.merge(stored_rows(conn), on=["cohort_id", ID_COLUMN], how="left")
            present = merged["stored_called"].notna()
            differ = present & (
                (merged["stored_called"].astype(bool) != merged["called"])
                | (merged["stored_subscribed"].astype(bool) != merged["subscribed"])
            )
            return merged[differ], merged[present & ~differ]

        def raise_conflicts(conflicts: pd.DataFrame) -> None:
            if conflicts.empty:
                return
            if check is not None:
                check(conflicts)
            raise TermDepositError(
                f"{len(conflicts)} outcomes differ from those already stored.",
                hint="Nothing was stored. Correct the file (or the earlier upload) and try again.",
            )

        def work(conn: Connection) -> dict[str, int]:
            conflicts, _ = conflicts_of(conn)
            raise_conflicts(conflicts)
            upload_id = conn.execute(
                outcome_uploads.insert()
                .values(
                    file_sha256=file_sha256,
                    name=name[:255],
                    rows=len(wanted),
                    added=0,
                    unchanged=0,
                    uploaded_at=stamp,
                    user=user,
                )
                .returning(outcome_uploads.c.id)
            ).scalar_one()
            records = [
                {
                    "cohort_id": int(c),
                    "customer_id": str(i),
                    "called": bool(a),
                    "subscribed": bool(s),
                    "upload_id": upload_id,
                    "recorded_at": stamp,
                }
                for c, i, a, s in zip(
                    wanted["cohort_id"],
                    wanted[ID_COLUMN],
                    wanted["called"],
                    wanted["subscribed"],
                    strict=True,
                )
            ]
            # Rows go in key order: two uploads sharing rows then wait for each other instead of
            # each holding a row the other needs (a deadlock on PostgreSQL that failed one).
            records.sort(key=lambda r: (r["cohort_id"], r["customer_id"]))
            added = 0
            for batch in _batches(records):
                added += len(
                    _insert_ignore(
                        conn,
                        self.dialect,
                        outcomes,
                        list(batch),
                        ["cohort_id", "customer_id"],
                        returning=outcomes.c.customer_id,
                    )
                )
            # Another upload may have stored some of these rows meanwhile: check again.
            conflicts, _ = conflicts_of(conn)
            raise_conflicts(conflicts)
            unchanged = len(wanted) - added
            if added == 0:
                conn.execute(outcome_uploads.delete().where(outcome_uploads.c.id == upload_id))
            else:
                conn.execute(
                    outcome_uploads.update()
                    .where(outcome_uploads.c.id == upload_id)
                    .values(added=added, unchanged=unchanged)
                )
            return {"rows": len(wanted), "added": added, "unchanged": unchanged}

        return work(conn)

    def outcomes(self, cohort_id: int | None = None) -> pd.DataFrame:
        """Stored outcomes: cohort_id, customer_id, called, subscribed, recorded_at."""
        query = select(
            outcomes.c.cohort_id,
            outcomes.c.customer_id,
            outcomes.c.called,
            outcomes.c.subscribed,
            outcomes.c.recorded_at,
        ).order_by(outcomes.c.cohort_id, outcomes.c.customer_id)
        if cohort_id is not None:
            query = query.where(outcomes.c.cohort_id == int(cohort_id))
        frame = self.read(query)
        for column in ("called", "subscribed"):
            frame[column] = frame[column].astype(bool)
        return frame.rename(columns={"customer_id": ID_COLUMN})

    def outcome_uploads(self) -> pd.DataFrame:
        """Every outcome upload that added rows, oldest first."""
        return self.read(select(outcome_uploads).order_by(outcome_uploads.c.id))

    def training_rows(self) -> pd.DataFrame:
        """Called customers with a known outcome: their inputs and ``y`` (oldest cohort first).

        These rows join the reference data at the next retraining.
        """
        raw = self.read(
            select(
                outcomes.c.cohort_id,
                cohort_customers.c.customer_id,
                cohort_customers.c.inputs,
                outcomes.c.subscribed,
            )
            .join(
                cohort_customers,
                and_(
                    cohort_customers.c.cohort_id == outcomes.c.cohort_id,
                    cohort_customers.c.customer_id == outcomes.c.customer_id,
                ),
            )
            .where(outcomes.c.called.is_(True))
            .order_by(outcomes.c.cohort_id, cohort_customers.c.row_number)
        )
        frame = _inputs_frame(raw)
        frame.insert(0, "cohort_id", raw["cohort_id"].astype(int).to_numpy() if len(raw) else [])
        frame["y"] = raw["subscribed"].astype(int).to_numpy() if len(raw) else []
        return frame

    # -- alerts ----------------------------------------------------------------------------------

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
                key = (draft["rule"], draft["scope"], draft["subject"])
                values = {
                    "severity": draft.get("severity", "warning"),
                    "message": draft["message"],
                    "value": _float_or_none(draft.get("value")),
                    "limit_value": _float_or_none(draft.get("limit")),
                    "last_seen_at": stamp,
                }
                inserted = _insert_ignore(
                    conn,
                    self.dialect,
                    alerts,
                    [
                        {
                            "rule": key[0],
                            "scope": key[1],
                            "subject": key[2],
                            "raised_at": stamp,
                            **values,
                        }
                    ],
                    ["rule", "scope", "subject"],
                    returning=alerts.c.id,
                )
                where = and_(
                    alerts.c.rule == key[0], alerts.c.scope == key[1], alerts.c.subject == key[2]
                )
                if not inserted:
                    conn.execute(alerts.update().where(where).values(**values))
                ids.append(conn.execute(select(alerts.c.id).where(where)).scalar_one())
            return ids

        ids = self.transaction(work)
        table = self.alerts(active_only=False)
        return table[table["id"].isin(ids)].reset_index(drop=True)

    def alerts(self, active_only: bool = True) -> pd.DataFrame:
        """Stored alerts, newest first; by default only those not acknowledged."""
        query = select(alerts).order_by(alerts.c.last_seen_at.desc(), alerts.c.id.desc())
        if active_only:
            query = query.where(alerts.c.acknowledged_at.is_(None))
        frame = self.read(query)
        for column in ("raised_at", "last_seen_at", "acknowledged_at"):
            if len(frame):
                frame[column] = frame[column].map(_utc)
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

        self.transaction(work)

    # -- promotions ------------------------------------------------------------------------------

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
        row = {
            "at": _utc(at) or now().replace(microsecond=0),
            "action": action,
            "version": version,
            "previous": previous,
            "user": (user or current_user())[:64],
            "reason": reason,
            "details": json.dumps(details, default=str) if details else None,
        }
        self.transaction(
            lambda conn: _insert_ignore(
                conn, self.dialect, promotions, [row], ["at", "action", "version"]
            )
        )

    def sync_promotions(self, models_dir: Path | None = None) -> int:
        """Copy the registry's audit log (promotions.jsonl) into the store; return rows added."""
        from termdeposit.modeling import registry

        entries = registry.audit_log(models_dir)
        rows = [
            {
                "at": _utc(e["at"]),
                "action": e.get("action", "promote"),
                "version": e["version"],
                "previous": e.get("previous"),
                "user": str(e.get("user", "unknown"))[:64],
                "reason": e.get("reason", ""),
                "details": None,
            }
            for e in entries
        ]
        if not rows:
            return 0
        return self.transaction(
            lambda conn: len(
                _insert_ignore(
                    conn,
                    self.dialect,
                    promotions,
                    rows,
                    ["at", "action", "version"],
                    returning=promotions.c.id,
                )
            )
        )

    def promotions(self) -> pd.DataFrame:
        """Every recorded promotion decision, oldest first."""
        frame = self.read(select(promotions).order_by(promotions.c.at, promotions.c.id))
        if len(frame):
            frame["at"] = frame["at"].map(_utc)
        return frame

    # -- settings --------------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A stored setting (JSON value), or ``default``."""
        frame = self.read(select(settings_table.c.value).where(settings_table.c.key == key))
        return default if frame.empty else json.loads(frame.iloc[0, 0])

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

        self.transaction(work)


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value


@dataclass
class _ScoredRows:
    """A scored frame as the prediction log stores it: one plain list per column."""

    ids: list[str]
    probability: list[float]
    decision: list[bool]
    rank: list[int]
    inputs: list[str]  # each row's 19 inputs as a JSON list


def _json_cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # as JSON null, never NaN (not JSON)
    return value


def _values(table: pd.DataFrame | Mapping[str, Any], column: str) -> list[Any]:
    """One column of a frame, or of a mapping of columns, as a list of Python values."""
    values = table[column]
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _json_texts(values: Any) -> pa.Array:
    """One input column as JSON texts (what ``json.dumps`` writes; NaN and infinities as null).

    A column of a large cohort holds a few hundred distinct values: each is formatted once and
    spread to its rows by code. Columns where equal values could be written differently
    (negative zero, mixed Python types) are formatted value by value.
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.StringDtype):
        text = pa.array(values)  # Arrow-backed text: no Python strings per cell
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        if not text.null_count:
            encoded = pc.dictionary_encode(text)
            texts = [json.dumps(u) for u in encoded.dictionary.to_pylist()]
            return pa.array(texts, type=pa.string()).take(encoded.indices)
    if hasattr(values, "to_numpy"):
        array = np.asarray(values.to_numpy())
    else:  # a list keeps each value's own type (1, 2.5 and True are not all floats)
        array = np.asarray(values, dtype=object if isinstance(values, list | tuple) else None)
    if array.dtype.kind in "US":
        array = array.astype(object)
    by_value = array.dtype.kind in "iub" or (
        array.dtype.kind == "f" and not np.any((array == 0) & np.signbit(array))
    )
    if by_value or array.dtype == object:
        codes, uniques = pd.factorize(array, use_na_sentinel=False)
        distinct = np.asarray(uniques).tolist()
        if by_value or all(type(u) is str for u in distinct):
            texts = [json.dumps(_json_cell(u)) for u in distinct]
            return pa.array(texts, type=pa.string()).take(pa.array(codes))
    return pa.array([json.dumps(_json_cell(v)) for v in array.tolist()], type=pa.string())


def _inputs_json(frame: pd.DataFrame | Mapping[str, Any]) -> list[str]:
    """Each row's 19 inputs as a compact JSON list (missing numbers as null), as
    ``json.dumps(row, separators=(",", ":"))`` writes it."""
    columns = [_json_texts(frame[c]) for c in INPUT_COLUMNS]
    joined = pc.binary_join_element_wise(*columns, ",")
    return pc.binary_join_element_wise("[", joined, "]", "").to_pylist()


def _prepared_scoring(scored: pd.DataFrame | Mapping[str, Any]) -> _ScoredRows:
    """Check a scored frame (or mapping of columns) and normalise it (text ids, boolean
    decision, ranks)."""
    from termdeposit.modeling.predict import DECISION_YES, ranks_of

    needed = [ID_COLUMN, "probability", "decision", *INPUT_COLUMNS]
    missing = [c for c in needed if c not in scored]
    if missing:
        raise TermDepositError(
            "The scored cohort lacks columns the prediction log needs: " + ", ".join(missing),
            hint="Log the frame returned by score_frame (id, probability, decision, inputs).",
        )
    ids = [str(i) for i in _values(scored, ID_COLUMN)]
    if not ids:
        raise TermDepositError("There are no scored customers to log.")
    if len(set(ids)) != len(ids):
        raise TermDepositError("The scored cohort has duplicate customer ids; nothing was logged.")
    decision = np.asarray(scored["decision"])
    if decision.dtype != bool:
        codes, uniques = pd.factorize(decision, use_na_sentinel=False)
        yes = [d if isinstance(d, bool | np.bool_) else str(d) == DECISION_YES for d in uniques]
        decision = np.asarray(yes, dtype=bool)[codes]
    probability = np.asarray(_values(scored, "probability"), dtype=float)
    ranks = np.asarray(scored["rank"]) if "rank" in scored else ranks_of(probability)
    return _ScoredRows(
        ids=ids,
        probability=probability.tolist(),
        decision=decision.tolist(),
        rank=ranks.astype(np.int64).tolist(),
        inputs=_inputs_json(scored),
    )


def _inputs_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Rebuild typed inputs from stored JSON rows (customer_id, inputs)."""
    from termdeposit.core.schema import CATEGORICAL_COLUMNS

    if raw.empty:
        return pd.DataFrame(columns=[ID_COLUMN, *INPUT_COLUMNS])
    values = pd.DataFrame([json.loads(v) for v in raw["inputs"]], columns=list(INPUT_COLUMNS))
    for column in INPUT_COLUMNS:
        if column in CATEGORICAL_COLUMNS:
            values[column] = values[column].astype(object)
        else:
            values[column] = values[column].astype("float64")
    values.insert(0, ID_COLUMN, raw["customer_id"].astype(str).to_numpy())
    return values


def _read_version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, "schema_info"):
        return 0
    value = conn.execute(select(func.max(schema_info.c.version))).scalar()
    return int(value or 0)


def _write_version(conn: Connection, version: int) -> None:
    conn.execute(schema_info.insert().values(version=version, upgraded_at=now()))


def _insert_ignore(
    conn: Connection,
    dialect: str,
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
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table).on_conflict_do_nothing(index_elements=keys)
    if returning is None:
        conn.execute(statement, rows)
        return []
    result = conn.execute(statement.returning(returning), rows)
    return [row[0] for row in result.fetchall()]


def _bulk_insert(
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


def _make_engine(url: str) -> Engine:
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


_STORES: dict[str, Store] = {}
_LOCK = threading.Lock()


def open_store(url: str | None = None) -> Store:
    """The store at ``url`` (default ``TERMDEPOSIT_DB_URL``), schema upgraded, reachable.

    Raises:
        StoreUnavailableError: the database cannot be reached, with what to do.
    """
    url = url or config.db_url()
    with _LOCK:
        store = _STORES.get(url)
        if store is None:
            store = Store(url)
            _STORES[url] = store
    return store.check()


def log_scoring(
    scored: pd.DataFrame | Mapping[str, Any],
    *,
    file_sha256: str,
    model_version: str,
    threshold: float | None = None,
    top_n: int | None = None,
    name: str | None = None,
    week_label: str | None = None,
    source: str = "cli",
    user: str | None = None,
    url: str | None = None,
) -> ScoringLog:
    """Log a scoring in the prediction log: the one call every front door makes.

    ``scored`` is the frame of :func:`~termdeposit.modeling.predict.score_frame` (id,
    probability, decision, rank, inputs); ``file_sha256`` the hash of the uploaded file's
    bytes (:func:`~termdeposit.modeling.predict.file_sha256`): the same file is one cohort.
    One transaction; returns the cohort and scoring ids (see :meth:`Store.log_scoring`).

    Raises:
        StoreUnavailableError: the database cannot be reached. Callers must not go on
            silently: score without logging only when the user chose so.
    """
    return open_store(url).log_scoring(
        scored,
        file_sha256=file_sha256,
        model_version=model_version,
        threshold=threshold,
        top_n=top_n,
        name=name,
        week_label=week_label,
        source=source,
        user=user,
    )


def source_sha256(path: Path) -> str:
    """sha256 identifying a scored source: the file's bytes, or a folder's files in order."""
    from termdeposit.data.dataset import sha256_file

    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode())
        digest.update(sha256_file(item).encode())
    return digest.hexdigest()


def read_scored_csv(path: Path, chunk_rows: int = 50_000) -> Iterable[pd.DataFrame]:
    """Read a scored output file (as ``termdeposit score`` writes it) in chunks, for the log.

    Text cells were written with a leading quote where a spreadsheet would see a formula;
    the quote is removed again from the customer id.
    """
    from termdeposit.data.exports import FORMULA_PREFIXES

    for chunk in pd.read_csv(
        path, dtype={ID_COLUMN: str}, keep_default_na=False, chunksize=chunk_rows
    ):
        ids = chunk[ID_COLUMN].astype(str)
        quoted = ids.str.startswith("'") & ids.str[1:2].isin(list(FORMULA_PREFIXES))
        chunk[ID_COLUMN] = ids.where(~quoted, ids.str[1:])
        yield chunk


def log_scored_output(
    store: Store,
    output: Path,
    source: Path,
    *,
    model_version: str,
    threshold: float | None,
    top_n: int | None,
    week_label: str | None = None,
    origin: str = "cli",
) -> ScoringLog:
    """Log the predictions of a scored output file (the CLI's path; large files in chunks)."""
    return store.log_scoring(
        read_scored_csv(output),
        file_sha256=source_sha256(source),
        model_version=model_version,
        threshold=threshold,
        top_n=top_n,
        name=Path(source).name,
        week_label=week_label,
        source=origin,
    )
