"""A week's work in one command: ``termdeposit weekly`` (and the scheduler that runs it).

The bank's files for the week arrive in a drops folder or ``s3://`` prefix
(``TERMDEPOSIT_DROPS``). Each file is one *drop*, known by its content (sha256), and taken for
what it holds:

- an **outcomes** file (``customer_id``, ``called``, ``subscribed``): the results of earlier
  calls, recorded as the feedback loop does (``termdeposit feedback``);
- a **labelled drop** (the 19 inputs and ``y``): contacted customers with their outcome, for
  the next retraining (``termdeposit ingest``);
- a **cohort** (the 19 inputs, no ``y``): this week's customers, scored with the production
  model, logged, and turned into a call list (with the business-as-usual hold-out when
  ``TERMDEPOSIT_HOLDOUT`` is set) written to the outbox (``TERMDEPOSIT_OUTBOX``).

A run takes these steps, in this order: record outcomes and labelled drops; keep the model
current (retrain every ``TERMDEPOSIT_RETRAIN_EVERY`` weeks, otherwise recalibrate on the new
outcomes); score the new cohorts and issue their call lists; monitor; deliver new alerts
(webhook, e-mail); write a short report to the outbox. A week without a cohort still records
outcomes, monitors and delivers.

**Idempotent and resumable.** Every step is recorded in the store once done, keyed by the
drop it worked on (its sha256) or, for the run-wide steps, by the set of drops seen (so a new
file makes a new run, and the same files again make nothing). A run killed half-way leaves
the steps it finished recorded; the next run skips them and does the rest. Steps whose work
commits before it is recorded check first that it is not already there (the call list of a
cohort, a model decision made since the step started). Two runs are kept apart by a lock: a
file lock on the machine and a lock in the database (see :class:`~termdeposit.storage.jobs.
RunLock`); the second one stops at once and says who holds the lock.

Size: One use case, its steps in the order a run takes them, each step's bookkeeping beside it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from termdeposit.core.config import WeeklySettings, default_settings, weekly_settings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.core.schema import INPUT_COLUMNS
from termdeposit.data import drops as drops_store
from termdeposit.data import exports
from termdeposit.data.cohort_file import load_cohort, read_table
from termdeposit.modeling import registry
from termdeposit.modeling.predict import decisions, score_frame
from termdeposit.ops import alerting, monitoring
from termdeposit.ops.retrain import ingest, recalibrate, retrain, week_label_for
from termdeposit.services import call_lists
from termdeposit.services.outcomes import record_feedback
from termdeposit.storage import jobs
from termdeposit.storage.store import Store, open_store

log = get_logger("weekly")

JOB = "weekly"
#: Recorded as the user of what the weekly job writes (call lists, outcomes, promotions).
WEEKLY_USER = "weekly job"
OUTCOMES, LABELLED, COHORT = "outcomes", "labelled drop", "cohort"
ProgressFn = Callable[[str], None]


# -- drops --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drop:
    """One file of the drops folder: its name, its content's sha256, and how to read it."""

    name: str
    sha256: str
    read: Callable[[], bytes] = field(repr=False, compare=False)


def list_drops(source: str | Path) -> list[Drop]:
    """The drops waiting in a folder or an ``s3://`` prefix, in name order, with their sha256.

    Files still being copied should arrive under a hidden name (``.name``) or another ending
    (``.part``) and be renamed when complete: only .csv, .txt, .tsv and .xlsx files count.

    Raises:
        TermDepositError: the folder or prefix does not exist or cannot be read.
    """
    found = []
    for drop in drops_store.list_drops(source):
        digest = hashlib.sha256(drops_store.read_drop(drop)).hexdigest()
        found.append(Drop(drop.name, digest, functools.partial(drops_store.read_drop, drop)))
    return found


def _key(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).strip().lower())


