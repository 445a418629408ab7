"""Threshold & profit: choose whom to call by what each choice costs and earns."""

import streamlit as st

from termdeposit.apps.dashboard import scenarios, scoring
from termdeposit.apps.dashboard.common import production_model, setup_page
from termdeposit.apps.dashboard.state import session
from termdeposit.apps.dashboard.widgets import capacity_limit, choice_controls, threshold_marks
from termdeposit.decisions import economics
from termdeposit.decisions.economics import (
    describe_against,
    describe_difference,
    format_count,
    format_money,
    format_percent,
    format_signed_money,
)
from termdeposit.insight import plots
from termdeposit.services import forecasts

settings = setup_page("Threshold & profit", icon=":material/euro:")
model = production_model()
scored = scoring.scored_or_stop(model)

curve = scoring.cohort_curve()
st.caption(
    f"Cohort **{session.cohort_name}** · {format_count(curve.size)} customers · "
    f"model `{session.model_version}` · call cost "
    f"{format_money(settings.call_cost, 2)}, subscription value "
    f"{format_money(settings.subscription_value, 2)} (change them in the sidebar)."
)
threshold = choice_controls(curve, settings)
cap = capacity_limit(curve, settings, threshold)
summary = economics.summary_at(curve, settings, threshold, cap)
forecaster = scoring.cohort_forecaster(model)
expected_range = scenarios.profit_range(forecaster, settings, summary.calls)
advice = forecasts.recommendation(forecaster, settings)
week = scoring.cohort_week_forecast(model)

st.markdown(
    f"Calling **{format_count(summary.calls)}** customers ({format_percent(summary.share_called)}"
    f" of the cohort) costs **{format_money(summary.cost)}** and is expected to bring "
    f"**{format_count(summary.expected_subscriptions, 1)}** subscriptions worth "
    f"**{format_money(summary.expected_revenue)}**: an expected profit of "
    f"**{format_money(summary.expected_profit)}**"
    + (
        f" (likely between {format_money(expected_range[0])} and "
        f"{format_money(expected_range[1])})"
        if expected_range
        else ""
    )
    + ". That is "
    f"{describe_difference(summary.uplift_vs_everyone)} than calling all "
    f"{format_count(summary.customers)} customers "
    f"({describe_against(summary.expected_profit, summary.profit_calling_everyone, 'calling everyone')}), "  # noqa: E501
    f"and {describe_difference(summary.uplift_vs_random)} than calling "
    f"{format_count(summary.calls)} customers picked at random."
)
st.info(f"**Recommendation.** {advice.text}", icon=":material/recommend:")
if week is not None:
    st.caption(
        f"This week's subscription rate is forecast at {format_percent(week.rate)} (80% range "
        f"{format_percent(week.low)} to {format_percent(week.high)}) from the cohort's size and "
        "make-up; the probabilities follow it."
    )
st.subheader("Expected with this choice")
row = st.columns(4)
row[0].metric("Calls", format_count(summary.calls), help="Customers on the call list.")
row[1].metric(
    "Expected subscriptions",
    format_count(summary.expected_subscriptions, 1),
    help="Sum of the chances of the customers called.",
)
row[2].metric("Call cost", format_money(summary.cost))
row[3].metric("Expected revenue", format_money(summary.expected_revenue))
row = st.columns(4)
row[0].metric(
    "Expected profit",
    format_money(summary.expected_profit),
    (
        f"80% range {format_money(expected_range[0])} to {format_money(expected_range[1])}"
        if expected_range
        else None
    ),
    delta_color="off",
    delta_arrow="off",
    help=f"The range: {scenarios.RANGE_NOTE}." if expected_range else None,
)
row[1].metric(
    "Uplift vs calling all",
    format_signed_money(summary.uplift_vs_everyone),
    help=f"Calling all {format_count(summary.customers)} customers: expected profit "
    f"{format_money(summary.profit_calling_everyone)}.",
)
row[2].metric(
    "Uplift vs random calls",
    format_signed_money(summary.uplift_vs_random),
    help="Calling the same number of customers picked at random: expected profit "
    f"{format_money(summary.profit_calling_at_random)}.",
)
row[3].metric(
    "Expected conversion",
    format_percent(summary.expected_subscriptions / summary.calls if summary.calls else None),
)
if expected_range:
    st.caption(
        f"Expected profit: 80% range {format_money(expected_range[0])} to "
        f"{format_money(expected_range[1])} ({scenarios.RANGE_NOTE})."
    )

