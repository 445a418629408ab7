"""Benchmark: replay the 106 reference weeks (13-118) through weekly monitoring; count alerts.

Each week, as the weekly job would run it: the model (logistic regression on the customer
inputs and ``nr.employed``, retrained every 4 weeks on all earlier weeks) is recalibrated on
the latest weeks holding >= 1,000 outcomes (Platt), the week is scored, the customers at or
above the break-even probability (5 / 100) are called, and monitoring runs over everything
known so far: the outcomes of earlier weeks' calls (only called customers' outcomes are
known), the new week's scores and inputs, each model version's training reference (a
5,000-row sample of its training rows, scored by that version).

Two rule sets are replayed on the same weeks:

- ``before``: the rules of commit 4df113a (read from git history): every weekly check looks
  at the newest cohort's drift (PSI against the training reference, score PSI, context
  ranges, mean confidence) and the newest cohort with outcomes (conversion against the
  trailing 4 weeks, AUC and calibration among the called), each alert per cohort;
- ``after``: :func:`termdeposit.ops.monitoring.assess` (minimum sizes, PSI beyond chance,
  small weeks pooled up to 4 weeks, the economy as information, the scores' spread instead
  of their level, episodes: one alert while a condition lasts).

It prints how many alerts fired and of which kind, the drift alerts per five weeks (target:
at most 1), and for every AUC alert whether that week's AUC really fell: the AUC over *all*
the week's customers (hindsight, outcomes of customers the product never called included) is
below the limit, and clearly so (its one-sided 95% upper bound below the limit). The AUC
check is only as good as that hindsight figure: the rule itself never sees it.

Run: ``python benchmarks/bench_monitoring.py`` (about 2 minutes on 2 idle cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS
from termdeposit.data.dataset import load_reference
from termdeposit.modeling.metrics import expected_calibration_error
from termdeposit.modeling.train import build_pipeline
from termdeposit.ops import monitoring
from termdeposit.ops.backtest import fit_recalibration, recent_rows

ROOT = Path(__file__).resolve().parents[1]
#: The commit whose rules are the "before" figures.
BEFORE_COMMIT = "4df113a"
FIRST, LAST = 13, 118
RETRAIN_EVERY = 4
BREAK_EVEN = 0.05
REFERENCE_ROWS = 5000
KINDS = {
    "input_drift": "customer drift",
    "drift_share": "customer drift",
    "score_drift": "score drift",
    "context_range": "economy (was an alert)",
    "confidence_drop": "confidence drop",
    "economy": "economy (information)",
    "auc_low": "AUC",
    "auc_drop": "AUC",
    "conversion_drop": "conversion",
    "calibration": "calibration",
}
DRIFT_KINDS = ("customer drift", "score drift", "confidence drop", "economy (was an alert)")


def replay_weeks(frame: pd.DataFrame) -> list[dict]:
    """Score each week as the weekly job would: model, recalibration, calls."""
    weeks = frame["week"].to_numpy(int)
    X = frame.loc[:, list(INPUT_COLUMNS)]
    y = frame["y"].to_numpy(int)
    out = []
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for i, week in enumerate(range(FIRST, LAST + 1)):
            if i % RETRAIN_EVERY == 0:
                rows = weeks < week
                model = build_pipeline("logreg").set_params(clean__macro="nr.employed")
                model.fit(X[rows], y[rows])
                raw = model.predict_proba(X)[:, 1]
                sample = rng.choice(np.flatnonzero(rows), REFERENCE_ROWS, replace=False)
                trained = week
            mask = weeks == week
            recent = recent_rows(weeks, week, 1000)
            calibrate = fit_recalibration("platt", raw[recent], y[recent])
            reference = (
                X.iloc[sample]
                .reset_index(drop=True)
                .assign(score=calibrate(raw[sample]), y=y[sample])
            )
            out.append(
                {
                    "week": week,
                    "label": str(frame.loc[mask, "week_label"].iloc[0]),
                    "version": f"trained-w{trained}-calibrated-w{week}",
                    "inputs": frame.loc[mask, [ID_COLUMN, *INPUT_COLUMNS]].reset_index(drop=True),
                    "probability": calibrate(raw[mask]),
                    "y": y[mask],
                    "reference": reference,
                }
            )
    return out


def period_of(week: dict, with_outcomes: bool) -> monitoring.Period:
    """The week as monitoring sees it: called customers' outcomes once they are known."""
    call = week["probability"] >= BREAK_EVEN
    called = np.where(call, 1.0, np.nan) if with_outcomes else np.full(len(call), np.nan)
    subscribed = np.where(call, week["y"].astype(float), np.nan) if with_outcomes else called
    frame = week["inputs"].assign(
        cohort_id=week["week"],
        group="model",
        call=call,
        probability=week["probability"],
        called=called,
        subscribed=subscribed,
    )
    return monitoring.Period(
        key=f"cohort:{week['week']}",
        label=week["label"],
        cohort_ids=[week["week"]],
        frame=frame,
        model_version=week["version"],
        threshold=BREAK_EVEN,
    )


def after(replayed: list[dict]) -> tuple[list[dict], float]:
    """The new rules, run every week over everything known then; alerts as first recorded."""
    references = {w["version"]: w["reference"] for w in replayed}
    limits = monitoring.AlertLimits()
    seen: dict[tuple, dict] = {}
    cache: dict = {}
    started = time.perf_counter()
    for t in range(len(replayed)):
        periods = [period_of(w, with_outcomes=j < t) for j, w in enumerate(replayed[: t + 1])]
        assessment = monitoring.assess(periods, references.__getitem__, limits, cache)
        for draft in assessment.alerts():
            key = (draft["rule"], draft["scope"], draft["subject"])
            if key not in seen:
                seen[key] = {**draft, "run_week": replayed[t]["week"]}
    return list(seen.values()), time.perf_counter() - started


