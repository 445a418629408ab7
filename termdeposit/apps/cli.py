"""The ``termdeposit`` command line (Typer): data, training, models, scoring.

Every error a user can meet is printed as a plain message with what to do, and the command
exits with code 2 (no traceback).

Size: One Typer application of about thirty commands; each command is presentation only
(arguments, printing) over the services, so splitting it would only scatter the command list.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer._click import Context as ClickContext  # typer's own click; no public alias
from typer.core import TyperGroup

from termdeposit.core import config
from termdeposit.core.errors import CohortValidationError, TermDepositError
from termdeposit.modeling import registry
from termdeposit.modeling.card import ModelCard

EXIT_USER_ERROR = 2


class FriendlyErrors(TyperGroup):
    """Turn project errors into a message and exit code 2 instead of a traceback."""

    def invoke(self, ctx: ClickContext) -> Any:
        """Run the command; print project errors in plain words."""
        try:
            return super().invoke(ctx)
        except TermDepositError as exc:
            typer.secho(f"Error: {exc.message}", err=True, fg="red")
            if isinstance(exc, CohortValidationError):
                for problem in exc.problems:
                    rows = f" (rows {problem.rows})" if problem.rows else ""
                    typer.echo(f"  - {problem.column}: {problem.problem}{rows}", err=True)
            if exc.hint:
                typer.echo(exc.hint, err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None


app = typer.Typer(
    cls=FriendlyErrors,
    help="termdeposit: whom to call about a term deposit, and why.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(
    cls=FriendlyErrors, help="List, promote and roll back model versions.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


def _private_output(out: Path) -> Path:
    """A hidden file name beside ``out`` that no other run uses (scored there, then renamed)."""
    return out.with_name(f".{out.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.scoring")


def _progress_bar(label: str) -> tuple[Any, Any]:
    bar = click.progressbar(length=100, label=label, file=sys.stderr)
    state = {"done": 0}

    def update(step: str | float, fraction: float | None = None) -> None:
        value = fraction if fraction is not None else float(step)
        target = int(round(100 * value))
        if target > state["done"]:
            bar.update(target - state["done"])
            state["done"] = target
        if fraction is not None:
            bar.label = f"{label}: {step}"

    return bar, update


@app.command("fetch-data")
def fetch_data_cmd(
    url: Annotated[str | None, typer.Option(help="Archive address (default: UCI).")] = None,
    force: Annotated[bool, typer.Option(help="Download even if the file is there.")] = False,
) -> None:
    """Download the UCI Bank Marketing archive, verify it and write data/raw/."""
    from termdeposit.data.dataset import fetch_data, verify_raw_file

    target = config.raw_data_file()
    if target.is_file() and not force:
        verify_raw_file(target)
        typer.echo(f"{target} is already there and verified.")
        return
    path = fetch_data(url)
    typer.echo(f"Downloaded and verified {path}.")


@app.command("prepare")
def prepare_cmd() -> None:
    """Clean the reference data, rebuild years and weeks, write data/processed/ (parquet)."""
    from termdeposit.data.dataset import build_processed

    typer.echo(f"Wrote {build_processed()}.")


@app.command("weeks")
def weeks_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the weeks of the reference data with their sizes and dates."""
    from termdeposit.data.dataset import load_reference, weeks_table

    table = weeks_table(load_reference())
    if as_json:
        typer.echo(table.to_json(orient="records"))
        return
    typer.echo(
        f"{'week':>4}  {'label':<14} {'days':<8} {'rows':>6} {'subscribers':>11} {'rate':>6}"
    )
    for row in table.itertuples():
        typer.echo(
            f"{row.week:>4}  {row.label:<14} {row.days:<8} {row.rows:>6} "
            f"{row.subscribers:>11} {row.rate:>6.1%}"
        )


@app.command("make-cohort")
def make_cohort_cmd(
    week: Annotated[int, typer.Option(help="Week number (see 'termdeposit weeks').")],
    out: Annotated[Path, typer.Option(help="CSV file to write.")],
    with_outcomes: Annotated[
        bool, typer.Option(help="Keep the outcome y (for backtests and demos).")
    ] = False,
) -> None:
    """Write the customers of one week as marketing receives them (no y, no duration)."""
    from termdeposit.data.dataset import load_reference, make_cohort
    from termdeposit.data.exports import write_atomic

    cohort = make_cohort(load_reference(), week, with_outcomes)
    write_atomic(out, cohort.to_csv(index=False).encode("utf-8"))
    typer.echo(f"Wrote {len(cohort)} customers of week {week} to {out}.")


