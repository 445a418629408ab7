"""Schema migrations (Alembic) on SQLite and on a real PostgreSQL server.

An old database is built from the DDL the product ran before migrations
(``tests/fixtures/storage/pre_alembic.*.sql``, captured from that code), filled with rows as
that product wrote them, and opened by today's product: every row must survive and the schema
must then equal the tables the code declares. New databases opened by several processes at
once are migrated once. PostgreSQL tests carry the ``postgres`` marker (see test_store.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from store_support import sha

from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import CATEGORICAL_COLUMNS, ID_COLUMN, INPUT_COLUMNS
from termdeposit.storage import migrations, store
from termdeposit.storage.database import Database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "storage"
CHILD = Path(__file__).resolve().with_name("migration_child.py")
STAMP = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
#: Seconds a child process may take (imports, waiting for another's migration).
CHILD_TIMEOUT = 180


# -- an old database, as the product before migrations made and filled it -------------------


def old_statements(dialect: str, version: int) -> list[str]:
    """The DDL the product before migrations ran to make schema ``version`` (1 or 2)."""
    text = (FIXTURES / f"pre_alembic.{dialect}.sql").read_text()
    first, second = text.split("-- version 2\n")
    chosen = first if version == 1 else first + second
    code = "\n".join(line for line in chosen.splitlines() if not line.startswith("--"))
    return [statement.strip() for statement in code.split(";") if statement.strip()]


def _inputs(age: float) -> str:
    return json.dumps(
        ["unknown" if c in CATEGORICAL_COLUMNS else age for c in INPUT_COLUMNS],
        separators=(",", ":"),
    )


def make_old_database(url: str, version: int) -> None:
    """An old database of schema ``version`` holding a week's records in every table."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in old_statements(conn.dialect.name, version):
            conn.exec_driver_sql(statement)
        for number in range(1, version + 1):
            conn.execute(store.schema_info.insert().values(version=number, upgraded_at=STAMP))
        ab_test = {"ab_share": 0.5, "ab_seed": 7} if version == 2 else {}
        rows: list[tuple[sa.Table, list[dict]]] = [
            (store.cohorts, [dict(id=1, file_sha256=sha("old"), name="old.csv",
                                  week_label="2026-W01", rows=2, uploaded_at=STAMP,
                                  source="cli", user="ops")]),
            (store.cohort_customers, [
                dict(cohort_id=1, customer_id="c1", row_number=0, inputs=_inputs(41.0)),
                dict(cohort_id=1, customer_id="c2", row_number=1, inputs=_inputs(29.0)),
            ]),
            (store.scorings, [dict(id=1, cohort_id=1, model_version="v1",
                                   rule="threshold 0.500000", threshold=0.5, top_n=None,
                                   calls=1, source="cli", user="ops", scored_at=STAMP)]),
            (store.predictions, [
                dict(scoring_id=1, customer_id="c1", probability=0.9, decision=True, rank=1),
                dict(scoring_id=1, customer_id="c2", probability=0.1, decision=False, rank=2),
            ]),
            (store.call_lists, [dict(id=1, cohort_id=1, model_version="v1", threshold=0.5,
                                     call_cost=5.0, subscription_value=100.0, capacity=None,
                                     rows=1, created_at=STAMP, user="ops",
                                     **ab_test)]),
            (store.outcome_uploads, [dict(id=1, file_sha256=sha("outcomes"), name="out.csv",
                                          rows=2, added=2, unchanged=0, uploaded_at=STAMP,
                                          user="ops")]),
            (store.outcomes, [
                dict(cohort_id=1, customer_id="c1", called=True, subscribed=True, upload_id=1,
                     recorded_at=STAMP),
                dict(cohort_id=1, customer_id="c2", called=False, subscribed=False,
                     upload_id=1, recorded_at=STAMP),
            ]),
            (store.alerts, [dict(id=1, rule="input_drift", scope="cohort:1", subject="age",
                                 severity="warning", message="age drifted", value=0.3,
                                 limit_value=0.25, raised_at=STAMP, last_seen_at=STAMP)]),
            (store.promotions, [dict(id=1, at=STAMP, action="promote", version="v1",
                                     previous=None, user="ana", reason="first")]),
            (store.settings_table, [dict(key="alert_limits", value='{"auc_min": 0.7}',
                                         updated_at=STAMP, user="ops")]),
        ]  # fmt: skip
        if version == 2:
            rows.append((store.call_list_members, [
                dict(call_list_id=1, customer_id="c1", grp="model", to_call=True,
                     probability=0.9),
                dict(call_list_id=1, customer_id="c2", grp="holdout", to_call=False,
                     probability=0.1),
            ]))  # fmt: skip
        for table, values in rows:
            conn.execute(table.insert(), values)
        if conn.dialect.name == "postgresql":  # ids were given: move the sequences past them
            for table, _ in rows:
                if "id" in table.c:
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"(SELECT max(id) FROM {table.name}))"
                    )
    engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table of the database (its columns as they are), sorted."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        names = [n for n in sa.inspect(conn).get_table_names() if n != "alembic_version"]
        tables = {n: sa.Table(n, sa.MetaData(), autoload_with=conn) for n in names}
        rows = {
            name: sorted(tuple(map(str, row)) for row in conn.execute(sa.select(table)))
            for name, table in tables.items()
        }
    engine.dispose()
    return rows


