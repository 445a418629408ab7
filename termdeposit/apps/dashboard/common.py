"""Shared set-up for every dashboard page: page config, sidebar, session state, cached model.

Every page starts with ``settings = setup_page("Title")``. With Streamlit's automatic page
discovery a deep link runs a page without the home page, so this call restores everything a
page needs.

Session state: read and written through :data:`termdeposit.apps.dashboard.state.session`
(typed; the module lists every key with its type and meaning).

Sign-in (optional): when ``.streamlit/secrets.toml`` has an ``[auth]`` section (Streamlit's
OpenID Connect sign-in, see README "Sign-in (optional)"), every page asks the user to sign in
before it shows anything, and the sidebar shows who is signed in with a "Sign out" button.
Without an ``[auth]`` section the dashboard is open, as on a laptop.

Widgets never own the session's values: each widget has a private key (``_w_<key>``) that is
set from the persistent key before it is drawn and copied back when the user changes it.
(Streamlit forgets a widget's state when the page that drew it is left, even if the next page
draws a widget with the same key.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.errors import StreamlitAPIException

from termdeposit.apps.dashboard.alerts import alert_banner
from termdeposit.apps.dashboard.state import CHOICE_MODES, RECOMMENDED, session
from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.modeling import registry
from termdeposit.modeling.card import ModelCard
from termdeposit.modeling.registry import LoadedModel

log = get_logger("ui")

#: What the page's address keeps, so a reload (or a shared link) restores the work:
#: ``cost``, ``value``, ``cap`` (agents x calls x days, when the capacity is on), ``full``
#: (0 when the list is not cut to the capacity), ``pick`` (``recommended`` or
#: ``threshold:0.05`` / ``calls:500`` / ``budget:2500``) and ``cohort`` (its id in the store).
URL_KEYS = ("cost", "value", "cap", "full", "pick", "cohort")


def init_state() -> None:
    """Create the persistent session keys (once per session), restored from the address."""
    if session.init_defaults():
        restore_from_url(dict(st.query_params))


def _number(text: Any, kind: type = float) -> Any:
    try:
        value = kind(float(str(text)))
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) < 1e12 else None


def restore_from_url(params: Mapping[str, str]) -> None:
    """Put the settings, the choice and the cohort named in the address into the session.

    Values that do not parse are ignored (the defaults stay): an old or hand-edited link never
    breaks the page.
    """
    settings = session.settings
    cost, value = _number(params.get("cost")), _number(params.get("value"))
    if cost is not None and 0 <= cost <= 10_000:
        settings = replace(settings, call_cost=cost)
    if value is not None and 0.01 <= value <= 1_000_000:
        settings = replace(settings, subscription_value=value)
    session.settings = settings
    parts = str(params.get("cap", "")).split("x")
    sizes = [_number(p, int) for p in parts] if len(parts) == 3 else []
    if sizes and all(n is not None and n >= 1 for n in sizes):
        session.capacity_on = True
        session.capacity_form = (min(sizes[0], 10_000), min(sizes[1], 1_000), min(sizes[2], 31))
    if params.get("full") == "0":
        session.limit_to_capacity = False
    mode, _, amount = str(params.get("pick", "")).partition(":")
    if mode == RECOMMENDED:
        session.pin(RECOMMENDED, None)
    elif mode in CHOICE_MODES and _number(amount) is not None:
        session.pin(mode, _number(amount))
    cohort = _number(params.get("cohort"), int)
    if cohort is not None and cohort > 0:
        session.request_reopen(cohort)


def url_state() -> dict[str, str]:
    """The session's settings, choice and cohort as address parameters (see URL_KEYS)."""
    settings = session.settings
    params = {"cost": f"{settings.call_cost:g}", "value": f"{settings.subscription_value:g}"}
    if session.capacity_on:
        params["cap"] = "x".join(str(n) for n in session.capacity_form)
    if not session.limit_to_capacity:
        params["full"] = "0"
    mode, amount = session.choice_mode, session.choice_value
    params["pick"] = mode if mode == RECOMMENDED or amount is None else f"{mode}:{amount:g}"
    cohort = session.cohort_id
    if cohort is not None and session.cohort is not None:
        params["cohort"] = str(int(cohort))
    return params


def write_url() -> None:
    """Keep the page's address in step with the session (only the parameters that changed)."""
    wanted = url_state()
    current = dict(st.query_params)
    for key in URL_KEYS:
        if key in wanted and current.get(key) != wanted[key]:
            st.query_params[key] = wanted[key]
        elif key not in wanted and key in current:
            del st.query_params[key]


def _copy_back(key: str) -> None:
    session.set(key, session.widget(f"_w_{key}"))


