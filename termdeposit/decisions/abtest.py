"""A/B hold-out: measure the model against business as usual, with a confidence interval.

When a call list is issued, a share of the cohort (e.g. 10%) can be drawn at random as the
business-as-usual group: instead of the model's choice, a random sample of that group is
called, at the same rate as the model calls the rest. The seed is recorded, so the draw can
be repeated. When outcomes arrive, conversion and profit per customer are compared between
the groups, and the uplift (model minus business as usual, per customer of the cohort) gets a
bootstrap 95% interval.

There is one interval computation (:func:`uplift_interval`, a fixed number of resamples and a
fixed seed): the command line (``monitor``, ``ab-report``), the Outcomes and the Monitoring
pages all show the same interval for the same list. A verdict is given only when the hold-out
is large enough to tell: :func:`holdout_needed` says how many hold-out customers it takes to
detect the uplift the model's probabilities promise (80% power, 5% two-sided), and a result
on fewer customers (or on fewer than :data:`MIN_HOLDOUT_CALLS` calls) carries a warning.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN
from termdeposit.storage.store import Store, open_store

MODEL = "model"
HOLDOUT = "holdout"
#: Largest hold-out share offered: beyond it too many customers lose the model's choice.
MAX_SHARE = 0.5
#: Resamples and seed of the one bootstrap interval every front door shows.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
#: Fewer hold-out calls with a result than this: too few to say anything about conversion.
MIN_HOLDOUT_CALLS = 30
#: Power and two-sided significance of the hold-out size needed.
POWER = 0.8
ALPHA = 0.05


@dataclass
class HoldoutPlan:
    """Who is in which group and who is to be called.

    Attributes:
        members: every customer of the cohort: ``customer_id``, ``group`` (model / holdout),
            ``call`` (to be called), ``probability``.
        share: the hold-out share asked for.
        seed: the random seed of the draw (recorded with the call list).
        model_rate: share of the model group the model calls (the hold-out is called at it).
    """

    members: pd.DataFrame
    share: float
    seed: int | None
    model_rate: float

    @property
    def calls(self) -> int:
        """Customers to call in both groups."""
        return int(self.members["call"].sum())

    def describe(self) -> str:
        """The counts in words: who is called, chosen how, out of which group."""
        return describe_counts(self.members)

    def to_call(self) -> pd.DataFrame:
        """The customers to call: the model's choices best first, then the hold-out's."""
        chosen = self.members[self.members["call"]]
        order = chosen.assign(_g=(chosen["group"] == HOLDOUT).astype(int)).sort_values(
            ["_g", "probability"], ascending=[True, False], kind="stable"
        )
        return order.drop(columns="_g").reset_index(drop=True)


def describe_counts(members: pd.DataFrame) -> str:
    """'49 customers to call: 44 chosen by the model, 5 drawn at random from the 48-customer
    business-as-usual group' (``members``: group and call of every customer of the cohort)."""
    calls = members["call"].astype(bool)
    held = members["group"] == HOLDOUT
    total = int(calls.sum())
    if not held.any():
        return f"{total:,} customers to call, all chosen by the model"
    return (
        f"{total:,} customers to call: {int((calls & ~held).sum()):,} chosen by the model, "
        f"{int((calls & held).sum()):,} drawn at random from the {int(held.sum()):,}-customer "
        "business-as-usual group"
    )


def new_seed() -> int:
    """A fresh random seed (recorded, so the draw can be repeated)."""
    return secrets.randbelow(2**31 - 1)


def check_share(share: float) -> float:
    """Refuse hold-out shares outside 0 ... 0.5."""
    if not 0.0 <= float(share) <= MAX_SHARE:
        raise TermDepositError(
            f"The hold-out share must be between 0 and {MAX_SHARE:.0%}, not {share}.",
            hint="10% (0.1) is usual: enough to measure, few customers without the model.",
        )
    return float(share)


