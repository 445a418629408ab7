"""Metrics reported for every model: ranking, calibration and how well the top is chosen."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def expected_calibration_error(y: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate - mean score| over equal-width probability bins."""
    y = np.asarray(y, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if len(y) == 0:
        return float("nan")
    which = np.minimum((scores * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - scores[mask].mean())
    return float(total / len(y))


def share_in_top(y: np.ndarray, scores: np.ndarray, fraction: float) -> float:
    """Share of all subscribers found among the top ``fraction`` of customers by score."""
    y = np.asarray(y, dtype=float)
    if y.sum() == 0:
        return float("nan")
    k = int(np.ceil(len(y) * fraction))
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return float(y[order[:k]].sum() / y.sum())


def classification_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC, average precision, Brier, ECE (10 bins), top-10%/50% share and top-10% lift."""
    y = np.asarray(y, dtype=int)
    scores = np.asarray(scores, dtype=float)
    base_rate = float(y.mean())
    top10 = share_in_top(y, scores, 0.10)
    return {
        "rows": int(len(y)),
        "base_rate": round(base_rate, 5),
        "mean_score": round(float(scores.mean()), 5),
        "auc": round(float(roc_auc_score(y, scores)), 5),
        "average_precision": round(float(average_precision_score(y, scores)), 5),
        "brier": round(float(brier_score_loss(y, scores)), 5),
        "ece": round(expected_calibration_error(y, scores), 5),
        "top10_share": round(top10, 5),
        "top50_share": round(share_in_top(y, scores, 0.50), 5),
        "lift_top10": round(top10 / 0.10, 4),
    }
