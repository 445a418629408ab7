"""Benchmark: a large cohort from CSV to call list, both profiles' models, against plain
pandas + scikit-learn, with the commands users type.

A cohort of ``--rows`` customers (1,000,000 by default) is resampled from the reference data
and written as CSV. For the latest quick-profile and full-profile models of the models folder
(the missing one is trained first into a temporary folder, nothing promoted), each of these
runs in a fresh process, so peak memory is the run's own:

- ``baseline``: plain pandas + scikit-learn doing the same job with the same saved pipeline —
  ``pd.read_csv``, ``predict_proba``, the week's forecast rate followed (the product's numpy
  function, as the product's output does), decisions at the model's threshold, ranks by
  sorting, ``to_csv`` of every row (id, probability, decision, rank, inputs); it logs nothing;
- ``in-process``: :func:`~termdeposit.modeling.predict.score_file`, no prediction log;
- ``score (log, SQLite)``: ``termdeposit score big.csv --out calls.csv`` as a user types it,
  prediction log on in a new SQLite file (the default), process start-up and imports included;
- ``score --no-log``: the same without the log;
- ``score (log, PostgreSQL)`` (with ``--pg-url``): the log on a PostgreSQL server whose tables
  are emptied first (e.g. ``scripts/start_test_postgres.sh``'s server);
- ``dask`` (with ``--dask``): ``termdeposit score --engine dask``, log off.

Prints wall time, CPU time and peak memory of each, the engine that scored the trees, the
speed-ups over the baseline, the targets, and whether the outputs agree with the baseline
(same customers, largest probability gap, decisions that flip at the threshold). Then, for the
full-profile model: ``--ten-million`` scores 10,000,000 rows in-process (peak memory),
``--api`` runs ``bench_api.py`` on it (single-record p50), ``--shap`` explains 10,000 rows.
``--markdown`` also prints the README's performance table.

Run: ``python benchmarks/bench_score.py [--rows N] [--repeat K] [--pg-url URL] [--api]
[--shap] [--ten-million] [--dask] [--markdown]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: Targets of issue 19, for the full-profile model on 2 cores.
TARGETS = {
    "score (log, SQLite)": 6.0,
    "score --no-log": 4.0,
    "score (log, PostgreSQL)": 8.0,
}
TARGET_RATIO = 3.0
TEN_MILLION_SECONDS = 45.0
MEMORY_LIMIT_MIB = 1536
API_P50_MS = 5.0
SHAP_SECONDS = 1.0
PROFILES = ("quick", "full")


def make_cohort_csv(rows: int, path: Path, seed: int = 0) -> None:
    """Write ``rows`` customers resampled (with replacement) from the reference data."""
    from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS, NUMERIC_INPUTS
    from termdeposit.data.dataset import load_reference
    from termdeposit.data.fast_csv import csv_bytes

    reference = load_reference().loc[:, list(INPUT_COLUMNS)].reset_index(drop=True)
    for column, (_, _, whole) in NUMERIC_INPUTS.items():
        if whole:
            reference[column] = reference[column].astype("int64")
    rng = np.random.default_rng(seed)
    step = 1_000_000
    with open(path, "wb") as handle:
        for start in range(0, rows, step):
            count = min(step, rows - start)
            part = reference.iloc[rng.integers(0, len(reference), count)].reset_index(drop=True)
            part.insert(0, ID_COLUMN, [f"C{i:09d}" for i in range(start, start + count)])
            handle.write(csv_bytes(part, header=start == 0))


# -- children: each runs in a fresh process ---------------------------------------------------


def _load(version: str):  # noqa: ANN202 - a LoadedModel (imported in the child only)
    from termdeposit.modeling import registry

    return registry.load_model(version)


def run_baseline(version: str, src: Path, dst: Path) -> None:
    """Plain pandas + scikit-learn: read, predict, decide, rank by sorting, write."""
    from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS
    from termdeposit.modeling.base_rate import composition_sums
    from termdeposit.modeling.predict import follow_week

    model = _load(version)
    started, cpu = time.perf_counter(), time.process_time()
    frame = pd.read_csv(src)
    probability = model.pipeline.predict_proba(frame.loc[:, list(INPUT_COLUMNS)])[:, 1]
    # The product's probabilities follow the week's forecast rate (a shift on the log-odds
    # scale); the same job does the same, with the product's own numpy function.
    probability = follow_week(model, probability, composition_sums(frame))
    order = np.argsort(-probability, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    out = pd.DataFrame(
        {
            ID_COLUMN: frame[ID_COLUMN],
            "probability": probability,
            "decision": np.where(probability >= model.threshold, "call", "do not call"),
            "rank": rank,
        }
    )
    out = pd.concat([out, frame.loc[:, list(INPUT_COLUMNS)]], axis=1)
    out.to_csv(dst, index=False)
    _report(started, cpu, len(out))


def run_product(version: str, src: Path, dst: Path) -> None:
    """The product's scoring in-process (``score_file``), no prediction log."""
    from termdeposit.modeling.predict import score_file

    model = _load(version)
    started, cpu = time.perf_counter(), time.process_time()
    summary = score_file(model, src, dst)
    _report(started, cpu, summary.rows)


