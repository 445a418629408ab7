"""Threshold & profit: choose whom to call by what each threshold costs and earns."""

import streamlit as st

from termdeposit.apps.dashboard import scoring
from termdeposit.apps.dashboard.common import production_model, setup_page
from termdeposit.apps.dashboard.widgets import capacity_limit, threshold_controls, threshold_marks
from termdeposit.decisions import economics
from termdeposit.decisions.economics import (
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
scored = scoring.ensure_scored(model)
if scored is None:
    st.info("Score a cohort first.", icon=":material/info:")
    st.page_link("pages/1_Score_cohort.py", label="Score cohort", icon=":material/upload_file:")
    st.stop()

curve = scoring.cohort_curve()
st.caption(
    f"Cohort **{st.session_state['cohort_name']}** · {format_count(curve.size)} customers · "
    f"model `{st.session_state['model_version']}` · call cost "
    f"{format_money(settings.call_cost, 2)}, subscription value "
    f"{format_money(settings.subscription_value, 2)} (change them in the sidebar)."
)
threshold = threshold_controls(curve, settings)
cap = capacity_limit(curve, settings, threshold)
summary = economics.summary_at(curve, settings, threshold, cap)
forecaster = scoring.cohort_forecaster(model)
money = forecaster.profit(summary.calls, settings)
advice = forecasts.recommendation(forecaster, settings)
week = scoring.cohort_week_forecast(model)

st.markdown(
    f"Calling **{format_count(summary.calls)}** customers ({format_percent(summary.share_called)}"
    f" of the cohort) costs **{format_money(summary.cost)}** and is expected to bring "
    f"**{format_count(summary.expected_subscriptions, 1)}** subscriptions worth "
    f"**{format_money(summary.expected_revenue)}**: an expected profit of "
    f"**{format_money(summary.expected_profit)}**. That is "
    f"{describe_difference(summary.uplift_vs_everyone)} than calling all "
    f"{format_count(summary.customers)} customers, and "
    f"{describe_difference(summary.uplift_vs_random)} than calling "
    f"{format_count(summary.calls)} customers picked at random."
)
st.info(f"**Recommendation.** {advice.text}", icon=":material/recommend:")
if week is not None:
    st.caption(
        f"This week's subscription rate is forecast at {format_percent(week.rate)} (80% range "
        f"{format_percent(week.low)} to {format_percent(week.high)}) from the cohort's size and "
        "make-up; the probabilities follow it. Ranges: 80% of weeks should land inside "
        "(chance among the called, and how far the week's rate can be off)."
    )
st.subheader("Expected at this threshold")
row = st.columns(4)
row[0].metric("Calls", format_count(summary.calls), help="Customers on the call list.")
row[1].metric(
    "Expected subscriptions",
    format_count(summary.expected_subscriptions, 1),
    help="Sum of the probabilities of the customers called.",
)
row[2].metric("Call cost", format_money(summary.cost))
row[3].metric("Expected revenue", format_money(summary.expected_revenue))
row = st.columns(4)
row[0].metric(
    "Expected profit",
    format_money(summary.expected_profit),
    f"80% range {format_money(money.low)} to {format_money(money.high)}",
    delta_color="off",
    delta_arrow="off",
    help="The range holds the week's profit in 8 weeks of 10: chance among the customers "
    "called, and how far this week's subscription rate can be off.",
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
    if summary.outcomes_known < summary.customers:
        st.caption(
            f"Only {format_count(summary.outcomes_known)} of {format_count(summary.customers)} "
            "outcomes are known: realised figures count those customers only."
        )

table = scoring.cohort_curve_table(settings)
marks = threshold_marks(curve, settings, threshold)
share_label = f"Your list {format_percent(summary.share_called)}"
share_mark = [plots.Mark("current", summary.share_called, share_label)]
names = ["Money", "Calls", "Gains and lift"]
if curve.has_outcomes:
    names.append("Calibration of this week")
money_tab, calls_tab, gains_tab, *calibration_tab = st.tabs(
    names, key="threshold_charts", on_change="rerun"
)
if money_tab.open:
    money_tab.plotly_chart(plots.money_curves(table, marks), width="stretch")
    money_tab.caption(
        "The expected profit peaks at the profit-optimal threshold; with calibrated "
        "probabilities that is the break-even probability (cost ÷ value): every customer above "
        "it is worth a call on average."
    )
if calls_tab.open:
    calls_tab.plotly_chart(plots.calls_curve(table, marks), width="stretch")
if gains_tab.open:
    left, right = gains_tab.columns(2)
    left.plotly_chart(plots.gains_chart(table, share_mark), width="stretch")
    right.plotly_chart(plots.lift_chart(table, share_mark), width="stretch")
if calibration_tab and calibration_tab[0].open:
    reliability = economics.calibration_table(scored["y"], scored["probability"])
    calibration_tab[0].plotly_chart(
        plots.reliability_plot(reliability, "Calibration of this week: predicted vs observed"),
        width="stretch",
    )
    calibration_tab[0].caption(
        "Each point is a tenth of the customers, by probability. Points below the diagonal: "
        "the model expected more subscriptions than happened; above: fewer."
    )
st.page_link("pages/3_Call_list.py", label="Next: the call list", icon=":material/arrow_forward:")
