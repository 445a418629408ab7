"""Statistics behind the monitoring rules: PSI (and what chance alone gives), an AUC estimated
from calibrated scores, standard errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

#: PSI bands: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 significant shift.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25
#: One-sided 95% normal quantile: "clearly past the limit".
Z_ONE_SIDED = 1.645
#: Smallest share used for an empty bin, so PSI stays finite.
_EPSILON = 1e-4

# -- PSI ----------------------------------------------------------------------------------------


def psi_band(value: float) -> str:
    """``stable`` (< 0.1), ``moderate`` (0.1-0.25) or ``significant`` (> 0.25)."""
    if np.isnan(value):
        return "n/a"
    if value > PSI_SIGNIFICANT:
        return "significant"
    return "moderate" if value >= PSI_MODERATE else "stable"


def bin_shares(
    expected: np.ndarray | pd.Series, actual: np.ndarray | pd.Series, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Shares of the reference and current values per bin, and the bin labels.

    Numbers are cut at the reference's deciles (repeated edges merged; the outer bins are
    open, so new extremes land in them); anything else is one bin per category.
    """
    expected = pd.Series(expected).dropna()
    actual = pd.Series(actual).dropna()
    if not pd.api.types.is_numeric_dtype(expected) or not pd.api.types.is_numeric_dtype(actual):
        e_share = expected.astype(str).value_counts(normalize=True)
        a_share = actual.astype(str).value_counts(normalize=True)
        categories = sorted(e_share.index.union(a_share.index))
        e_share = e_share.reindex(categories, fill_value=0)
        a_share = a_share.reindex(categories, fill_value=0)
        return e_share.to_numpy(float), a_share.to_numpy(float), categories
    values = expected.to_numpy(float)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    count = len(edges) + 1
    e = np.bincount(np.searchsorted(edges, values, side="right"), minlength=count) / len(values)
    current = actual.to_numpy(float)
    a = np.bincount(np.searchsorted(edges, current, side="right"), minlength=count) / max(
        len(current), 1
    )
    bounds = [-np.inf, *edges, np.inf]
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return e, a, labels


def chance_psi(rows: int, reference_rows: int, bins: int) -> float:
    """The PSI chance alone gives two samples of these sizes from one population.

    PSI is the symmetric Kullback-Leibler divergence of the binned shares; for samples of n
    and N rows from one population its expectation is about (bins - 1) x (1/n + 1/N) (checked
    by simulation for n from 30 to 2,000 with the smoothing of :func:`psi_parts`).
    """
    if rows == 0 or reference_rows == 0:
        return float("nan")
    return (bins - 1) * (1 / rows + 1 / reference_rows)


def psi_parts(
    expected: np.ndarray | pd.Series, actual: np.ndarray | pd.Series, bins: int = 10
) -> tuple[float, float]:
    """The PSI of ``actual`` against ``expected``, and the part of it beyond chance.

    The PSI is the usual one: sum (a - e) ln(a / e) over the bins, an empty bin counted as a
    share of 0.0001. The part beyond chance is computed on counts plus one half per bin (so an
    empty bin in a small sample does not explode it), less :func:`chance_psi`; never below 0.
    """
    expected = pd.Series(expected).dropna()
    actual = pd.Series(actual).dropna()
    if len(expected) == 0 or len(actual) == 0:
        return float("nan"), float("nan")
    e, a, _ = bin_shares(expected, actual, bins)
    raw = float(
        np.sum(
            (np.clip(a, _EPSILON, None) - np.clip(e, _EPSILON, None))
            * np.log(np.clip(a, _EPSILON, None) / np.clip(e, _EPSILON, None))
        )
    )
    k = len(e)
    n, big_n = len(actual), len(expected)
    smooth_a = (a * n + 0.5) / (n + 0.5 * k)
    smooth_e = (e * big_n + 0.5) / (big_n + 0.5 * k)
    smoothed = float(np.sum((smooth_a - smooth_e) * np.log(smooth_a / smooth_e)))
    return raw, max(0.0, smoothed - chance_psi(n, big_n, k))


