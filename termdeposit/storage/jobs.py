"""Scheduled jobs: which step of which run is done, and the lock that keeps two runs apart.

A step is recorded by what it worked on (``subject``: a drop's sha256, or a run's key): a run
stopped half-way finds the steps already done and does not do them again. The lock is taken
twice: a file lock (``flock``) keeps two runs apart on one machine, and a lock in the database
keeps them apart across machines sharing a store (a PostgreSQL advisory lock held by the run's
own connection; on SQLite a lock row naming its holder). Both vanish with a killed process:
the kernel drops the file lock and PostgreSQL the advisory lock; a SQLite lock row whose
process is gone (same machine) or whose lease ran out is taken over.

The tables (``job_steps``: job, step, subject, status, attempts, start, end, details;
``job_locks``: name, holder, host, process, since, lease end) are created by migration
``0003_weekly_job``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pandas as pd
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from termdeposit.core.errors import TermDepositError
from termdeposit.storage.database import Database, now
from termdeposit.storage.database import metadata as _metadata
from termdeposit.storage.database import utc as as_utc

job_steps = Table(
    "job_steps",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(32), nullable=False),
    Column("step", String(32), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("label", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("details", Text),
    UniqueConstraint("job", "step", "subject", name="uq_job_step"),
)

job_locks = Table(
    "job_locks",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

STARTED = "started"
DONE = "done"
FAILED = "failed"


class JobBusyError(TermDepositError):
    """Another run of the same job holds the lock."""


@dataclass(frozen=True)
class StepRecord:
    """Where one step of a job stands."""

    job: str
    step: str
    subject: str
    label: str
    status: str
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """True once the step has completed."""
        return self.status == DONE


def _where(job: str, step: str, subject: str) -> Any:
    return and_(job_steps.c.job == job, job_steps.c.step == step, job_steps.c.subject == subject)


def _record(row: pd.Series) -> StepRecord:
    return StepRecord(
        job=str(row["job"]),
        step=str(row["step"]),
        subject=str(row["subject"]),
        label=str(row["label"]),
        status=str(row["status"]),
        attempts=int(row["attempts"]),
        started_at=as_utc(row["started_at"]),
        finished_at=as_utc(row["finished_at"]),
        details=json.loads(row["details"]) if isinstance(row["details"], str) else {},
    )


class JobRepository:
    """The steps of scheduled jobs: started, done or failed, with what they did."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def step_record(self, job: str, step: str, subject: str) -> StepRecord | None:
        """The record of a step, or None if it never started."""
        frame = self.db.read(select(job_steps).where(_where(job, step, subject)))
        return None if frame.empty else _record(frame.iloc[0])

    def start_step(self, job: str, step: str, subject: str, label: str) -> None:
        """Record that a step starts (again): status ``started``, one more attempt."""
        insert = (postgresql if self.db.dialect == "postgresql" else sqlite).insert
        stamp = now()

        def work(conn: Connection) -> None:
            statement = insert(job_steps).values(
                job=job,
                step=step,
                subject=subject,
                label=label[:255],
                status=STARTED,
                attempts=1,
                started_at=stamp,
                finished_at=None,
                details=None,
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["job", "step", "subject"],
                    set_={
                        "status": STARTED,
                        "attempts": job_steps.c.attempts + 1,
                        "started_at": stamp,
                        "finished_at": None,
                    },
                )
            )

        self.db.transaction(work)

    def finish_step(
        self,
        job: str,
        step: str,
        subject: str,
        details: dict[str, Any] | None = None,
        status: str = DONE,
    ) -> None:
        """Record that a step is done (or failed), with what it did."""
        payload = json.dumps(details or {}, default=str)
        self.db.transaction(
            lambda conn: conn.execute(
                job_steps.update()
                .where(_where(job, step, subject))
                .values(status=status, finished_at=now(), details=payload)
            )
        )

    def steps(self, job: str | None = None) -> pd.DataFrame:
        """Every recorded step (of one job), in the order they first started."""
        query = select(job_steps).order_by(job_steps.c.id)
        if job is not None:
            query = query.where(job_steps.c.job == job)
        frame = self.db.read(query)
        for column in ("started_at", "finished_at"):
            if len(frame):
                frame[column] = frame[column].map(as_utc)
        return frame