def sync_widget(widget_key: str, value: Any, force: bool = False) -> None:
    """Show ``value`` in the widget ``widget_key`` (call before drawing it).

    The widget's state is set when it differs, when a new page is drawn, and always when
    asked (``force``, used for the sidebar's settings: a run interrupted by a click during
    the first load left the browser showing their minimum, 0.00 and 0.01, while the session
    held 5 and 100). Otherwise it is left alone: setting it forces the browser's value, which
    would swallow a slider move made during the rerun.
    """
    if force or session.page_changed or session.widget(widget_key) != value:
        session.set_widget(widget_key, value)


def bind(key: str) -> dict[str, Any]:
    """Keyword arguments that tie a widget to the persistent session key ``key``.

    Usage: ``st.checkbox("Label", **bind("limit_to_capacity"))``. The widget shows the
    persistent value and writes the user's changes back to it.
    """
    sync_widget(f"_w_{key}", session.get(key))
    return {"key": f"_w_{key}", "on_change": _copy_back, "args": (key,)}


def _set_setting(field: str) -> None:
    changes: dict[str, Any] = {field: float(session.widget(f"_w_{field}"))}
    session.settings = replace(session.settings, **changes)


def _bind_setting(field: str) -> dict[str, Any]:
    sync_widget(f"_w_{field}", float(getattr(session.settings, field)), force=True)
    return {"key": f"_w_{field}", "on_change": _set_setting, "args": (field,)}


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def _load_model_cached(version: str, artifact_sha256: str) -> LoadedModel:
    return registry.load_model(version)


def progress_reporter(bar: DeltaGenerator, text: str) -> Callable[[float], None]:
    """A progress callback for ``bar``: ``text`` followed by the share done (e.g. "... 40%")."""

    def report(fraction: float) -> None:
        bar.progress(fraction, text=f"{text} {fraction:.0%}")

    return report


def show_error(exc: TermDepositError) -> None:
    """Show a project error in an error box: what is wrong, then what to do."""
    st.error(f"{exc.message}\n\n{exc.hint}" if exc.hint else exc.message, icon=":material/error:")


def show_unexpected(exc: Exception, what: str) -> None:
    """Log an unexpected failure in full and show the user a plain message (no traceback)."""
    log.exception("unexpected error while %s", what)
    st.error(
        f"Something went wrong while {what} ({type(exc).__name__}). Nothing was changed.\n\n"
        "Check the file and try again; if it keeps happening, send the file and the time to "
        "the team that runs this dashboard (the details are in the server log).",
        icon=":material/error:",
    )


def production_model(quiet: bool = False) -> LoadedModel | None:
    """The production model, loaded once per version (cached); None, with a message, if absent.

    Args:
        quiet: do not draw the error box (the caller says what to do itself).
    """
    try:
        version = registry.production_version()
        if version is None:
            raise registry.ModelError(
                "There is no production model yet.",
                hint="Open the home page and train the first model (or run 'make run' or "
                "'termdeposit train').",
            )
        card = ModelCard.from_dict(registry.read_card(version))
        return _load_model_cached(version, card.artifact_sha256)
    except TermDepositError as exc:
        log.warning("no usable production model: %s", exc)
        if not quiet:
            show_error(exc)
        return None


def _sidebar_model() -> None:
    try:
        version = registry.production_version()
        if version is None:
            st.sidebar.warning("No production model yet: train one from the home page.")
            return
        raw_card = registry.read_card(version)
    except TermDepositError as exc:
        st.sidebar.error(exc.message)
        return
    card = ModelCard.from_dict(raw_card)
    created = card.created_day
    st.sidebar.markdown(
        f"**Production model** `{version}`  \n{card.family_label} · trained {created}"
    )


def _sidebar_settings() -> BusinessSettings:
    sidebar = st.sidebar
    sidebar.subheader("Business settings")
    sidebar.number_input(
        "Cost per call (€)",
        min_value=0.0,
        max_value=10_000.0,
        step=0.5,
        format="%.2f",
        help="Agent time and telephony for one call.",
        **_bind_setting("call_cost"),
    )
    sidebar.number_input(
        "Value of one subscription (€)",
        min_value=0.01,
        max_value=1_000_000.0,
        step=5.0,
        format="%.2f",
        help="Margin the bank earns from one term deposit.",
        **_bind_setting("subscription_value"),
    )
    sidebar.checkbox(
        "Limit calls to the call centre's capacity",
        help="Enter the capacity as agents × calls per agent per day × days.",
        **bind("capacity_on"),
    )
    if session.capacity_on:
        sidebar.number_input("Agents", min_value=1, max_value=10_000, **bind("capacity_agents"))
        sidebar.number_input(
            "Calls per agent per day",
            min_value=1,
            max_value=1_000,
            **bind("capacity_calls_per_agent"),
        )
        sidebar.number_input("Days", min_value=1, max_value=31, **bind("capacity_days"))
    settings = replace(session.settings, capacity=session.form_capacity())
    session.settings = settings
    if settings.capacity is not None:
        sidebar.caption(f"Capacity: **{settings.capacity:,} calls**")
    sidebar.caption(
        f"Break-even probability (cost ÷ value): **{100 * settings.break_even:.2f}%**. "
        "These settings apply to every page."
    )
    return settings


