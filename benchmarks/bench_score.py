"""Benchmark: a large cohort from CSV to call list, against plain pandas + scikit-learn.

A cohort of ``--rows`` customers (1,000,000 by default) is resampled from the reference data
and written as CSV. Then, each in a fresh process (so peak memory is the run's own):

- ``baseline``: plain pandas + scikit-learn doing the same job with the same saved pipeline —
  ``pd.read_csv``, ``predict_proba``, decisions at the model's threshold, ranks by sorting,
  ``to_csv`` of every row (id, probability, decision, rank, inputs);
- ``product``: ``termdeposit score`` (``score_file``: validation, chunked reading when large,
  batched prediction, the product's CSV writer);
- ``dask`` (with ``--dask``): ``termdeposit score --engine dask`` on a 2-worker local cluster,
  cluster start-up included.

Prints wall time, CPU time and peak memory of each, the ratio baseline / product, and whether
the outputs agree. ``--ten-million`` also scores 10,000,000 rows through the chunked path and
checks that peak memory stays under 2 GiB (it writes a 1.2 GB file and takes minutes).

Run: ``python benchmarks/bench_score.py [--rows N] [--repeat K] [--dask] [--ten-million]``
(needs a production model: ``termdeposit train``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGET_SECONDS = 10.0
TARGET_RATIO = 2.0
MEMORY_LIMIT_MIB = 2048


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


def run_baseline(src: Path, dst: Path) -> None:
    """Plain pandas + scikit-learn: read, predict, decide, rank by sorting, write."""
    from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS
    from termdeposit.modeling import registry

    model = registry.load_model()
    started = time.perf_counter()
    cpu = time.process_time()
    frame = pd.read_csv(src)
    probability = model.pipeline.predict_proba(frame.loc[:, list(INPUT_COLUMNS)])[:, 1]
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


def run_product(src: Path, dst: Path) -> None:
    """The product's path: ``termdeposit score`` (pandas engine)."""
    from termdeposit.modeling import registry
    from termdeposit.modeling.predict import score_file

    model = registry.load_model()
    started = time.perf_counter()
    cpu = time.process_time()
    summary = score_file(model, src, dst)
    _report(started, cpu, summary.rows, chunked=summary.chunked)


def run_dask(src: Path, dst: Path) -> None:
    """``termdeposit score --engine dask`` on a local cluster of 2 worker processes."""
    from termdeposit.modeling import registry
    from termdeposit.modeling.dask_scoring import dask_client, score_partitioned

    model = registry.load_model()
    started = time.perf_counter()
    cpu = time.process_time()
    with dask_client(workers=2) as client:
        summary = score_partitioned(model, src, dst, client=client, blocksize="32MiB")
    _report(started, cpu, summary.rows)


def _report(started: float, cpu: float, rows: int, **extra: object) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu,
                "rows": rows,
                "peak_mib": max(peak, children),
                **extra,
            }
        )
    )


RUNNERS = {"baseline": run_baseline, "product": run_product, "dask": run_dask}


def measure(kind: str, src: Path, dst: Path) -> dict[str, float]:
    """Run one scorer in a fresh Python process; return its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--src", str(src), "--dst", str(dst)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def outputs_agree(product: Path, baseline: Path) -> str:
    """Same customers in the same order, same decisions, probabilities within 1e-12."""
    columns = ["customer_id", "probability", "decision", "rank"]
    a = pd.read_csv(product, usecols=columns, engine="pyarrow")
    b = pd.read_csv(baseline, usecols=columns, engine="pyarrow")
    if not a["customer_id"].equals(b["customer_id"]):
        return "NO: customers differ"
    gap = float(np.max(np.abs(a["probability"].to_numpy() - b["probability"].to_numpy())))
    same_decisions = bool((a["decision"] == b["decision"]).all())
    return f"{'yes' if gap < 1e-12 and same_decisions else 'NO'} (max probability gap {gap:.1e})"


def line(name: str, figures: dict[str, float]) -> str:
    return (
        f"  {name:<9} {figures['seconds']:7.2f} s wall  {figures['cpu_seconds']:7.2f} s CPU  "
        f"peak {figures['peak_mib']:7.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="best of K runs of each")
    parser.add_argument("--dask", action="store_true", help="also time the Dask engine")
    parser.add_argument("--ten-million", action="store_true", help="also the 10M memory check")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dst", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        RUNNERS[args.child](args.src, args.dst)
        return

    from termdeposit.modeling import registry

    version = registry.production_version()
    if version is None:
        sys.exit("No production model: run 'termdeposit train' first.")
    card = registry.read_card(version)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-score-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(args, work, version, card)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, version: str, card: dict) -> None:
    """Generate the cohort files (unless already in ``work``) and measure every scorer."""
    src = work / f"cohort_{args.rows}.csv"
    if not src.is_file():
        make_cohort_csv(args.rows, src)
    print(
        f"bench_score: {args.rows:,} rows ({src.stat().st_size / 2**20:,.0f} MiB CSV), model "
        f"{version} ({card.get('family')}), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    kinds = ["baseline", "product"] + (["dask"] if args.dask else [])
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):
        for kind in kinds:
            figures = measure(kind, src, work / f"out_{kind}.csv")
            if kind not in best or figures["seconds"] < best[kind]["seconds"]:
                best[kind] = figures
    for kind in kinds:
        print(line(kind, best[kind]))
    ratio = best["baseline"]["seconds"] / best["product"]["seconds"]
    print(
        f"  product is {ratio:.2f}x faster than the baseline (target >= {TARGET_RATIO:g}x); "
        f"{best['product']['seconds']:.2f} s (target <= {TARGET_SECONDS:g} s)"
    )
    if args.dask:
        print(f"  dask is {best['baseline']['seconds'] / best['dask']['seconds']:.2f}x faster")
    print(f"  outputs agree: {outputs_agree(work / 'out_product.csv', work / 'out_baseline.csv')}")
    if args.ten_million:
        big = work / "cohort_10000000.csv"
        if not big.is_file():
            make_cohort_csv(10_000_000, big)
        figures = measure("product", big, work / "out_10m.csv")
        verdict = "under" if figures["peak_mib"] < MEMORY_LIMIT_MIB else "OVER"
        print(line("10M rows", figures) + f"  ({verdict} the {MEMORY_LIMIT_MIB} MiB limit)")


if __name__ == "__main__":
    main()