def plan_holdout(
    customer_ids: pd.Series,
    probabilities: np.ndarray,
    model_calls: np.ndarray,
    share: float = 0.0,
    seed: int | None = None,
) -> HoldoutPlan:
    """Draw the business-as-usual group and decide who is called in each group.

    Args:
        customer_ids: every customer of the cohort.
        probabilities: their scores.
        model_calls: True where the model's call list (threshold, capacity, do-not-call)
            would call the customer.
        share: share of the cohort drawn as the hold-out (0 = no A/B test).
        seed: random seed (a new one is drawn and recorded when None).
    """
    share = check_share(share)
    ids = pd.Series(customer_ids).astype(str).reset_index(drop=True)
    p = np.asarray(probabilities, dtype=float)
    chosen = np.asarray(model_calls, dtype=bool)
    n = len(ids)
    if not (len(p) == len(chosen) == n):
        raise TermDepositError("Ids, probabilities and calls must describe the same customers.")
    holdout = np.zeros(n, dtype=bool)
    calls = chosen.copy()
    rate = float(chosen.mean()) if n else 0.0
    if share > 0 and n:
        seed = new_seed() if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        size = int(round(share * n))
        holdout[rng.choice(n, size=size, replace=False)] = True
        model_group = ~holdout
        rate = float(chosen[model_group].mean()) if model_group.any() else 0.0
        calls = chosen & model_group
        members = np.flatnonzero(holdout)
        picked = rng.choice(members, size=int(round(rate * len(members))), replace=False)
        calls[picked] = True
    else:
        seed = None
    frame = pd.DataFrame(
        {
            ID_COLUMN: ids,
            "group": np.where(holdout, HOLDOUT, MODEL),
            "call": calls,
            "probability": p,
        }
    )
    return HoldoutPlan(frame, share, seed, rate)


def issue_call_list(
    plan: HoldoutPlan,
    *,
    file_sha256: str,
    model_version: str,
    threshold: float | None,
    settings: BusinessSettings,
    store: Store | None = None,
    user: str | None = None,
) -> int:
    """Record an issued call list (with its hold-out draw) for the cohort of a scored file.

    Raises:
        TermDepositError: the file was never scored (so it is not in the prediction log).
    """
    store = store or open_store()
    cohorts = store.cohorts()
    match = cohorts[cohorts["file_sha256"] == file_sha256] if len(cohorts) else cohorts
    if match.empty:
        raise TermDepositError(
            "This cohort is not in the prediction log, so its call list cannot be recorded.",
            hint="Score it with logging on (the default), then issue the list again.",
        )
    return store.record_call_list(
        cohort_id=int(match.iloc[0]["id"]),
        model_version=model_version,
        members=plan.members,
        threshold=threshold,
        call_cost=settings.call_cost,
        subscription_value=settings.subscription_value,
        capacity=settings.capacity,
        ab_share=plan.share,
        ab_seed=plan.seed,
        user=user,
    )


@dataclass
class GroupFigures:
    """Realised figures of one group."""

    group: str
    customers: int
    planned_calls: int
    outcomes_recorded: int
    calls: int
    subscribers: int
    conversion: float
    profit: float
    profit_per_customer: float


@dataclass(frozen=True)
class GroupCounts:
    """A group's customers by what happened to them: the three profits a customer can bring."""

    customers: int
    calls: int
    subscribers: int

    def profit_per_customer(self, cost: float, value: float) -> float:
        """Realised profit per customer of the group (not called: 0)."""
        if self.customers == 0:
            return float("nan")
        return (value * self.subscribers - cost * self.calls) / self.customers


