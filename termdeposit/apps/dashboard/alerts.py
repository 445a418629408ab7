"""The monitoring alerts banner shown at the top of every page (read at most every 30 s)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from termdeposit.core.config import db_url
from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import rule_words
from termdeposit.storage import store


@st.cache_data(ttl=30, show_spinner=False)
def _active_alerts(url: str) -> pd.DataFrame:
    active = store.open_store(url).alerts(active_only=True)
    return active[active["severity"] != "info"] if len(active) else active


def refresh_alerts() -> None:
    """Forget the cached alerts (after a check or an acknowledgement)."""
    _active_alerts.clear()


def alerts_sentence(active: pd.DataFrame) -> str:
    """Active alerts summarised by severity in one sentence, in words (no rule codes).

    E.g. "2 critical alerts (the ranking of the called customers got worse) and 4 warnings
    (the week's economy is outside what the model was trained on; a customer input
    shifted), about 2026-W49."
    """
    parts = []
    for severity, word in (("critical", "critical alert"), ("warning", "warning")):
        some = active[active["severity"] == severity]
        if some.empty:
            continue
        kinds = list(dict.fromkeys(rule_words(r) for r in some["rule"]))
        plural = "s" if len(some) > 1 else ""
        parts.append(f"{len(some)} {word}{plural} ({'; '.join(kinds)})")
    weeks = sorted({str(m).split(":", 1)[0] for m in active["message"] if ":" in str(m)})
    about = f", about {', '.join(weeks[-3:])}" if weeks and len(weeks) <= 3 else ""
    return "Monitoring: " + " and ".join(parts) + about + "."


def alert_banner() -> None:
    """Show active monitoring alerts at the top of a page (read at most every 30 s)."""
    try:
        active = _active_alerts(db_url())
    except TermDepositError as exc:
        st.sidebar.caption(f":orange[Prediction log: {exc.message}]")
        return
    if active.empty:
        return
    text = alerts_sentence(active)
    if (active["severity"] == "critical").any():
        st.error(text, icon=":material/notifications_active:")
    else:
        st.warning(text, icon=":material/notifications:")
    st.page_link("pages/8_Monitoring.py", label="See and acknowledge them on Monitoring")
