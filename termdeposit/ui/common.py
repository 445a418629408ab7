"""Shared set-up for every dashboard page: page config, sidebar, session state, cached model.

Every page starts with ``settings = setup_page("Title")``. With Streamlit's automatic page
discovery a deep link runs a page without the home page, so this call must restore
everything a page needs.

Session state (persistent keys, survive page switches):
    ``settings``      the business settings (:class:`~termdeposit.config.BusinessSettings`)
    ``cohort``        the validated :class:`~termdeposit.schema.Cohort` being worked on
    ``cohort_name``   a label for it (file name or demo week label), used in export names
    ``cohort_sha256`` sha256 of the uploaded bytes (same file = same cohort)
    ``scored``        the scored cohort (:func:`termdeposit.modeling.predict.score_frame`)
    ``model_version`` the version that scored it
    ``threshold``     the chosen probability threshold
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from termdeposit import registry
from termdeposit.config import BusinessSettings, default_settings
from termdeposit.errors import TermDepositError
from termdeposit.registry import LoadedModel

PERSISTENT_DEFAULTS = {
    "cohort": None,
    "cohort_name": None,
    "cohort_sha256": None,
    "scored": None,
    "model_version": None,
    "threshold": None,
}


def init_state() -> None:
    """Create the persistent session keys (once per session)."""
    for key, value in PERSISTENT_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    st.session_state.setdefault("settings", default_settings())


@st.cache_resource(show_spinner="Loading the model...")
def _load_model_cached(version: str, card_sha: str) -> LoadedModel:
    return registry.load_model(version)


def production_model() -> LoadedModel | None:
    """The production model, loaded once per version (cached); None (with a message) if absent."""
    try:
        version = registry.production_version()
        if version is None:
            raise registry.ModelError(
                "There is no production model yet.",
                hint="Run 'make run' (it trains one) or 'termdeposit train'.",
            )
        card = registry.read_card(version)
        return _load_model_cached(version, card["artifact_sha256"])
    except TermDepositError as exc:
        st.error(f"{exc.message} {exc.hint or ''}")
        return None


def current_settings() -> BusinessSettings:
    """The business settings of this session."""
    init_state()
    return st.session_state["settings"]


def _sidebar_settings() -> BusinessSettings:
    settings: BusinessSettings = st.session_state["settings"]
    st.sidebar.subheader("Business settings")
    cost = st.sidebar.number_input(
        "Cost per call (€)", min_value=0.0, max_value=10_000.0, value=float(settings.call_cost),
        step=0.5, key="_w_call_cost", help="Agent time and telephony for one call.",
    )
    value = st.sidebar.number_input(
        "Value of one subscription (€)", min_value=0.01, max_value=1_000_000.0,
        value=float(settings.subscription_value), step=5.0, key="_w_value",
        help="Margin the bank earns from one term deposit.",
    )
    use_capacity = st.sidebar.checkbox(
        "Limit calls to the call centre's capacity", value=settings.capacity is not None,
        key="_w_use_capacity",
    )
    capacity = None
    if use_capacity:
        agents = st.sidebar.number_input("Agents", 1, 10_000, 10, key="_w_agents")
        per_day = st.sidebar.number_input("Calls per agent per day", 1, 1_000, 40, key="_w_per_day")
        days = st.sidebar.number_input("Days", 1, 7, 5, key="_w_days")
        capacity = int(agents * per_day * days)
        st.sidebar.caption(f"Capacity: {capacity:,} calls this week")
    new = replace(settings, call_cost=float(cost), subscription_value=float(value),
                  capacity=capacity)
    st.session_state["settings"] = new
    return new


def setup_page(title: str, icon: str = ":material/call:") -> BusinessSettings:
    """Set the page up: config, session state, sidebar (model + settings); return settings."""
    st.set_page_config(page_title=f"{title} · termdeposit", page_icon=icon, layout="wide")
    init_state()
    version = registry.production_version()
    if version:
        try:
            card = registry.read_card(version)
            st.sidebar.markdown(f"**Production model** `{version}`  \n{card.get('created', '')[:10]}"
                                f" · {card.get('family_label', '')}")
        except TermDepositError as exc:
            st.sidebar.error(exc.message)
    else:
        st.sidebar.warning("No production model yet: run `make run`.")
    settings = _sidebar_settings()
    st.title(title)
    return settings
