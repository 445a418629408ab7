"""The weekly job end to end: six weekly drops of the reference data replayed twice (nothing
duplicated), a run killed half-way and resumed (nothing done twice), the lock, the scheduler."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from delivery_support import webhook_receiver
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core.config import WeeklySettings
from termdeposit.data.dataset import make_cohort
from termdeposit.modeling import registry
from termdeposit.services import scheduler as scheduling
from termdeposit.services import weekly
from termdeposit.services.outcomes import outcomes_file, simulated_outcomes
from termdeposit.storage import deliveries, jobs, store

ROOT = Path(__file__).resolve().parents[2]
WEEKS = (38, 39, 40, 41, 42, 43)  # May-June 2009: 2,122 / 2,864 / 483 / 325 / 505 / 55 rows


def _counts(s: store.Store) -> dict[str, int]:
    """Rows of every table the weekly job writes to."""
    tables = [
        store.cohorts,
        store.cohort_customers,
        store.scorings,
        store.predictions,
        store.call_lists,
        store.call_list_members,
        store.outcome_uploads,
        store.outcomes,
        store.alerts,
        store.promotions,
        deliveries.alert_deliveries,
    ]

    def work(conn):
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
            for t in tables
        }

    counts = s.transaction(work)
    steps = s.job_repo.steps("weekly")
    counts["drop steps"] = int(
        steps["step"].isin(["read", "feedback", "ingest", "score", "call_list"]).sum()
    )
    counts["model versions"] = len(registry.list_versions())
    return counts


@pytest.fixture()
def weekly_env(tmp_path, models_copy, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", url)
    settings = WeeklySettings(
        drops=tmp_path / "drops",
        outbox=tmp_path / "outbox",
        retrain_every=4,
        retrain_profile="quick",
        retrain_families=("logreg",),
        recalibrate="platt",
        holdout=0.1,
    )
    settings.drops.mkdir()
    return settings, store.open_store(url)


def _cohort_file(reference, week: int) -> tuple[str, bytes]:
    frame = make_cohort(reference, week)
    return f"week{week:03d}_2009_cohort.csv", frame.to_csv(index=False).encode()


def _called(s: store.Store, week_label: str) -> pd.Series:
    """Whom the call centre called: everyone on the week's call list (read from the file)."""
    cohort = s.find_cohort(week_label)
    lists = s.call_lists(int(cohort["id"]))
    members = s.call_list_members(int(lists.iloc[-1]["id"]))
    return members.loc[members["call"], "customer_id"]


def test_six_weeks_replayed_twice_nothing_duplicated(weekly_env, reference, monkeypatch):
    settings, s = weekly_env
    files: list[tuple[str, bytes]] = []
    with webhook_receiver() as hook:
        monkeypatch.setenv("TERMDEPOSIT_ALERT_WEBHOOK", hook.url)
        reports = []
        for i, week in enumerate(WEEKS):
            name, data = _cohort_file(reference, week)
            files.append((name, data))
            (settings.drops / name).write_bytes(data)
            reports.append(weekly.run_weekly(settings, s))
            assert not reports[-1].failed, reports[-1].summary()
            label = reports[-1].steps[-1].subject  # the run's label
            week_label = s.cohorts().iloc[-1]["week_label"]
            assert week_label in label
            # the call centre calls the list; its results arrive with next week's drop
            called = _called(s, week_label)
            outcome_name = f"week{week:03d}_2009_outcomes.csv"
            outcome = outcomes_file(simulated_outcomes(called, reference))
            if i + 1 < len(WEEKS):
                files.append((outcome_name, outcome))
                (settings.drops / outcome_name).write_bytes(outcome)

        labels = s.cohorts()["week_label"].tolist()
        assert labels == [
            "2009-05 wk1",
            "2009-05 wk2",
            "2009-05 wk3",
            "2009-05 wk4",
            "2009-06 wk1",
            "2009-06 wk2",
        ], "weeks told from the rows' calendar and the year in the file name"
        for cohort in s.cohorts().itertuples():
            assert len(s.scoring_runs(cohort.id)) == 1
            lists = s.call_lists(cohort.id)
            assert len(lists) == 1 and lists.iloc[0]["ab_share"] == 0.1
            path = settings.outbox / f"call_list_{weekly.file_label(cohort.week_label)}.csv"
            listed = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
            members = s.call_list_members(int(lists.iloc[0]["id"]))
            assert len(listed) == members["call"].sum(), "the file holds whom to call"
            assert path.with_suffix(".xlsx").is_file()
        messages = [o.message for r in reports for o in r.steps if o.step == "call_list"]
        assert all(
            "drawn at random from the" in m and "-customer business-as-usual" in m
            for m in messages
        ), messages
        assert s.outcomes()["cohort_id"].nunique() == 5, "outcomes of the first five weeks"
        upkeep = [o for r in reports for o in r.steps if o.step == "upkeep" and o.status == "done"]
        actions = [o.details["action"] for o in upkeep]
        # no upkeep the first week (no outcomes yet); then recalibration on each week's
        # outcomes, and one retraining once four weeks were scored (the fifth run)
        assert actions == ["recalibrate"] * 3 + ["retrain", "recalibrate"], actions
        for report in reports:
            assert report.report_path is not None and report.report_path.is_file()
        assert "## Alerts" in reports[-1].report_path.read_text()
        sent = s.delivery_repo.deliveries()
        delivered_ids = set(sent["alert_id"])
        assert set(sent["status"]) <= {"sent"} and sent["alert_id"].is_unique
        posted = "\n".join(body["text"] for body in hook.bodies)
        for alert_id in delivered_ids:
            assert posted.count(f"(alert {alert_id})") == 1, "each alert delivered once"
        first_pass = _counts(s)
        posts = len(hook.bodies)

        # The same drops again, as if delivered a second time, one week at a time.
        for path in settings.drops.iterdir():
            path.unlink()
        for name, data in files:
            (settings.drops / name).write_bytes(data)
            again = weekly.run_weekly(settings, s)
            assert not again.failed, again.summary()
            done = [o for o in again.steps if o.status == "done"]
            assert {o.step for o in done} <= {"monitor", "deliver", "report"}, again.summary()
        assert _counts(s) == first_pass
        assert len(hook.bodies) == posts, "nothing delivered twice"
        last = weekly.run_weekly(settings, s)
        assert last.nothing_new and "Nothing new" in last.summary()