@app.command("train")
def train_cmd(
    profile: Annotated[str, typer.Option(help="quick (about 1 minute) or full.")] = "quick",
    promote: Annotated[bool, typer.Option(help="Make the new model production.")] = True,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train LR, Random Forest and XGBoost, choose and calibrate, save a new version."""
    from termdeposit.modeling.train import PROFILES
    from termdeposit.services.training import train_and_register

    if profile not in PROFILES:
        raise TermDepositError(
            f"Unknown profile '{profile}'.", hint=f"Use one of: {', '.join(PROFILES)}."
        )
    bar, update = _progress_bar("Training")
    with bar:
        version = train_and_register(profile, promote, seed, progress=update)
    card = ModelCard.from_dict(registry.read_card(version))
    typer.echo(
        f"Saved model {version} ({card.family_label}): AUC random "
        f"{card.metric('random', 'auc'):.3f}, time {card.metric('time', 'auc'):.3f}; "
        f"ECE random {card.metric('random', 'ece'):.3f}"
        + (" — now in production." if promote else ".")
    )


@app.command("score")
def score_cmd(
    cohort: Annotated[
        Path, typer.Argument(help="Cohort file (CSV or xlsx); with --engine dask also a folder.")
    ],
    out: Annotated[Path, typer.Option(help="CSV file to write.")] = Path("calls.csv"),
    threshold: Annotated[
        float | None, typer.Option(help="Call everyone at or above this probability.")
    ] = None,
    top: Annotated[int | None, typer.Option("--top", help="Call the N most likely.")] = None,
    model: Annotated[str | None, typer.Option(help="Model version (default: production).")] = None,
    chunked: Annotated[bool, typer.Option(help="Force the chunked path.")] = False,
    engine: Annotated[
        str, typer.Option(help="pandas, or dask for a folder of partitions or a huge file.")
    ] = "pandas",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a local cluster).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Workers of the local Dask cluster.")] = 2,
    week_label: Annotated[
        str | None, typer.Option(help="Week the cohort is for, in the prediction log.")
    ] = None,
    no_log: Annotated[
        bool,
        typer.Option("--no-log", help="Do not write the prediction log (e.g. database down)."),
    ] = False,
) -> None:
    """Score a cohort: every row with id, probability, decision and rank (logged); then the
    week's forecast rate, the expected profit of the calls with its 80% range, and the
    recommendation (threshold, everyone or nobody)."""
    from termdeposit.core.config import default_settings
    from termdeposit.modeling.predict import decisions, score_file
    from termdeposit.services.forecasts import cohort_outlook
    from termdeposit.services.logged_scoring import score_file_logged
    from termdeposit.storage import store as prediction_log

    if threshold is not None and top is not None:
        raise TermDepositError("Give either --threshold or --top, not both.")
    if engine not in ("pandas", "dask"):
        raise TermDepositError(f"Unknown engine '{engine}'.", hint="Use pandas or dask.")
    log_store = None if no_log else prediction_log.open_store()
    loaded = registry.load_model(model)
    bar, update = _progress_bar("Scoring")
    # Scored into a file of this run's own (logged as it is written), then renamed to --out:
    # another scoring writing the same --out meanwhile can neither mix its rows into this
    # run's log nor leave a half-written file; a failure leaves an earlier --out as it was.
    staged = _private_output(out)
    rule_threshold = loaded.threshold if threshold is None and top is None else threshold
    try:
        logged = None
        with bar:
            if engine == "dask":
                from termdeposit.modeling.dask_scoring import dask_client, score_partitioned

                with dask_client(scheduler, workers) as client:
                    summary = score_partitioned(
                        loaded, cohort, staged, threshold, top, client, progress=update
                    )
                if log_store is not None:
                    logged = prediction_log.log_scored_output(
                        log_store,
                        staged,
                        cohort,
                        model_version=loaded.version,
                        threshold=rule_threshold,
                        top_n=top,
                        week_label=week_label,
                    )
            elif log_store is not None:
                # The log is written while the output is (one transaction, see the service).
                summary, logged = score_file_logged(
                    log_store,
                    loaded,
                    cohort,
                    staged,
                    threshold,
                    top,
                    week_label=week_label,
                    progress=update,
                    force_chunked=chunked,
                )
            else:
                summary = score_file(
                    loaded, cohort, staged, threshold, top, progress=update, force_chunked=chunked
                )
        for notice in summary.notices:
            typer.echo(f"Note: {notice}", err=True)
        if logged is None:
            typer.secho(
                "Note: --no-log: these predictions were NOT logged.", err=True, fg="yellow"
            )
        else:
            typer.echo(
                f"Logged as cohort {logged.cohort_id}"
                + ("" if logged.new_cohort else " (this file was scored before)")
                + ".",
                err=True,
            )
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    typer.echo(
        f"Scored {summary.rows} customers with model {loaded.version}: {summary.calls} to call, "
        f"{summary.expected_subscriptions:.1f} subscriptions expected. Wrote {out}."
    )
    outlook = cohort_outlook(
        loaded,
        summary.probabilities,
        default_settings(),
        called=decisions(
            summary.probabilities,
            loaded.threshold if threshold is None and top is None else threshold,
            top,
        ),
        week=summary.week,
    )
    for line in outlook.lines():
        typer.echo(line)


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[str | None, typer.Option(help="Model version (default: production).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Re-measure a model on the random and the time-ordered hold-outs."""
    from termdeposit.data.dataset import load_reference
    from termdeposit.modeling.predict import evaluate

    result = evaluate(registry.load_model(model), load_reference())
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"Model {result['version']} ({result['family']})")
    for key in ("auc", "ap", "brier", "ece"):
        typer.echo(
            f"  {key:<6} random {result[key + '_random']:.4f}   "
            f"time {result.get(key + '_time', float('nan')):.4f}"
        )
    typer.echo(f"  lift in top 10% (random): {result['lift_top10']:.2f}")