def run_shap(version: str, src: Path, dst: Path) -> None:
    """Explain the first 10,000 customers of the cohort with the model's explainer."""
    from termdeposit.insight import explain

    model = _load(version)
    rows = pd.read_csv(src, nrows=10_000)
    explainer = explain.build_explainer(model.pipeline, model.reference())
    explainer.explain(rows.iloc[:5])  # compiled kernels and caches warm
    started, cpu = time.perf_counter(), time.process_time()
    explainer.explain(rows)
    _report(started, cpu, len(rows))


def _report(started: float, cpu: float, rows: int) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu,
                "rows": rows,
                "peak_mib": peak,
            }
        )
    )


CHILDREN = {"baseline": run_baseline, "in-process": run_product, "shap": run_shap}


# -- the parent --------------------------------------------------------------------------------


@dataclass
class ModelUnderTest:
    """One profile's model: where it is and what scores its trees."""

    profile: str
    version: str
    models_dir: Path
    family: str
    engine: str
    results: dict[str, dict[str, float]] = field(default_factory=dict)
    agreement: dict[str, str] = field(default_factory=dict)


def _env(models_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "TERMDEPOSIT_MODELS": str(models_dir), **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def measure_child(kind: str, model: ModelUnderTest, src: Path, dst: Path) -> dict[str, float]:
    """Run one in-process scorer in a fresh Python process; return its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, model.version, str(src), str(dst)],
        capture_output=True,
        text=True,
        check=False,
        env=_env(model.models_dir),
    )
    if done.returncode != 0:
        sys.exit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_command(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Time a command as a user runs it: wall clock, CPU and peak memory of that process."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            sys.exit(f"{' '.join(argv)} failed:\n{errors.read().decode()[-3000:]}")
    return {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
    }


def _termdeposit() -> str:
    return str(Path(sys.executable).with_name("termdeposit"))


def _empty_postgres(url: str) -> None:
    """Drop the store's tables and its migration record (a benchmark server only): every run
    logs a new cohort into a store made afresh, as on a new installation."""
    import sqlalchemy as sa

    from termdeposit.storage import store

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        store.metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    store.close_stores()


def outputs_agree(product: Path, baseline: Path, threshold: float) -> str:
    """Same customers in the same order; largest probability gap; decisions that flip."""
    columns = ["customer_id", "probability", "decision"]
    a = pd.read_csv(product, usecols=columns, engine="pyarrow")
    b = pd.read_csv(baseline, usecols=columns, engine="pyarrow")
    if not a["customer_id"].equals(b["customer_id"]):
        return "NO: customers differ"
    pa, pb = a["probability"].to_numpy(), b["probability"].to_numpy()
    gap = float(np.max(np.abs(pa - pb)))
    flips = int(np.count_nonzero((pa >= threshold) != (pb >= threshold)))
    same = bool((a["decision"] == b["decision"]).all())
    verdict = "yes" if flips == 0 and same else "NO"
    return f"{verdict} (max probability gap {gap:.1e}, {flips} decisions flip)"


def engine_of(version: str, models_dir: Path) -> tuple[str, str]:
    """The model's family and what scores its trees (for the report)."""
    from termdeposit.modeling import inference, registry

    loaded = registry.load_model(version, models_dir)
    scorer = inference.scorer_for(loaded.pipeline)
    family = str(loaded.card.get("family"))
    if scorer is None:
        return family, "scikit-learn pipeline (not compiled)"
    parts = ["encoding: numpy replay of the fitted steps"]
    classifier = scorer.blend if scorer.blend is not None else scorer.classifier
    if scorer.forest is not None:
        parts.append(
            f"forest: scikit-learn's tree code (> {inference.FOREST_ENGINE_MAX_ROWS} rows), "
            f"Treelite {_version('treelite')} GTIL (smaller batches)"
        )
    boosted = getattr(classifier, "boosted_", None) or (
        classifier if type(classifier).__name__ == "XGBClassifier" else None
    )
    if boosted is not None:
        parts.append(f"XGBoost {_version('xgboost')}'s own predictor")
    return family, "; ".join(parts)


def _version(module: str) -> str:
    import importlib

    return str(importlib.import_module(module).__version__)


def find_or_train(profile: str, models_dir: Path, scratch: Path) -> tuple[str, Path]:
    """The latest model of ``profile`` in the models folder, or a new one trained for this run
    in a temporary folder (not promoted)."""
    from termdeposit.modeling import registry

    for version in reversed(registry.list_versions(models_dir)):
        if registry.read_card(version, models_dir).get("profile") == profile:
            return version, models_dir
    folder = scratch / f"models-{profile}"
    print(f"  no {profile}-profile model in {models_dir}: training one in {folder} ...")
    started = time.perf_counter()
    subprocess.run(
        [_termdeposit(), "train", "--profile", profile, "--no-promote"],
        check=True,
        env=_env(folder),
        capture_output=True,
    )
    print(f"  trained in {time.perf_counter() - started:.0f} s")
    return registry.list_versions(folder)[-1], folder


def bench_model(
    model: ModelUnderTest, args: argparse.Namespace, src: Path, work: Path, threshold: float
) -> None:
    """Every scorer and command on one model (best of ``--repeat``)."""
    runs: dict[str, object] = {
        "baseline": ("child", "baseline"),
        "in-process": ("child", "in-process"),
        "score (log, SQLite)": ("command", "sqlite"),
        "score --no-log": ("command", "none"),
    }
    if args.pg_url:
        runs["score (log, PostgreSQL)"] = ("command", "postgres")
    if args.dask:
        runs["score --engine dask --no-log"] = ("command", "dask")
    outputs: dict[str, Path] = {}
    for _ in range(args.repeat):
        for name, (how, what) in runs.items():
            dst = work / f"out-{model.profile}-{re.sub(r'[^a-z]+', '-', name.lower())}.csv"
            if how == "child":
                figures = measure_child(what, model, src, dst)
            else:
                argv = [_termdeposit(), "score", str(src), "--out", str(dst)]
                argv += ["--model", model.version]
                extra = {}
                if what == "sqlite":
                    db = work / f"log-{model.profile}-{time.time_ns()}.db"
                    extra["TERMDEPOSIT_DB_URL"] = f"sqlite:///{db}"
                elif what == "postgres":
                    _empty_postgres(args.pg_url)
                    extra["TERMDEPOSIT_DB_URL"] = args.pg_url
                elif what == "dask":
                    argv += ["--engine", "dask", "--no-log"]
                else:
                    argv.append("--no-log")
                figures = measure_command(argv, _env(model.models_dir, **extra))
            outputs[name] = dst
            best = model.results.get(name)
            if best is None or figures["seconds"] < best["seconds"]:
                model.results[name] = figures
    for name, path in outputs.items():
        if name != "baseline":
            model.agreement[name] = outputs_agree(path, outputs["baseline"], threshold)


def line(name: str, figures: dict[str, float], baseline: float | None = None) -> str:
    ratio = f"  {baseline / figures['seconds']:5.2f}x" if baseline else ""
    return (
        f"  {name:<30} {figures['seconds']:7.2f} s wall {figures['cpu_seconds']:7.2f} s CPU  "
        f"peak {figures['peak_mib']:6.0f} MiB{ratio}"
    )


def api_p50(model: ModelUnderTest, work: Path) -> str:
    """``bench_api.py`` on this model (promoted in a private copy of its folder)."""
    from termdeposit.modeling import registry

    folder = work / "models-api"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shutil.copytree(model.models_dir / model.version, folder / model.version)
    registry.promote(model.version, "bench_score.py: API figures", folder)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_api.py"), "--requests", "500"],
        capture_output=True,
        text=True,
        check=False,
        env=_env(folder),
    )
    return done.stdout.strip() or done.stderr[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="best of K runs of each")
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--models", type=Path, default=None, help="models folder to look in")
    parser.add_argument("--pg-url", default=os.environ.get("TERMDEPOSIT_BENCH_PG_URL"))
    parser.add_argument("--dask", action="store_true", help="also the Dask engine")
    parser.add_argument("--ten-million", action="store_true", help="also 10M rows (full model)")
    parser.add_argument("--api", action="store_true", help="also bench_api.py (full model)")
    parser.add_argument("--shap", action="store_true", help="also SHAP of 10,000 rows (full)")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, version, src, dst = args.child
        CHILDREN[kind](version, Path(src), Path(dst))
        return

    from termdeposit.core import config

    models_dir = args.models or config.models_dir()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-score-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(args, models_dir, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, models_dir: Path, work: Path) -> None:
    """Generate the cohort (unless already in ``work``), find the models, measure."""
    from termdeposit.modeling import registry

    src = work / f"cohort_{args.rows}.csv"
    if not src.is_file():
        make_cohort_csv(args.rows, src)
    print(
        f"bench_score: {args.rows:,} rows ({src.stat().st_size / 2**20:,.0f} MiB CSV), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start"
    )
    models = []
    for profile in args.profiles:
        version, folder = find_or_train(profile, models_dir, work)
        family, engine = engine_of(version, folder)
        models.append(ModelUnderTest(profile, version, folder, family, engine))
    for model in models:
        threshold = registry.load_model(model.version, model.models_dir).threshold
        bench_model(model, args, src, work, threshold)
        print(f"{model.profile} profile: model {model.version} ({model.family})")
        print(f"  engine: {model.engine}")
        base = model.results["baseline"]["seconds"]
        for name, figures in model.results.items():
            print(line(name, figures, None if name == "baseline" else base))
        for name, verdict in model.agreement.items():
            print(f"  {name} agrees with the baseline: {verdict}")
        if model.profile == "full":
            _targets(model)
    full = next((m for m in models if m.profile == "full"), None)
    extras: dict[str, str] = {}
    if full is not None and args.ten_million:
        big = work / "cohort_10000000.csv"
        if not big.is_file():
            make_cohort_csv(10_000_000, big)
        figures = measure_child("in-process", full, big, work / "out_10m.csv")
        verdict = (
            "met"
            if figures["seconds"] <= TEN_MILLION_SECONDS
            and figures["peak_mib"] <= MEMORY_LIMIT_MIB
            else "NOT met"
        )
        print(line("10M rows in-process (full)", figures))
        print(f"  target <= {TEN_MILLION_SECONDS:g} s and <= {MEMORY_LIMIT_MIB} MiB: {verdict}")
        extras["10M"] = f"{figures['seconds']:.1f} s, peak {figures['peak_mib']:,.0f} MiB"
    if full is not None and args.shap:
        figures = measure_child("shap", full, src, work / "unused")
        verdict = "met" if figures["seconds"] <= SHAP_SECONDS else "NOT met"
        print(f"  SHAP, 10,000 rows (full): {figures['seconds']:.2f} s (target <= 1 s: {verdict})")
        extras["SHAP"] = f"{figures['seconds']:.2f} s"
    if full is not None and args.api:
        report = api_p50(full, work)
        print("  " + report.replace("\n", "\n  "))
        found = re.search(r"log=false p50\s+([\d.]+) ms", report)
        if found:
            p50 = float(found.group(1))
            verdict = "met" if p50 <= API_P50_MS else "NOT met"
            print(f"  API single record p50 (log=false): {p50:.1f} ms (target <= 5 ms: {verdict})")
            extras["API"] = f"{p50:.1f} ms"
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.markdown:
        print(markdown(models, extras, args.rows))


