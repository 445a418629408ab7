"""A/B hold-out: measure the model against business as usual, with a confidence interval.

When a call list is issued, a share of the cohort (e.g. 10%) can be drawn at random as the
business-as-usual group: instead of the model's choice, a random sample of that group is
called, at the same rate as the model calls the rest. The seed is recorded, so the draw can
be repeated. When outcomes arrive, conversion and profit per customer are compared between
the groups, and the uplift (model minus business as usual, per customer of the cohort) gets a
bootstrap 95% interval.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
import pandas as pd

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN
from termdeposit.storage.store import Store, open_store

MODEL = "model"
HOLDOUT = "holdout"
#: Largest hold-out share offered: beyond it too many customers lose the model's choice.
MAX_SHARE = 0.5


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

    def to_call(self) -> pd.DataFrame:
        """The customers to call: the model's choices best first, then the hold-out's."""
        chosen = self.members[self.members["call"]]
        order = chosen.assign(_g=(chosen["group"] == HOLDOUT).astype(int)).sort_values(
            ["_g", "probability"], ascending=[True, False], kind="stable"
        )
        return order.drop(columns="_g").reset_index(drop=True)


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

    @property
    def uplift_total(self) -> float:
        """Uplift per customer scaled to the whole cohort (model for everyone vs none)."""
        return self.uplift_per_customer * self.cohort_size

    def table(self) -> pd.DataFrame:
        """One row per group, for display."""
        return pd.DataFrame([g.__dict__ for g in self.groups])

    def summary(self) -> str:
        """One sentence: the uplift and its interval."""
        low, high = self.interval
        sure = (
            "the model earns more than business as usual"
            if low > 0
            else "business as usual earns more than the model"
            if high < 0
            else "the difference is not yet clear (the interval includes 0)"
        )
        return (
            f"Uplift {self.uplift_per_customer:+.2f} per customer (95% interval {low:+.2f} to "
            f"{high:+.2f}): {sure}."
        )


def ab_results(
    store: Store | None, call_list_id: int, n_boot: int = 2000, seed: int = 0
) -> ABResult:
    """Conversion and profit per group, and the uplift with a bootstrap 95% interval.

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
    arrays = {}
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
        arrays[name] = (profit[mask], called[mask], subscribed[mask])
    rng = np.random.default_rng(seed)
    boot_profit, boot_conversion = _bootstrap(arrays[MODEL], arrays[HOLDOUT], n_boot, rng)
    model, holdout = groups
    pending = int((merged["call"].astype(bool).to_numpy() & ~known).sum())
    return ABResult(
        call_list_id=int(call_list_id),
        seed=None if pd.isna(info["ab_seed"]) else int(info["ab_seed"]),
        share=float(info["ab_share"]),
        groups=groups,
        uplift_per_customer=model.profit_per_customer - holdout.profit_per_customer,
        interval=_interval(boot_profit),
        conversion_uplift=model.conversion - holdout.conversion,
        conversion_interval=_interval(boot_conversion),
        cohort_size=int(len(members)),
        pending_calls=pending,
    )


def _bootstrap(
    model: tuple[np.ndarray, np.ndarray, np.ndarray],
    holdout: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_boot: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap differences (model - holdout) of profit per customer and of conversion."""
    profit_diff = np.empty(n_boot)
    conversion_diff = np.empty(n_boot)
    for b in range(n_boot):
        stats = []
        for profit, called, subscribed in (model, holdout):
            pick = rng.integers(0, len(profit), len(profit))
            calls = called[pick].sum()
            stats.append(
                (profit[pick].mean(), subscribed[pick].sum() / calls if calls else np.nan)
            )
        profit_diff[b] = stats[0][0] - stats[1][0]
        conversion_diff[b] = stats[0][1] - stats[1][1]
    return profit_diff, conversion_diff


def _interval(samples: np.ndarray) -> tuple[float, float]:
    samples = samples[~np.isnan(samples)]
    if len(samples) == 0:
        return (float("nan"), float("nan"))
    low, high = np.percentile(samples, [2.5, 97.5])
    return (float(low), float(high))