def _warn_about_pointer(status: registry.PointerStatus) -> None:
    """Say in words what is wrong with the production pointer, and what to do (on stderr)."""
    if status.problem:
        typer.secho(f"Warning: {status.problem}", err=True, fg="yellow")
        typer.echo(status.hint, err=True)


@models_app.command("list")
def models_list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List saved model versions (production marked with *); say if the pointer is damaged."""
    status = registry.pointer_status()
    rows = []
    for version in registry.list_versions():
        row: dict[str, Any] = {"version": version, "production": version == status.version}
        try:
            card = ModelCard.from_dict(registry.read_card(version))
        except TermDepositError as exc:
            rows.append({**row, "problem": exc.message})
            continue
        rows.append(
            {
                **row,
                "created": card.created or None,
                "family": card.family or None,
                "profile": card.profile,
                "auc_random": card.metric("random", "auc"),
                "auc_time": card.metric("time", "auc"),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows))
        _warn_about_pointer(status)
        return
    if not rows:
        typer.echo("No models yet: run 'termdeposit train'.")
    for r in rows:
        mark = "*" if r["production"] else " "
        if "problem" in r:
            typer.echo(f"{mark} {r['version']}  unreadable: {r['problem']}")
            continue
        typer.echo(
            f"{mark} {r['version']}  {r['created']}  {r['family'] or '':<13} "
            f"{r['profile'] or '':<5} AUC random {_auc(r['auc_random'])}  "
            f"time {_auc(r['auc_time'])}"
        )
    _warn_about_pointer(status)


def _auc(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "  -  "


@models_app.command("show")
def models_show_cmd(
    version: Annotated[str | None, typer.Argument(help="Version (default: production).")] = None,
) -> None:
    """Print a model's card (JSON)."""
    version = version or registry.production_version()
    if version is None:
        raise TermDepositError(
            "There is no production model yet.", hint="Run 'termdeposit train'."
        )
    typer.echo(json.dumps(registry.read_card(version), indent=2))