def uplift_interval(
    model: GroupCounts,
    holdout: GroupCounts,
    cost: float,
    value: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Bootstrap 95% intervals of the uplift per customer and of the conversion difference.

    Resampling a group's customers with replacement only changes how many of them fall in
    each of three kinds (not called, called without subscribing, subscribed), so each
    resample is one multinomial draw of those counts: exact, and fast at any cohort size.
    The one computation behind every interval shown (fixed resamples and seed).

    Returns:
        ((low, high) of the profit uplift per customer, (low, high) of model minus
        business-as-usual conversion among the called).
    """
    rng = np.random.default_rng(seed)
    profit = np.zeros(resamples)
    conversion = np.zeros(resamples)
    for sign, group in ((1.0, model), (-1.0, holdout)):
        if group.customers == 0:
            nan = (float("nan"), float("nan"))
            return nan, nan
        shares = (
            np.array(
                [
                    group.customers - group.calls,
                    group.calls - group.subscribers,
                    group.subscribers,
                ],
                dtype=float,
            )
            / group.customers
        )
        counts = rng.multinomial(group.customers, shares, size=resamples)
        calls = counts[:, 1] + counts[:, 2]
        subs = counts[:, 2]
        profit += sign * (value * subs - cost * calls) / group.customers
        with np.errstate(invalid="ignore", divide="ignore"):
            conversion += sign * np.where(calls > 0, subs / np.maximum(calls, 1), np.nan)
    return _interval(profit), _interval(conversion)


@dataclass(frozen=True)
class PowerCheck:
    """How large a hold-out must be to tell the model from business as usual.

    Attributes:
        expected_uplift: profit per customer the model should add, from its probabilities.
        needed: hold-out customers needed (80% power, 5% two-sided), None when even half the
            cohort would not do (or the model promises no uplift).
        actual: hold-out customers drawn.
        cohort: customers in the cohort.
    """

    expected_uplift: float
    needed: int | None
    actual: int
    cohort: int

    @property
    def enough(self) -> bool:
        """True when the hold-out is at least the size needed."""
        return self.needed is not None and self.actual >= self.needed

    def describe(self) -> str:
        """The hold-out size needed, in words."""
        promise = f"the {self.expected_uplift:+.2f} per customer the model's probabilities promise"
        if self.expected_uplift <= 0:
            return (
                "The model's probabilities promise no uplift over business as usual here, so "
                "no hold-out size can show one."
            )
        if self.needed is None:
            return (
                f"Even a hold-out of half of these {self.cohort:,} customers could not detect "
                f"{promise}: judge the A/B test over several weeks together."
            )
        return (
            f"Detecting {promise} takes a hold-out of about {self.needed:,} customers "
            f"({self.needed / max(self.cohort, 1):.0%} of the cohort; 80% power); "
            f"this one has {self.actual:,}."
        )


def holdout_needed(
    probabilities: np.ndarray,
    model_calls: np.ndarray,
    holdout: np.ndarray,
    cost: float,
    value: float,
) -> PowerCheck:
    """The hold-out size needed to detect the uplift the model's probabilities promise.

    Expected profit per customer: model group, the mean of call x (value x p - cost) over its
    customers; business as usual, the call rate x (value x mean p - cost). Their variances
    follow from the same probabilities. The size is the smallest hold-out n (the model group
    keeping the rest of the cohort) for which a two-sided 5% test has 80% power.

    Args:
        probabilities: every customer's probability.
        model_calls: True where the model calls the customer (model group only).
        holdout: True for customers of the hold-out group.
    """
    p = np.asarray(probabilities, dtype=float)
    calls = np.asarray(model_calls, dtype=bool)
    held = np.asarray(holdout, dtype=bool)
    n = len(p)
    in_model = ~held if held.any() else np.ones(n, dtype=bool)
    rate = float(calls[in_model].mean()) if in_model.any() else 0.0
    gain = np.where(calls, value * p - cost, 0.0)
    square = np.where(calls, (value - cost) ** 2 * p + cost**2 * (1 - p), 0.0)
    mean_model = float(gain[in_model].mean()) if in_model.any() else 0.0
    var_model = float(square[in_model].mean()) - mean_model**2
    p_bar = float(p.mean()) if n else 0.0
    mean_bau = rate * (value * p_bar - cost)
    var_bau = rate * ((value - cost) ** 2 * p_bar + cost**2 * (1 - p_bar)) - mean_bau**2
    uplift = mean_model - mean_bau
    needed = None
    if uplift > 0 and n >= 4:
        z = norm.ppf(1 - ALPHA / 2) + norm.ppf(POWER)
        sizes = np.arange(1, int(n * MAX_SHARE) + 1)
        spread = np.sqrt(var_model / (n - sizes) + var_bau / sizes)
        fits = np.flatnonzero(uplift >= z * spread)
        needed = int(sizes[fits[0]]) if len(fits) else None
    return PowerCheck(float(uplift), needed, int(held.sum()), n)


@dataclass
class ABResult:
    """Model against business as usual for one call list."""

    call_list_id: int
    seed: int | None
    share: float
    groups: list[GroupFigures]
    uplift_per_customer: float
    interval: tuple[float, float]
    conversion_uplift: float
    conversion_interval: tuple[float, float]
    cohort_size: int
    pending_calls: int
    power: PowerCheck
    counts: str

    @property
    def uplift_total(self) -> float:
        """Uplift per customer scaled to the whole cohort (model for everyone vs none)."""
        return self.uplift_per_customer * self.cohort_size

    @property
    def holdout_calls(self) -> int:
        """Hold-out customers called with a recorded result."""
        return self.groups[1].calls

    @property
    def warning(self) -> str | None:
        """Why the result cannot be trusted yet (too few hold-out calls or customers), or None."""
        notes = []
        if self.holdout_calls < MIN_HOLDOUT_CALLS:
            notes.append(
                f"Only {self.holdout_calls} business-as-usual calls have a result (at least "
                f"{MIN_HOLDOUT_CALLS} are needed to compare conversion)."
            )
        if not self.power.enough:
            notes.append(self.power.describe())
        return " ".join(notes) if notes else None

    @property
    def verdict(self) -> str:
        """What the interval says, if the hold-out is large enough to say it."""
        low, high = self.interval
        if self.warning is not None:
            return "too small to tell"
        if low > 0:
            return "the model earns more than business as usual"
        if high < 0:
            return "business as usual earns more than the model"
        return "the difference is not yet clear (the interval includes 0)"

    def table(self) -> pd.DataFrame:
        """One row per group, for display."""
        return pd.DataFrame([g.__dict__ for g in self.groups])

    def summary(self) -> str:
        """The counts, the uplift with its interval, the verdict and any warning."""
        low, high = self.interval
        text = (
            f"{self.counts}. Uplift {self.uplift_per_customer:+.2f} per customer (95% interval "
            f"{low:+.2f} to {high:+.2f}): {self.verdict}."
        )
        if self.warning:
            text += f" Warning: the hold-out is too small to tell. {self.warning}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the command line's --json)."""
        return {
            "call_list_id": self.call_list_id,
            "seed": self.seed,
            "share": self.share,
            "counts": self.counts,
            "groups": self.table().to_dict(orient="records"),
            "uplift_per_customer": self.uplift_per_customer,
            "interval": list(self.interval),
            "conversion_uplift": self.conversion_uplift,
            "conversion_interval": list(self.conversion_interval),
            "pending_calls": self.pending_calls,
            "verdict": self.verdict,
            "warning": self.warning,
            "expected_uplift": self.power.expected_uplift,
            "holdout_needed": self.power.needed,
            "holdout_customers": self.power.actual,
        }


def ab_results(store: Store | None, call_list_id: int) -> ABResult:
    """Conversion and profit per group, the uplift with its 95% interval, and a size check.

    Customers without an outcome row count as not called (no cost, no subscription); called
    customers of the list still awaiting their outcome are counted in ``pending_calls``.

    Raises:
        TermDepositError: the call list has no hold-out group, or no outcomes yet.
    """
    store = store or open_store()
    lists = store.call_lists()
    row = lists[lists["id"] == int(call_list_id)]
    if row.empty:
        raise TermDepositError(f"There is no call list {call_list_id}.")
    info = row.iloc[0]
    members = store.call_list_members(int(call_list_id))
    if not (members["group"] == HOLDOUT).any():
        raise TermDepositError(
            f"Call list {call_list_id} has no business-as-usual hold-out group.",
            hint="Issue the next call list with a hold-out share (e.g. 10%) to measure uplift.",
        )
    outcomes = store.outcomes(int(info["cohort_id"]))
    if outcomes.empty:
        raise TermDepositError(
            "No outcomes have been recorded for this cohort yet.",
            hint="Upload the week's outcomes on the Outcomes page or with 'termdeposit feedback'.",
        )
    cost, value = float(info["call_cost"]), float(info["subscription_value"])
    merged = members.merge(outcomes, on=ID_COLUMN, how="left")
    known = merged["called"].notna().to_numpy()
    called = merged["called"].fillna(False).astype(bool).to_numpy()
    subscribed = merged["subscribed"].fillna(False).astype(bool).to_numpy() & called
    profit = money.profit(subscribed, called, cost, value)
    groups = []
    counts = {}
    for name in (MODEL, HOLDOUT):
        mask = (merged["group"] == name).to_numpy()
        calls = int(called[mask].sum())
        subs = int(subscribed[mask].sum())
        groups.append(
            GroupFigures(
                group=name,
                customers=int(mask.sum()),
                planned_calls=int(merged.loc[mask, "call"].sum()),
                outcomes_recorded=int(known[mask].sum()),
                calls=calls,
                subscribers=subs,
                conversion=subs / calls if calls else float("nan"),
                profit=float(profit[mask].sum()),
                profit_per_customer=float(profit[mask].mean()) if mask.any() else float("nan"),
            )
        )
        counts[name] = GroupCounts(int(mask.sum()), calls, subs)
    interval, conversion_interval = uplift_interval(counts[MODEL], counts[HOLDOUT], cost, value)
    model, holdout = groups
    held = (merged["group"] == HOLDOUT).to_numpy()
    planned = merged["call"].astype(bool).to_numpy()
    power = holdout_needed(
        merged["probability"].to_numpy(float), planned & ~held, held, cost, value
    )
    pending = int((planned & ~known).sum())
    return ABResult(
        call_list_id=int(call_list_id),
        seed=None if pd.isna(info["ab_seed"]) else int(info["ab_seed"]),
        share=float(info["ab_share"]),
        groups=groups,
        uplift_per_customer=model.profit_per_customer - holdout.profit_per_customer,
        interval=interval,
        conversion_uplift=model.conversion - holdout.conversion,
        conversion_interval=conversion_interval,
        cohort_size=int(len(members)),
        pending_calls=pending,
        power=power,
        counts=describe_counts(members),
    )


def _interval(samples: np.ndarray) -> tuple[float, float]:
    samples = samples[~np.isnan(samples)]
    if len(samples) == 0:
        return (float("nan"), float("nan"))
    low, high = np.percentile(samples, [2.5, 97.5])
    return (float(low), float(high))
