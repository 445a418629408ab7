"""Money at every threshold: calls, cost, expected revenue and profit, uplift, calibration.

Everything is computed once from the probabilities sorted in rank order (highest first):
cumulative sums then give the figures for any threshold in constant time, so moving the
dashboard's slider never re-scores anything. A threshold ``t`` means "call everyone whose
probability is at least ``t``"; with a call capacity the list is cut to the best ``capacity``
customers (ties broken by input order, as in :func:`termdeposit.modeling.predict.ranks_of`).

Expected figures use the model's probabilities (a calibrated model's probabilities are
expected conversion rates); realised figures use the outcomes ``y`` when a cohort carries them.

Size: Small pure functions over one ThresholdCurve (every money figure at every threshold);
they share its cumulative sums and split only by what they answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings


@dataclass(frozen=True)
class ThresholdCurve:
    """A cohort's probabilities in rank order with their cumulative sums (built once).

    Attributes:
        probabilities: probabilities sorted from highest to lowest (rank order).
        expected: ``expected[k]`` = sum of the ``k`` highest probabilities (length n + 1).
        realised: ``realised[k]`` = known subscribers among the ``k`` best (None without y).
        known: ``known[k]`` = customers with a known outcome among the ``k`` best.
    """

    probabilities: np.ndarray
    expected: np.ndarray
    realised: np.ndarray | None = None
    known: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of customers in the cohort."""
        return len(self.probabilities)

    @property
    def has_outcomes(self) -> bool:
        """True when at least one customer's outcome is known."""
        return self.known is not None and self.known[-1] > 0


def build_curve(
    probabilities: np.ndarray | pd.Series, outcomes: np.ndarray | pd.Series | None = None
) -> ThresholdCurve:
    """Sort probabilities into rank order and take the cumulative sums.

    Args:
        probabilities: one probability per customer, in any order.
        outcomes: 1 subscribed, 0 did not, NaN unknown (same order), or None.
    """
    p = np.asarray(probabilities, dtype=float)
    order = np.argsort(-p, kind="stable")
    sorted_p = p[order]
    expected = np.concatenate([[0.0], np.cumsum(sorted_p)])
    realised = known = None
    if outcomes is not None:
        y = np.asarray(outcomes, dtype=float)[order]
        is_known = ~np.isnan(y)
        if is_known.any():
            realised = np.concatenate([[0.0], np.cumsum(np.where(is_known, y, 0.0))])
            known = np.concatenate([[0], np.cumsum(is_known)])
    return ThresholdCurve(sorted_p, expected, realised, known)


def calls_at(curve: ThresholdCurve, threshold: float) -> int:
    """Number of customers whose probability is at least ``threshold``."""
    return int(np.searchsorted(-curve.probabilities, -float(threshold), side="right"))


def selected_calls(curve: ThresholdCurve, threshold: float, capacity: int | None = None) -> int:
    """Customers called at ``threshold``, cut to the best ``capacity`` when one is given."""
    calls = calls_at(curve, threshold)
    return calls if capacity is None else min(calls, max(int(capacity), 0))


@dataclass(frozen=True)
class ThresholdSummary:
    """What calling the ``calls`` best customers costs and earns.

    Realised fields are None when the cohort carries no outcomes; they count only the
    customers whose outcome is known.
    """

    threshold: float
    calls: int
    customers: int
    expected_subscriptions: float
    cost: float
    expected_revenue: float
    expected_profit: float
    profit_calling_everyone: float
    profit_calling_at_random: float
    realised_subscriptions: float | None = None
    realised_revenue: float | None = None
    realised_profit: float | None = None
    realised_profit_calling_everyone: float | None = None
    realised_profit_calling_at_random: float | None = None
    outcomes_known_called: int | None = None
    outcomes_known: int | None = None

    @property
    def share_called(self) -> float:
        """Share of the cohort that is called."""
        return self.calls / self.customers if self.customers else 0.0

    @property
    def uplift_vs_everyone(self) -> float:
        """Expected profit minus the expected profit of calling every customer."""
        return self.expected_profit - self.profit_calling_everyone

    @property
    def uplift_vs_random(self) -> float:
        """Expected profit minus that of calling as many customers chosen at random."""
        return self.expected_profit - self.profit_calling_at_random

    @property
    def realised_uplift_vs_everyone(self) -> float | None:
        """Realised profit minus the realised profit of calling everyone (None without y)."""
        if self.realised_profit is None or self.realised_profit_calling_everyone is None:
            return None
        return self.realised_profit - self.realised_profit_calling_everyone

    @property
    def realised_uplift_vs_random(self) -> float | None:
        """Realised profit minus that of as many random calls at the week's rate (None w/o y)."""
        if self.realised_profit is None or self.realised_profit_calling_at_random is None:
            return None
        return self.realised_profit - self.realised_profit_calling_at_random


