"""A per-group policy applied to a cohort: the mask and thresholds the call list can take."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.insight import fairness


@pytest.fixture()
def cohort() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "marital": rng.choice(["married", "single", "divorced"], n),
        }
    )
    scores = np.clip(rng.beta(2, 12, n) + (frame["age"] > 60) * 0.15, 0, 1)
    return frame, scores.to_numpy() if hasattr(scores, "to_numpy") else scores


def test_single_keeps_the_chosen_calls(cohort):
    frame, scores = cohort
    called = scores >= 0.2
    applied = fairness.apply_policy(
        frame, scores, called, "single", fairness.AGE_BAND, BusinessSettings()
    )
    assert (applied.called == called).all() and applied.share is None


def test_parity_same_calls_equalises_the_share(cohort):
    frame, scores = cohort
    called = scores >= 0.2
    applied = fairness.apply_policy(
        frame, scores, called, "parity_same_calls", fairness.AGE_BAND, BusinessSettings()
    )
    groups = fairness.groups_of(frame, fairness.AGE_BAND)
    rates = pd.Series(applied.called).groupby(groups.to_numpy()).mean()
    sizes = groups.value_counts()
    assert (rates - applied.share).abs().max() <= 1 / sizes.min() + 1e-9
    assert abs(int(applied.called.sum()) - int(called.sum())) <= len(sizes)
    # every group's threshold is the lowest score called in it
    for group, threshold in applied.thresholds.dropna().items():
        mask = (groups == group).to_numpy() & applied.called
        assert threshold == pytest.approx(scores[mask].min())
    assert "age band" in applied.description


def test_parity_best_maximises_profit_under_parity(cohort):
    frame, scores = cohort
    settings = BusinessSettings(call_cost=10, subscription_value=50)
    applied = fairness.apply_policy(
        frame, scores, scores >= 0.5, "parity_best", "marital", settings
    )
    assert applied.share == fairness.best_parity_rate(
        scores, fairness.groups_of(frame, "marital"), settings
    )


def test_unknown_policy_or_grouping_is_refused(cohort):
    frame, scores = cohort
    with pytest.raises(TermDepositError, match="Unknown group policy"):
        fairness.apply_policy(frame, scores, scores > 0.1, "quota", "marital", BusinessSettings())
    with pytest.raises(TermDepositError, match="Unknown grouping"):
        fairness.apply_policy(frame, scores, scores > 0.1, "single", "salary", BusinessSettings())