def _targets(model: ModelUnderTest) -> None:
    base = model.results["baseline"]["seconds"]
    for name, limit in TARGETS.items():
        if name in model.results:
            seconds = model.results[name]["seconds"]
            verdict = "met" if seconds <= limit else "NOT met"
            print(f"  target {name} <= {limit:g} s: {seconds:.2f} s, {verdict}")
    logged = model.results["score (log, SQLite)"]["seconds"]
    verdict = "met" if base / logged >= TARGET_RATIO else "NOT met"
    print(f"  target log on >= {TARGET_RATIO:g}x the baseline: {base / logged:.2f}x, {verdict}")


def markdown(models: list[ModelUnderTest], extras: dict[str, str], rows: int) -> str:
    """The README's performance table."""
    names = list(models[0].results)
    header = f"| {rows:,} rows, 2 cores | " + " | ".join(
        f"{m.profile} ({m.family})" for m in models
    )
    lines = [header + " |", "|---" * (len(models) + 1) + "|"]
    for name in names:
        cells = []
        for m in models:
            figures = m.results.get(name)
            if figures is None:
                cells.append("–")
                continue
            base = m.results["baseline"]["seconds"]
            ratio = "" if name == "baseline" else f" ({base / figures['seconds']:.1f}x)"
            cells.append(f"{figures['seconds']:.1f} s{ratio}, {figures['peak_mib']:,.0f} MiB")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for key, value in extras.items():
        lines.append(f"| {key} (full) | {value} |" + " |" * (len(models) - 1))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
