"""Score cohort: upload this week's customers (or take a demo week) and score them."""

import streamlit as st

from termdeposit.apps.dashboard import scoring
from termdeposit.apps.dashboard.common import production_model, setup_page
from termdeposit.apps.dashboard.state import session
from termdeposit.apps.dashboard.widgets import applied_capacity, choice_status, threshold_marks
from termdeposit.core.config import MAX_UPLOAD_MB
from termdeposit.decisions import economics
from termdeposit.decisions.economics import format_count, format_percent
from termdeposit.insight import plots

settings = setup_page("Score cohort", icon=":material/upload_file:")
model = production_model()
if model is None:
    st.stop()

st.markdown(
    "Upload this week's cohort: one row per customer, with the 19 customer and context "
    "columns of the bank's campaign file (a `customer_id` column is recommended). CSV "
    "(`;` or `,` separated) or Excel `.xlsx`, up to "
    f"{MAX_UPLOAD_MB} MB. Columns known only after a call (`duration`, `y`) may be present: "
    "they are not used for scoring."
)
upload_tab, demo_tab, recent_tab = st.tabs(
    ["Upload a file", "Use a demo week", "Reopen a recent cohort"],
    key="score_source",
    on_change="rerun",
)
with upload_tab:
    upload = st.file_uploader(
        "Cohort file (CSV or Excel)",
        key="cohort_upload",
        help="Columns: customer_id, age, job, marital, education, default, housing, loan, "
        "contact, month, day_of_week, campaign, pdays, previous, poutcome, emp.var.rate, "
        "cons.price.idx, cons.conf.idx, euribor3m, nr.employed.",
    )
    if upload is not None:
        scoring.load_upload(model, upload)
if demo_tab.open:
    with demo_tab:
        st.caption(
            "A week of the bank's real campaign (UCI Bank Marketing data, 2008-2010), with the "
            "outcomes of the calls, so the other pages can show realised results beside expected."
        )
        weeks = scoring.demo_weeks()
        if weeks is not None:
            options = weeks["week"].tolist()
            labels = {
                row.week: f"{row.label} ({row.days}): {row.rows:,} customers"
                for row in weeks.itertuples()
            }
            chosen = st.selectbox(
                "Week", options, index=options.index(39), format_func=labels.get, key="demo_week"
            )
            if st.button("Score this week", key="score_demo", type="primary"):
                label = str(weeks.loc[weeks["week"] == chosen, "label"].iloc[0])
                scoring.load_demo_week(model, int(chosen), label)

if recent_tab.open:
    with recent_tab:
        recent = scoring.recent_cohorts()
        if recent is None or recent.empty:
            st.caption("No cohort has been scored on this server yet.")
        else:
            st.caption(
                "Every cohort scored here is kept (its customers' inputs, not the file), so you "
                "can go back to one after a reload or on another day."
            )
            labels = {
                int(r.id): f"{r.name} · {r.rows:,} customers · scored "
                f"{str(r.uploaded_at)[:16].replace('T', ' ')} UTC"
                for r in recent.itertuples()
            }
            picked = st.selectbox(
                "Cohort", list(labels), format_func=labels.get, key="recent_cohort"
            )
            if st.button("Reopen this cohort", key="reopen_cohort", type="primary"):
                scoring.reopen_cohort(model, int(picked))

scored = scoring.ensure_scored(model)
if scored is None:
    st.info("No cohort yet: upload a file or score a demo week.", icon=":material/info:")
    st.stop()

cohort = session.cohort
curve = scoring.cohort_curve()
threshold = session.chosen_threshold
st.subheader(f"Cohort: {session.cohort_name}")
for notice in cohort.notices:
    st.info(notice, icon=":material/info:")
choice_status(curve, settings)

summary = economics.summary_at(curve, settings, threshold, applied_capacity(settings))
everyone = economics.summarise(curve, settings, curve.size, 0.0)
cols = st.columns(4)
cols[0].metric("Customers", format_count(curve.size))
cols[1].metric(
    "Expected subscriptions",
    format_count(everyone.expected_subscriptions, 1),
    help="Sum of the probabilities: how many would subscribe if everyone were called.",
)
cols[2].metric(
    "Expected subscription rate",
    format_percent(everyone.expected_subscriptions / everyone.customers),
)
cols[3].metric(
    "To call",
    format_count(summary.calls),
    help=f"Everyone with at least a {format_percent(threshold, 2)} chance of subscribing"
    + (" (cut to the call capacity)" if applied_capacity(settings) is not None else "")
    + ". Change the choice on the Threshold & profit page.",
)
if everyone.realised_subscriptions is not None:
    known = everyone.outcomes_known
    st.caption(
        f"This file carries outcomes: {format_count(everyone.realised_subscriptions)} of "
        f"{format_count(known)} customers with a known outcome subscribed "
        f"({format_percent(everyone.realised_subscriptions / known)})."
    )
st.caption(f"Scored by model `{session.model_version}`.")

st.plotly_chart(
    plots.probability_histogram(
        scored["probability"], threshold_marks(curve, settings, threshold)
    ),
    width="stretch",
)
st.page_link(
    "pages/2_Threshold_and_profit.py",
    label="Next: check the choice on money (or change it)",
    icon=":material/arrow_forward:",
)
