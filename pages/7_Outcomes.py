"""Outcomes: upload the week's call results; see the A/B hold-out against the model."""

import pandas as pd
import streamlit as st

from termdeposit.apps.dashboard import alerts, ops
from termdeposit.apps.dashboard.common import setup_page, show_error, show_unexpected
from termdeposit.apps.dashboard.state import session
from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import readable_columns
from termdeposit.decisions import abtest
from termdeposit.decisions.economics import format_count, format_money, format_percent
from termdeposit.insight import plots
from termdeposit.services import outcomes

settings = setup_page("Outcomes", icon=":material/fact_check:")
store = ops.open_ops_store()
if store is None:
    st.stop()
message = session.take_flash("outcomes")
if message:
    st.success(message, icon=":material/check_circle:")

cohorts = store.cohorts()
if cohorts.empty:
    st.info("No cohort has been scored yet: score one first.", icon=":material/info:")
    st.page_link("pages/1_Score_cohort.py", label="Score cohort", icon=":material/upload_file:")
    st.stop()

st.markdown(
    "Upload the results of the week's calls: one row per customer with **customer_id**, "
    "**called** (yes/no) and **subscribed** (yes/no). CSV or Excel. Uploading the same "
    "results again changes nothing; a file with unknown customers, contradictory rows or "
    "results that differ from those already recorded is refused as a whole, with the rows "
    "listed. Called customers with a result become training rows for the next retraining."
)
labels = {
    int(r.id): f"{r.id}: {r.week_label} ({r.name}, {r.rows:,} customers)"
    for r in cohorts.itertuples()
}
choice = st.selectbox(
    "Which cohort are these results for?",
    [None, *reversed(list(labels))],
    format_func=lambda c: "Find each customer's cohort by id" if c is None else labels[c],
    key="outcomes_cohort",
)
upload = st.file_uploader("Outcomes file", key="outcomes_upload")
if upload is not None and st.button(
    "Record these outcomes", key="outcomes_record", type="primary"
):
    try:
        result = outcomes.record_feedback(upload.getvalue(), upload.name, choice, store)
        alerts.refresh_alerts()
        session.flash("outcomes", " ".join([result.summary(), *result.notices]))
        st.rerun()
    except outcomes.OutcomesError as exc:
        show_error(exc)
        st.dataframe(pd.DataFrame(exc.as_records()), hide_index=True, width="stretch")
        if len(exc.details):
            st.caption(f"Rows concerned ({format_count(len(exc.details))}):")
            st.dataframe(exc.details, hide_index=True, width="stretch", height=240)
    except TermDepositError as exc:
        show_error(exc)
    except Exception as exc:  # a bad file must never show a traceback
        show_unexpected(exc, f"recording '{upload.name}'")

with st.expander("Demo: outcomes of a cohort cut from the reference data"):
    st.caption(
        "For trying the loop with a demo week: the customers called on the cohort's latest "
        "call list (or its scoring), with their real results from the data set."
    )
    demo_cohort = st.selectbox(
        "Cohort", list(reversed(list(labels))), format_func=labels.get, key="outcomes_demo"
    )
    if st.button("Prepare the demo outcomes file", key="outcomes_demo_make"):
        from termdeposit.apps.dashboard.scoring import reference_data
        from termdeposit.ops.monitoring import cohort_plan

        frame = reference_data()
        plan = cohort_plan(store, int(demo_cohort))
        try:
            if frame is not None and plan is not None:
                called = plan.members.loc[plan.members["call"], "customer_id"]
                session.outcomes_demo_file = outcomes.outcomes_file(
                    outcomes.simulated_outcomes(called, frame)
                )
        except TermDepositError as exc:
            show_error(exc)
    demo_file = session.outcomes_demo_file
    if demo_file is not None:
        st.download_button(
            "Download the demo outcomes (CSV)",
            data=demo_file,
            file_name="demo_outcomes.csv",
            mime="text/csv",
            key="outcomes_demo_download",
            on_click="ignore",
            icon=":material/download:",
        )

st.subheader("Recorded so far")
recorded = store.outcomes()
if recorded.empty:
    st.caption("No outcomes recorded yet.")
else:
    summary = (
        recorded.groupby("cohort_id")
        .agg(
            outcomes=("customer_id", "size"),
            called=("called", "sum"),
            subscribed=("subscribed", "sum"),
        )
        .reset_index()
        .merge(cohorts.loc[:, ["id", "week_label", "name"]], left_on="cohort_id", right_on="id")
    )
    summary["conversion among called"] = summary["subscribed"] / summary["called"]
    st.dataframe(
        readable_columns(
            summary,
            keep=[
                "cohort_id",
                "week_label",
                "name",
                "outcomes",
                "called",
                "subscribed",
                "conversion among called",
            ],
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "Conversion among the called": st.column_config.NumberColumn(format="percent")
        },
    )

st.subheader("A/B test: model against business as usual")
lists = store.call_lists()
with_holdout = lists[lists["ab_share"] > 0] if len(lists) else lists
if with_holdout.empty:
    st.caption(
        "No call list with a business-as-usual hold-out yet. Choose a hold-out share when you "
        "issue the call list (Call list page, or 'termdeposit issue --holdout 0.1')."
    )
    st.stop()
list_labels = {
    int(r.id): f"list {r.id} of cohort {r.cohort_id} ({r.ab_share:.0%} hold-out, seed {r.ab_seed})"
    for r in with_holdout.itertuples()
}
chosen = st.selectbox(
    "Call list", list(reversed(list(list_labels))), format_func=list_labels.get, key="ab_list"
)
try:
    ab = abtest.ab_results(store, int(chosen))
except TermDepositError as exc:
    show_error(exc)
    st.stop()
groups = ab.table()
left, right = st.columns([3, 2])
left.dataframe(
    groups.rename(columns=lambda c: str(c).replace("_", " ").capitalize()),
    hide_index=True,
    width="stretch",
    column_config={
        "Conversion": st.column_config.NumberColumn(format="percent"),
        "Profit": st.column_config.NumberColumn(format="€%.0f"),
        "Profit per customer": st.column_config.NumberColumn(format="€%.2f"),
    },
)
right.metric(
    "Uplift per customer (model − business as usual)",
    format_money(ab.uplift_per_customer, 2),
    help="Bootstrap 95% interval: resampling the customers of each group 2,000 times "
    "(the same interval as 'termdeposit ab-report' and the Monitoring page).",
)
right.caption(
    f"95% interval {format_money(ab.interval[0], 2)} to {format_money(ab.interval[1], 2)}; "
    f"over the cohort of {format_count(ab.cohort_size)} customers about "
    f"{format_money(ab.uplift_total)}. Conversion among the called: "
    f"{format_percent(ab.conversion_uplift, 1)} points "
    f"({format_percent(ab.conversion_interval[0], 1)} to "
    f"{format_percent(ab.conversion_interval[1], 1)})."
)
st.markdown(f"{ab.counts}.")
st.markdown(f"Uplift {format_money(ab.uplift_per_customer, 2)} per customer: **{ab.verdict}**.")
if ab.warning:
    st.warning(f"The hold-out is too small to tell. {ab.warning}", icon=":material/warning:")
if ab.pending_calls:
    st.caption(f"{format_count(ab.pending_calls)} planned calls have no result yet.")
st.plotly_chart(plots.ab_groups_chart(groups), width="stretch")