if summary.realised_profit is not None:
    st.subheader("Realised: the outcomes in this file")
    total = economics.summarise(curve, settings, curve.size, 0.0)
    row = st.columns(4)
    row[0].metric(
        "Realised subscriptions",
        format_count(summary.realised_subscriptions),
        help=f"Subscribers among the customers called (of {format_count(summary.outcomes_known)}"
        " customers whose outcome is known).",
    )
    row[1].metric(
        "Subscribers reached",
        format_percent(
            summary.realised_subscriptions / total.realised_subscriptions
            if total.realised_subscriptions
            else None
        ),
        help="Share of all the week's subscribers that this list would have reached.",
    )
    row[2].metric("Realised revenue", format_money(summary.realised_revenue))
    row[3].metric("Realised profit", format_money(summary.realised_profit))
    row = st.columns(4)
    row[0].metric(
        "Realised uplift vs calling all",
        format_signed_money(summary.realised_uplift_vs_everyone),
    )
    row[1].metric(
        "Realised uplift vs random calls",
        format_signed_money(summary.realised_uplift_vs_random),
    )
    hindsight = economics.hindsight_threshold(curve, settings)
    row[2].metric(
        "Best threshold in hindsight",
        format_percent(hindsight, 2),
        help="The threshold that would have earned the most on this week's real outcomes.",
    )
    confusion = economics.confusion_at(curve, summary.calls)
    left, right = st.columns([2, 3])
    left.markdown("**Who was called, against who subscribed** (customers with a known outcome)")
    left.dataframe(confusion.table(), width="stretch")
    right.markdown(
        f"Of the **{format_count(confusion.called_subscribed + confusion.called_not)}** "
        f"customers called, **{format_count(confusion.called_subscribed)}** subscribed "
        f"({format_percent(confusion.precision)} of the calls). The list reached "
        f"**{format_percent(confusion.recall)}** of the week's subscribers; "
        f"{format_count(confusion.not_called_subscribed)} subscribers were not called."
    )
    if summary.outcomes_known < summary.customers:
        st.caption(
            f"Only {format_count(summary.outcomes_known)} of {format_count(summary.customers)} "
            "outcomes are known: realised figures count those customers only."
        )

table = scoring.cohort_curve_table(settings)
marks = threshold_marks(curve, settings, threshold)
share_label = f"Your list {format_percent(summary.share_called)}"
share_mark = [plots.Mark("current", summary.share_called, share_label)]
names = ["Money", "Calls", "Gains and lift", "Tenths of the cohort"]
if curve.has_outcomes:
    names.append("Calibration of this week")
money_tab, calls_tab, gains_tab, deciles_tab, *calibration_tab = st.tabs(
    names, key="threshold_charts", on_change="rerun"
)
capacity_words = (
    f" Left of the capacity mark the figures stay flat: only {format_count(cap)} calls fit."
    if cap is not None
    else ""
)
if money_tab.open:
    money_tab.plotly_chart(plots.money_curves(table, marks), width="stretch")
    money_tab.caption(
        "The expected profit peaks at the most profitable threshold; with calibrated "
        "probabilities that is the break-even chance (cost ÷ value): every customer above "
        "it is worth a call on average." + capacity_words
    )
if calls_tab.open:
    calls_tab.plotly_chart(plots.calls_curve(table, marks), width="stretch")
    if capacity_words:
        calls_tab.caption(capacity_words.strip())
if gains_tab.open:
    left, right = gains_tab.columns(2)
    left.plotly_chart(plots.gains_chart(table, share_mark), width="stretch")
    right.plotly_chart(plots.lift_chart(table, share_mark), width="stretch")
if deciles_tab.open:
    deciles = economics.decile_table(curve)
    deciles_tab.dataframe(scenarios.decile_frame(deciles), hide_index=True, width="stretch")
    deciles_tab.caption(
        "The cohort in ten equal parts by rank (1 = the tenth the model ranks highest). "
        "Cumulative precision: subscribers per call when calling down to that tenth."
    )
if calibration_tab and calibration_tab[0].open:
    reliability = economics.calibration_table(scored["y"], scored["probability"])
    calibration_tab[0].plotly_chart(
        plots.reliability_plot(reliability, "Calibration of this week: predicted vs observed"),
        width="stretch",
    )
    calibration_tab[0].caption(
        "Each point is a tenth of the customers, by chance of subscribing. Points below the "
        "diagonal: the model expected more subscriptions than happened; above: fewer."
    )

scenarios.save_form(settings)
st.page_link("pages/3_Call_list.py", label="Next: the call list", icon=":material/arrow_forward:")