def kind_of(data: bytes, name: str) -> str:
    """What a drop holds: a cohort, a labelled drop (inputs and ``y``) or outcomes.

    Raises:
        TermDepositError: none of the three (the columns found are listed).
    """
    columns = {_key(c) for c in read_table(data, name).columns}
    inputs = sum(_key(c) in columns for c in INPUT_COLUMNS)
    if inputs >= len(INPUT_COLUMNS) // 2:
        return LABELLED if "y" in columns else COHORT
    if "called" in columns or "contacted" in columns:
        return OUTCOMES
    shown = ", ".join(sorted(columns)[:10])
    raise TermDepositError(
        f"'{name}' is neither a cohort, a labelled drop nor an outcomes file (columns: {shown}).",
        hint="A cohort has the 19 customer inputs; a labelled drop also y; an outcomes file "
        "customer_id, called and subscribed. Remove or fix the file.",
    )


def run_key(drops: list[Drop]) -> str:
    """The key of a run: the set of drops it sees (same files, same run)."""
    digest = hashlib.sha256()
    for sha in sorted(d.sha256 for d in drops):
        digest.update(sha.encode())
    return digest.hexdigest()[:40]


def file_label(label: str) -> str:
    """A week label as part of a file name (``2009-05 wk2`` -> ``2009-05_wk2``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "week"


# -- the run ------------------------------------------------------------------------------------


@dataclass
class StepOutcome:
    """What one step did in this run: ``done``, ``skipped`` (already done before) or ``failed``."""

    step: str
    subject: str
    status: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class WeeklyReport:
    """What a weekly run did, step by step, and where its report is."""

    run_key: str
    label: str
    steps: list[StepOutcome]
    report_path: Path | None = None
    nothing_new: bool = False

    @property
    def failed(self) -> list[StepOutcome]:
        """Steps that failed (drops refused, deliveries that did not go out)."""
        return [s for s in self.steps if s.status == "failed"]

    def summary(self) -> str:
        """A few lines for the user."""
        if self.nothing_new:
            return f"Nothing new since the last run ({self.label}): every step was already done."
        lines = [f"Weekly run {self.label}:"]
        for step in self.steps:
            mark = {"done": "done", "skipped": "already done", "failed": "FAILED"}[step.status]
            lines.append(f"  {step.step:<10} {step.subject:<34} {mark}: {step.message}")
        if self.report_path is not None:
            lines.append(f"Report: {self.report_path}")
        return "\n".join(lines)


class WeeklyRun:
    """One run of the weekly job (use :func:`run_weekly`)."""

    def __init__(
        self,
        store: Store,
        settings: WeeklySettings,
        lock: jobs.RunLock,
        progress: ProgressFn | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.lock = lock
        self.progress = progress or (lambda message: None)
        self.sleep = sleep
        self.outcomes: list[StepOutcome] = []

    # -- step bookkeeping -------------------------------------------------------------------

    def step(
        self,
        step: str,
        subject: str,
        label: str,
        work: Callable[[dt.datetime | None], dict[str, Any]],
    ) -> StepOutcome:
        """Run ``work`` unless the step is done; record its start, end or failure.

        ``work`` gets the start of an earlier attempt that was interrupted (no end recorded),
        or None: a step whose work commits before its end is recorded looks for its traces.
        """
        record = self.store.job_repo.step_record(JOB, step, subject)
        if record is not None and record.done:
            outcome = StepOutcome(
                step, label, "skipped", record.details.get("message", ""), record.details
            )
            self.outcomes.append(outcome)
            return outcome
        interrupted = (
            record.started_at if record is not None and record.status == jobs.STARTED else None
        )
        self.lock.refresh()
        self.progress(f"{step}: {label}")
        self.store.job_repo.start_step(JOB, step, subject, label)
        try:
            details = work(interrupted)
        except TermDepositError as exc:
            message = exc.message + (f" {exc.hint}" if exc.hint else "")
            self.store.job_repo.finish_step(
                JOB, step, subject, {"message": message}, status=jobs.FAILED
            )
            log.error("weekly step %s of %s failed: %s", step, label, exc.message)
            self.store.record_alerts([_failure_alert(step, subject, label, message)])
            outcome = StepOutcome(step, label, "failed", message)
            self.outcomes.append(outcome)
            return outcome
        self.store.job_repo.finish_step(JOB, step, subject, details)
        if record is not None and record.status == jobs.FAILED:
            _clear_failure(self.store, step, subject)
        outcome = StepOutcome(step, label, "done", details.get("message", ""), details)
        self.outcomes.append(outcome)
        return outcome

    # -- drops ------------------------------------------------------------------------------

    def record_outcomes(self, drop: Drop) -> StepOutcome:
        """Outcomes of earlier calls (all or nothing; the same rows again change nothing)."""

        def work(_: dt.datetime | None) -> dict[str, Any]:
            result = record_feedback(drop.read(), drop.name, store=self.store, user=WEEKLY_USER)
            return {
                "message": " ".join([result.summary(), *result.notices]),
                "added": result.added,
                "cohorts": result.cohorts,
            }

        return self.step("feedback", drop.sha256, drop.name, work)

    def ingest_drop(self, drop: Drop) -> StepOutcome:
        """A labelled drop: training rows for the next retraining."""

        def work(_: dt.datetime | None) -> dict[str, Any]:
            result = ingest(drop.read(), drop.name, store=self.store, user=WEEKLY_USER)
            return {
                "message": f"{result.rows} rows ({result.subscribers} subscribed) as cohort "
                f"{result.cohort_id}, week {result.week_label} ({result.label_source})",
                "cohort_id": result.cohort_id,
                "added": result.added,
                "week_label": result.week_label,
            }

        return self.step("ingest", drop.sha256, drop.name, work)

    def score_cohort(self, drop: Drop) -> StepOutcome:
        """Score a cohort with the production model and log it (the same file is one cohort)."""

        def work(_: dt.datetime | None) -> dict[str, Any]:
            data = drop.read()
            cohort = load_cohort(data, drop.name)
            label, source = week_label_for(self.store, cohort.frame, drop.name, drop.sha256, None)
            model = registry.load_model()
            scored = score_frame(model, cohort.frame)
            logged = self.store.log_scoring(
                scored,
                file_sha256=drop.sha256,
                model_version=model.version,
                threshold=model.threshold,
                name=drop.name,
                week_label=label,
                source="weekly",
                user=WEEKLY_USER,
            )
            calls = int(np.asarray(decisions(scored["probability"], model.threshold)).sum())
            return {
                "message": f"{logged.rows:,} customers of week {label} ({source}) scored with "
                f"{model.version}: {calls:,} above the threshold {model.threshold:.3f}",
                "cohort_id": logged.cohort_id,
                "week_label": label,
                "model_version": model.version,
            }

        return self.step("score", drop.sha256, drop.name, work)

    def call_list(self, drop: Drop, cohort_id: int, week_label: str) -> StepOutcome:
        """Issue the cohort's call list and write it to the outbox."""

        def work(_: dt.datetime | None) -> dict[str, Any]:
            path = self.settings.outbox / f"call_list_{file_label(week_label)}.csv"
            list_id, counts = issue_call_list(
                self.store, cohort_id, drop.sha256, self.settings.holdout, path
            )
            return {
                "message": f"call list {list_id}: {counts}; written to {path}",
                "call_list_id": list_id,
                "path": str(path),
            }

        return self.step("call_list", drop.sha256, drop.name, work)

    # -- the run-wide steps -----------------------------------------------------------------

    def keep_model_current(self, key: str, label: str, new_outcomes: bool) -> StepOutcome:
        """Retrain when it is due, otherwise recalibrate on new outcomes (or do nothing)."""

        def work(interrupted: dt.datetime | None) -> dict[str, Any]:
            due = retrain_due(self.store, self.settings.retrain_every)
            decided = _decision_since(self.store, interrupted)
            if decided is not None:
                return {
                    "message": "a model decision was recorded before the run was interrupted: "
                    f"{decided['action']} {decided['version']} ({decided['reason']})",
                    "action": "retrain" if due else "recalibrate",
                }
            if due:
                decision = retrain(
                    self.settings.retrain_profile,
                    self.settings.retrain_families or None,
                    store=self.store,
                )
                return {"message": decision.summary().replace("\n", " "), "action": "retrain"}
            if not new_outcomes or self.settings.recalibrate == "none":
                why = "no new outcomes" if not new_outcomes else "recalibration is off"
                return {"message": f"nothing to do ({why}; retraining not due)", "action": "none"}
            try:
                result = recalibrate(
                    self.settings.recalibrate,
                    self.settings.recalibration_rows,
                    store=self.store,
                )
            except TermDepositError as exc:
                return {"message": f"no recalibration: {exc.message}", "action": "none"}
            verdict = "promoted" if result.promoted else "not promoted"
            return {"message": f"{result.message}; {verdict}", "action": "recalibrate"}

        return self.step("upkeep", key, label, work)

    def monitor(self, key: str, label: str) -> StepOutcome:
        """Run every monitoring rule over the whole history; store the alerts."""

        def work(_: dt.datetime | None) -> dict[str, Any]:
            result = monitoring.run_monitor(self.store)
            active = result.active
            return {
                "message": f"{len(active)} active alerts, "
                f"{len(result.information)} findings for information",
                "active": [f"[{a.severity}] {a.message}" for a in active.itertuples()],
                "information": [a.message for a in result.information.itertuples()],
                "weeks": len(result.weekly),
            }

        return self.step("monitor", key, label, work)

    def deliver(self, key: str, label: str) -> StepOutcome:
        """Send the new alerts by webhook and e-mail (each delivery recorded)."""

        def work(_: dt.datetime | None) -> dict[str, Any]:
            lines = [f"Weekly run {label}."]
            if self.sleep is None:
                report = alerting.deliver_alerts(self.store, lines=lines)
            else:
                report = alerting.deliver_alerts(self.store, lines=lines, sleep=self.sleep)
            if report.failed:
                raise TermDepositError(
                    "Some alerts could not be delivered: " + report.describe().replace("\n", "; ")
                )
            return {"message": report.describe().replace("\n", "; ")}

        return self.step("deliver", key, label, work)

    def write_report(self, key: str, label: str, week: str) -> StepOutcome:
        """Write the week's short report to the outbox (one file per week, the latest run's)."""
        path = self.settings.outbox / f"weekly_report_{file_label(week)}.md"

        def work(_: dt.datetime | None) -> dict[str, Any]:
            text = report_text(self.store, label, self.outcomes)
            exports.write_atomic(path, text.encode("utf-8"))
            return {"message": f"written to {path}", "path": str(path)}

        return self.step("report", key, label, work)