def psi(expected: np.ndarray | pd.Series, actual: np.ndarray | pd.Series, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``: sum (a - e) ln(a / e)."""
    return psi_parts(expected, actual, bins)[0]


def psi_beyond_chance(
    expected: np.ndarray | pd.Series, actual: np.ndarray | pd.Series, bins: int = 10
) -> float:
    """The PSI less what chance gives with these sample sizes (see :func:`psi_parts`)."""
    return psi_parts(expected, actual, bins)[1]


def centred_log_odds(probabilities: np.ndarray | pd.Series) -> np.ndarray:
    """Log-odds of the scores less their median: the spread of the scores, not their level.

    The week's economy is the same for every customer of a week, so it moves every score's
    log-odds together; what is left is how the model ranks this week's customers.
    """
    p = np.clip(np.asarray(probabilities, dtype=float), 1e-6, 1 - 1e-6)
    p = p[~np.isnan(p)]
    z = np.log(p / (1 - p))
    return z - np.median(z) if len(z) else z


# -- performance estimation ---------------------------------------------------------------------


def estimated_auc(probabilities: np.ndarray) -> float:
    """AUC expected from calibrated probabilities alone (no outcomes needed).

    Each customer counts as a subscriber with weight p and as a non-subscriber with weight
    1 - p; the AUC is the weighted share of (subscriber, non-subscriber) pairs ranked in the
    right order (ties count half). Exact pair weights, O(n log n).
    """
    p = np.asarray(probabilities, dtype=float)
    if len(p) < 2:
        return float("nan")
    order = np.argsort(p, kind="stable")
    p_sorted = p[order]
    negatives = 1 - p_sorted
    _, starts = np.unique(p_sorted, return_index=True)
    positives_in_tie = np.add.reduceat(p_sorted, starts)
    negatives_in_tie = np.add.reduceat(negatives, starts)
    self_pairs = np.add.reduceat(p_sorted * negatives, starts)
    negatives_below = np.concatenate([[0.0], np.cumsum(negatives)])[starts]
    # a positive beats every negative with a lower score; pairs inside a tie count half
    correct = float(
        (positives_in_tie * negatives_below).sum()
        + 0.5 * (positives_in_tie * negatives_in_tie - self_pairs).sum()
    )
    total = p.sum() * negatives.sum() - (p * (1 - p)).sum()
    return float(correct / total) if total > 0 else float("nan")


def mean_confidence(probabilities: np.ndarray) -> float:
    """Mean of max(p, 1 - p): how sure the model is of its call / no-call split."""
    p = np.asarray(probabilities, dtype=float)
    return float(np.maximum(p, 1 - p).mean()) if len(p) else float("nan")


def within_period_auc(
    y: np.ndarray, scores: np.ndarray, periods: np.ndarray
) -> tuple[float, int, int]:
    """AUC over the (subscriber, non-subscriber) pairs of the same period, pooled.

    Pairs across weeks are left out: their order says how the weeks' economies differ, not how
    well customers are ranked. Returns (AUC, subscribers, non-subscribers).
    """
    y = np.asarray(y, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    periods = np.asarray(periods)
    correct = pairs = 0.0
    for period in np.unique(periods):
        mask = periods == period
        pos, neg = int(y[mask].sum()), int((~y[mask]).sum())
        if pos == 0 or neg == 0:
            continue
        ranks = rankdata(scores[mask])
        correct += ranks[y[mask]].sum() - pos * (pos + 1) / 2
        pairs += pos * neg
    positives, negatives = int(y.sum()), int((~y).sum())
    return (correct / pairs if pairs else float("nan")), positives, negatives


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an AUC (Hanley and McNeil, 1982)."""
    if np.isnan(auc) or positives == 0 or negatives == 0:
        return float("nan")
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def chance_calibration_error(scores: np.ndarray, bins: int = 10) -> float:
    """The calibration error a perfectly calibrated model shows on this many rows, by chance.

    In each bin the observed rate of n customers with mean score p wanders by about
    sqrt(p (1 - p) / n); the mean absolute value of that is sqrt(2 / pi) times it.
    """
    scores = np.asarray(scores, dtype=float)
    if len(scores) == 0:
        return float("nan")
    which = np.minimum((scores * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        part = scores[which == b]
        p = part.mean()
        total += len(part) * np.sqrt(2 / np.pi) * np.sqrt(p * (1 - p) / len(part))
    return float(total / len(scores))