def summarise(
    curve: ThresholdCurve, settings: BusinessSettings, calls: int, threshold: float
) -> ThresholdSummary:
    """Figures for calling the ``calls`` best customers (``threshold`` is recorded as given)."""
    n = curve.size
    calls = int(min(max(calls, 0), n))
    cost_per_call, value = settings.call_cost, settings.subscription_value
    expected = float(curve.expected[calls])
    everyone = money.profit(float(curve.expected[n]), n, cost_per_call, value)
    mean_p = float(curve.expected[n]) / n if n else 0.0
    at_random = money.profit(calls * mean_p, calls, cost_per_call, value)
    summary = ThresholdSummary(
        threshold=float(threshold),
        calls=calls,
        customers=n,
        expected_subscriptions=expected,
        cost=cost_per_call * calls,
        expected_revenue=value * expected,
        expected_profit=money.profit(expected, calls, cost_per_call, value),
        profit_calling_everyone=everyone,
        profit_calling_at_random=at_random,
    )
    if not curve.has_outcomes:
        return summary
    assert curve.realised is not None and curve.known is not None
    known_all = int(curve.known[n])
    realised = float(curve.realised[calls])
    known_called = int(curve.known[calls])
    rate = float(curve.realised[n]) / known_all
    return replace(
        summary,
        realised_subscriptions=realised,
        realised_revenue=value * realised,
        realised_profit=money.profit(realised, known_called, cost_per_call, value),
        realised_profit_calling_everyone=money.profit(
            float(curve.realised[n]), known_all, cost_per_call, value
        ),
        realised_profit_calling_at_random=money.profit(
            known_called * rate, known_called, cost_per_call, value
        ),
        outcomes_known_called=known_called,
        outcomes_known=known_all,
    )


def summary_at(
    curve: ThresholdCurve,
    settings: BusinessSettings,
    threshold: float,
    capacity: int | None = None,
) -> ThresholdSummary:
    """Figures at a threshold (cut to the capacity when one is given)."""
    return summarise(curve, settings, selected_calls(curve, threshold, capacity), threshold)


def cut_points(curve: ThresholdCurve) -> np.ndarray:
    """Numbers of calls a threshold can produce: 0 and the end of every group of equal scores."""
    p = curve.probabilities
    if len(p) == 0:
        return np.array([0])
    ends = np.flatnonzero(np.r_[p[1:] < p[:-1], True]) + 1
    return np.concatenate([[0], ends]) if p[0] < 1.0 else ends


def threshold_for_calls(curve: ThresholdCurve, calls: int) -> float:
    """A round threshold that calls exactly the ``calls`` best customers.

    ``calls`` must be a cut point (:func:`cut_points`). The threshold is the number with
    the fewest decimals in ``(p[calls], p[calls - 1]]`` (e.g. 0.05 rather than 0.050137).
    """
    p = curve.probabilities
    n = len(p)
    if n == 0:
        return 0.0
    calls = int(min(max(calls, 0), n))
    high = 1.0 if calls == 0 else float(p[calls - 1])
    low = float(p[calls]) if calls < n else -1.0
    if calls == 0:
        for decimals in range(1, 10):
            scale = 10**decimals
            candidate = math.ceil(p[0] * scale) / scale
            if candidate <= p[0]:
                candidate = (math.floor(p[0] * scale) + 1) / scale
            if p[0] < candidate <= 1.0:
                return candidate
        return 1.0
    for decimals in range(1, 10):
        scale = 10**decimals
        candidate = math.floor(high * scale) / scale
        if candidate > high:
            candidate = (math.floor(high * scale) - 1) / scale
        if low < candidate <= high:
            return max(candidate, 0.0)
    return high