def schema_differences(url: str) -> list:
    """What differs between the database's schema and the tables the code declares."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, store.metadata)
    engine.dispose()
    return differences


def versions(s: store.Store) -> list[int]:
    return sorted(s.read(sa.select(store.schema_info.c.version))["version"])


# -- old databases are adopted ---------------------------------------------------------------


@pytest.mark.parametrize("old_version", [1, 2])
def test_database_made_before_migrations_is_adopted_without_losing_a_row(db_url, old_version):
    make_old_database(db_url, old_version)
    before = snapshot(db_url)

    s = store.Store(db_url).check()

    assert s.schema_revision() == migrations.head()
    after = snapshot(db_url)
    for name, rows in before.items():
        if name == "schema_info":
            continue
        width = len(rows[0]) if rows else 0
        assert [row[:width] for row in after[name]] == rows, name  # old columns unchanged
    # Products from before migrations read version 3 and refuse the database from now on.
    assert versions(s) == [1, 2, 3]
    assert schema_differences(db_url) == []
    lists = s.call_lists()
    if old_version == 1:
        assert lists.iloc[0]["ab_share"] == 0 and lists["ab_seed"].isna().all()
        assert s.call_list_members(1).empty
    else:
        assert lists.iloc[0]["ab_share"] == 0.5 and lists.iloc[0]["ab_seed"] == 7
        assert list(s.call_list_members(1)["group"]) == ["model", "holdout"]

    # The old records read and the store writes as usual.
    assert s.find_cohort("old.csv")["rows"] == 2
    assert list(s.predictions(1)["customer_id"]) == ["c1", "c2"]
    assert list(s.cohort_inputs(1)["age"]) == [41.0, 29.0]
    assert list(s.training_rows()[ID_COLUMN]) == ["c1"]
    assert s.get_setting("alert_limits") == {"auc_min": 0.7}
    assert s.alerts().iloc[0]["raised_at"] == STAMP
    new_list = s.record_call_list(
        cohort_id=1,
        model_version="v2",
        members=s.predictions(1).assign(group="model", call=[True, False]),
        threshold=0.5,
        call_cost=5,
        subscription_value=100,
        ab_share=0.2,
        ab_seed=3,
    )
    assert new_list == 2 and len(s.call_list_members(new_list)) == 2
    reopened = store.Store(db_url).check()  # a second open changes nothing
    assert reopened.schema_revision() == migrations.head() and versions(reopened) == [1, 2, 3]


def test_new_database_gets_exactly_the_declared_tables(db_url):
    s = store.Store(db_url).check()
    assert s.schema_revision() == migrations.head()
    assert versions(s) == [3]
    assert schema_differences(db_url) == []
    assert set(snapshot(db_url)) == set(store.metadata.tables)


def test_revisions_form_one_line_from_the_baseline_down_and_up(db_url):
    script = migrations._script()
    assert len(script.get_heads()) == 1
    assert script.get_base() == migrations.BASELINE
    # alembic_version holds at most 32 characters.
    assert all(len(revision.revision) <= 32 for revision in script.walk_revisions())
    store.Store(db_url).check()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "base")
    assert set(snapshot(db_url)) == set()
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "head")
        assert migrations.current_revision(conn) == migrations.head()
    engine.dispose()
    assert schema_differences(db_url) == []


def test_database_of_a_newer_product_is_refused_and_left_alone(db_url):
    store.Store(db_url).check()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0999_from_the_future'")
    with pytest.raises(TermDepositError, match="newer than this product understands") as caught:
        store.Store(db_url).check()
    assert "0999_from_the_future" in str(caught.value)
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == "0999_from_the_future"
    engine.dispose()


def test_unrecognised_old_database_is_refused_and_left_alone(db_url):
    make_old_database(db_url, 2)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(store.schema_info.insert().values(version=99, upgraded_at=STAMP))
    engine.dispose()
    before = snapshot(db_url)
    with pytest.raises(TermDepositError, match="records no revision"):
        store.Store(db_url).check()
    assert snapshot(db_url) == before


def test_sqlite_table_rebuild_keeps_the_rows_that_refer_to_it(tmp_path):
    """A revision rebuilding a parent table (SQLite's way to alter it) must not cascade-delete
    its children: migrations run with foreign keys off, checked before the commit."""
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    make_old_database(url, 2)
    store.Store(url).check()
    before = snapshot(url)
    location = tmp_path / "migrations"
    shutil.copytree(migrations.LOCATION, location, ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "0900_rebuild_cohorts.py").write_text(
        f'"""Rebuild cohorts with a note column."""\n'
        f"import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = '0900_rebuild_cohorts'\ndown_revision = {migrations.head()!r}\n"
        f"branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade():\n"
        f"    with op.batch_alter_table('cohorts', recreate='always') as batch:\n"
        f"        batch.add_column(sa.Column('note', sa.Text()))\n"
    )

    db = Database(url, upgrade=lambda conn: migrations.upgrade(conn, location))
    db.check()

    after = snapshot(url)
    assert {n: r for n, r in after.items() if n != "cohorts"} == {
        n: r for n, r in before.items() if n != "cohorts"
    }
    assert [row[:-1] for row in after["cohorts"]] == before["cohorts"]
    assert db.read(sa.text("PRAGMA foreign_keys")).iloc[0, 0] == 1  # on again afterwards


# -- new databases opened by several processes at once ---------------------------------------


@pytest.fixture()
def open_children():
    """Start child processes opening the store (migration_child.py); kill leftovers."""
    started: list[subprocess.Popen] = []

    def start(url: str, name: str, mode: str) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), url, name, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        started.append(child)
        return child

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=30)


def _read_until(child: subprocess.Popen, word: str) -> None:
    for line in child.stdout:
        if line.strip() == word:
            return
    _, err = child.communicate(timeout=30)
    pytest.fail(f"the child ended before saying {word}:\n{err[-3000:]}")


def _finish(child: subprocess.Popen) -> None:
    child.stdin.write("go\n")
    child.stdin.flush()
    out, err = child.communicate(timeout=CHILD_TIMEOUT)
    assert child.returncode == 0 and "DONE" in out, err[-3000:]


def _migrated_once(url: str, names: list[str]) -> None:
    s = store.Store(url).check()
    assert s.schema_revision() == migrations.head()
    assert len(s.read(sa.text("SELECT version_num FROM alembic_version"))) == 1
    assert versions(s) == [3], "the schema was migrated once"
    assert {s.get_setting(f"opened by {name}") for name in names} == set(names)
    assert schema_differences(url) == []


def test_second_process_waits_for_the_first_ones_migration(db_url, open_children):
    first = open_children(db_url, "first", "pause")
    _read_until(first, "PAUSED")  # tables created, not committed
    second = open_children(db_url, "second", "wait")
    _read_until(second, "READY")
    second.stdin.write("go\n")
    second.stdin.flush()
    _read_until(second, "OPENING")
    with pytest.raises(subprocess.TimeoutExpired):
        second.wait(timeout=3)  # it waits for the first one's transaction

    _finish(first)
    out, err = second.communicate(timeout=CHILD_TIMEOUT)
    assert second.returncode == 0 and "DONE" in out, err[-3000:]
    _migrated_once(db_url, ["first", "second"])


def test_processes_opening_a_new_database_at_once_migrate_it_once(db_url, open_children):
    names = ["a", "b", "c"]
    children = [open_children(db_url, name, "wait") for name in names]
    for child in children:
        _read_until(child, "READY")
    for child in children:  # all at once
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, err = child.communicate(timeout=CHILD_TIMEOUT)
        assert child.returncode == 0 and "DONE" in out, err[-3000:]
    _migrated_once(db_url, names)