def _run_in_process(settings: WeeklySettings, env: dict[str, str]) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "termdeposit.apps.cli",
        "weekly",
        "--drops",
        str(settings.drops),
        "--outbox",
        str(settings.outbox),
    ]
    return subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_a_run_killed_half_way_resumes_without_doing_anything_twice(
    weekly_env, reference, monkeypatch
):
    settings, s = weekly_env
    name, data = _cohort_file(reference, 39)
    (settings.drops / name).write_bytes(data)
    (settings.drops / "notes.txt").write_text("not a file of the bank\n")  # raises an alert
    with webhook_receiver() as hook:
        hook.hold = 120  # the first delivery hangs: the run is stopped in its 'deliver' step
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TERMDEPOSIT_ALERT_WEBHOOK": hook.url,
            "TERMDEPOSIT_ALERT_ATTEMPTS": "1",
            "TERMDEPOSIT_RECALIBRATE": "none",
            "TERMDEPOSIT_RETRAIN_EVERY": "0",
        }
        process = _run_in_process(settings, env)
        try:
            assert hook.holding.wait(240), "the run reached the delivery"
            # meanwhile a second run is kept out, by the file lock and by the lock row
            with pytest.raises(jobs.JobBusyError, match="in progress on this machine"):
                weekly.run_weekly(settings, s)
            other_file = jobs.RunLock(s.db, "weekly", settings.outbox / "elsewhere.lock")
            with pytest.raises(jobs.JobBusyError, match=f"process {process.pid}"):
                other_file.acquire()
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
        steps = s.job_repo.steps("weekly").set_index("step")
        assert (
            steps.loc["score", "status"] == "done" and steps.loc["call_list", "status"] == "done"
        )
        assert steps.loc["monitor", "status"] == "done"
        assert steps.loc["deliver", "status"] == "started", "killed while delivering"
        assert "report" not in steps.index
        assert set(s.delivery_repo.deliveries()["status"]) == {"sending"}
        before = _counts(s)
        done = s.job_repo.steps("weekly").set_index(["step", "subject"])
        finished = done.loc[done["status"] == "done", "finished_at"]

        hook.hold = 0
        monkeypatch.setenv("TERMDEPOSIT_ALERT_WEBHOOK", hook.url)
        resumed = weekly.run_weekly(
            WeeklySettings(settings.drops, settings.outbox, retrain_every=0, recalibrate="none"), s
        )
        by_step = {(o.step, o.subject): o.status for o in resumed.steps}
        assert by_step[("score", name)] == by_step[("call_list", name)] == "skipped"
        assert by_step[("read", name)] == "skipped"
        assert by_step[("read", "notes.txt")] == "failed", "the bad file still fails (reported)"
        run_wide = {step: status for (step, _), status in by_step.items()}
        assert run_wide["monitor"] == "skipped"
        assert run_wide["deliver"] == "done" and run_wide["report"] == "done"
        after = s.job_repo.steps("weekly").set_index(["step", "subject"])
        pd.testing.assert_series_equal(after.loc[finished.index, "finished_at"], finished)
        counts = _counts(s)
        assert {k: counts[k] for k in before if k != "alert_deliveries"} == {
            k: before[k] for k in before if k != "alert_deliveries"
        }, "nothing scored, listed or recorded twice"
        sent = s.delivery_repo.deliveries()
        assert set(sent["status"]) == {"sent"} and sent["alert_id"].is_unique
        assert len(hook.bodies) == 2, "the interrupted message was sent again, once"
        assert "notes.txt" in hook.bodies[-1]["text"]
        assert resumed.report_path is not None and resumed.report_path.is_file()


