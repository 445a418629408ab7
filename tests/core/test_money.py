"""Money, written once: profit, break-even and the best number of calls."""

from __future__ import annotations

import numpy as np

from termdeposit.core import money
from termdeposit.core.config import BusinessSettings, default_settings


def test_profit_is_value_times_subscriptions_minus_cost_times_calls():
    assert money.profit(3.0, 10.0, cost=5.0, value=100.0) == 250.0
    got = money.profit(np.array([0.0, 1.0]), np.array([2.0, 2.0]), 10.0, 50.0)
    assert got.tolist() == [-20.0, 30.0]


def test_break_even_and_the_defaults_come_from_one_place(monkeypatch):
    assert money.break_even(5.0, 100.0) == 0.05
    assert BusinessSettings().break_even == money.break_even(
        money.DEFAULT_CALL_COST, money.DEFAULT_SUBSCRIPTION_VALUE
    )
    monkeypatch.delenv("TERMDEPOSIT_CALL_COST", raising=False)
    monkeypatch.delenv("TERMDEPOSIT_SUBSCRIPTION_VALUE", raising=False)
    assert default_settings() == BusinessSettings()


def test_best_cut_takes_the_fewest_calls_among_equals_and_may_call_nobody():
    cuts = np.array([0, 1, 2, 3])
    # expected subscriptions 0, 0.5, 0.75, 1 at cost 25 / value 100: profit 0, 25, 25, 25
    subs = np.array([0.0, 0.5, 0.75, 1.0])
    assert money.best_cut(cuts, subs, cuts, 25.0, 100.0) == 1
    assert money.best_cut(cuts, subs, cuts, 60.0, 100.0) == 0  # every call loses: nobody
