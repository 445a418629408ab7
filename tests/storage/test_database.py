"""The database layer under the store: SQLite set-up that concurrent processes can share."""

from __future__ import annotations

import sqlite3

import pytest

from termdeposit.storage import database


class _Cursor:
    """A cursor whose first ``failures`` statements fail with ``message``."""

    def __init__(self, failures: int, message: str) -> None:
        self.failures = failures
        self.message = message
        self.executed: list[str] = []

    def execute(self, statement: str) -> None:
        self.executed.append(statement)
        if len(self.executed) <= self.failures:
            raise sqlite3.OperationalError(self.message)


def test_wal_switch_waits_for_a_process_creating_the_same_file(monkeypatch):
    """Processes creating one new file at once: SQLite refuses the WAL switch of all but one
    at once ("database is locked", no busy wait); the others retry instead of failing."""
    monkeypatch.setattr(database.time, "sleep", lambda seconds: None)
    cursor = _Cursor(failures=3, message="database is locked")
    database._switch_to_wal(cursor)
    assert cursor.executed == ["PRAGMA journal_mode=WAL"] * 4

    broken = _Cursor(failures=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        database._switch_to_wal(broken)
    assert len(broken.executed) == 1


def test_new_sqlite_file_is_in_wal_mode(tmp_path):
    engine = database.make_engine(f"sqlite:///{tmp_path / 'sub' / 'ops.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