@models_app.command("promote")
def models_promote_cmd(
    version: Annotated[str, typer.Argument(help="Version to put in production.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "promoted by hand",
) -> None:
    """Make a version the production model (it is verified first); repairs a damaged pointer."""
    entry = registry.promote(version, reason)
    if "replaced_pointer" in entry:
        typer.echo(
            f"{entry['version']} is now in production; the damaged pointer "
            f"('{entry['replaced_pointer']}') was replaced."
        )
        return
    typer.echo(f"{entry['version']} is now in production (was {entry['previous']}).")


@models_app.command("rollback")
def models_rollback_cmd(
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "rolled back",
) -> None:
    """Put back the model that was in production before this one (again: further back)."""
    entry = registry.rollback(reason=reason)
    typer.echo(
        f"Rolled back: {entry['version']} is in production again (was {entry['previous']})."
    )


@models_app.command("trust")
def models_trust_cmd(
    version: Annotated[str, typer.Argument(help="Version to vouch for.")],
    reason: Annotated[
        str, typer.Option(help="Why it can be trusted: where it comes from (audit log).")
    ],
) -> None:
    """Vouch for a model not signed by this installation, so it can be loaded.

    Loading a model runs the code inside it: trust only a model whose origin you know (one
    trained here before models were signed, or with a signing key since replaced). Its files
    are checked against its checksum list, then it is signed with this installation's key.
    """
    entry = registry.trust(version, reason)
    typer.echo(
        f"{entry['version']} is trusted and signed with this installation's key "
        f"(recorded in the audit log as {entry['user']}: {entry['reason']})."
    )


@app.command("serve-api")
def serve_api_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every one).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP scoring API (OpenAPI docs at /docs; token: TERMDEPOSIT_API_TOKEN)."""
    import uvicorn

    uvicorn.run(
        "termdeposit.apps.api:app",
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=log_level in ("debug", "info"),
    )


# -- operations: prediction log, outcomes, monitoring, retraining, A/B test, backtest --------


def _echo_table(frame: Any, columns: list[str]) -> None:
    """Print some columns of a frame as an aligned text table."""
    shown = frame.loc[:, [c for c in columns if c in frame]]
    typer.echo(shown.to_string(index=False) if len(shown) else "(none)")


@app.command("feedback")
def feedback_cmd(
    outcomes: Annotated[
        Path, typer.Argument(help="Outcomes file: customer_id, called (yes/no), subscribed.")
    ],
    cohort: Annotated[
        str | None,
        typer.Option(help="Cohort id or week label (default: matched by customer id)."),
    ] = None,
) -> None:
    """Record the week's call outcomes (all or nothing; uploading again changes nothing)."""
    from termdeposit.services.outcomes import OutcomesError, record_feedback

    if not outcomes.is_file():
        raise TermDepositError(f"There is no file at '{outcomes}'.", hint="Check the path.")
    try:
        result = record_feedback(outcomes.read_bytes(), outcomes.name, cohort)
    except OutcomesError as exc:
        if len(exc.details) > len(exc.problems):
            typer.echo(f"Rows concerned ({len(exc.details)}):", err=True)
            typer.echo(exc.details.head(50).to_string(index=False), err=True)
        raise
    for notice in result.notices:
        typer.echo(f"Note: {notice}", err=True)
    typer.echo(result.summary())


@app.command("monitor")
def monitor_cmd(
    check: Annotated[
        bool, typer.Option("--check", help="Exit with code 1 when an alert is active (cron).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the KPI, drift and alert tables as JSON.")
    ] = False,
    set_limit: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change an alert limit, e.g. --set auc_min=0.7 (repeatable)."),
    ] = None,
    acknowledge: Annotated[
        list[int] | None,
        typer.Option("--acknowledge", help="Mark an alert id as handled (repeatable)."),
    ] = None,
) -> None:
    """Weekly KPIs (expected vs realised), drift, and alerts; --check for cron and CI."""
    from termdeposit.ops import monitoring
    from termdeposit.storage.store import open_store

    store = open_store()
    if set_limit:
        changes = {}
        for item in set_limit:
            key, sep, value = item.partition("=")
            if not sep:
                raise TermDepositError(
                    f"'{item}' is not a limit setting.", hint="Write it as name=value."
                )
            changes[key.strip()] = value.strip()
        limits = monitoring.update_limits(changes, store)
        typer.echo("Alert limits now: " + json.dumps(limits.as_dict()), err=True)
    for alert_id in acknowledge or []:
        store.acknowledge_alert(alert_id)
        typer.echo(f"Alert {alert_id} acknowledged.", err=True)
    result = monitoring.run_monitor(store)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), default=str))
    else:
        if result.weekly.empty:
            typer.echo("No cohort has been scored yet: nothing to monitor.")
        else:
            typer.echo("Weekly figures (expected before outcomes, realised after):")
            _echo_table(
                result.weekly.round(3),
                [
                    "cohort_id",
                    "week_label",
                    "customers",
                    "planned_calls",
                    "expected_conversion",
                    "expected_profit",
                    "estimated_auc",
                    "calls_made",
                    "conversion",
                    "profit",
                    "auc",
                    "calibration_error",
                ],
            )
        if result.drift is not None:
            d = result.drift
            pooled = f" (pooled over {d.weeks} weeks)" if d.weeks > 1 else ""
            judged = "" if d.judged else " — too few customers to judge drift yet"
            typer.echo(
                f"\nDrift of {d.label}, {d.rows:,} customers{pooled}{judged}, against the "
                f"training reference of {d.model_version}: PSI beyond chance of the scores' "
                f"spread {d.score_psi:.3f}; {d.drifted_share:.0%} of customer inputs drifted"
            )
            _echo_table(
                d.table.round(3),
                ["input", "kind", "psi", "psi_beyond_chance", "psi_recent", "band", "detail"],
            )
    for finding in result.information.itertuples(index=False):
        typer.echo(f"\nInformation: {finding.message}", err=as_json)
    active = result.active
    if active.empty:
        typer.echo("No active alerts.", err=as_json)
        return
    if not as_json:
        typer.secho(f"\n{len(active)} active alerts:", fg="red", err=True)
        for alert in active.itertuples(index=False):
            typer.echo(f"  [{alert.id}] {alert.severity}: {alert.message}", err=True)
        typer.echo(
            "Acknowledge a handled alert with 'termdeposit monitor --acknowledge ID'.", err=True
        )
    if check:
        raise typer.Exit(1)


