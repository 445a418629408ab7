"""The ``termdeposit`` command line (Typer): data, training, models, scoring.

Every error a user can meet is printed as a plain message with what to do, and the command
exits with code 2 (no traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from termdeposit import config, registry
from termdeposit.errors import CohortValidationError, TermDepositError

EXIT_USER_ERROR = 2


class FriendlyErrors(TyperGroup):
    """Turn project errors into a message and exit code 2 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
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
    from termdeposit.dataset import fetch_data, verify_raw_file

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
    from termdeposit.dataset import build_processed

    typer.echo(f"Wrote {build_processed()}.")


@app.command("weeks")
def weeks_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the weeks of the reference data with their sizes and dates."""
    from termdeposit.dataset import load_reference, weeks_table

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
    from termdeposit.dataset import load_reference, make_cohort
    from termdeposit.exports import write_atomic

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
    from termdeposit.modeling.train import PROFILES, train_and_register

    if profile not in PROFILES:
        raise TermDepositError(
            f"Unknown profile '{profile}'.", hint=f"Use one of: {', '.join(PROFILES)}."
        )
    bar, update = _progress_bar("Training")
    with bar:
        version = train_and_register(profile, promote, seed, progress=update)
    card = registry.read_card(version)
    m = card["metrics"]
    typer.echo(
        f"Saved model {version} ({card['family_label']}): AUC random {m['random']['auc']:.3f}, "
        f"time {m['time']['auc']:.3f}; ECE random {m['random']['ece']:.3f}"
        + (" — now in production." if promote else ".")
    )


@app.command("score")
def score_cmd(
    cohort: Annotated[Path, typer.Argument(help="Cohort file (CSV or xlsx).")],
    out: Annotated[Path, typer.Option(help="CSV file to write.")] = Path("calls.csv"),
    threshold: Annotated[
        float | None, typer.Option(help="Call everyone at or above this probability.")
    ] = None,
    top: Annotated[int | None, typer.Option("--top", help="Call the N most likely.")] = None,
    model: Annotated[str | None, typer.Option(help="Model version (default: production).")] = None,
    chunked: Annotated[bool, typer.Option(help="Force the chunked path.")] = False,
) -> None:
    """Score a cohort: every row with id, probability, decision and rank."""
    from termdeposit.modeling.predict import score_file

    if threshold is not None and top is not None:
        raise TermDepositError("Give either --threshold or --top, not both.")
    loaded = registry.load_model(model)
    bar, update = _progress_bar("Scoring")
    with bar:
        summary = score_file(
            loaded, cohort, out, threshold, top, progress=update, force_chunked=chunked
        )
    for notice in summary.notices:
        typer.echo(f"Note: {notice}", err=True)
    typer.echo(
        f"Scored {summary.rows} customers with model {loaded.version}: {summary.calls} to call, "
        f"{summary.expected_subscriptions:.1f} subscriptions expected. Wrote {out}."
    )


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[str | None, typer.Option(help="Model version (default: production).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Re-measure a model on the random and the time-ordered hold-outs."""
    from termdeposit.dataset import load_reference
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


@models_app.command("list")
def models_list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List saved model versions (production marked with *)."""
    production = registry.production_version()
    rows = []
    for version in registry.list_versions():
        card = registry.read_card(version)
        rows.append(
            {
                "version": version,
                "production": version == production,
                "created": card.get("created"),
                "family": card.get("family"),
                "profile": card.get("profile"),
                "auc_random": card["metrics"]["random"]["auc"],
                "auc_time": card["metrics"]["time"]["auc"],
            }
        )
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("No models yet: run 'termdeposit train'.")
    for r in rows:
        mark = "*" if r["production"] else " "
        typer.echo(
            f"{mark} {r['version']}  {r['created']}  {r['family']:<13} {r['profile']:<5} "
            f"AUC random {r['auc_random']:.3f}  time {r['auc_time']:.3f}"
        )


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
    """Make a version the production model (it is verified first)."""
    entry = registry.promote(version, reason)
    typer.echo(f"{entry['version']} is now in production (was {entry['previous']}).")


@models_app.command("rollback")
def models_rollback_cmd(
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "rolled back",
) -> None:
    """Put the previous production model back."""
    entry = registry.rollback(reason=reason)
    typer.echo(
        f"Rolled back: {entry['version']} is in production again (was {entry['previous']})."
    )


@app.command("bootstrap")
def bootstrap_cmd(
    profile: Annotated[str, typer.Option(help="Training profile if no model exists.")] = "quick",
) -> None:
    """First run: fetch the data if missing and train a model if none is in production."""
    from termdeposit.dataset import fetch_data, verify_raw_file

    if config.raw_data_file().is_file():
        verify_raw_file()
        typer.echo(f"Data: {config.raw_data_file()} (verified).")
    else:
        typer.echo("Data: downloading the UCI Bank Marketing archive...")
        fetch_data()
    if registry.production_version() is None:
        typer.echo(f"Model: none in production, training the {profile} profile...")
        train_cmd(profile=profile, promote=True, seed=0)
    else:
        typer.echo(f"Model: {registry.production_version()} in production.")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