def _best_cut(curve: ThresholdCurve, settings: BusinessSettings, realised: bool) -> int:
    cuts = cut_points(curve)
    if realised:
        if not curve.has_outcomes:
            raise ValueError("The cohort carries no outcomes.")
        assert curve.realised is not None and curve.known is not None
        subscribers, calls = curve.realised[cuts], curve.known[cuts]
    else:
        subscribers, calls = curve.expected[cuts], cuts
    return money.best_cut(
        cuts, subscribers, calls, settings.call_cost, settings.subscription_value
    )


def optimal_calls(curve: ThresholdCurve, settings: BusinessSettings) -> int:
    """Number of calls that maximises expected profit (the fewest calls among equal optima)."""
    return _best_cut(curve, settings, realised=False)


def optimal_threshold(curve: ThresholdCurve, settings: BusinessSettings) -> float:
    """The threshold that maximises expected profit."""
    return threshold_for_calls(curve, optimal_calls(curve, settings))


def hindsight_calls(curve: ThresholdCurve, settings: BusinessSettings) -> int:
    """The number of calls that would have maximised realised profit (needs outcomes)."""
    return _best_cut(curve, settings, realised=True)


def hindsight_threshold(curve: ThresholdCurve, settings: BusinessSettings) -> float:
    """The threshold that would have maximised realised profit (needs outcomes)."""
    return threshold_for_calls(curve, hindsight_calls(curve, settings))


def capacity_calls(curve: ThresholdCurve, capacity: int) -> int:
    """The largest number of calls a threshold can give without exceeding the capacity."""
    cuts = cut_points(curve)
    fitting = cuts[cuts <= max(int(capacity), 0)]
    return int(fitting[-1]) if len(fitting) else 0


def capacity_threshold(curve: ThresholdCurve, capacity: int | None) -> float | None:
    """The lowest threshold whose calls fit the capacity (None when there is no capacity)."""
    if capacity is None:
        return None
    return threshold_for_calls(curve, capacity_calls(curve, capacity))