def _failure_alert(step: str, subject: str, label: str, message: str) -> dict[str, Any]:
    """The alert that tells people a step of the weekly job failed (refreshed, not repeated)."""
    return {
        "rule": "weekly_job",
        "scope": f"{step} {subject[:40]}",
        "subject": step,
        "message": f"The weekly job could not do '{step}' for {label}: {message}",
        "severity": "critical",
    }


def _clear_failure(store: Store, step: str, subject: str) -> None:
    """Mark the failure alert of a step that has now succeeded as handled."""
    alerts = store.alerts(active_only=True)
    if alerts.empty:
        return
    mine = alerts[(alerts["rule"] == "weekly_job") & (alerts["scope"] == f"{step} {subject[:40]}")]
    for alert_id in mine["id"]:
        store.acknowledge_alert(int(alert_id), user=f"{WEEKLY_USER} (the step succeeded)")


def _decision_since(store: Store, since: dt.datetime | None) -> dict[str, Any] | None:
    """A promotion decision recorded since an interrupted step started (it did its work)."""
    if since is None:
        return None
    table = store.promotions()
    if table.empty:
        return None
    recent = table[table["at"] >= since - dt.timedelta(seconds=1)]
    return None if recent.empty else {str(k): v for k, v in recent.iloc[-1].items()}


