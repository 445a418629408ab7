"""Backtest: replay the bank's real weeks; would the model have beaten calling everyone?"""

from dataclasses import replace

import streamlit as st

from termdeposit.apps.dashboard import ops
from termdeposit.apps.dashboard.common import setup_page
from termdeposit.apps.dashboard.state import session
from termdeposit.core.labels import readable_columns
from termdeposit.data.exports import to_csv_bytes
from termdeposit.decisions.economics import (
    describe_against,
    format_count,
    format_money,
    format_percent,
    format_signed_money,
)
from termdeposit.insight import plots
from termdeposit.ops.backtest import RECALIBRATIONS, BacktestConfig, reference_config

settings = setup_page("Backtest", icon=":material/history:")
st.markdown(
    "Replays the bank's campaign week by week (2008-2010) as this product would have run it: "
    "the model is refitted every few weeks on earlier weeks only, each week's probabilities "
    "follow the week's forecast subscription rate, the week is scored, and the product's "
    "recommendation decides whom to call. The profit of those calls is compared with calling "
    "everyone. Nothing from a week's future is ever used."
)

with st.form("backtest"):
    c1, c2, c3, c4 = st.columns(4)
    cost = c1.number_input("Cost per call (€)", 0.0, 1000.0, float(settings.call_cost), 0.5)
    value = c2.number_input(
        "Value of a subscription (€)", 0.01, 100000.0, float(settings.subscription_value), 5.0
    )
    first = c3.number_input("First week", 1, 118, 13, help="Week 13 is July 2008.")
    last = c4.number_input("Last week", 1, 118, 118)
    c1, c2, c3, c4 = st.columns(4)
    every = c1.number_input("Retrain every (weeks)", 1, 52, 4)
    recalibration = c2.selectbox(
        "Recalibration on recent outcomes", RECALIBRATIONS, index=RECALIBRATIONS.index("none")
    )
    rule = c3.selectbox(
        "Threshold",
        ["recommend", "break-even", "past-profit"],
        format_func={
            "recommend": "the product's recommendation",
            "break-even": "break-even (cost / value)",
            "past-profit": "best of the previous 8 weeks",
        }.get,
    )
    macro = c4.selectbox(
        "Economic inputs",
        ["nr.employed", "all"],
        format_func={"nr.employed": "employment only", "all": "all five rates"}.get,
    )
    reference = st.checkbox(
        "Use the reference method instead (plain logistic regression, all five rates, best "
        "threshold of the previous 8 weeks, no recalibration)"
    )
    run = st.form_submit_button("Run the backtest", type="primary")

if reference:
    config = replace(
        reference_config(cost, value),
        first_week=int(first),
        last_week=int(last),
        retrain_every=int(every),
    )
else:
    config = BacktestConfig(
        call_cost=cost,
        subscription_value=value,
        retrain_every=int(every),
        first_week=int(first),
        last_week=int(last),
        recalibration=recalibration,
        threshold_rule=rule,
        macro=macro,
    )
if run:
    session.backtest_config = config
config = session.backtest_config
if config is None:
    st.info(
        "Choose the settings and run the backtest (about a minute for all 106 weeks).",
        icon=":material/info:",
    )
    st.stop()
outcome = ops.backtest(config)
if outcome is None:
    st.stop()
summary, weeks = outcome

cols = st.columns(4)
cols[0].metric("Profit with the model", format_money(summary["profit_model"]))
cols[1].metric("Profit calling everyone", format_money(summary["profit_call_all"]))
cols[2].metric(
    "Uplift",
    format_signed_money(summary["uplift"]),
    describe_against(summary["profit_model"], summary["profit_call_all"], "calling everyone"),
    delta_color="off",
)
cols[3].metric(
    "Calls made",
    format_count(summary["calls_model"]),
    f"of {format_count(summary['calls_all'])} customers",
    delta_color="off",
)
st.caption(
    f"Weeks {summary['first_week']}-{summary['last_week']} ({summary['scored_weeks']} weeks, "
    f"{format_count(summary['subscribers'])} subscribers). Subscribers reached: "
    f"{format_count(summary['subscribers_reached'])} "
    f"({format_percent(summary['subscribers_reached_share'])}). Calibration error "
    f"{format_percent(summary['ece'])} (before recalibration "
    f"{format_percent(summary['ece_before_recalibration'])}). "
    "Reference (plain logistic regression over weeks 13-118): 257,870 at cost 5 / value 100 "
    "(calling everyone 268,555); 19,890 at cost 10 / value 50 (calling everyone -44,740)."
)
st.plotly_chart(plots.cumulative_profit_chart(weeks), width="stretch")
shown = readable_columns(
    weeks,
    {
        "week": "Week number",
        "label": "Week",
        "rows": "Customers",
        "threshold": "Threshold",
        "mean_probability": "Average chance given",
        "rate": "Subscription rate",
        "profit_hindsight": "Best possible profit (hindsight)",
        "cumulative_model": "Cumulative profit with the model",
        "cumulative_call_all": "Cumulative profit calling everyone",
    },
)
percent_columns = ("Threshold", "Average chance given", "Subscription rate")
for column in percent_columns:
    if column in shown:
        shown[column] = 100 * shown[column]
st.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    height=320,
    column_config={c: st.column_config.NumberColumn(format="%.1f%%") for c in percent_columns}
    | {c: st.column_config.NumberColumn(format="€%.0f") for c in shown.columns if "rofit" in c},
)
st.download_button(
    "Download the week-by-week table (CSV)",
    data=to_csv_bytes(weeks),
    file_name=f"backtest_cost{config.call_cost:g}_value{config.subscription_value:g}.csv",
    mime="text/csv",
    key="backtest_download",
    on_click="ignore",
    icon=":material/download:",
)
