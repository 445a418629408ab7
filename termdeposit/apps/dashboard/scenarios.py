"""Scenarios in the dashboard: save named settings, compare two on the same cohort; ranges.

A scenario is the money settings (cost, value, capacity) and a choice (follow the money, or a
pinned threshold, number of calls or budget): :class:`termdeposit.decisions.economics.Scenario`.
Saved scenarios are kept in the store's settings (``dashboard_scenarios``), so they survive a
reload and are shared by the team; the figures are computed by ``economics``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pandas as pd
import streamlit as st

from termdeposit.apps.dashboard.common import show_error
from termdeposit.apps.dashboard.state import session
from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.decisions import economics
from termdeposit.decisions.forecast import ProfitForecaster
from termdeposit.storage import store

#: Store setting holding the saved scenarios (a list of dicts).
SETTING_KEY = "dashboard_scenarios"
#: How the expected-profit range is made, in words.
RANGE_NOTE = (
    "8 weeks in 10 should land inside: chance among the customers called, and how far this "
    "week's subscription rate can be off"
)


def profit_range(
    forecaster: ProfitForecaster | None, settings: BusinessSettings, calls: int
) -> tuple[float, float] | None:
    """The 80% range of the expected profit of calling the ``calls`` best (None: no calls)."""
    if calls <= 0 or forecaster is None:
        return None
    money = forecaster.profit(calls, settings)
    return money.low, money.high


def range_of(
    forecaster: ProfitForecaster | None,
) -> Callable[[int, BusinessSettings], tuple[float, float]] | None:
    """The profit range of any number of calls on this cohort, for the scenario comparison."""
    if forecaster is None:
        return None

    def profit_range_of(calls: int, settings: BusinessSettings) -> tuple[float, float]:
        money = forecaster.profit(calls, settings)
        return money.low, money.high

    return profit_range_of


def load() -> list[economics.Scenario]:
    """The saved scenarios, oldest first (none if the store cannot be read)."""
    try:
        raw = store.open_store().get_setting(SETTING_KEY, [])
    except TermDepositError:
        return []
    scenarios = []
    for item in raw if isinstance(raw, list) else []:
        try:
            scenarios.append(economics.Scenario(**item))
        except TypeError:
            continue
    return scenarios


def save(scenario: economics.Scenario) -> None:
    """Save a scenario (one of the same name is replaced)."""
    kept = [s for s in load() if s.name != scenario.name]
    store.open_store().set_setting(SETTING_KEY, [asdict(s) for s in [*kept, scenario]])


def delete(name: str) -> None:
    """Forget a saved scenario."""
    kept = [s for s in load() if s.name != name]
    store.open_store().set_setting(SETTING_KEY, [asdict(s) for s in kept])


def current(name: str, settings: BusinessSettings) -> economics.Scenario:
    """The session's settings and choice as a scenario called ``name``."""
    mode = session.choice_mode
    value = session.choice_value
    capacity = settings.capacity if session.limit_to_capacity else None
    return economics.Scenario(
        name=name,
        call_cost=float(settings.call_cost),
        subscription_value=float(settings.subscription_value),
        capacity=capacity,
        mode=mode,
        value=float(value) if value is not None else 0.0,
    )


def save_form(settings: BusinessSettings) -> None:
    """A small form that saves the current settings and choice as a named scenario."""
    with st.expander("Save these settings as a scenario (to compare later)"):
        with st.form("save_scenario", border=False):
            name = st.text_input(
                "Scenario name", placeholder="e.g. Dear calls, 10 agents", key="scenario_name"
            )
            submitted = st.form_submit_button("Save the scenario", type="primary")
        if submitted:
            if not name.strip():
                st.error("Give the scenario a name first.", icon=":material/error:")
                return
            scenario = current(name.strip()[:60], settings)
            try:
                save(scenario)
                st.success(
                    f"Saved **{scenario.name}**: {scenario.describe()}. Compare it on the "
                    "Threshold scenarios page.",
                    icon=":material/check_circle:",
                )
            except TermDepositError as exc:
                show_error(exc)


def comparison_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison of :func:`economics.compare_scenarios` with plain row names, one column
    per scenario."""
    rows: dict[str, list[Any]] = {
        "Settings": list(table["settings"]),
        "Threshold": [economics.format_percent(t, 2) for t in table["threshold"]],
        "Calls": [economics.format_count(c) for c in table["calls"]],
        "Call cost": [economics.format_money(c) for c in table["cost"]],
        "Expected subscriptions": [
            economics.format_count(x, 1) for x in table["expected_subscriptions"]
        ],
        "Expected profit": [economics.format_money(x) for x in table["expected_profit"]],
        "80% range of the profit": [
            f"{economics.format_money(lo)} to {economics.format_money(hi)}"
            for lo, hi in zip(table["profit_low"], table["profit_high"], strict=True)
        ],
        "Customers on both lists": [
            f"{economics.format_count(o)} ({economics.format_percent(s)} of this list)"
            for o, s in zip(table["overlap"], table["overlap_share"], strict=True)
        ],
    }
    if table["realised_profit"].notna().any():
        rows["Realised profit (known outcomes)"] = [
            economics.format_money(x) for x in table["realised_profit"]
        ]
    return pd.DataFrame(rows, index=list(table["scenario"])).T


def decile_frame(deciles: pd.DataFrame) -> pd.DataFrame:
    """The decile table with plain column names and percentages."""
    shown = pd.DataFrame(
        {
            "Tenth (1 = best)": deciles["decile"],
            "Customers": deciles["customers"],
            "Chance from": 100 * deciles["lowest"],
            "Chance to": 100 * deciles["highest"],
            "Expected rate": 100 * deciles["expected_rate"],
            "Cumulative expected precision": 100 * deciles["cumulative_expected_precision"],
        }
    )
    if "subscribers" in deciles:
        shown["Subscribers"] = deciles["subscribers"]
        shown["Rate"] = 100 * deciles["rate"]
        shown["Cumulative precision"] = 100 * deciles["cumulative_precision"]
        shown["Subscribers reached"] = 100 * deciles["cumulative_gain"]
        shown["Cumulative lift"] = deciles["cumulative_lift"].round(2)
    for column in shown.columns:
        if column not in ("Tenth (1 = best)", "Customers", "Subscribers", "Cumulative lift"):
            shown[column] = shown[column].round(1).map(lambda v: f"{v:.1f}%")
    return shown
