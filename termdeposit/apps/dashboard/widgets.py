"""Widgets shared by pages: whom to call (by threshold, number of calls or budget) and capacity.

The choice lives in the persistent session keys ``choice_mode`` (``recommended`` while the
dashboard follows the money, else ``threshold``, ``calls`` or ``budget``: what the user
pinned), ``choice_value`` and the resolved ``threshold`` (read through
:data:`termdeposit.apps.dashboard.state.session`; see
:func:`termdeposit.apps.dashboard.scoring.resolve_choice`), so a choice made on one page holds
on every page. The arithmetic is :func:`termdeposit.decisions.economics.resolve_choice`.
"""

from __future__ import annotations

import streamlit as st

from termdeposit.apps.dashboard import scoring
from termdeposit.apps.dashboard.common import bind, sync_widget
from termdeposit.apps.dashboard.state import RECOMMENDED, ChoiceMode, session
from termdeposit.core.config import BusinessSettings
from termdeposit.decisions import economics
from termdeposit.decisions.economics import format_count, format_money, format_percent
from termdeposit.insight.plots import Mark

#: Slider step for the threshold, in percent.
THRESHOLD_STEP = 0.1


#: Rows a page draws of a long table (a browser table of 90,000 rows takes seconds to draw);
#: the downloads always hold every row.
TABLE_ROWS = 2_000


def _pin(mode: ChoiceMode, value: float) -> None:
    session.pin(mode, float(value))


def _follow() -> None:
    session.pin(RECOMMENDED, None)


def _from_widget(widget_key: str, mode: ChoiceMode, scale: float = 1.0) -> None:
    _pin(mode, float(session.widget(widget_key)) * scale)


def applied_capacity(settings: BusinessSettings) -> int | None:
    """The capacity the call list is cut to: the sidebar's, unless the user chose not to."""
    return scoring.applied_capacity(settings)


def choice_status(curve: economics.ThresholdCurve, settings: BusinessSettings) -> None:
    """One line on what is applied and why; a warning when a pinned choice loses money."""
    note = session.choice_note
    pinned = session.pinned
    if note:
        st.info(note, icon=":material/push_pin:" if pinned else ":material/trending_up:")
    if not pinned:
        return
    threshold = session.chosen_threshold
    capacity = applied_capacity(settings)
    summary = economics.summary_at(curve, settings, threshold, capacity)
    gap = economics.shortfall(
        summary, everyone_possible=capacity is None or capacity >= curve.size
    )
    if gap is not None:
        best = economics.summary_at(
            curve,
            settings,
            economics.recommended_threshold(curve, settings, applied_capacity(settings)),
            applied_capacity(settings),
        )
        st.warning(
            f"**{gap.sentence('Your pinned choice')}** Its expected profit is "
            f"{format_money(summary.expected_profit)}; the most profitable choice would earn "
            f"{format_money(best.expected_profit)}.",
            icon=":material/warning:",
        )


