"""Benchmark: how much the random hold-out AUC moves with the draw of the hold-out.

The model card's random hold-out is one stratified 20% draw (seed 0): about 8,200 customers,
930 subscribers, so its AUC carries a sampling error of roughly 0.005-0.01. This refits a
saved model's configuration (the artifact, cloned: same family, settings and calibration) on
``--splits`` other draws (seeds 1..N) and prints the AUC of each, their mean and spread, next
to the card's figure. It chooses nothing: it measures how far one draw can be trusted.

Run: ``python benchmarks/bench_resplit.py [--model VERSION] [--splits 5]`` (2-3 seconds per
split for the full profile's average of three families on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from sklearn.base import clone
from sklearn.metrics import roc_auc_score


def main() -> None:
    """Refit on each draw and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model version (default: production)")
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TERMDEPOSIT_LOG", "WARNING")

    from termdeposit.core.schema import INPUT_COLUMNS, TARGET
    from termdeposit.data.dataset import load_reference
    from termdeposit.modeling import registry
    from termdeposit.modeling.train import make_splits

    model = registry.load_model(args.model)
    frame = load_reference()
    X = frame.loc[:, list(INPUT_COLUMNS)].reset_index(drop=True)
    y = frame[TARGET].to_numpy(dtype=int)
    print(
        f"model {model.version} ({model.card.get('family_label')}), card's random hold-out "
        f"AUC {model.card['metrics']['random']['auc']:.4f} (seed 0); "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    aucs = []
    for seed in range(1, args.splits + 1):
        started = time.perf_counter()
        splits = make_splits(y, seed)
        twin = clone(model.pipeline).fit(X.iloc[splits.fit_random], y[splits.fit_random])
        scores = twin.predict_proba(X.iloc[splits.holdout_random])[:, 1]
        aucs.append(float(roc_auc_score(y[splits.holdout_random], scores)))
        print(f"  seed {seed}: AUC {aucs[-1]:.4f}  ({time.perf_counter() - started:.0f} s)")
    spread = statistics.stdev(aucs) if len(aucs) > 1 else float("nan")
    print(
        f"{len(aucs)} other draws: mean {np.mean(aucs):.4f}, sd {spread:.4f}, "
        f"min {min(aucs):.4f}, max {max(aucs):.4f}"
    )


if __name__ == "__main__":
    main()