def outcomes_since_upkeep(store: Store) -> bool:
    """True when outcomes were recorded (feedback, labelled drops) since the last model upkeep."""
    steps = store.job_repo.steps(JOB)
    if steps.empty:
        return False
    done = steps[steps["status"] == jobs.DONE]
    added = done[
        done["step"].isin(["feedback", "ingest"])
        & ~done["details"].fillna("").str.contains('"added": 0[,}]', regex=True)
    ]
    upkeep = done[done["step"] == "upkeep"]
    if len(upkeep):
        added = added[added["finished_at"] > upkeep["finished_at"].max()]
    return len(added) > 0


def retrain_due(store: Store, every: int) -> bool:
    """True when ``every`` cohorts have been scored since the last scheduled retraining."""
    if every <= 0:
        return False
    steps = store.job_repo.steps(JOB)
    if steps.empty:
        return False
    done = steps[steps["status"] == jobs.DONE]
    retrains = done[
        (done["step"] == "upkeep") & done["details"].fillna("").str.contains('"retrain"')
    ]
    scored = done[done["step"] == "score"]
    if len(retrains):
        scored = scored[scored["finished_at"] > retrains["finished_at"].max()]
    return len(scored) >= every


def issue_call_list(
    store: Store, cohort_id: int, file_sha256: str, holdout: float, path: Path
) -> tuple[int, str]:
    """Issue a cohort's call list from its latest scoring (the call-list service) and write it.

    The same list issued again (a resumed run) is recorded once: the hold-out draw's seed comes
    from the file, so the draw is the same every time. Writes ``path`` (CSV for people) and the
    same list as an .xlsx beside it (with its About sheet).

    Returns:
        (call list id, the counts in words).
    """
    logged = call_lists.logged_scoring(cohort_id, store)
    threshold = logged.threshold if logged.threshold is not None else 0.0
    request = call_lists.CallListRequest(
        threshold=float(threshold),
        capacity=logged.top_n if logged.threshold is None else None,
        holdout_share=holdout,
        seed=int(file_sha256[:8], 16) % (2**31 - 1) if holdout else None,
    )
    issued = call_lists.issue_logged(
        logged, default_settings(), request, store=store, user=WEEKLY_USER
    )
    exports.write_atomic(path, issued.file_bytes("csv"))
    exports.write_atomic(path.with_suffix(".xlsx"), issued.file_bytes("xlsx"))
    if issued.list_id is None:  # pragma: no cover - record_call_list always gives an id
        raise TermDepositError(f"The call list of cohort {cohort_id} was not recorded.")
    return issued.list_id, issued.count_words()