def test_lock_on_the_database_and_stale_locks(db_url, tmp_path):
    s = store.open_store(db_url)
    first = jobs.RunLock(s.db, "weekly", tmp_path / "a.lock")
    second = jobs.RunLock(s.db, "weekly", tmp_path / "b.lock")  # another machine: another file
    first.acquire()
    try:
        with pytest.raises(jobs.JobBusyError, match="holds the lock in the database"):
            second.acquire()
        first.refresh()
    finally:
        first.release()
    second.acquire()
    second.release()
    if s.dialect == "postgresql":
        # a killed holder's session ends: PostgreSQL drops its advisory lock
        first = jobs.RunLock(s.db, "weekly", tmp_path / "a.lock")
        first.acquire()
        first._pg.invalidate()
        first._pg = None
        second.acquire()
        second.release()
        first._drop_file()
    else:
        # a lock row left by a process that is gone is taken over
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        stamp = store.now()
        s.transaction(
            lambda conn: conn.execute(
                jobs.job_locks.insert().values(
                    name="weekly",
                    holder="gone",
                    host=first.host,
                    pid=int(dead.stdout),
                    acquired_at=stamp,
                    expires_at=stamp + dt.timedelta(hours=2),
                )
            )
        )
        second.acquire()
        second.release()


def test_weekly_command_and_scheduler(weekly_env, reference, monkeypatch):
    settings, s = weekly_env
    monkeypatch.setenv("TERMDEPOSIT_DROPS", str(settings.drops))
    monkeypatch.setenv("TERMDEPOSIT_OUTBOX", str(settings.outbox))
    monkeypatch.setenv("TERMDEPOSIT_RECALIBRATE", "none")
    runner = CliRunner()
    empty = runner.invoke(app, ["weekly"])
    assert empty.exit_code == 0, empty.output
    (settings.drops / "week040_cohort.csv").write_bytes(_cohort_file(reference, 40)[1])
    refused = runner.invoke(app, ["weekly"])
    assert refused.exit_code == 1, refused.output
    assert "cannot be told from its rows" in refused.output and "--week-label" in refused.output
    assert s.cohorts().empty, "no week is made up from today's date"

    times = scheduling.next_runs("0 6 * * 1", "UTC", 2, dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert [t.isoformat() for t in times] == [
        "2026-12-07T06:00:00+00:00",
        "2026-12-14T06:00:00+00:00",
    ]
    with pytest.raises(Exception, match="is not a schedule"):
        scheduling.cron_trigger("every monday")
    # weekday numbers as standard cron means them (APScheduler's own start at Monday = 0)
    assert scheduling.weekdays_by_name("1-5") == "mon,tue,wed,thu,fri"
    assert (
        scheduling.weekdays_by_name("0,6") == scheduling.weekdays_by_name("sat,7") == ("sun,sat")
    )
    sundays = scheduling.next_runs("0 6 * * 0", "UTC", 1, dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert sundays[0].strftime("%a %d") == "Sun 06"
    checked = runner.invoke(app, ["scheduler", "--check", "--cron", "30 5 * * 2"])
    assert checked.exit_code == 0 and "next runs: Tue" in checked.output

    from apscheduler.schedulers.background import BackgroundScheduler

    ran = []
    scheduler = scheduling.build_scheduler(
        lambda: ran.append(1), "0 6 * * 1", "UTC", BackgroundScheduler
    )
    job = scheduler.get_job(scheduling.JOB_ID)
    assert job.max_instances == 1 and job.coalesce
    scheduler.start()
    try:
        job.modify(next_run_time=dt.datetime.now(dt.UTC))
        deadline = time.time() + 20
        while not ran and time.time() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.shutdown()
    assert ran == [1], "the scheduler ran the job"
