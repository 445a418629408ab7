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


def test_counts_are_said_unambiguously():
    members = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(500)],
            "group": ["holdout"] * 48 + ["model"] * 452,
            "call": [True] * 5 + [False] * 43 + [True] * 44 + [False] * 408,
            "probability": 0.1,
        }
    )
    assert abtest.describe_counts(members) == (
        "49 customers to call: 44 chosen by the model, 5 drawn at random from the 48-customer "
        "business-as-usual group"
    )
    alone = members.assign(group="model")
    assert abtest.describe_counts(alone) == "49 customers to call, all chosen by the model"


def test_multinomial_bootstrap_matches_resampling_customers():
    """Resampling customers only changes how many fall in each of three kinds: the interval
    from multinomial draws equals the one from resampling the customers themselves."""
    rng = np.random.default_rng(4)
    model = abtest.GroupCounts(customers=900, calls=300, subscribers=60)
    holdout = abtest.GroupCounts(customers=100, calls=33, subscribers=3)
    (low, high), _ = abtest.uplift_interval(model, holdout, 5.0, 100.0)

    def profits(group: abtest.GroupCounts) -> np.ndarray:
        values = np.zeros(group.customers)
        values[: group.calls] = -5.0
        values[: group.subscribers] = 95.0
        return values

    m, h = profits(model), profits(holdout)
    brute = [rng.choice(m, len(m)).mean() - rng.choice(h, len(h)).mean() for _ in range(4000)]
    brute_low, brute_high = np.percentile(brute, [2.5, 97.5])
    assert low == pytest.approx(brute_low, abs=0.35) and high == pytest.approx(
        brute_high, abs=0.35
    )
    again = abtest.uplift_interval(model, holdout, 5.0, 100.0)
    assert again[0] == (low, high), "fixed resamples and seed: the same interval every time"


def test_holdout_needed_gives_the_promised_power():
    rng = np.random.default_rng(7)
    n = 6000
    p = rng.beta(1.0, 8.0, n)
    calls = p >= np.quantile(p, 0.7)
    check = abtest.holdout_needed(p, calls, np.zeros(n, bool), 5.0, 100.0)
    assert check.expected_uplift > 0 and check.needed is not None
    size = check.needed
    assert 0 < size <= n // 2
    # simulate A/B tests of that size: about 80% of them should detect the uplift
    detected = 0
    runs = 400
    rate = calls.mean()
    for _ in range(runs):
        held = np.zeros(n, bool)
        held[rng.choice(n, size, replace=False)] = True
        subscribed = rng.random(n) < p
        called = np.where(held, rng.random(n) < rate, calls)
        profit = np.where(called, 100.0 * subscribed - 5.0, 0.0)
        a, b = profit[~held], profit[held]
        z = (a.mean() - b.mean()) / np.sqrt(a.var() / len(a) + b.var() / len(b))
        detected += z > 1.96
    assert detected / runs == pytest.approx(0.8, abs=0.08)
    smaller = abtest.holdout_needed(p[:300], calls[:300], np.zeros(300, bool), 5.0, 100.0)
    assert smaller.needed is None and "several weeks" in smaller.describe()
    none = abtest.holdout_needed(p, np.zeros(n, bool), np.zeros(n, bool), 5.0, 100.0)
    assert none.needed is None and "no uplift" in none.describe()


def test_a_small_holdout_gets_a_warning_not_a_verdict(tmp_path, reference, monkeypatch):
    import json

    from typer.testing import CliRunner

    from termdeposit.apps.cli import app
    from termdeposit.ops import monitoring

    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", url)
    s = store.open_store(url)
    week = scored_week(reference, 43)  # 55 customers
    s.log_scoring(week, file_sha256=sha("w43"), model_version="v1", threshold=0.5)
    plan = abtest.plan_holdout(
        week["customer_id"], week["probability"], week["probability"] >= 0.5, 0.2, seed=1
    )
    list_id = abtest.issue_call_list(
        plan,
        file_sha256=sha("w43"),
        model_version="v1",
        threshold=0.5,
        settings=BusinessSettings(),
        store=s,
    )
    called = plan.members[plan.members["call"]]
    s.record_outcomes(
        pd.DataFrame(
            {
                "cohort_id": 1,
                "customer_id": called["customer_id"],
                "called": True,
                "subscribed": called["group"] == "model",
            }
        ),
        file_sha256=sha("o43"),
        name="o.csv",
    )
    result = abtest.ab_results(s, list_id)
    assert result.verdict == "too small to tell"
    assert "business-as-usual calls have a result" in result.warning
    assert "Warning: the hold-out is too small to tell" in result.summary()
    assert result.counts in result.summary()
    # one interval everywhere: ab-report and monitor show the same figures
    report = json.loads(CliRunner().invoke(app, ["ab-report", str(list_id), "--json"]).stdout)
    assert report["interval"] == list(result.interval)
    assert report["verdict"] == "too small to tell" and report["counts"] == result.counts
    row = monitoring.weekly_table(s).iloc[0]
    assert (row["ab_uplift_low"], row["ab_uplift_high"]) == result.interval
    assert row["ab_verdict"] == "too small to tell"
