"""Operations in the dashboard: prediction log, alerts banner, cached monitoring and backtests.

Used by the Outcomes, Monitoring and Backtest pages, by the shared page set-up (the alerts
banner), by the scoring helper (every scoring is logged) and by the Models and Call list
pages (audit log, A/B hold-out). Database problems are shown, never swallowed: scoring goes on
without the prediction log only when the user ticks the box that says so.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd
import streamlit as st

from termdeposit.apps.dashboard import scoring
from termdeposit.apps.dashboard.alerts import refresh_alerts
from termdeposit.apps.dashboard.common import show_error
from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import readable_columns
from termdeposit.decisions import abtest
from termdeposit.modeling import registry
from termdeposit.ops import monitoring
from termdeposit.ops.backtest import BacktestConfig, run_backtest
from termdeposit.storage import store


def open_ops_store() -> store.Store | None:
    """The operations store, or None after showing why it cannot be used."""
    try:
        return store.open_store()
    except TermDepositError as exc:
        show_error(exc)
        return None


@st.cache_data(ttl=300, show_spinner="Computing the weekly figures and drift...", max_entries=4)
def _monitor(url: str, fingerprint: tuple, production: str | None) -> monitoring.MonitorResult:
    result = monitoring.run_monitor(store.open_store(url))
    refresh_alerts()
    return result


def run_checks() -> monitoring.MonitorResult | None:
    """Run the monitoring rules (alerts stored), again only when the data changed."""
    try:
        ops_store = store.open_store()
        return _monitor(ops_store.url, ops_store.fingerprint(), registry.production_version())
    except TermDepositError as exc:
        show_error(exc)
        return None


@st.cache_data(show_spinner=False, max_entries=8)
def _backtest(config: dict[str, Any], data_sha: str) -> dict[str, Any]:
    frame = scoring.reference_data()
    if frame is None:
        raise TermDepositError("The reference data is not available on this machine.")
    bar = st.progress(0.0, text="Replaying the weeks...")
    result = run_backtest(
        frame,
        BacktestConfig(**config),
        progress=lambda f: bar.progress(f, text=f"Replaying the weeks... {f:.0%}"),
    )
    bar.empty()
    return {"summary": result.as_dict(), "weeks": result.weeks}


def backtest(config: BacktestConfig) -> tuple[dict[str, Any], pd.DataFrame] | None:
    """Run (or reuse) a backtest of the reference data; None after showing an error."""
    from termdeposit.core.config import RAW_FILE_SHA256

    try:
        out = _backtest(asdict(config.check()), RAW_FILE_SHA256)
        return out["summary"], out["weeks"]
    except TermDepositError as exc:
        show_error(exc)
        return None


def holdout_controls(key_prefix: str = "ab") -> tuple[float, int | None]:
    """Widgets for the A/B hold-out: share of the cohort and an optional fixed seed."""
    share = st.number_input(
        "Business-as-usual hold-out (% of the cohort, called at random at the model's rate)",
        min_value=0.0,
        max_value=100 * abtest.MAX_SHARE,
        value=0.0,
        step=5.0,
        key=f"{key_prefix}_share",
        help="A random part of the cohort is not chosen by the model: a random sample of it "
        "is called at the same rate. When the outcomes come back, the Outcomes page compares "
        "the groups (uplift with a 95% interval).",
    )
    fixed = st.text_input(
        "Seed of the draw (optional; empty = a new random seed, recorded)",
        key=f"{key_prefix}_seed",
    )
    seed = int(fixed) if fixed.strip().isdigit() else None
    return share / 100.0, seed


def issue_list_button(
    scored: pd.DataFrame,
    listed_ids: pd.Series,
    settings: BusinessSettings,
    threshold: float,
    key_prefix: str = "ab",
) -> pd.DataFrame | None:
    """The A/B hold-out widgets and a button that records the call list as issued.

    Args:
        scored: the session's scored cohort (every customer).
        listed_ids: customers on the model's call list (after threshold, capacity and the
            do-not-call list).

    Returns:
        The customers to call after the hold-out draw (``customer_id``, ``group``,
        ``probability``) once issued in this session, else None (call the model's list).
    """
    share, seed = holdout_controls(key_prefix)
    sha = st.session_state.get("cohort_sha256")
    version = st.session_state.get("model_version")
    issued_key = f"{key_prefix}_issued"
    signature = (sha, version, float(threshold), len(listed_ids), share, seed)
    if st.button(
        "Issue this call list (record it for monitoring"
        + (" and draw the hold-out)" if share else ")"),
        key=f"{key_prefix}_issue",
        disabled=sha is None or version is None,
    ):
        model_calls = scored["customer_id"].astype(str).isin(set(listed_ids.astype(str)))
        try:
            plan = abtest.plan_holdout(
                scored["customer_id"],
                scored["probability"].to_numpy(float),
                model_calls.to_numpy(),
                share,
                seed,
            )
            list_id = abtest.issue_call_list(
                plan,
                file_sha256=scoring.hex_sha(str(sha)),
                model_version=str(version),
                threshold=threshold,
                settings=settings,
            )
            st.session_state[issued_key] = (signature, list_id, plan.seed, plan.to_call())
        except TermDepositError as exc:
            show_error(exc)
    issued = st.session_state.get(issued_key)
    if issued is None or issued[0] != signature:
        return None
    _, list_id, seed_used, to_call = issued
    st.success(
        f"Call list {list_id} recorded"
        + (f" with a hold-out group (seed {seed_used})" if seed_used is not None else "")
        + f": {len(to_call):,} customers to call. The downloads below hold this list.",
        icon=":material/check_circle:",
    )
    return to_call


def audit_section() -> None:
    """The promotion audit log (who promoted which version, when, why), with a CSV export."""
    from termdeposit.data.exports import to_csv_bytes
    from termdeposit.ops.retrain import audit_table

    st.subheader("Audit log")
    try:
        table = audit_table()
    except TermDepositError as exc:
        show_error(exc)
        return
    if table.empty:
        st.caption("No promotion recorded yet.")
        return
    st.dataframe(
        readable_columns(
            table.sort_values("at", ascending=False).drop(columns=["details"]),
            {
                "at": "When (UTC)",
                "action": "Action",
                "version": "Version",
                "previous": "Previous version",
                "user": "By",
                "reason": "Reason",
            },
        ),
        hide_index=True,
        width="stretch",
        column_config={"When (UTC)": st.column_config.DatetimeColumn("When (UTC)")},
    )
    st.download_button(
        "Export the audit log (CSV)",
        data=to_csv_bytes(table),
        file_name="model_audit_log.csv",
        mime="text/csv",
        key="audit_download",
        on_click="ignore",
        icon=":material/download:",
    )


def with_holdout(full: Any, scored: pd.DataFrame, to_call: pd.DataFrame) -> Any:
    """The dashboard's call list replaced by the issued one (model's picks + hold-out calls).

    Args:
        full: the :class:`~termdeposit.decisions.calllist.CallList` the page built.
        scored: the session's scored cohort.
        to_call: the customers to call after the draw (:func:`issue_list_button`).
    """
    from dataclasses import replace

    from termdeposit.decisions.calllist import LIST_COLUMNS
    from termdeposit.modeling.predict import DECISION_NO, DECISION_YES

    rows = scored.set_index("customer_id").loc[to_call["customer_id"].astype(str)].reset_index()
    frame = rows.loc[:, [c for c in LIST_COLUMNS if c in rows]].copy()
    frame["decision"] = [
        DECISION_YES if p >= full.threshold else DECISION_NO for p in frame["probability"]
    ]
    frame["group"] = to_call["group"].to_numpy()
    held = int((frame["group"] == abtest.HOLDOUT).sum())
    note = f"A/B hold-out: {held} calls drawn at random from the business-as-usual group"
    return replace(full, frame=frame.reset_index(drop=True), filters=[*full.filters, note])
