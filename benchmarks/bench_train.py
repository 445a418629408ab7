"""Benchmark: training profiles — wall time, CPU time and peak memory.

Each profile trains in a fresh process on the reference data, into a temporary models folder
(your own models are not touched; nothing is promoted), and prints wall time, CPU time, peak
memory (the largest of the main process and the search's worker processes), the family
chosen and its AUC on both hold-outs. ``quick`` runs by default; ``--full``
adds the full profile (up to 20 minutes on 2 cores).

Run: ``python benchmarks/bench_train.py [--full]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def run_profile(profile: str) -> None:
    """Child process: train one profile and print its figures as JSON."""
    from termdeposit.modeling import registry
    from termdeposit.services.training import train_and_register

    started = time.perf_counter()
    version = train_and_register(profile, promote_to_production=False, random_state=0)
    seconds = time.perf_counter() - started
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)  # so the search's worker processes are counted
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    card = registry.read_card(version)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": usage.ru_utime
                + usage.ru_stime
                + children.ru_utime
                + children.ru_stime,
                "peak_mib": max(usage.ru_maxrss, children.ru_maxrss) / 1024,
                "family": card["family"],
                "auc_random": card["metrics"]["random"]["auc"],
                "auc_time": card["metrics"]["time"]["auc"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also the full profile (long)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_profile(args.child)
        return
    print(
        f"bench_train: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        "models in a temporary folder"
    )
    for profile in ["quick"] + (["full"] if args.full else []):
        with tempfile.TemporaryDirectory(prefix="bench-train-") as models:
            env = {**os.environ, "TERMDEPOSIT_MODELS": models, "TERMDEPOSIT_LOG": "WARNING"}
            done = subprocess.run(
                [sys.executable, __file__, "--child", profile],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        if done.returncode != 0:
            sys.exit(f"{profile} failed:\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"  {profile:<6} {figures['seconds']:7.1f} s wall  {figures['cpu_seconds']:7.1f} s CPU"
            f"  peak {figures['peak_mib']:6.0f} MiB  {figures['family']}: AUC random "
            f"{figures['auc_random']:.3f}, time {figures['auc_time']:.3f}"
        )


if __name__ == "__main__":
    main()
