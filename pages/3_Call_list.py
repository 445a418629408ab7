"""Call list: whom to call, best first; remove do-not-call customers; download for the team."""

from functools import partial

import streamlit as st

from termdeposit.apps.dashboard import ops, scoring
from termdeposit.apps.dashboard.common import (
    production_model,
    setup_page,
    show_error,
    show_unexpected,
)
from termdeposit.apps.dashboard.insight_cache import call_list_with_reasons
from termdeposit.apps.dashboard.widgets import capacity_limit, threshold_controls
from termdeposit.core.errors import TermDepositError
from termdeposit.decisions import calllist
from termdeposit.decisions.economics import format_count, format_money, format_percent

settings = setup_page("Call list", icon=":material/format_list_numbered:")
scored = scoring.ensure_scored(production_model())
if scored is None:
    st.info("Score a cohort first.", icon=":material/info:")
    st.page_link("pages/1_Score_cohort.py", label="Score cohort", icon=":material/upload_file:")
    st.stop()

curve = scoring.cohort_curve()
threshold = float(st.session_state["threshold"])
with st.expander(f"Threshold: {format_percent(threshold, 2)} (change it here)"):
    threshold = threshold_controls(curve, settings, key_prefix="list")
cap = capacity_limit(curve, settings, threshold)

do_not_call: set[str] = set()
dnc_file = st.file_uploader(
    "Do-not-call list (optional): a file of customer ids, one per line or a customer_id column",
    key="do_not_call_upload",
)
if dnc_file is not None:
    try:
        do_not_call = calllist.read_do_not_call(dnc_file.getvalue(), dnc_file.name)
    except TermDepositError as exc:
        show_error(exc)
    except Exception as exc:  # never a traceback for a bad file
        show_unexpected(exc, f"reading the do-not-call file '{dnc_file.name}'")

full = calllist.build_call_list(scored, threshold, cap, do_not_call)
full = call_list_with_reasons(production_model(), scored, full)
message = (
    f"**{format_count(full.eligible)}** customers have a probability of "
    f"{format_percent(threshold, 2)} or more."
)
if dnc_file is not None and do_not_call:
    message += (
        f" The do-not-call list ({format_count(full.do_not_call_ids)} ids, "
        f"{format_count(full.do_not_call_in_cohort)} in this cohort) removed "
        f"**{format_count(full.removed_do_not_call)}** of them."
    )
if full.cut_by_capacity:
    message += (
        f" The capacity of {format_count(cap)} calls leaves out "
        f"**{format_count(full.cut_by_capacity)}** more."
    )
st.markdown(message + f" **{format_count(len(full))} customers to call.**")
issued = ops.issue_list_button(scored, full.frame["customer_id"], settings, threshold)
if issued is not None:
    full = ops.with_holdout(full, scored, issued)

filters = st.columns([2, 2, 1])
search = filters[0].text_input("Search customer id", key="list_search")
jobs = filters[1].multiselect("Job", sorted(full.frame["job"].unique()), key="list_jobs")
contacts = filters[2].multiselect(
    "Contact", sorted(full.frame["contact"].unique()), key="list_contacts"
)
shown = calllist.filter_call_list(full, search, jobs, contacts)
if shown.filters:
    st.caption(f"Filtered ({'; '.join(shown.filters)}): {format_count(len(shown))} customers.")

table = calllist.export_table(shown)
st.dataframe(
    table.assign(probability=100 * table["probability"]),
    hide_index=True,
    width="stretch",
    height=420,
    column_config={
        "customer_id": st.column_config.TextColumn("Customer id"),
        "rank": st.column_config.NumberColumn("Rank", format="%d"),
        "probability": st.column_config.ProgressColumn(
            "Probability", format="%.1f%%", min_value=0.0, max_value=100.0
        ),
        "decision": st.column_config.TextColumn("Decision"),
    },
)

version = st.session_state["model_version"]
notes = calllist.export_notes(
    shown, settings, st.session_state["cohort_name"], version, cohort_size=curve.size
)
stem = calllist.file_stem(st.session_state["cohort_name"], version)
st.caption(
    f"The downloads hold the {format_count(len(shown))} customers listed above, best first "
    f"(file names carry the cohort and model version; the Excel file's About sheet records "
    f"the threshold and settings). Threshold {threshold:.4f} · model `{version}` · call cost "
    f"{format_money(settings.call_cost, 2)} · subscription value "
    f"{format_money(settings.subscription_value, 2)} · capacity: "
    + (f"{format_count(cap)} calls" if cap is not None else "no limit")
)
left, right = st.columns(2)
left.download_button(
    f"Download CSV ({format_count(len(shown))} customers)",
    data=partial(calllist.export_csv, shown),
    file_name=f"{stem}.csv",
    mime="text/csv",
    key="download_csv",
    on_click="ignore",
    icon=":material/download:",
    type="primary",
)
right.download_button(
    "Download Excel (.xlsx, with an About sheet)",
    data=partial(calllist.export_xlsx, shown, notes),
    file_name=f"{stem}.xlsx",
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    key="download_xlsx",
    on_click="ignore",
    icon=":material/download:",
)