def report_text(store: Store, label: str, outcomes: list[StepOutcome]) -> str:
    """The week's short report (Markdown): what was done, the figures, the alerts."""
    lines = [
        f"# Weekly report: {label}",
        "",
        f"Written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    lines += ["## What the run did", ""]
    for outcome in outcomes:
        lines.append(
            f"- **{outcome.step}** {outcome.subject}: {outcome.status}. {outcome.message}"
        )
    weekly = monitoring.weekly_table(store)
    if len(weekly):
        latest = weekly.iloc[-1]
        lines += [
            "",
            "## The latest week",
            "",
            f"- {latest['week_label']}: {int(latest['customers']):,} customers, "
            f"{int(latest['planned_calls']):,} calls planned, expected conversion "
            f"{latest['expected_conversion']:.1%}, expected profit "
            f"{latest['expected_profit']:,.0f} (calling everyone: "
            f"{latest['expected_profit_call_all']:,.0f}).",
        ]
        known = weekly[weekly["has_outcomes"]]
        if len(known):
            last = known.iloc[-1]
            lines.append(
                f"- Latest week with outcomes, {last['week_label']}: {int(last['calls_made']):,} "
                f"calls, {int(last['subscribers']):,} subscribed ({last['conversion']:.1%}), "
                f"profit {last['profit']:,.0f}."
            )
    alerts = store.alerts(active_only=True)
    warnings = alerts[alerts["severity"] != "info"] if len(alerts) else alerts
    information = alerts[alerts["severity"] == "info"] if len(alerts) else alerts
    lines += ["", "## Alerts", ""]
    lines += [f"- [{a.severity}] {a.message} (alert {a.id})" for a in warnings.itertuples()] or [
        "- None active."
    ]
    if len(information):
        lines += ["", "## For information", ""]
        lines += [f"- {a.message}" for a in information.itertuples()]
    return "\n".join(lines) + "\n"


def run_weekly(
    settings: WeeklySettings | None = None,
    store: Store | None = None,
    progress: ProgressFn | None = None,
    sleep: Callable[[float], None] | None = None,
) -> WeeklyReport:
    """Run the week's work once (see the module's description); safe to run again.

    Raises:
        JobBusyError: another weekly run holds the lock (nothing was done).
        TermDepositError: the drops folder is missing (nothing was done).
    """
    settings = settings or weekly_settings()
    store = store or open_store()
    settings.outbox.mkdir(parents=True, exist_ok=True)
    lock = jobs.RunLock(store.db, JOB, settings.outbox / ".weekly.lock")
    with lock:
        drops = list_drops(settings.drops)
        run = WeeklyRun(store, settings, lock, progress, sleep)
        key = run_key(drops)
        kinds: dict[str, str] = {}
        for drop in drops:
            read = run.step("read", drop.sha256, drop.name, _classifier(drop))
            if read.status != "failed":
                kinds[drop.sha256] = str(read.details["kind"])
        first = [d for d in drops if kinds.get(d.sha256) in (OUTCOMES, LABELLED)]
        cohorts = [d for d in drops if kinds.get(d.sha256) == COHORT]
        for drop in first:
            if kinds[drop.sha256] == OUTCOMES:
                run.record_outcomes(drop)
            else:
                run.ingest_drop(drop)
        label = _run_label(store, drops)
        fresh = outcomes_since_upkeep(store)
        interrupted = store.job_repo.step_record(JOB, "upkeep", key)
        if (
            fresh
            or retrain_due(store, settings.retrain_every)
            or (interrupted is not None and not interrupted.done)
        ):
            run.keep_model_current(key, label, fresh)
        for drop in cohorts:
            scored = run.score_cohort(drop)
            if scored.status != "failed":
                run.call_list(drop, int(scored.details["cohort_id"]), scored.details["week_label"])
        label = _run_label(store, drops)
        run.monitor(key, label)
        run.deliver(key, label)
        report = run.write_report(key, label, _latest_week(store))
    nothing_new = all(o.status == "skipped" for o in run.outcomes) and bool(run.outcomes)
    path = Path(report.details["path"]) if report.details.get("path") else None
    return WeeklyReport(key, label, run.outcomes, path, nothing_new)


def _classifier(drop: Drop) -> Callable[[dt.datetime | None], dict[str, Any]]:
    def work(_: dt.datetime | None) -> dict[str, Any]:
        kind = kind_of(drop.read(), drop.name)
        return {"message": f"a {kind}", "kind": kind}

    return work


def _latest_week(store: Store) -> str:
    """The latest week the store knows (its label), or 'no week yet'."""
    cohorts = store.cohorts()
    return str(cohorts.iloc[-1]["week_label"]) if len(cohorts) else "no week yet"


def _run_label(store: Store, drops: list[Drop]) -> str:
    """The run's name: the latest week the store knows, and how many drops it saw."""
    return f"{_latest_week(store)} ({len(drops)} drops)"
