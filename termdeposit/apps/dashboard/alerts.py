"""The monitoring alerts banner shown at the top of every page (read at most every 30 s)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from termdeposit.core.config import db_url
from termdeposit.core.errors import TermDepositError
from termdeposit.storage import store


@st.cache_data(ttl=30, show_spinner=False)
def _active_alerts(url: str) -> pd.DataFrame:
    active = store.open_store(url).alerts(active_only=True)
    return active[active["severity"] != "info"] if len(active) else active


def refresh_alerts() -> None:
    """Forget the cached alerts (after a check or an acknowledgement)."""
    _active_alerts.clear()


def alert_banner() -> None:
    """Show active monitoring alerts at the top of a page (read at most every 30 s)."""
    try:
        active = _active_alerts(db_url())
    except TermDepositError as exc:
        st.sidebar.caption(f":orange[Prediction log: {exc.message}]")
        return
    if active.empty:
        return
    critical = (active["severity"] == "critical").sum()
    first = active.iloc[0]["message"]
    more = f" (and {len(active) - 1} more)" if len(active) > 1 else ""
    text = f"**{len(active)} monitoring alert{'s' if len(active) > 1 else ''}**: {first}{more}"
    if critical:
        st.error(text, icon=":material/notifications_active:")
    else:
        st.warning(text, icon=":material/notifications:")
    st.page_link("pages/8_Monitoring.py", label="See and acknowledge them on Monitoring")