@app.command("ingest")
def ingest_cmd(
    data_file: Annotated[
        str,
        typer.Argument(
            help="Data drop (cohort columns plus the outcome y for each row): a file, a folder "
            "of drops, or an object-storage URL or prefix (s3://bucket/drops/).",
            show_default=False,
        ),
    ],
    week_label: Annotated[
        str | None,
        typer.Option(help="Week the data is for (default: from the rows' month and weekdays)."),
    ] = None,
) -> None:
    """Load data drops (contacted customers with outcomes) for the next retraining."""
    from termdeposit.data.drops import list_drops, read_drop
    from termdeposit.ops.retrain import ingest

    drops = list_drops(data_file)
    if not drops:
        raise TermDepositError(
            f"There are no data drops in '{data_file}'.",
            hint="Drops are CSV, tab-separated or .xlsx files directly inside it.",
        )
    if week_label and len(drops) > 1:
        raise TermDepositError(
            f"--week-label names the week of one drop, but '{data_file}' holds {len(drops)}.",
            hint="Ingest the drops one file at a time to label each week.",
        )
    for drop in drops:
        result = ingest(read_drop(drop), drop.name, week_label)
        if result.added == 0 and not result.new_cohort:
            typer.echo(
                f"{drop.name} was ingested before (cohort {result.cohort_id}): nothing changed."
            )
            continue
        typer.echo(
            f"Ingested {drop.name}: {result.rows} rows ({result.subscribers} subscribed) as "
            f"cohort {result.cohort_id}, week {result.week_label} ({result.label_source}); they "
            "join the training data at the next 'termdeposit retrain'."
        )


