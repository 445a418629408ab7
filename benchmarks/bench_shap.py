"""How fast are SHAP explanations, per model family? Targets: 10k rows <= 2 s, one row <= 100 ms.

Fits one pipeline per family on the rows before the time hold-out (settings typical of the
training search, printed below), then times, on the last ``--rows`` rows of the reference data:

- ``explain``: SHAP contributions of all rows (transform + SHAP + summing one-hot columns),
- ``one row``: one customer (median of 20 runs, what the Explanations page does per click),
- ``reasons``: reason codes for the same rows,
- ``baseline``: the same pipeline's ``predict_proba`` on the same rows, in the same run, so the
  ratios say how many times dearer explaining is than scoring on this machine, whatever its load.

Random forests are explained by ``insight.treeshap.ForestShap``; for them the script also
times shap's own exact ``TreeExplainer`` on the first ``--shap-rows`` rows (same run, same
matrix), and prints the speed-up per row and the largest difference between the two
explanations (after summing one-hot columns). ``--deep`` adds a deep forest of the full
training profile's extreme (250 trees, max_depth 14, min_samples_leaf 1).

Also prints the overall view's sample size per family (``SAMPLE_LIMITS``) and its time, and,
with ``--production``, the production model from the registry. The load average is printed
before and after: other jobs on the machine slow every figure down.

Usage::

    TERMDEPOSIT_DATA=../shared/data .venv/bin/python benchmarks/bench_shap.py
    .venv/bin/python benchmarks/bench_shap.py --families random_forest --deep --shap-rows 100
    .venv/bin/python benchmarks/bench_shap.py --families xgboost logreg --rows 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

TARGET_ROWS_SECONDS = 2.0
TARGET_ONE_MS = 100.0
#: Settings typical of what the training search picks (the quick profile's middle ground).
FAMILY_PARAMS: dict[str, dict[str, Any]] = {
    "logreg": {"clf__C": 0.1},
    "random_forest": {
        "clf__n_estimators": 120,
        "clf__max_depth": 9,
        "clf__min_samples_leaf": 20,
        "clf__max_features": 0.3,
    },
    "xgboost": {"clf__n_estimators": 200, "clf__max_depth": 3},
    "blend": {
        "clean__macro": "all",
        "clf__linear_drop": [-6, -5, -4, -3],  # the regression sees nr.employed only
        "clf__forest__n_estimators": 120,
        "clf__forest__max_depth": 9,
        "clf__forest__min_samples_leaf": 20,
        "clf__forest__max_features": 0.3,
        "clf__boosted__n_estimators": 200,
        "clf__boosted__max_depth": 3,
    },
}
#: The deepest forest the full training profile can pick (``--deep``).
DEEP_FOREST = {
    "clf__n_estimators": 250,
    "clf__max_depth": 14,
    "clf__min_samples_leaf": 1,
    "clf__max_features": 0.3,
}


def _timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def _one_row_ms(explainer: Any, frame: pd.DataFrame, repeats: int = 20) -> float:
    times = []
    for i in range(repeats):
        _, seconds = _timed(explainer.explain, frame.iloc[[i % len(frame)]])
        times.append(seconds)
    return 1000 * statistics.median(times)


def _versus_shap(explainer: Any, rows: pd.DataFrame, explained: Any, seconds: float) -> dict:
    """shap's exact TreeExplainer on the first rows of a random forest's matrix, same run."""
    import shap

    matrix = explainer.matrix(rows)
    reference, shap_seconds = _timed(
        shap.TreeExplainer(explainer.classifier).shap_values, matrix, check_additivity=False
    )
    values = np.asarray(reference)[..., 1] @ explainer.aggregation
    ours = explained.values.to_numpy()[: len(rows)]
    ms_row = 1000 * seconds / len(explained)
    shap_ms_row = 1000 * shap_seconds / len(rows)
    return {
        "shap rows": len(rows),
        "shap ms/row": round(shap_ms_row, 3),
        "speed-up vs shap": round(shap_ms_row / ms_row, 1),
        "max diff vs shap": f"{np.abs(ours - values).max():.1e}",
        "table MiB": round(explainer.shap_explainer.table_nbytes / 2**20, 1),
    }


def bench(
    name: str, artifact: Any, reference: pd.DataFrame, rows: pd.DataFrame, shap_rows: int = 0
) -> dict:
    """Time one artifact; return a row of the results table."""
    from termdeposit.core.schema import INPUT_COLUMNS
    from termdeposit.insight import explain

    inputs = rows.loc[:, list(INPUT_COLUMNS)]
    _, baseline = _timed(artifact.predict_proba, inputs)
    explainer, build = _timed(explain.build_explainer, artifact, reference)
    explanation, seconds = _timed(explainer.explain, rows)
    margin = explainer.model_output(rows)
    error = np.abs(explanation.base_value + explanation.values.sum(axis=1) - margin)
    one_ms = _one_row_ms(explainer, rows)
    _, reasons = _timed(explain.reason_codes, None, rows, explainer=explainer)
    limit = explainer.sample_limit
    sample, sample_seconds = _timed(explain.explain_sample, explainer, rows, limit)
    versus = {}
    if explainer.family == "random_forest" and shap_rows > 0:
        versus = _versus_shap(explainer, rows.iloc[:shap_rows], explanation, seconds)
    return {
        "model": name,
        "rows": len(rows),
        "build s": round(build, 2),
        "explain s": round(seconds, 2),
        "ms/row": round(1000 * seconds / len(rows), 3),
        "one row ms": round(one_ms, 1),
        "reasons s": round(reasons, 2),
        "predict s": round(baseline, 3),
        "explain/predict": round(seconds / baseline, 1),
        "10k-row target": "met" if seconds * 1e4 / len(rows) <= TARGET_ROWS_SECONDS else "missed",
        "one-row target": "met" if one_ms <= TARGET_ONE_MS else "missed",
        "overall view rows": len(sample),
        "overall view s": round(sample_seconds, 2),
        "max additivity error": float(error.max()),
        **versus,
    }


def main() -> None:
    """Fit, time and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--families", nargs="+", default=["logreg", "xgboost", "random_forest", "blend"]
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--production", action="store_true", help="also the production model")
    parser.add_argument(
        "--shap-rows", type=int, default=300, help="rows for shap's own TreeExplainer (forests)"
    )
    parser.add_argument("--deep", action="store_true", help="also a deep forest (full profile)")
    args = parser.parse_args()
    os.environ.setdefault("TERMDEPOSIT_LOG", "WARNING")

    from termdeposit.core.schema import INPUT_COLUMNS, TARGET
    from termdeposit.data.dataset import load_reference
    from termdeposit.modeling.train import build_pipeline, make_splits

    frame = load_reference()
    y = frame[TARGET].to_numpy(dtype=int)
    splits = make_splits(y)
    fit = frame.iloc[splits.fit_time]
    reference = fit.sample(5000, random_state=0)
    rows = frame.iloc[-args.rows :].reset_index(drop=True)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; rows {len(rows):,}")
    runs = [(family, family, FAMILY_PARAMS[family]) for family in args.families]
    if args.deep:
        runs.append(("deep random_forest", "random_forest", DEEP_FOREST))
    results = []
    for name, family, params in runs:
        pipeline = build_pipeline(family).set_params(**params)
        _, fit_seconds = _timed(pipeline.fit, fit.loc[:, list(INPUT_COLUMNS)], y[splits.fit_time])
        print(f"{name}: fitted in {fit_seconds:.1f} s with {params}", flush=True)
        results.append(bench(name, pipeline, reference, rows, args.shap_rows))
    if args.production:
        from termdeposit.modeling import registry

        model = registry.load_model()
        name = f"production {model.version} ({model.card.get('family')})"
        results.append(bench(name, model.pipeline, model.reference(), rows, args.shap_rows))
    table = pd.DataFrame(results).set_index("model")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.T.to_string())
    print(
        f"Targets: {args.rows:,} rows scaled to 10k <= {TARGET_ROWS_SECONDS} s, one row <= "
        f"{TARGET_ONE_MS:.0f} ms. 'explain/predict' = SHAP time / scoring time, same rows, "
        "same run."
    )
    one, five, _ = os.getloadavg()
    print(f"Load average at the end: {one:.1f} (1 min), {five:.1f} (5 min).")


if __name__ == "__main__":
    main()