def choice_controls(
    curve: economics.ThresholdCurve, settings: BusinessSettings, key_prefix: str = "thr"
) -> float:
    """Three linked controls (threshold in %, number of calls, budget in €) and the status.

    Changing any of them pins the choice in that form (a budget stays a budget when the cost
    changes); "Follow the money" un-pins it. Returns the resolved threshold (also in
    ``session.threshold``).
    """
    choice = scoring.resolve_choice() or economics.resolve_choice(
        curve, settings, "threshold", session.threshold or 0.0
    )
    pinned = session.pinned
    choice_status(curve, settings)
    buttons = st.container(horizontal=True)
    buttons.button(
        "Follow the money (most profitable)" if pinned else "Following the money",
        key=f"{key_prefix}_optimal",
        on_click=_follow,
        disabled=not pinned,
        type="primary" if pinned else "secondary",
        help="Apply the choice with the highest expected profit within the capacity, and "
        "apply it again whenever the cost, the value, the capacity or the cohort changes.",
    )
    fits = economics.capacity_threshold(curve, settings.capacity)
    if fits is not None:
        buttons.button(
            f"Call up to the capacity ({format_count(economics.calls_at(curve, fits))} calls)",
            key=f"{key_prefix}_capacity",
            on_click=_pin,
            args=("threshold", fits),
            help="Pin the lowest threshold whose calls fit the call centre's capacity.",
        )
    slider_col, exact_col, calls_col, budget_col = st.columns([3, 1, 1, 1])
    percent = 100 * choice.threshold
    sync_widget("_w_threshold", round(percent, 1))
    slider_col.slider(
        "Threshold: call every customer whose chance of subscribing is at least (%)",
        min_value=0.0,
        max_value=100.0,
        step=THRESHOLD_STEP,
        format="%.1f%%",
        key="_w_threshold",
        on_change=_from_widget,
        args=("_w_threshold", "threshold", 0.01),
    )
    sync_widget("_w_threshold_number", round(percent, 4))
    exact_col.number_input(
        "Exact threshold (%)",
        min_value=0.0,
        max_value=100.0,
        step=0.01,
        format="%.2f",
        help="Type a threshold, e.g. 5 to call everyone with at least a 5% chance.",
        key="_w_threshold_number",
        on_change=_from_widget,
        args=("_w_threshold_number", "threshold", 0.01),
    )
    sync_widget("_w_calls", int(choice.calls))
    calls_col.number_input(
        "Number of calls",
        min_value=0,
        max_value=max(curve.size, 0),
        step=10,
        help="Call the best-ranked customers up to this number (customers with exactly the "
        "same chance are called together, so the list can be a little shorter).",
        key="_w_calls",
        on_change=_from_widget,
        args=("_w_calls", "calls"),
    )
    sync_widget("_w_budget", float(round(choice.budget, 2)))
    budget_col.number_input(
        "Budget (€)",
        min_value=0.0,
        max_value=float(max(settings.call_cost * curve.size, 0.0)) or 1.0,
        step=float(max(settings.call_cost * 10, 1.0)),
        format="%.0f",
        help="Spend at most this much on calls: the best-ranked customers it pays for.",
        key="_w_budget",
        on_change=_from_widget,
        args=("_w_budget", "budget"),
    )
    return session.chosen_threshold


#: The page-level name kept for pages that draw the choice (Threshold & profit, Call list).
threshold_controls = choice_controls


def capacity_limit(
    curve: economics.ThresholdCurve, settings: BusinessSettings, threshold: float
) -> int | None:
    """Say what the capacity allows; let the user cut the list to it. Returns the cap or None."""
    if settings.capacity is None:
        return None
    wanted = economics.calls_at(curve, threshold)
    capacity = settings.capacity
    if wanted <= capacity:
        st.caption(
            f"Capacity: {format_count(capacity)} calls. This choice selects "
            f"{format_count(wanted)}, which fits."
        )
        return applied_capacity(settings)
    st.warning(
        f"This threshold selects **{format_count(wanted)}** customers, but the call centre can "
        f"make **{format_count(capacity)}** calls.",
        icon=":material/warning:",
    )
    st.checkbox(
        f"Call only the best {format_count(capacity)} customers (within capacity)",
        help="Keeps the highest-ranked customers above the threshold, up to the capacity.",
        **bind("limit_to_capacity"),
    )
    return applied_capacity(settings)


def threshold_marks(
    curve: economics.ThresholdCurve, settings: BusinessSettings, threshold: float
) -> list[Mark]:
    """Marks for the threshold charts: break-even, most profitable, capacity, current choice."""
    break_even = settings.break_even
    marks = [Mark("break-even", break_even, f"Break-even {format_percent(break_even)}")]
    optimal = economics.recommended_threshold(curve, settings, applied_capacity(settings))
    marks.append(Mark("optimal", optimal, f"Most profitable {format_percent(optimal)}"))
    fits = economics.capacity_threshold(curve, settings.capacity)
    if fits is not None:
        marks.append(Mark("capacity", fits, f"Fills the capacity {format_percent(fits)}"))
    marks.append(Mark("current", threshold, f"Your choice {format_percent(threshold)}"))
    return marks