@app.command("retrain")
def retrain_cmd(
    profile: Annotated[str, typer.Option(help="Search profile: quick or full.")] = "quick",
    family: Annotated[
        list[str] | None,
        typer.Option(help="Model family to search (repeatable; default: all three)."),
    ] = None,
    weeks: Annotated[int, typer.Option(help="Recent weeks the two models are judged on.")] = 4,
    min_rows: Annotated[int, typer.Option(help="Widen the judged weeks to this many rows.")] = (
        1000
    ),
    min_gain: Annotated[
        float, typer.Option(help="AUC the challenger must gain to be promoted.")
    ] = 0.0,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if not better (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the audit log).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train a challenger on the data plus recorded outcomes; promote it only if better."""
    from termdeposit.ops.retrain import retrain

    bar, update = _progress_bar("Retraining")
    with bar:
        decision = retrain(
            profile,
            tuple(family) if family else None,
            weeks,
            min_rows,
            min_gain,
            force,
            reason,
            seed,
            progress=update,
        )
    typer.echo(decision.summary())


@app.command("recalibrate")
def recalibrate_cmd(
    method: Annotated[str, typer.Option(help="platt, intercept or isotonic.")] = "platt",
    min_rows: Annotated[
        int, typer.Option(help="Use the latest cohorts holding this many outcomes.")
    ] = 1000,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the check fails (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the audit log).")] = None,
) -> None:
    """Refit the production model's probability scale on recent outcomes (a new version)."""
    from termdeposit.ops.retrain import recalibrate

    result = recalibrate(method, min_rows, force, reason)
    typer.echo(result.message)
    typer.echo(
        f"Saved {result.version} ({result.score_map.describe()}): "
        + (
            "now in production."
            if result.promoted
            else f"not promoted; {result.base_version} "
            "stays in production (use --force --reason to promote it anyway)."
        )
    )


@app.command("backtest")
def backtest_cmd(
    cost: Annotated[float, typer.Option(help="Cost of one call.")] = 5.0,
    value: Annotated[float, typer.Option(help="Value of one subscription.")] = 100.0,
    grid: Annotated[
        bool,
        typer.Option(
            "--grid", help="Every cost {2, 5, 10, 20} x value {20, 50, 100, 200} in one pass."
        ),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="A short replay (weeks 13-40, refit every 8 weeks)."),
    ] = False,
    retrain_every: Annotated[
        int | None, typer.Option(help="Refit the model every k weeks (default 4).")
    ] = None,
    first_week: Annotated[int | None, typer.Option(help="First scored week (default 13).")] = None,
    last_week: Annotated[int | None, typer.Option(help="Last scored week (default: end).")] = None,
    recalibration: Annotated[
        str, typer.Option(help="none (the product), intercept, platt or isotonic.")
    ] = "none",
    recalibration_rows: Annotated[
        int, typer.Option(help="Recalibrate on the latest weeks holding this many rows.")
    ] = 1000,
    follow_week: Annotated[
        bool,
        typer.Option(
            "--follow-week/--no-follow-week",
            help="Make each week's probabilities follow its forecast rate (the product).",
        ),
    ] = True,
    threshold_rule: Annotated[
        str,
        typer.Option(
            help="recommend (the product), break-even (cost/value) or past-profit "
            "(best of the last 8 weeks)."
        ),
    ] = "recommend",
    macro: Annotated[str, typer.Option(help="Macro inputs: nr.employed or all.")] = "nr.employed",
    half_life: Annotated[
        float | None, typer.Option(help="Recency weighting: half-life in weeks (default none).")
    ] = None,
    reference_method: Annotated[
        bool,
        typer.Option("--reference-method", help="Replay the data README's reference method."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    weeks_csv: Annotated[Path | None, typer.Option(help="Write the per-week table here.")] = None,
) -> None:
    """Replay the reference weeks as the product runs them; compare with the simple policies."""
    from dataclasses import replace

    from termdeposit.data.dataset import load_reference
    from termdeposit.data.exports import write_atomic
    from termdeposit.ops.backtest import (
        GRID,
        QUICK,
        BacktestConfig,
        reference_config,
        run_backtest,
    )

    if reference_method:
        config = reference_config(cost, value)
    else:
        config = BacktestConfig(
            call_cost=cost,
            subscription_value=value,
            recalibration=recalibration,
            recalibration_rows=recalibration_rows,
            follow_week=follow_week,
            threshold_rule=threshold_rule,
            macro=macro,
            half_life_weeks=half_life,
        )
    if quick:
        config = replace(
            config,
            first_week=QUICK["first_week"],
            last_week=QUICK["last_week"],
            retrain_every=QUICK["retrain_every"],
        )
    config = replace(
        config,
        first_week=config.first_week if first_week is None else first_week,
        last_week=config.last_week if last_week is None else last_week,
        retrain_every=config.retrain_every if retrain_every is None else retrain_every,
    )
    config.check()
    frame = load_reference()
    bar, update = _progress_bar("Replaying weeks")
    with bar:
        result = run_backtest(frame, config, progress=update, cells=GRID if grid else None)
    if weeks_csv is not None:
        write_atomic(weeks_csv, result.weeks.to_csv(index=False).encode("utf-8"))
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    window_of = summary["window"]
    typer.echo(
        f"Weeks {window_of['first_week']}-{window_of['last_week']} ({window_of['rows']:,} "
        f"customers). Calibration error {summary['ece']:.3f}; gap between a week's mean "
        f"probability and its rate {summary['weekly_rate_gap']:.3f} (row-weighted)."
    )
    typer.echo(
        f"{'cost/value':>10} {'model':>10} {'everyone':>10} {'nobody':>7} {'rate rule':>10} "
        f"{'hindsight':>10} {'expected':>10} {'80% range':>23} {'covered':>7} "
        f"{'week err':>8} {'worst wk':>9}"
    )
    for cell in summary["cells"]:
        coverage = "–" if cell["coverage"] is None else f"{cell['coverage']:.0%}"
        typer.echo(
            f"{cell['cost']:>4g}/{cell['value']:<5g} {cell['profit_model']:>10,.0f} "
            f"{cell['profit_call_all']:>10,.0f} {0:>7,.0f} {cell['profit_rate_rule']:>10,.0f} "
            f"{cell['profit_hindsight_weekly']:>10,.0f} {cell['expected_profit_model']:>10,.0f} "
            f"{cell['expected_low']:>11,.0f}-{cell['expected_high']:<11,.0f} {coverage:>7} "
            f"{cell['weekly_abs_error']:>8,.0f} {cell['worst_week_loss']:>9,.0f}"
        )


@app.command("issue")
def issue_cmd(
    cohort: Annotated[str, typer.Option(help="Cohort id or week label (see 'monitor').")],
    out: Annotated[Path, typer.Option(help="File to write (its format: see --format).")] = Path(
        "call_list.csv"
    ),
    file_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="csv (for people, the dashboard's CSV), dialler (machine-readable columns) "
            "or xlsx (Excel with an About sheet); default: from the file name.",
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Call at or above this probability (default: as scored).")
    ] = None,
    top: Annotated[int | None, typer.Option("--top", help="Call the N most likely.")] = None,
    capacity: Annotated[
        int | None, typer.Option(help="The most calls the call centre can make.")
    ] = None,
    do_not_call: Annotated[
        Path | None, typer.Option(help="A file of customer ids never to call.")
    ] = None,
    holdout: Annotated[
        float, typer.Option(help="Share drawn at random as business as usual (e.g. 0.1).")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the hold-out draw.")] = None,
    group_policy: Annotated[
        str | None,
        typer.Option(
            help="Call every group at the same share: parity_same_calls (about as many "
            "calls) or parity_best (the most profitable share); see --group-by."
        ),
    ] = None,
    group_by: Annotated[
        str, typer.Option(help="The grouping of --group-policy: 'age band', marital, job, ...")
    ] = "age band",
) -> None:
    """Issue a call list from a logged scoring (the same file the dashboard gives)."""
    from termdeposit.core.config import default_settings
    from termdeposit.data import exports
    from termdeposit.decisions.calllist import read_do_not_call
    from termdeposit.services import call_lists

    if threshold is not None and top is not None:
        raise TermDepositError("Give either --threshold or --top, not both.")
    fmt = file_format or ("xlsx" if out.suffix.lower() == ".xlsx" else "csv")
    logged = call_lists.logged_scoring(cohort)
    if threshold is None and top is None:
        threshold, top = logged.threshold, logged.top_n
    if top is not None:
        threshold, capacity = 0.0, top if capacity is None else min(capacity, top)
    blocked = (
        read_do_not_call(do_not_call.read_bytes(), do_not_call.name) if do_not_call else set()
    )
    request = call_lists.CallListRequest(
        threshold=float(threshold if threshold is not None else 0.0),
        capacity=capacity,
        do_not_call=call_lists.do_not_call_ids(blocked),
        holdout_share=holdout,
        seed=seed,
        group_policy=(group_policy, group_by) if group_policy else None,
    )
    issued = call_lists.issue_logged(logged, default_settings(), request)
    exports.write_atomic(out, issued.file_bytes(fmt))
    typer.echo(f"Issued call list {issued.list_id}: {issued.count_words()}. Wrote {out}.")
    if issued.forecast is not None:
        for line in issued.forecast.lines():
            typer.echo(line)
    power = issued.holdout_check()
    if power is not None and not power.enough:
        typer.secho(f"Warning: the hold-out is too small to tell. {power.describe()}", err=True)
    if issued.reasons_note:
        typer.echo(issued.reasons_note, err=True)


@app.command("ab-report")
def ab_report_cmd(
    call_list: Annotated[int, typer.Argument(help="Call list id (printed by 'issue').")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Model against business as usual: conversion, profit, uplift with a 95% interval."""
    from termdeposit.decisions.abtest import ab_results

    result = ab_results(None, call_list)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), default=str))
        return
    typer.echo(result.table().round(4).to_string(index=False))
    typer.echo(result.summary())
    if result.pending_calls:
        typer.echo(f"Note: {result.pending_calls} planned calls have no outcome yet.", err=True)


@app.command("demo-outcomes")
def demo_outcomes_cmd(
    cohort: Annotated[str, typer.Option(help="Cohort id or week label (see 'monitor').")],
    out: Annotated[Path, typer.Option(help="Outcomes CSV to write.")] = Path("outcomes.csv"),
) -> None:
    """For demos: the outcomes a cohort cut from the reference data would bring back."""
    from termdeposit.data.dataset import load_reference
    from termdeposit.data.exports import write_atomic
    from termdeposit.ops.monitoring import cohort_plan
    from termdeposit.services.outcomes import outcomes_file, simulated_outcomes
    from termdeposit.storage.store import open_store

    store = open_store()
    chosen = store.find_cohort(cohort)
    plan = cohort_plan(store, int(chosen["id"]))
    if plan is None:
        raise TermDepositError(f"Cohort {chosen['id']} has no logged scoring.")
    called = plan.members.loc[plan.members["call"], "customer_id"]
    write_atomic(out, outcomes_file(simulated_outcomes(called, load_reference())))
    typer.echo(
        f"Wrote the outcomes of the {len(called)} customers called in cohort {chosen['id']} "
        f"to {out} (taken from the reference data: a demonstration)."
    )


@app.command("audit")
def audit_cmd(
    at: Annotated[
        str | None, typer.Option(help="Which version was in production then (ISO date/time).")
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Export the audit log to this CSV.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Promotion audit log: who put which model in production, when and why."""
    import datetime as dt

    from termdeposit.data.exports import to_csv_bytes, write_atomic
    from termdeposit.ops.retrain import audit_table, production_at

    if at is not None:
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError as exc:
            raise TermDepositError(
                f"'{at}' is not a date.", hint="Use e.g. 2026-05-01 or 2026-05-01T14:30."
            ) from exc
        if len(at) == 10:
            when = when.replace(hour=23, minute=59, second=59)
        entry = production_at(when)
        if entry is None:
            typer.echo(f"No model was in production at {when.isoformat()}.")
        elif as_json:
            typer.echo(json.dumps(entry, default=str))
        else:
            typer.echo(
                f"At {when.isoformat()}: {entry['version']} (since {entry['at']}, "
                f"{entry['action']} by {entry['user']}: {entry['reason']})"
            )
        return
    table = audit_table()
    if csv is not None:
        write_atomic(csv, to_csv_bytes(table))
        typer.echo(f"Wrote {len(table)} audit entries to {csv}.")
        return
    if as_json:
        typer.echo(table.to_json(orient="records", date_format="iso"))
        return
    _echo_table(table, ["at", "action", "version", "previous", "user", "reason"])


@app.command("bootstrap")
def bootstrap_cmd(
    profile: Annotated[str, typer.Option(help="Training profile if no model exists.")] = "quick",
) -> None:
    """First run: fetch the data if missing and train a model if none is in production."""
    from termdeposit.data.dataset import fetch_data, verify_raw_file

    if config.raw_data_file().is_file():
        verify_raw_file()
        typer.echo(f"Data: {config.raw_data_file()} (verified).")
    else:
        typer.echo("Data: downloading the UCI Bank Marketing archive...")
        fetch_data()
    if registry.production_version() is None:
        typer.echo(f"Model: none in production, training the {profile} profile...")
        train_cmd(profile=profile, promote=True, seed=0)
        return
    version = registry.production_version()
    try:
        registry.load_model(version)  # checksums and signature: a model saved before signing
    except TermDepositError as exc:  # or elsewhere is refused, and the user is told what to do
        typer.secho(f"Model: {version} is in production but cannot be used.", fg="yellow")
        typer.echo(f"  {exc.message}\n  {exc.hint}")
        return
    typer.echo(f"Model: {version} in production (verified).")


# -- the weekly job and its scheduler -----------------------------------------------------------


@app.command("weekly")
def weekly_cmd(
    drops: Annotated[
        Path | None, typer.Option(help="Folder the weekly files arrive in (TERMDEPOSIT_DROPS).")
    ] = None,
    outbox: Annotated[
        Path | None,
        typer.Option(help="Folder for call lists and reports (TERMDEPOSIT_OUTBOX)."),
    ] = None,
    holdout: Annotated[
        float | None,
        typer.Option(help="Share drawn as business as usual (TERMDEPOSIT_HOLDOUT, e.g. 0.1)."),
    ] = None,
) -> None:
    """Run the week's work: drops in, model upkeep, scoring, call lists, monitoring, alerts out.

    Safe to run again (done steps are skipped) and to resume after an interruption; exits 1
    when a step failed (a drop refused, alerts not delivered), 2 when it could not start.
    """
    from dataclasses import replace

    from termdeposit.services.weekly import run_weekly

    settings = config.weekly_settings()
    changes: dict[str, Any] = {}
    if drops is not None:
        changes["drops"] = drops.expanduser().resolve()
    if outbox is not None:
        changes["outbox"] = outbox.expanduser().resolve()
    if holdout is not None:
        changes["holdout"] = holdout
    report = run_weekly(
        replace(settings, **changes), progress=lambda step: typer.echo(f"... {step}", err=True)
    )
    typer.echo(report.summary())
    if report.failed:
        typer.secho(f"{len(report.failed)} steps failed; see above.", err=True, fg="red")
        raise typer.Exit(1)


@app.command("scheduler")
def scheduler_cmd(
    cron: Annotated[
        str | None, typer.Option(help="Five cron fields (TERMDEPOSIT_WEEKLY_CRON).")
    ] = None,
    timezone: Annotated[str | None, typer.Option(help="Time zone (TERMDEPOSIT_TIMEZONE).")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Print the next runs and exit (no scheduler).")
    ] = False,
) -> None:
    """Run 'termdeposit weekly' on a cron schedule, in the foreground (compose's scheduler)."""
    from termdeposit.services.scheduler import build_scheduler, next_runs
    from termdeposit.services.weekly import run_weekly

    settings = config.weekly_settings()
    cron = cron or settings.cron
    timezone = timezone or settings.timezone
    upcoming = next_runs(cron, timezone)
    typer.echo(
        f"Weekly job on '{cron}' ({timezone}); next runs: "
        + ", ".join(f"{t:%a %Y-%m-%d %H:%M %Z}" for t in upcoming)
    )
    if check:
        return

    def job() -> None:
        typer.echo(run_weekly(config.weekly_settings()).summary())

    scheduler = build_scheduler(job, cron, timezone)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        typer.echo("Scheduler stopped.")


@app.command("deliver-alerts")
def deliver_alerts_cmd(
    test: Annotated[
        bool, typer.Option("--test", help="Send a test message instead (nothing recorded).")
    ] = False,
) -> None:
    """Send new alerts now by webhook and e-mail (TERMDEPOSIT_ALERT_WEBHOOK, _SMTP_URL...)."""
    from termdeposit.ops import alerting

    report = alerting.send_test_message() if test else alerting.deliver_alerts()
    typer.echo(report.describe())
    if report.failed:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