def curve_table(
    curve: ThresholdCurve, settings: BusinessSettings, max_points: int = 800
) -> pd.DataFrame:
    """Figures at (up to ``max_points``) thresholds, for the curves over all thresholds.

    Columns: ``calls``, ``threshold`` (lowest probability called), ``share_called``,
    ``expected_subscriptions``, ``cost``, ``expected_revenue``, ``expected_profit``, ``gain``
    (share of expected subscriptions reached), ``lift``; with outcomes also
    ``realised_subscriptions``, ``realised_profit`` and ``realised_gain``. The profit-optimal
    cut and both ends are always included.
    """
    n = curve.size
    cuts = cut_points(curve)
    if len(cuts) > max_points:
        picks = np.linspace(0, len(cuts) - 1, max_points).round().astype(int)
        cuts = np.unique(np.append(cuts[picks], optimal_calls(curve, settings)))
    p = curve.probabilities
    thresholds = np.where(cuts > 0, p[np.maximum(cuts - 1, 0)] if n else 0.0, 1.0)
    expected = curve.expected[cuts]
    total = float(curve.expected[n]) if n else 0.0
    share = cuts / n if n else np.zeros(len(cuts))
    table = pd.DataFrame(
        {
            "calls": cuts,
            "threshold": thresholds,
            "share_called": share,
            "expected_subscriptions": expected,
            "cost": settings.call_cost * cuts,
            "expected_revenue": settings.subscription_value * expected,
            "expected_profit": money.profit(
                expected, cuts, settings.call_cost, settings.subscription_value
            ),
            "gain": expected / total if total > 0 else np.zeros(len(cuts)),
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        table["lift"] = np.where(share > 0, table["gain"] / share, np.nan)
    if curve.has_outcomes:
        assert curve.realised is not None and curve.known is not None
        realised = curve.realised[cuts]
        table["realised_subscriptions"] = realised
        table["realised_profit"] = money.profit(
            realised, curve.known[cuts], settings.call_cost, settings.subscription_value
        )
        subscribers = float(curve.realised[n])
        table["realised_gain"] = realised / subscribers if subscribers > 0 else np.nan
    return table


def calibration_table(
    outcomes: np.ndarray | pd.Series,
    probabilities: np.ndarray | pd.Series,
    bins: int = 10,
    strategy: str = "quantile",
) -> pd.DataFrame:
    """Reliability bins: predicted versus observed conversion (customers with known y only).

    Args:
        bins: number of bins.
        strategy: ``quantile`` (equal numbers of customers, readable for a skewed week) or
            ``uniform`` (equal-width probability bins, 0-10%, 10-20%, ...).

    Returns:
        One row per non-empty bin: ``low``, ``high`` (probability range), ``customers``,
        ``mean_probability``, ``observed_rate``, ``subscribers``.
    """
    y = np.asarray(outcomes, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    known = ~np.isnan(y)
    y, p = y[known], p[known]
    columns = ["low", "high", "customers", "mean_probability", "observed_rate", "subscribers"]
    if len(y) == 0:
        return pd.DataFrame(columns=columns)
    if strategy == "quantile":
        order = np.argsort(p, kind="stable")
        groups = [g for g in np.array_split(order, min(bins, len(order))) if len(g)]
    elif strategy == "uniform":
        which = np.minimum((p * bins).astype(int), bins - 1)
        groups = [np.flatnonzero(which == b) for b in range(bins)]
        groups = [g for g in groups if len(g)]
    else:
        raise ValueError(f"Unknown strategy {strategy!r}; use 'quantile' or 'uniform'.")
    rows = [
        {
            "low": float(p[g].min()),
            "high": float(p[g].max()),
            "customers": len(g),
            "mean_probability": float(p[g].mean()),
            "observed_rate": float(y[g].mean()),
            "subscribers": int(y[g].sum()),
        }
        for g in groups
    ]
    return pd.DataFrame(rows, columns=columns)


def calls_for_budget(curve: ThresholdCurve, settings: BusinessSettings, budget: float) -> int:
    """The most calls a budget in euros pays for, at a threshold (whole groups of equal scores).

    With a call cost of zero every customer fits any budget.
    """
    if settings.call_cost <= 0:
        return curve.size
    affordable = int(math.floor(max(float(budget), 0.0) / settings.call_cost + 1e-9))
    return capacity_calls(curve, min(affordable, curve.size))


#: The three ways a manager can state a choice (see :func:`resolve_choice`).
CHOICE_MODES = ("threshold", "calls", "budget")


@dataclass(frozen=True)
class Choice:
    """Whom to call, as the manager put it, resolved on a cohort.

    Attributes:
        mode: ``threshold``, ``calls`` or ``budget`` (how the choice was stated).
        threshold: call everyone at or above this probability.
        calls: customers called (after the capacity, when one applies).
        budget: what those calls cost, in euros.
        capped: True when the capacity cut the calls the threshold selects.
    """

    mode: str
    threshold: float
    calls: int
    budget: float
    capped: bool = False


def resolve_choice(
    curve: ThresholdCurve,
    settings: BusinessSettings,
    mode: str,
    value: float,
    capacity: int | None = None,
) -> Choice:
    """Turn a threshold, a number of calls or a budget into the same (threshold, calls, budget).

    A number of calls or a budget is met by the lowest threshold whose calls fit it (customers
    with equal scores are called together), so the three controls always agree. The capacity,
    when given, cuts the calls as on the call list.

    Args:
        mode: ``threshold`` (``value`` a probability), ``calls`` (a count) or ``budget`` (euros).
        value: the amount stated.
        capacity: the most calls the call centre can make, or None.

    Raises:
        ValueError: an unknown mode.
    """
    if mode == "threshold":
        threshold = min(max(float(value), 0.0), 1.0)
    elif mode == "calls":
        wanted = int(min(max(round(float(value)), 0), curve.size))
        threshold = threshold_for_calls(curve, capacity_calls(curve, wanted))
    elif mode == "budget":
        threshold = threshold_for_calls(curve, calls_for_budget(curve, settings, value))
    else:
        raise ValueError(f"Unknown choice mode {mode!r}; use one of {CHOICE_MODES}.")
    wanted = calls_at(curve, threshold)
    calls = selected_calls(curve, threshold, capacity)
    return Choice(mode, threshold, calls, settings.call_cost * calls, capped=calls < wanted)


def recommended_calls(
    curve: ThresholdCurve, settings: BusinessSettings, capacity: int | None = None
) -> int:
    """The most profitable number of calls that fits the capacity.

    Expected profit rises while the next customer's probability is above break-even and falls
    after, so under a capacity the best is the smaller of the unlimited optimum and the most
    calls a threshold can give within the capacity.
    """
    best = optimal_calls(curve, settings)
    return best if capacity is None else min(best, capacity_calls(curve, capacity))


def recommended_threshold(
    curve: ThresholdCurve, settings: BusinessSettings, capacity: int | None = None
) -> float:
    """The threshold that follows the money: most expected profit within the capacity."""
    return threshold_for_calls(curve, recommended_calls(curve, settings, capacity))


@dataclass(frozen=True)
class Shortfall:
    """How much a choice earns less than the better simple policy (call everyone or nobody).

    Attributes:
        policy: ``everyone`` or ``nobody``.
        policy_profit: expected profit of that policy.
        amount: expected profit given up by the choice (positive).
    """

    policy: str
    policy_profit: float
    amount: float

    def sentence(self, what: str = "This choice") -> str:
        """The shortfall in words, e.g. "earns €598 less than calling nobody (€0)"."""
        other = "calling everyone" if self.policy == "everyone" else "calling nobody"
        return (
            f"{what} is expected to earn {format_money(self.amount)} less than {other} "
            f"({format_money(self.policy_profit)})."
        )


def shortfall(
    summary: ThresholdSummary, tolerance: float = 0.5, everyone_possible: bool = True
) -> Shortfall | None:
    """The simple policy a choice loses to, with the amount; None when it earns at least as much.

    Args:
        summary: the figures of the choice (:func:`summary_at`).
        tolerance: differences under this many euros are rounding, not a loss.
        everyone_possible: False when a capacity rules out calling everyone (then only
            calling nobody is compared).
    """
    everyone = summary.profit_calling_everyone if everyone_possible else -math.inf
    nobody = 0.0
    policy, best = ("everyone", everyone) if everyone > nobody else ("nobody", nobody)
    gap = best - summary.expected_profit
    return Shortfall(policy, best, gap) if gap > tolerance else None


def describe_against(value: float, baseline: float, baseline_name: str) -> str:
    """A figure against a baseline in words that hold when the baseline loses money.

    ``+4.0% more than calling everyone`` only makes sense for a positive baseline; when the
    baseline is zero or a loss the amounts are given instead ("€19,890 where calling
    everyone loses €44,740").
    """
    if baseline > 0:
        change = (value - baseline) / baseline
        word = "more" if change >= 0 else "less"
        return f"{100 * abs(change):.1f}% {word} than {baseline_name}"
    verb = "loses" if baseline < 0 else "earns"
    amount = format_money(abs(baseline))
    return f"{format_money(value)} where {baseline_name} {verb} {amount}"


def capped_curve_table(
    curve: ThresholdCurve,
    settings: BusinessSettings,
    capacity: int | None = None,
    max_points: int = 800,
) -> pd.DataFrame:
    """:func:`curve_table` with every threshold's calls cut to the capacity.

    Below the threshold that fills the capacity, lowering the threshold adds no call: the
    figures stay flat there, as on the call list. ``capped`` marks those rows.
    """
    table = curve_table(curve, settings, max_points)
    table["capped"] = False
    if capacity is None or curve.size == 0:
        return table
    limit = min(int(capacity), curve.size)
    over = table["calls"] > limit
    if not over.any():
        return table
    n = curve.size
    expected = float(curve.expected[limit])
    table.loc[over, "calls"] = limit
    table.loc[over, "share_called"] = limit / n
    table.loc[over, "expected_subscriptions"] = expected
    table.loc[over, "cost"] = settings.call_cost * limit
    table.loc[over, "expected_revenue"] = settings.subscription_value * expected
    table.loc[over, "expected_profit"] = settings.subscription_value * expected - (
        settings.call_cost * limit
    )
    total = float(curve.expected[n])
    table.loc[over, "gain"] = expected / total if total > 0 else 0.0
    table.loc[over, "lift"] = (expected / total) / (limit / n) if total > 0 and limit else np.nan
    if curve.has_outcomes:
        assert curve.realised is not None and curve.known is not None
        realised = float(curve.realised[limit])
        table.loc[over, "realised_subscriptions"] = realised
        table.loc[over, "realised_profit"] = settings.subscription_value * realised - (
            settings.call_cost * float(curve.known[limit])
        )
        subscribers = float(curve.realised[n])
        table.loc[over, "realised_gain"] = realised / subscribers if subscribers > 0 else np.nan
    table["capped"] = over
    return table


def decile_table(curve: ThresholdCurve, groups: int = 10) -> pd.DataFrame:
    """The cohort in tenths by rank: scores, expected and realised subscribers, precision.

    Columns: ``decile`` (1 = best tenth), ``customers``, ``lowest``, ``highest`` (probabilities),
    ``expected_rate`` (mean probability), ``cumulative_expected_precision`` (expected
    subscribers per call when calling down to this tenth), ``cumulative_expected_gain``; with
    outcomes also ``subscribers``, ``rate``, ``cumulative_precision``, ``cumulative_gain``
    (share of the week's subscribers reached) and ``cumulative_lift``.
    """
    n = curve.size
    ends = np.unique(np.ceil(np.arange(1, groups + 1) * n / groups).astype(int))
    ends = ends[ends > 0]
    starts = np.concatenate([[0], ends[:-1]])
    p, expected = curve.probabilities, curve.expected
    total = float(expected[n]) if n else 0.0
    table = pd.DataFrame(
        {
            "decile": np.arange(1, len(ends) + 1),
            "customers": ends - starts,
            "lowest": p[ends - 1] if n else [],
            "highest": p[starts] if n else [],
            "expected_rate": (expected[ends] - expected[starts]) / np.maximum(ends - starts, 1),
            "cumulative_expected_precision": expected[ends] / ends,
            "cumulative_expected_gain": expected[ends] / total if total > 0 else np.nan,
        }
    )
    if curve.has_outcomes:
        assert curve.realised is not None and curve.known is not None
        realised, known = curve.realised, curve.known
        subscribers = float(realised[n])
        known_in = known[ends] - known[starts]
        with np.errstate(divide="ignore", invalid="ignore"):
            table["subscribers"] = (realised[ends] - realised[starts]).astype(int)
            table["rate"] = np.where(known_in > 0, table["subscribers"] / known_in, np.nan)
            table["cumulative_precision"] = np.where(
                known[ends] > 0, realised[ends] / known[ends], np.nan
            )
            table["cumulative_gain"] = realised[ends] / subscribers if subscribers else np.nan
            base = subscribers / float(known[n])
            table["cumulative_lift"] = table["cumulative_precision"] / base if base else np.nan
    return table


@dataclass(frozen=True)
class Confusion:
    """Called or not against subscribed or not, among customers whose outcome is known."""

    called_subscribed: int
    called_not: int
    not_called_subscribed: int
    not_called_not: int

    @property
    def precision(self) -> float | None:
        """Share of the known calls that subscribed."""
        called = self.called_subscribed + self.called_not
        return self.called_subscribed / called if called else None

    @property
    def recall(self) -> float | None:
        """Share of the subscribers that were called."""
        subscribers = self.called_subscribed + self.not_called_subscribed
        return self.called_subscribed / subscribers if subscribers else None

    def table(self) -> pd.DataFrame:
        """A 2 x 2 table with plain row and column names."""
        return pd.DataFrame(
            {
                "Subscribed": [self.called_subscribed, self.not_called_subscribed],
                "Did not subscribe": [self.called_not, self.not_called_not],
            },
            index=pd.Index(["Called", "Not called"], name="At this choice"),
        )


def confusion_at(curve: ThresholdCurve, calls: int) -> Confusion | None:
    """The confusion matrix of calling the ``calls`` best customers (None without outcomes)."""
    if not curve.has_outcomes:
        return None
    assert curve.realised is not None and curve.known is not None
    n = curve.size
    calls = int(min(max(calls, 0), n))
    hit = int(round(float(curve.realised[calls])))
    known_called = int(curve.known[calls])
    subscribers = int(round(float(curve.realised[n])))
    known_all = int(curve.known[n])
    missed = subscribers - hit
    return Confusion(
        called_subscribed=hit,
        called_not=known_called - hit,
        not_called_subscribed=missed,
        not_called_not=known_all - known_called - missed,
    )


@dataclass(frozen=True)
class Scenario:
    """Named money settings and a choice, to compare on the same cohort.

    Attributes:
        name: what the manager called it.
        call_cost, subscription_value: the money settings.
        capacity: the most calls, or None.
        mode, value: the choice (:func:`resolve_choice`); mode ``recommended`` follows the money.
    """

    name: str
    call_cost: float
    subscription_value: float
    capacity: int | None
    mode: str
    value: float

    @property
    def settings(self) -> BusinessSettings:
        """The scenario's business settings."""
        return BusinessSettings(self.call_cost, self.subscription_value, self.capacity)

    def choose(self, curve: ThresholdCurve) -> Choice:
        """The scenario's choice on a cohort."""
        if self.mode == "recommended":
            threshold = recommended_threshold(curve, self.settings, self.capacity)
            return resolve_choice(curve, self.settings, "threshold", threshold, self.capacity)
        return resolve_choice(curve, self.settings, self.mode, self.value, self.capacity)

    def describe(self) -> str:
        """The settings in one line."""
        how = {
            "recommended": "the most profitable choice",
            "threshold": f"threshold {format_percent(self.value, 2)}",
            "calls": f"{format_count(self.value)} calls",
            "budget": f"budget {format_money(self.value)}",
        }.get(self.mode, self.mode)
        capacity = (
            "no capacity limit"
            if self.capacity is None
            else (f"capacity {format_count(self.capacity)}")
        )
        return (
            f"cost {format_money(self.call_cost, 2)} per call, value "
            f"{format_money(self.subscription_value, 2)}, {capacity}, {how}"
        )


def compare_scenarios(
    curve: ThresholdCurve,
    scenarios: list[Scenario],
    profit_range: Callable[[int, BusinessSettings], tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Each scenario's calls, cost, expected profit (with its 80% range when ``profit_range``
    gives it: e.g. :meth:`termdeposit.decisions.forecast.ProfitForecaster.profit`) and the
    overlap of the lists, on one cohort.

    Both lists are the best-ranked customers of the same cohort, so two lists share the
    smaller one entirely: ``overlap`` is the customers on both lists, ``overlap_share`` that
    number over the scenario's own calls.
    """
    rows = []
    choices = [s.choose(curve) for s in scenarios]
    for scenario, choice in zip(scenarios, choices, strict=True):
        summary = summarise(curve, scenario.settings, choice.calls, choice.threshold)
        others = [c.calls for c in choices if c is not choice] or [choice.calls]
        overlap = min(choice.calls, *others)
        low, high = (
            profit_range(choice.calls, scenario.settings)
            if profit_range is not None and choice.calls
            else (math.nan, math.nan)
        )
        rows.append(
            {
                "scenario": scenario.name,
                "settings": scenario.describe(),
                "threshold": choice.threshold,
                "calls": choice.calls,
                "cost": summary.cost,
                "expected_subscriptions": summary.expected_subscriptions,
                "expected_profit": summary.expected_profit,
                "profit_low": low,
                "profit_high": high,
                "overlap": overlap,
                "overlap_share": overlap / choice.calls if choice.calls else None,
                "realised_profit": summary.realised_profit,
            }
        )
    return pd.DataFrame(rows)


def format_money(value: float | None, decimals: int = 0) -> str:
    """Euros with thousands separators: ``€12,345``, ``-€1,234``, ``€5.00`` (decimals=2)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    rounded = round(float(value), decimals)
    sign = "-" if rounded < 0 else ""
    return f"{sign}€{abs(rounded):,.{decimals}f}"


def format_signed_money(value: float | None, decimals: int = 0) -> str:
    """Money with an explicit sign, for differences: ``+€1,234``, ``-€56``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = format_money(value, decimals)
    return text if text.startswith("-") else "+" + text


def describe_difference(value: float | None, decimals: int = 0) -> str:
    """A money difference in words: ``€1,234 more``, ``€56 less``, ``the same``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if round(float(value), decimals) == 0:
        return "the same"
    word = "more" if value > 0 else "less"
    return f"{format_money(abs(float(value)), decimals)} {word}"


def format_percent(value: float | None, decimals: int = 1) -> str:
    """A share as a percentage: ``0.1234`` -> ``12.3%``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):,.{decimals}f}%"


def format_count(value: float | None, decimals: int = 0) -> str:
    """A count with thousands separators: ``12,345`` (or ``123.4`` with decimals=1)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):,.{decimals}f}"
