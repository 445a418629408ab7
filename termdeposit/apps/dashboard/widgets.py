"""Widgets shared by pages: the threshold control and the capacity choice.

Both work on the persistent session keys ``threshold`` and ``limit_to_capacity`` (see
:mod:`termdeposit.apps.dashboard.common`), so a choice made on one page holds on every page.
"""

from __future__ import annotations

import streamlit as st

from termdeposit.apps.dashboard.common import bind, sync_widget
from termdeposit.core.config import BusinessSettings
from termdeposit.decisions import economics
from termdeposit.decisions.economics import format_count, format_percent
from termdeposit.insight.plots import Mark

THRESHOLD_STEP = 0.001


def _set_threshold(value: float) -> None:
    st.session_state["threshold"] = float(value)


def threshold_controls(
    curve: economics.ThresholdCurve, settings: BusinessSettings, key_prefix: str = "thr"
) -> float:
    """Slider and exact number input for the threshold (kept in sync), plus quick-pick buttons.

    Returns:
        The chosen threshold (also in ``st.session_state["threshold"]``).
    """
    optimal = economics.optimal_threshold(curve, settings)
    fits = economics.capacity_threshold(curve, settings.capacity)
    buttons = st.container(horizontal=True)
    buttons.button(
        f"Use the profit-optimal threshold ({format_percent(optimal, 2)})",
        key=f"{key_prefix}_optimal",
        on_click=_set_threshold,
        args=(optimal,),
        help="The threshold with the highest expected profit for this cohort and these settings.",
    )
    if fits is not None:
        buttons.button(
            f"Use the threshold that fits the capacity ({format_percent(fits, 2)})",
            key=f"{key_prefix}_capacity",
            on_click=_set_threshold,
            args=(fits,),
            help="The lowest threshold whose calls fit the call centre's capacity.",
        )
    slider_col, number_col = st.columns([3, 1])
    slider_col.slider(
        "Threshold: call every customer whose probability of subscribing is at least",
        min_value=0.0,
        max_value=1.0,
        step=THRESHOLD_STEP,
        format="%.3f",
        **bind("threshold"),
    )
    number_col.number_input(
        "Exact threshold",
        min_value=0.0,
        max_value=1.0,
        step=THRESHOLD_STEP,
        format="%.4f",
        help="Type a threshold, e.g. 0.05 to call everyone with at least a 5% chance.",
        **_bind_number(),
    )
    return float(st.session_state["threshold"])


def _copy_number() -> None:
    st.session_state["threshold"] = float(st.session_state["_w_threshold_number"])


def _bind_number() -> dict:
    sync_widget("_w_threshold_number", float(st.session_state["threshold"]))
    return {"key": "_w_threshold_number", "on_change": _copy_number}


def applied_capacity(settings: BusinessSettings) -> int | None:
    """The capacity the call list is cut to: the sidebar's, unless the user chose not to."""
    return settings.capacity if st.session_state["limit_to_capacity"] else None


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
            f"Capacity: {format_count(capacity)} calls. This threshold selects "
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
    """Marks for the threshold charts: break-even, profit-optimal, capacity, current choice."""
    break_even = settings.break_even
    marks = [Mark("break-even", break_even, f"Break-even {format_percent(break_even)}")]
    optimal = economics.optimal_threshold(curve, settings)
    marks.append(Mark("optimal", optimal, f"Profit-optimal {format_percent(optimal)}"))
    fits = economics.capacity_threshold(curve, settings.capacity)
    if fits is not None:
        marks.append(Mark("capacity", fits, f"Fits capacity {format_percent(fits)}"))
    marks.append(Mark("current", threshold, f"Your threshold {format_percent(threshold)}"))
    return marks
