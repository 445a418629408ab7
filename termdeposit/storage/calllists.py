"""Call lists as issued: the list's decision rule and money settings, and every customer of
the cohort with their group (model or A/B hold-out), to-call flag and score."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.engine import Connection

from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN
from termdeposit.storage.cohorts import cohort_customers, of_cohort
from termdeposit.storage.database import Database, current_user, insert_rows, now
from termdeposit.storage.database import metadata as _metadata

call_lists = Table(
    "call_lists",
    _metadata,
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
    Column("ab_share", Float, nullable=False, server_default="0"),
    Column("ab_seed", Integer),
)

call_list_members = Table(
    "call_list_members",
    _metadata,
    Column("call_list_id", ForeignKey("call_lists.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("grp", String(8), nullable=False),
    Column("to_call", Boolean, nullable=False),
    Column("probability", Float, nullable=False),
)


class CallListRepository:
    """Call lists issued and who is on them."""

    def __init__(self, db: Database) -> None:
        self.db = db

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
            insert_rows(
                conn,
                call_list_members,
                [
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
                ],
            )
            return int(list_id)

        return self.db.transaction(work)

    def call_lists(self, cohort_id: int | None = None) -> pd.DataFrame:
        """Call lists issued (oldest first), optionally for one cohort."""
        return self.db.read(
            select(call_lists).where(*of_cohort(call_lists, cohort_id)).order_by(call_lists.c.id)
        )

    def call_list_members(self, call_list_id: int) -> pd.DataFrame:
        """Customers of a call list with their group, to-call flag and probability."""
        frame = self.db.read(
            select(
                call_list_members.c.customer_id,
                call_list_members.c.grp.label("group"),
                call_list_members.c.to_call.label("call"),
                call_list_members.c.probability,
            ).where(call_list_members.c.call_list_id == int(call_list_id)),
            flags=["call"],
        )
        return frame.rename(columns={"customer_id": ID_COLUMN})