def old_rules() -> ModuleType | None:
    """The monitoring module of commit 4df113a, or None without git history."""
    try:
        source = subprocess.run(
            ["git", "show", f"{BEFORE_COMMIT}:termdeposit/ops/monitoring.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("monitoring_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["monitoring_before"] = module
    exec(compile(source, "monitoring_before", "exec"), module.__dict__)  # noqa: S102
    return module


def before(replayed: list[dict], old: ModuleType) -> list[dict]:
    """The old rules: each week the newest cohort's drift and the newest week's outcomes."""
    limits = old.AlertLimits()
    conversions: list[float] = []
    alerts = []
    for t, week in enumerate(replayed):
        report = old.drift_report(
            week["inputs"], week["probability"], week["reference"], t, week["version"]
        )
        for draft in old.drift_alerts(report, limits, week["label"]):
            alerts.append({**draft, "run_week": week["week"]})
        if t == 0:
            continue
        last = replayed[t - 1]
        call = last["probability"] >= BREAK_EVEN
        y, p = last["y"][call], last["probability"][call]
        conversion = float(y.mean()) if call.any() else float("nan")
        trailing = float(np.nanmean(conversions[-4:])) if conversions else float("nan")
        row = pd.Series(
            {
                "cohort_id": t - 1,
                "week_label": last["label"],
                "trailing_conversion": trailing,
                "conversion": conversion,
                "auc": roc_auc_score(y, p) if 0 < y.sum() < len(y) else float("nan"),
                "calibration_error": expected_calibration_error(y, p)
                if call.any()
                else float("nan"),
            }
        )
        conversions.append(conversion)
        for draft in old.outcome_alerts(row, limits):
            alerts.append({**draft, "run_week": week["week"], "auc_week": last["week"]})
    return alerts


def by_kind(alerts: list[dict]) -> Counter:
    return Counter(KINDS.get(a["rule"], a["rule"]) for a in alerts)


def auc_truth(weeks: list[dict], limit: float) -> tuple[bool, str]:
    """Hindsight: the AUC over all customers of the weeks an alert judged (pairs within a
    week), and whether it really fell below the limit."""
    y = np.concatenate([w["y"] for w in weeks])
    p = np.concatenate([w["probability"] for w in weeks])
    which = np.concatenate([np.full(len(w["y"]), w["week"]) for w in weeks])
    auc, positives, negatives = monitoring.within_period_auc(y, p, which)
    names = f"week {weeks[0]['week']}" + (f"-{weeks[-1]['week']}" if len(weeks) > 1 else "")
    if np.isnan(auc):
        return False, f"{names}: AUC undefined (one class)"
    se = monitoring.auc_standard_error(auc, positives, negatives)
    fell = auc < limit
    clearly = " (clearly: upper bound below)" if auc + monitoring.Z_ONE_SIDED * se < limit else ""
    verdict = "really fell" if fell else "did NOT fall below the limit"
    return fell, f"{names} ({len(y)} customers): AUC {auc:.3f} over all: {verdict}{clearly}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    started = time.perf_counter()
    frame = load_reference()
    replayed = replay_weeks(frame)
    replay_seconds = time.perf_counter() - started
    weeks = len(replayed)
    limit = monitoring.AlertLimits().auc_min
    print(
        f"bench_monitoring: weeks {FIRST}-{LAST} ({weeks} weekly runs), "
        f"{sum(len(w['y']) for w in replayed):,} customers, {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.1f}; scoring replay {replay_seconds:.0f} s"
    )
    old = old_rules()
    results = {}
    if old is None:
        print(f"  before: git history of {BEFORE_COMMIT} not available, skipped")
    else:
        results["before"] = before(replayed, old)
    new_alerts, seconds = after(replayed)
    results["after"] = new_alerts
    print(f"  after: {weeks} weekly monitoring runs in {seconds:.0f} s")
    kinds = sorted({k for alerts in results.values() for k in by_kind(alerts)})
    print(f"\n  {'alerts by kind':<26}" + "".join(f"{name:>10}" for name in results))
    for kind in kinds:
        print(f"  {kind:<26}" + "".join(f"{by_kind(a)[kind]:>10}" for a in results.values()))
    print(f"  {'total':<26}" + "".join(f"{len(a):>10}" for a in results.values()))
    for name, alerts in results.items():
        drift = sum(by_kind(alerts)[k] for k in DRIFT_KINDS)
        per_five = drift / weeks * 5
        verdict = "meets" if per_five <= 1 else "misses"
        print(
            f"  {name}: {drift} drift alerts in {weeks} weeks = {per_five:.2f} per five weeks "
            f"({verdict} the target of at most 1)"
        )
    print("\n  AUC alerts and what the AUC over all the customers of the weeks judged says:")
    by_week = {w["week"]: w for w in replayed}
    for name, alerts in results.items():
        aucs = [a for a in alerts if KINDS.get(a["rule"]) == "AUC"]
        lines = []
        for alert in aucs:
            if "window" in alert:
                first, last = alert["window"]
                judged = replayed[first : last + 1]
            else:
                judged = [by_week[alert["auc_week"]]]
            lines.append(auc_truth(judged, limit))
        real = sum(fell for fell, _ in lines)
        print(f"  {name}: {len(aucs)} AUC alerts, {real} in weeks whose AUC really fell")
        for _, line in lines:
            print(f"    - {line}")
    print("\n  after: every alert (week first recorded, rule, message):")
    for alert in new_alerts:
        print(f"    w{alert['run_week']:>3} {alert['rule']:<16} {alert['message'][:150]}")
    print(f"\nTotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
