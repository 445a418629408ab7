"""A/B hold-out: the random draw, recording it, and uplift with a bootstrap interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from store_support import scored_week, sha

from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.decisions import abtest
from termdeposit.storage import store


def test_holdout_draw_is_random_reproducible_and_called_at_the_model_rate():
    n = 2000
    ids = pd.Series([f"C{i}" for i in range(n)])
    p = np.linspace(0, 1, n)
    model_calls = p >= 0.7
    plan = abtest.plan_holdout(ids, p, model_calls, share=0.1, seed=42)
    again = abtest.plan_holdout(ids, p, model_calls, share=0.1, seed=42)
    pd.testing.assert_frame_equal(plan.members, again.members)
    holdout = plan.members[plan.members["group"] == "holdout"]
    model = plan.members[plan.members["group"] == "model"]
    assert len(holdout) == 200 and plan.seed == 42
    assert holdout["probability"].mean() == pytest.approx(0.5, abs=0.06), "a random draw"
    assert holdout["call"].mean() == pytest.approx(model["call"].mean(), abs=0.005)
    assert (model["call"] == (model["probability"] >= 0.7)).all()
    assert holdout.loc[holdout["call"], "probability"].min() < 0.7, "random calls, not the model's"
    fresh = abtest.plan_holdout(ids, p, model_calls, share=0.1)
    assert fresh.seed is not None
    none = abtest.plan_holdout(ids, p, model_calls, share=0.0)
    assert none.seed is None and (none.members["group"] == "model").all()
    with pytest.raises(TermDepositError, match="between 0 and 50%"):
        abtest.plan_holdout(ids, p, model_calls, share=0.8)


def test_uplift_and_interval_from_recorded_outcomes(tmp_path, reference):
    s = store.open_store(f"sqlite:///{tmp_path / 'ops.db'}")
    week = scored_week(reference, 23)  # 3,554 customers
    s.log_scoring(week, file_sha256=sha("w23"), model_version="v1", threshold=0.5)
    plan = abtest.plan_holdout(
        week["customer_id"], week["probability"], week["probability"] >= 0.5, 0.3, seed=3
    )
    settings = BusinessSettings(call_cost=5, subscription_value=100)
    list_id = abtest.issue_call_list(
        plan,
        file_sha256=sha("w23"),
        model_version="v1",
        threshold=0.5,
        settings=settings,
        store=s,
    )
    members = s.call_list_members(list_id)
    assert len(members) == len(week) and s.call_lists().iloc[0]["ab_seed"] == 3
    with pytest.raises(TermDepositError, match="No outcomes"):
        abtest.ab_results(s, list_id)

    called = plan.members[plan.members["call"]]
    rng = np.random.default_rng(0)
    rate = np.where(called["group"] == "model", 0.30, 0.10)  # the model finds better customers
    outcomes = pd.DataFrame(
        {
            "cohort_id": 1,
            "customer_id": called["customer_id"],
            "called": True,
            "subscribed": rng.random(len(called)) < rate,
        }
    )
    s.record_outcomes(outcomes, file_sha256=sha("o"), name="o.csv")
    result = abtest.ab_results(s, list_id)

    table = result.table().set_index("group")
    assert table.loc["model", "conversion"] == pytest.approx(0.30, abs=0.04)
    assert table.loc["holdout", "conversion"] == pytest.approx(0.10, abs=0.04)
    per_customer = table["profit_per_customer"]
    by_hand = per_customer["model"] - per_customer["holdout"]
    assert result.uplift_per_customer == pytest.approx(by_hand)
    low, high = result.interval
    assert 0 < low < result.uplift_per_customer < high
    assert "earns more than business as usual" in result.summary()
    assert result.pending_calls == 0

    no_holdout = abtest.plan_holdout(
        week["customer_id"], week["probability"], week["probability"] >= 0.5, 0.0
    )
    plain = abtest.issue_call_list(
        no_holdout,
        file_sha256=sha("w23"),
        model_version="v1",
        threshold=0.5,
        settings=settings,
        store=s,
    )
    with pytest.raises(TermDepositError, match="no business-as-usual hold-out"):
        abtest.ab_results(s, plain)
    with pytest.raises(TermDepositError, match="not in the prediction log"):
        abtest.issue_call_list(
            no_holdout,
            file_sha256=sha("never scored"),
            model_version="v1",
            threshold=0.5,
            settings=settings,
            store=s,
        )
