"""Call list: whom to call, best first, why; remove do-not-call customers; issue and download."""

from dataclasses import replace
from functools import partial

import streamlit as st

from termdeposit.apps.dashboard import ops, scoring
from termdeposit.apps.dashboard.common import (
    production_model,
    setup_page,
    show_error,
    show_unexpected,
)
from termdeposit.apps.dashboard.insight_cache import reasons_provider
from termdeposit.apps.dashboard.state import IssuedCallList, session
from termdeposit.apps.dashboard.widgets import TABLE_ROWS, capacity_limit, threshold_controls
from termdeposit.core.errors import TermDepositError
from termdeposit.decisions import abtest, calllist
from termdeposit.decisions.economics import format_count, format_money, format_percent
from termdeposit.services import call_lists

settings = setup_page("Call list", icon=":material/format_list_numbered:")
model = production_model()
scored = scoring.scored_or_stop(model)

curve = scoring.cohort_curve()
threshold = session.chosen_threshold
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

share, seed = ops.holdout_controls("ab")
if share and seed is None:  # one draw per session and cohort: what is shown is what is issued
    seed = session.ab_seeds.setdefault(session.cohort_sha256, abtest.new_seed())
policy = session.fairness_policy  # chosen on the Fairness page
request = call_lists.CallListRequest(
    threshold=threshold,
    capacity=cap,
    do_not_call=call_lists.do_not_call_ids(do_not_call),
    holdout_share=share,
    seed=seed,
    group_policy=(policy["policy"], policy["attribute"]) if policy else None,
)
version = session.model_version
cohort_name = session.cohort_name
reasons, reasons_note = reasons_provider(model, scored)
try:
    prepared = call_lists.prepare_call_list(
        scored,
        settings,
        request,
        cohort_name=cohort_name,
        model_version=version,
        reasons=reasons,
        reasons_note=reasons_note,
        model_card=model.card,
    )
except TermDepositError as exc:
    show_error(exc)
    st.stop()

built = prepared.call_list
message = (
    f"**{format_count(built.eligible)}** customers have a probability of "
    f"{format_percent(threshold, 2)} or more."
)
if dnc_file is not None and do_not_call:
    message += (
        f" The do-not-call list ({format_count(built.do_not_call_ids)} ids, "
        f"{format_count(built.do_not_call_in_cohort)} in this cohort) removed "
        f"**{format_count(built.removed_do_not_call)}** of them."
    )
if built.cut_by_capacity:
    message += (
        f" The capacity of {format_count(cap)} calls leaves out "
        f"**{format_count(built.cut_by_capacity)}** more."
    )
st.markdown(f"{message} **{prepared.count_words()}.**")
holdout_check = prepared.holdout_check()
if holdout_check is not None and not holdout_check.enough:
    st.warning(
        f"The hold-out is too small to tell. {holdout_check.describe()}",
        icon=":material/warning:",
    )
if prepared.policy_note:
    st.info(
        f"Group policy (chosen on the Fairness page): {prepared.policy_note}",
        icon=":material/balance:",
    )
if reasons_note:
    st.caption(reasons_note)

sha = session.cohort_sha256
if st.button(
    "Issue this call list (record it for monitoring"
    + (" with its A/B hold-out group)" if share else ")"),
    key="ab_issue",
    disabled=sha is None,
):
    try:
        recorded = call_lists.record_call_list(prepared, file_sha256=scoring.hex_sha(str(sha)))
        session.issued_call_list = IssuedCallList(request, sha, version, recorded.list_id)
    except TermDepositError as exc:
        show_error(exc)
issued = session.issued_call_list
if sha is not None and (issued is None or issued[:3] != (request, sha, version)):
    # A list issued before a reload: the store knows it. Asked once per list and session (the
    # answer is kept, recorded or not), not on every rerun of the page.
    try:
        known = call_lists.recorded_list_id(prepared, file_sha256=scoring.hex_sha(str(sha)))
    except TermDepositError:  # the store out of reach: the button says so when pressed
        known = None
    issued = IssuedCallList(request, sha, version, known)
    session.issued_call_list = issued
if issued is not None and issued[:3] == (request, sha, version) and issued[3] is not None:
    prepared = replace(prepared, list_id=issued[3])
    st.success(
        f"Call list {prepared.list_id} recorded for monitoring"
        + (f" with its A/B hold-out group (seed {prepared.plan.seed})" if share else "")
        + ". The downloads below hold this list.",
        icon=":material/check_circle:",
    )
else:
    st.caption(
        "Not yet recorded for monitoring: press **Issue** when this is the list the call "
        "centre will call (the downloads hold the same list either way)."
    )

filters = st.columns([2, 2, 1])
search = filters[0].text_input("Search customer id", key="list_search")
jobs = filters[1].multiselect("Job", sorted(built.frame["job"].unique()), key="list_jobs")
contacts = filters[2].multiselect(
    "Contact", sorted(built.frame["contact"].unique()), key="list_contacts"
)
shown_list = calllist.filter_call_list(built, search, jobs, contacts)
if shown_list.filters:
    st.caption(
        f"Filtered ({'; '.join(shown_list.filters)}): {format_count(len(shown_list))} "
        "customers (the downloads hold the filtered list)."
    )
shown = replace(prepared, call_list=shown_list)

chance = calllist.PEOPLE_HEADERS["chance"]
# Only the rows drawn are put in words: a browser table of 90,000 rows takes seconds to draw,
# and so does wording them on every run.
table = calllist.people_table(
    replace(shown_list, frame=shown_list.frame.head(TABLE_ROWS)), chance_as_text=False
)
if len(shown_list) > TABLE_ROWS:
    st.caption(
        f"Showing the first {format_count(TABLE_ROWS)} of {format_count(len(shown_list))} "
        "customers (best first); the downloads hold them all."
    )
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=420,
    column_config={
        chance: st.column_config.ProgressColumn(
            chance, format="%.1f%%", min_value=0.0, max_value=100.0
        )
    },
)
st.caption(calllist.priority_words() + ".")

st.caption(
    f"The downloads hold the {format_count(len(shown))} customers listed above, best first "
    f"(file names carry the cohort and model version; the Excel file's About sheet records "
    f"the threshold and settings). Threshold {format_percent(threshold, 2)} · model "
    f"`{version}` · call cost {format_money(settings.call_cost, 2)} · subscription value "
    f"{format_money(settings.subscription_value, 2)} · capacity: "
    + (f"{format_count(cap)} calls" if cap is not None else "no limit")
)
left, middle, right = st.columns(3)
left.download_button(
    f"Download CSV ({format_count(len(shown))} customers)",
    data=partial(shown.file_bytes, "csv"),
    file_name=shown.file_name("csv"),
    mime="text/csv",
    key="download_csv",
    on_click="ignore",
    icon=":material/download:",
    type="primary",
)
middle.download_button(
    "Download Excel (.xlsx, with an About sheet)",
    data=partial(shown.file_bytes, "xlsx"),
    file_name=shown.file_name("xlsx"),
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    key="download_xlsx",
    on_click="ignore",
    icon=":material/download:",
)
right.download_button(
    "Download for a dialler (CSV, fixed column names)",
    data=partial(shown.file_bytes, "dialler"),
    file_name=shown.file_name("dialler"),
    mime="text/csv",
    key="download_dialler",
    on_click="ignore",
    icon=":material/download:",
    help="Machine-readable columns that never change: customer_id, rank, probability, "
    "priority, group, reason_1..3 and the customer's inputs (README, 'Call list files').",
)
