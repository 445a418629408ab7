"""Outcomes of calls (called, subscribed) per cohort customer, the uploads that brought them,
and the rows they give the next retraining.

An outcome is stored once: a row already stored with the same values is left alone, one stored
with other values is a conflict, and concurrent uploads with overlapping rows store each row
once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    and_,
    select,
    tuple_,
)
from sqlalchemy.engine import Connection

from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN
from termdeposit.storage.cohorts import (
    CohortRepository,
    cohort_customers,
    inputs_frame,
    inputs_json,
    of_cohort,
)
from termdeposit.storage.database import (
    Database,
    batches,
    current_user,
    insert_ignore,
    now,
    select_in_batches,
)
from termdeposit.storage.database import metadata as _metadata

outcome_uploads = Table(
    "outcome_uploads",
    _metadata,
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
    _metadata,
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("called", Boolean, nullable=False),
    Column("subscribed", Boolean, nullable=False),
    Column("upload_id", ForeignKey("outcome_uploads.id"), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

#: Called with the conflicting rows (stored and new values) inside the transaction; raises to
#: abort with its own message.
ConflictCheck = Callable[[pd.DataFrame], None]


class OutcomeRepository:
    """Outcomes of calls and their uploads; labelled data drops (a cohort with outcomes)."""

    def __init__(self, db: Database, cohorts: CohortRepository) -> None:
        self.db = db
        self.cohorts = cohorts

    # -- writing ---------------------------------------------------------------------------------

    def record_outcomes(
        self,
        rows: pd.DataFrame,
        *,
        file_sha256: str,
        name: str,
        user: str | None = None,
        check: ConflictCheck | None = None,
    ) -> dict[str, int]:
        """Store outcomes (cohort_id, customer_id, called, subscribed) all or nothing.

        A row already stored with the same values is left alone; a row stored with other
        values is a conflict. ``check(conflicts)`` is called inside the transaction with the
        conflicting rows (stored and new values) and must raise to abort; by default any
        conflict raises. Concurrent uploads with overlapping rows store each row once.

        Returns:
            ``rows``, ``added`` and ``unchanged`` counts.
        """
        return self.db.transaction(
            lambda conn: self.write_outcomes(
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
            cohort_id, new = self.cohorts.ensure_cohort(
                conn, file_sha256, name, week_label, "ingest", user, now()
            )
            if new:
                ids = [str(i) for i in customers[ID_COLUMN].tolist()]
                self.cohorts.insert_customers(conn, cohort_id, ids, inputs_json(customers), 0)
            self.cohorts.finish_cohort(conn, cohort_id, new, len(customers))
            counts = self.write_outcomes(
                conn,
                outcome_rows.assign(cohort_id=cohort_id),
                file_sha256=file_sha256,
                name=name,
                user=user,
            )
            return cohort_id, new, counts["added"]

        return self.db.transaction(work)

    def write_outcomes(
        self,
        conn: Connection,
        rows: pd.DataFrame,
        *,
        file_sha256: str,
        name: str,
        user: str | None = None,
        check: ConflictCheck | None = None,
    ) -> dict[str, int]:
        """Write outcomes inside an open transaction (see :meth:`record_outcomes`)."""
        user = user or current_user()
        stamp = now()
        wanted = rows.loc[:, ["cohort_id", ID_COLUMN, "called", "subscribed"]].copy()
        wanted["cohort_id"] = wanted["cohort_id"].astype(int)
        wanted[ID_COLUMN] = wanted[ID_COLUMN].astype(str)

        def raise_conflicts() -> None:
            conflicts = _conflicts(conn, wanted)
            if conflicts.empty:
                return
            if check is not None:
                check(conflicts)
            raise TermDepositError(
                f"{len(conflicts)} outcomes differ from those already stored.",
                hint="Nothing was stored. Correct the file (or the earlier upload) and try again.",
            )

        raise_conflicts()
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
        for batch in batches(records):
            added += len(
                insert_ignore(
                    conn,
                    outcomes,
                    list(batch),
                    ["cohort_id", "customer_id"],
                    returning=outcomes.c.customer_id,
                )
            )
        # Another upload may have stored some of these rows meanwhile: check again.
        raise_conflicts()
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

    # -- reading ---------------------------------------------------------------------------------

    def outcomes(self, cohort_id: int | None = None) -> pd.DataFrame:
        """Stored outcomes: cohort_id, customer_id, called, subscribed, recorded_at."""
        frame = self.db.read(
            select(
                outcomes.c.cohort_id,
                outcomes.c.customer_id,
                outcomes.c.called,
                outcomes.c.subscribed,
                outcomes.c.recorded_at,
            )
            .where(*of_cohort(outcomes, cohort_id))
            .order_by(outcomes.c.cohort_id, outcomes.c.customer_id),
            flags=["called", "subscribed"],
        )
        return frame.rename(columns={"customer_id": ID_COLUMN})

    def outcome_uploads(self) -> pd.DataFrame:
        """Every outcome upload that added rows, oldest first."""
        return self.db.read(select(outcome_uploads).order_by(outcome_uploads.c.id))

    def training_rows(self) -> pd.DataFrame:
        """Called customers with a known outcome: their inputs and ``y`` (oldest cohort first).

        These rows join the reference data at the next retraining.
        """
        raw = self.db.read(
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
        frame = inputs_frame(raw)
        frame.insert(0, "cohort_id", raw["cohort_id"].astype(int).to_numpy() if len(raw) else [])
        frame["y"] = raw["subscribed"].astype(int).to_numpy() if len(raw) else []
        return frame


def _conflicts(conn: Connection, wanted: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``wanted`` stored before with other values (stored and new values)."""
    keys = list(zip(wanted["cohort_id"], wanted[ID_COLUMN], strict=True))
    stored = pd.DataFrame(
        select_in_batches(conn, _stored_outcomes, keys),
        columns=["cohort_id", ID_COLUMN, "stored_called", "stored_subscribed"],
    )
    merged = wanted.merge(stored, on=["cohort_id", ID_COLUMN], how="left")
    present = merged["stored_called"].notna()
    differ = present & (
        (merged["stored_called"].astype(bool) != merged["called"])
        | (merged["stored_subscribed"].astype(bool) != merged["subscribed"])
    )
    return merged[differ]


def _stored_outcomes(keys: list[Any]) -> Any:
    """SELECT the stored outcomes of the given (cohort_id, customer_id) keys."""
    return select(
        outcomes.c.cohort_id, outcomes.c.customer_id, outcomes.c.called, outcomes.c.subscribed
    ).where(tuple_(outcomes.c.cohort_id, outcomes.c.customer_id).in_(keys))
