"""Home page: what the product does, the production model at a glance, where to start."""

import streamlit as st

from termdeposit.apps.dashboard.common import (
    production_model,
    setup_page,
    show_error,
    show_unexpected,
)
from termdeposit.apps.dashboard.report import report_downloads
from termdeposit.apps.dashboard.state import session
from termdeposit.core import config
from termdeposit.core.errors import TermDepositError
from termdeposit.decisions.economics import format_count, format_percent
from termdeposit.modeling import registry

settings = setup_page("Term-deposit call planner", icon=":material/call:")
st.markdown(
    "Each week a new cohort of customers arrives. This dashboard scores them with the bank's "
    "trained model (the probability that each one subscribes to a term deposit if called), "
    "lets you choose **whom to call by what it costs and earns**, and gives the call centre "
    "a ranked **call list** to download."
)

data_ready = config.raw_data_file().is_file()
pointer = registry.pointer_status()
has_model = pointer.version is not None
if pointer.problem and not has_model:
    st.error(
        f"{pointer.problem}\n\nOpen the **Models** page and promote the version that should be "
        "in production: that repairs it.",
        icon=":material/error:",
    )
elif not has_model:
    st.warning(
        "There is no production model yet, so nothing can be scored. "
        + (
            "Train the first one below (a few minutes)."
            if data_ready
            else "First download the reference data (the bank's past campaign), then train."
        ),
        icon=":material/warning:",
    )
    if not data_ready:
        if st.button("Download the reference data (UCI Bank Marketing, about 1 MB)", key="fetch"):
            from termdeposit.data.dataset import fetch_data

            try:
                with st.spinner("Downloading and verifying the data..."):
                    fetch_data()
                st.rerun()
            except TermDepositError as exc:
                show_error(exc)
            except Exception as exc:  # network stacks raise many types
                show_unexpected(exc, "downloading the data")
    elif st.button("Train the first model", key="train_first", type="primary"):
        from termdeposit.services.training import train_and_register

        bar = st.progress(0.0, text="Starting...")
        try:
            train_and_register(
                "quick",
                promote_to_production=True,
                progress=lambda step, fraction: bar.progress(min(fraction, 1.0), text=step),
                reason="first model, trained from the dashboard",
            )
            st.rerun()
        except TermDepositError as exc:
            show_error(exc)
        except Exception as exc:  # training can fail in many ways; say so plainly
            show_unexpected(exc, "training the first model")
    st.caption(
        "From a terminal: `make run` does both, or `termdeposit fetch-data` then "
        "`termdeposit train`."
    )

model = production_model() if has_model else None  # says why if it cannot be used
if model is not None:
    card = model.info
    time_metrics = card.metrics.get("time", {})
    family = card.family_label
    st.subheader(f"The production model at a glance: {family}")
    cols = st.columns(4)
    cols[0].metric("Trained", card.created_day, help=f"Version {model.version}")
    cols[1].metric(
        "Default threshold",
        format_percent(model.threshold, 2),
        help="Customers at or above this probability are called unless you choose otherwise.",
    )
    cols[2].metric(
        "Subscribers in its top 10%",
        format_percent(time_metrics.get("top10_share")),
        help="On the last 20% of the past campaign (customers the model never saw): the share "
        "of all subscribers found by calling the 10% it ranks highest.",
    )
    cols[3].metric(
        "Ranking quality (AUC)",
        f"{time_metrics.get('auc', float('nan')):.3f}",
        help="On the same time hold-out; 0.5 is a random ranking, 1.0 a perfect one.",
    )
    st.caption(
        f"Version `{model.version}`. The default threshold is the break-even probability when "
        "the model was trained (call cost ÷ subscription value); the sidebar settings give "
        f"{format_percent(settings.break_even, 2)} now. Details on the Models page."
    )

st.subheader("Where to start")
st.page_link(
    "pages/1_Score_cohort.py",
    label="1. Score cohort: upload this week's customers (CSV or Excel), or try a demo week",
    icon=":material/upload_file:",
)
st.page_link(
    "pages/2_Threshold_and_profit.py",
    label="2. Threshold & profit: choose the threshold on calls, cost and expected profit",
    icon=":material/euro:",
)
st.page_link(
    "pages/3_Call_list.py",
    label="3. Call list: remove do-not-call customers and download the list (CSV or Excel)",
    icon=":material/format_list_numbered:",
)
st.page_link(
    "pages/4_Models.py",
    label="4. Models: how good the model is, every version, promote or roll back",
    icon=":material/model_training:",
)
st.caption(
    "The business settings in the sidebar (cost per call, value of a subscription, call "
    "capacity) apply to every page."
)
if model is not None:
    st.subheader("For stakeholders: the report")
    report_downloads(model, settings)

if session.cohort is not None:
    st.info(
        f"Working on cohort **{session.cohort_name}** "
        f"({format_count(len(session.cohort))} customers).",
        icon=":material/info:",
    )