# -- the lock -----------------------------------------------------------------------------------


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Keeps two runs of a job apart: a file lock on this machine and a lock in the store.

    Use as a context manager; :meth:`refresh` between steps extends the SQLite lease.

    Raises:
        JobBusyError: another run holds the lock (who and since when is in the message).
    """

    def __init__(
        self,
        db: Database,
        name: str,
        lock_file: Path,
        lease: dt.timedelta = dt.timedelta(hours=2),
    ) -> None:
        self.db = db
        self.name = name
        self.lock_file = Path(lock_file)
        self.lease = lease
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.holder = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._file: IO[str] | None = None
        self._pg: Connection | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the file lock, then the database lock; release the first if the second fails."""
        self._take_file()
        try:
            self._take_database()
        except BaseException:
            self._drop_file()
            raise

    def _take_file(self) -> None:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_file, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            who = handle.read().strip() or "another process"
            handle.close()
            raise JobBusyError(
                f"Another {self.name} run is in progress on this machine ({who}).",
                hint="Wait for it to finish; nothing was done by this run.",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {self.pid} since {now():%Y-%m-%d %H:%M} UTC\n")
        handle.flush()
        self._file = handle

    def _drop_file(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def _take_database(self) -> None:
        if self.db.dialect == "postgresql":
            conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(hashtext(current_schema() || :name))"),
                {"name": f":job:{self.name}"},
            ).scalar()
            if not got:
                conn.close()
                raise self._busy(self._lock_row())
            self._pg = conn
        stamp = now()
        row = {
            "name": self.name,
            "holder": self.holder,
            "host": self.host,
            "pid": self.pid,
            "acquired_at": stamp,
            "expires_at": stamp + self.lease,
        }

        def work(conn: Connection) -> dict[str, Any] | None:
            current = conn.execute(select(job_locks).where(job_locks.c.name == self.name))
            found = current.mappings().first()
            postgres = self.db.dialect == "postgresql"
            if found is not None and not postgres and not self._stale(dict(found), stamp):
                return dict(found)
            conn.execute(job_locks.delete().where(job_locks.c.name == self.name))
            conn.execute(job_locks.insert().values(**row))
            return None

        try:
            holder = self.db.transaction(work)
        except BaseException:
            self._drop_database()
            raise
        if holder is not None:
            raise self._busy(holder)

    def _stale(self, row: dict[str, Any], stamp: dt.datetime) -> bool:
        expires = as_utc(row["expires_at"])
        if expires is not None and expires < stamp:
            return True
        return row["host"] == self.host and not _process_alive(int(row["pid"]))

    def _lock_row(self) -> dict[str, Any] | None:
        frame = self.db.read(select(job_locks).where(job_locks.c.name == self.name))
        return None if frame.empty else frame.iloc[0].to_dict()

    def _busy(self, row: dict[str, Any] | None) -> JobBusyError:
        who = "another process"
        if row:
            since = as_utc(row["acquired_at"])
            when = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
            who = f"process {row['pid']} on {row['host']}{when}"
        return JobBusyError(
            f"Another {self.name} run holds the lock in the database ({who}).",
            hint="Wait for it to finish; nothing was done by this run.",
        )

    def refresh(self) -> None:
        """Extend the lease (call between steps); fail if another run took the lock over."""
        stamp = now()
        result = self.db.transaction(
            lambda conn: (
                conn.execute(
                    job_locks.update()
                    .where(job_locks.c.name == self.name, job_locks.c.holder == self.holder)
                    .values(expires_at=stamp + self.lease)
                ).rowcount
            )
        )
        if result == 0:
            raise JobBusyError(
                f"This {self.name} run lost its lock (its lease ran out and another run took "
                "it over).",
                hint="Run it again once the other run has finished; steps already done are kept.",
            )

    def _drop_database(self) -> None:
        if self._pg is not None:
            try:
                self._pg.execute(
                    text("SELECT pg_advisory_unlock(hashtext(current_schema() || :name))"),
                    {"name": f":job:{self.name}"},
                )
            finally:
                self._pg.close()
                self._pg = None

    def release(self) -> None:
        """Give the lock back (the row, the advisory lock, the file lock)."""
        try:
            self.db.transaction(
                lambda conn: conn.execute(
                    job_locks.delete().where(
                        job_locks.c.name == self.name, job_locks.c.holder == self.holder
                    )
                )
            )
        finally:
            self._drop_database()
            self._drop_file()
