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
from termdeposit.apps.dashboard.common import progress_reporter, show_error
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
        progress=progress_reporter(bar, "Replaying the weeks..."),
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