#: Settings every OpenID Connect provider needs in ``[auth]`` (or ``[auth.<provider>]``).
AUTH_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")


def _secrets_files_exist() -> bool:
    from streamlit import config as st_config

    return any(Path(p).expanduser().exists() for p in st_config.get_option("secrets.files"))


def auth_settings() -> Mapping[str, Any] | None:
    """The ``[auth]`` section of the dashboard's secrets, or None when sign-in is not set up.

    No secrets file at all is normal (the dashboard runs open) and shows nothing. A secrets
    file that exists but cannot be read stops the page: it may hold a sign-in configuration,
    and the dashboard must not fall back to running open.
    """
    try:
        section = st.secrets.get("auth")
    except FileNotFoundError as exc:  # Streamlit's "no secrets" / "unreadable secrets" error
        if not _secrets_files_exist():
            return None
        log.error("the dashboard's secrets file could not be read: %s", type(exc).__name__)
        st.error(
            "The dashboard's secrets file (.streamlit/secrets.toml) could not be read, so "
            "sign-in cannot be checked. Nothing is shown until it is fixed.",
            icon=":material/lock:",
        )
        st.stop()
    return section if isinstance(section, Mapping) and section else None


def _providers(section: Mapping[str, Any]) -> list[str | None]:
    """Provider names to offer: None for the default ``[auth]`` settings, else sub-sections."""
    if all(key in section for key in AUTH_PROVIDER_KEYS):
        return [None]
    return [
        str(name)
        for name, value in section.items()
        if isinstance(value, Mapping) and all(key in value for key in AUTH_PROVIDER_KEYS)
    ]


def signed_in_user() -> str | None:
    """Who is signed in (e-mail, else name), or None when sign-in is off or nobody is."""
    if auth_settings() is None or not st.user.get("is_logged_in", False):
        return None
    who = st.user.get("email") or st.user.get("name")
    return str(who)[:64] if who else None


def _login(provider: str | None) -> None:
    try:
        st.login(provider)
    except StreamlitAPIException as exc:  # e.g. Authlib not installed, incomplete settings
        log.error("sign-in could not start: %s", exc)
        session.sign_in_error = (
            "Sign-in could not start: the server's sign-in set-up is incomplete (the details "
            "are in the server log). Tell the team that runs this dashboard."
        )


def require_sign_in() -> None:
    """With sign-in configured, stop the page until the user is signed in; show who is.

    Does nothing when the secrets have no ``[auth]`` section (the dashboard runs open).
    """
    section = auth_settings()
    if section is None:
        return
    if not st.user.get("is_logged_in", False):
        st.title("termdeposit")
        st.info(
            "This dashboard holds customer data: sign in with your company account to use it.",
            icon=":material/lock:",
        )
        problem = session.take_sign_in_error()
        if problem:
            st.error(problem, icon=":material/error:")
        providers = _providers(section)
        if not providers:
            log.error("[auth] in secrets.toml has no complete provider settings")
            st.error(
                "Sign-in is switched on but not completely set up (client_id, client_secret "
                "and server_metadata_url are needed). Tell the team that runs this dashboard.",
                icon=":material/error:",
            )
        for provider in providers:
            st.button(
                "Sign in" if provider is None else f"Sign in with {provider}",
                key=f"sign_in_{provider or 'default'}",
                type="primary",
                on_click=_login,
                args=(provider,),
            )
        st.stop()
    name, email = st.user.get("name"), st.user.get("email")
    shown = f"{name} ({email})" if name and email else (name or email or "signed in")
    st.sidebar.caption(f"Signed in as **{shown}**")
    st.sidebar.button("Sign out", key="sign_out", on_click=st.logout)


#: Streamlit names the home page after its file ("streamlit app"); show "Home" instead.
_HOME_LABEL_CSS = """<style>
[data-testid="stSidebarNavLink"] span[label="streamlit app"] p {
  visibility: hidden; position: relative;
}
[data-testid="stSidebarNavLink"] span[label="streamlit app"] p::after {
  content: "Home"; visibility: visible; position: absolute; left: 0; top: 50%;
  transform: translateY(-50%);
}
</style>"""


def setup_page(title: str, icon: str = ":material/call:") -> BusinessSettings:
    """Set the page up: config, session state, sidebar (model + settings); return settings."""
    st.set_page_config(page_title=f"{title} · termdeposit", page_icon=icon, layout="wide")
    st.html(_HOME_LABEL_CSS)
    require_sign_in()
    init_state()
    session.enter_page(title)
    _sidebar_model()
    settings = _sidebar_settings()
    write_url()
    st.title(title)
    alert_banner()
    return settings
