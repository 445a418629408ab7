"""The dashboard's session state, typed: every key the pages share, listed in one place.

Pages and helpers read and write the session through :data:`session` (``session.threshold``,
``session.settings = ...``) instead of ``st.session_state["threshold"]``: a typo is an
attribute error that mypy catches, and each value has one type and one meaning. The
underlying ``st.session_state`` keys keep their names (tests seed ``at.session_state[...]``
with them), and :data:`KEYS` lists them all with their types and meanings.

Persistent keys (created once per session by :meth:`DashboardState.init_defaults`, they
survive page switches):

============================  ====================  ===========================================
key                           type                  meaning
============================  ====================  ===========================================
``settings``                  ``BusinessSettings``  the sidebar's business settings (cost, value,
                                                    capacity); they apply to every page at once
``cohort``                    ``Cohort | None``     the validated cohort being worked on
``cohort_name``               ``str | None``        its label (file name or demo week label)
``cohort_sha256``             ``str | None``        sha256 of the uploaded bytes (a demo week
                                                    carries a text key instead)
``scored``                    ``DataFrame | None``  the scored cohort, rows in input order (its
                                                    ``decision`` column is at the model's default
                                                    threshold: ``threshold`` is the choice)
``model_version``             ``str | None``        the version that scored it (always the
                                                    production one: a page that finds another
                                                    production version re-scores, from cache)
``threshold``                 ``float | None``      the resolved probability threshold (set by
                                                    ``scoring.resolve_choice`` for the choice)
``limit_to_capacity``         ``bool``              cut the calls to the capacity (default True)
``capacity_on``               ``bool``              the sidebar's capacity form is on
``capacity_agents``           ``int``               ... agents (capacity = agents x calls x days)
``capacity_calls_per_agent``  ``int``               ... calls per agent per day
``capacity_days``             ``int``               ... days
``choice_mode``               ``ChoiceMode``        ``recommended`` (follow the money), or what
                                                    the user pinned: ``threshold``, ``calls``,
                                                    ``budget``
``choice_value``              ``float | None``      the pinned value (probability, calls, euros)
``choice_note``               ``str | None``        one line: what is applied and why
============================  ====================  ===========================================

Keys set on demand (absent until first written; reads give the default shown in KEYS):
``ops_cohort_id`` (the cohort's id in the prediction log), ``ops_score_without_log`` (a
checkbox's key: score without the log), ``fairness_policy`` (the group policy chosen on the
Fairness page, applied by the Call list), ``issued_call_list``, ``ab_seed_drawn``,
``backtest_config``, and private bookkeeping keys (``_reopen_cohort``, ``_keep_choice``,
``_reopened``, ``_loaded_upload``, ``_choice*``, ``_page``, ``_page_changed``,
``_sign_in_error``, ``_blind_results``, ``_outcomes_demo_file``, ``_<page>_message``).

Widgets never own these values: each bound widget has a private key (``_w_<key>``) that is
set from the persistent key before it is drawn and copied back when the user changes it
(see :func:`termdeposit.apps.dashboard.common.bind`). Widget keys are Streamlit's and are
reached through :meth:`DashboardState.widget` / :meth:`DashboardState.set_widget`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypedDict, cast

import pandas as pd
import streamlit as st

from termdeposit.core.config import BusinessSettings, default_settings
from termdeposit.data.cohort_file import Cohort
from termdeposit.decisions.economics import Choice
from termdeposit.insight.fairness import BlindComparison
from termdeposit.ops.backtest import BacktestConfig
from termdeposit.services.call_lists import CallListRequest

#: How the choice of whom to call is stated: follow the money, or what the user pinned.
ChoiceMode = Literal["recommended", "threshold", "calls", "budget"]
#: ``choice_mode`` when the dashboard follows the money (nothing pinned).
RECOMMENDED: ChoiceMode = "recommended"
CHOICE_MODES: tuple[ChoiceMode, ...] = ("recommended", "threshold", "calls", "budget")

#: Pages that show a one-off message after a rerun (kept under ``_<page>_message``).
FlashPage = Literal["models", "outcomes", "monitoring"]


class GroupPolicy(TypedDict):
    """The group policy chosen on the Fairness page (``fairness_policy``)."""

    policy: str
    attribute: str


class IssuedCallList(NamedTuple):
    """A call list recorded from the Call list page (``issued_call_list``)."""

    request: CallListRequest
    cohort_sha256: str | None
    model_version: str | None
    list_id: int | None


@dataclass(frozen=True)
class StateKey:
    """One session key: its name, the types its value may have, its meaning and default.

    Attributes:
        name: the ``st.session_state`` key.
        types: the value's possible types (``type(None)`` when it may be unset).
        meaning: what it holds, in one line.
        default: the value before anything is written (``factory`` for a fresh one).
        persistent: created by :meth:`DashboardState.init_defaults` on every page.
        factory: makes the default when it must be a new object (settings, dicts).
    """

    name: str
    types: tuple[type, ...]
    meaning: str
    default: Any = None
    persistent: bool = False
    factory: Callable[[], Any] | None = None

    def default_value(self) -> Any:
        """The key's default (a new object each time when it has a factory)."""
        return self.factory() if self.factory is not None else self.default


_NONE = type(None)

#: Every session key the dashboard's own code reads or writes (widget keys aside).
KEYS: tuple[StateKey, ...] = (
    StateKey(
        "settings",
        (BusinessSettings,),
        "business settings",
        persistent=True,
        factory=default_settings,
    ),
    StateKey("cohort", (Cohort, _NONE), "the validated cohort", persistent=True),
    StateKey("cohort_name", (str, _NONE), "the cohort's label", persistent=True),
    StateKey("cohort_sha256", (str, _NONE), "the cohort file's sha256", persistent=True),
    StateKey("scored", (pd.DataFrame, _NONE), "the scored cohort", persistent=True),
    StateKey("model_version", (str, _NONE), "the version that scored it", persistent=True),
    StateKey("threshold", (float, _NONE), "the resolved threshold", persistent=True),
    StateKey("limit_to_capacity", (bool,), "cut calls to capacity", True, persistent=True),
    StateKey("capacity_on", (bool,), "capacity form on", False, persistent=True),
    StateKey("capacity_agents", (int,), "agents", 10, persistent=True),
    StateKey("capacity_calls_per_agent", (int,), "calls per agent per day", 40, persistent=True),
    StateKey("capacity_days", (int,), "days", 5, persistent=True),
    StateKey("choice_mode", (str,), "how the choice is stated", RECOMMENDED, persistent=True),
    StateKey("choice_value", (float, _NONE), "the pinned value", persistent=True),
    StateKey("choice_note", (str, _NONE), "what is applied and why", persistent=True),
    StateKey("ops_cohort_id", (int, _NONE), "the cohort's id in the prediction log"),
    StateKey("ops_score_without_log", (bool,), "score without the prediction log", False),
    StateKey("fairness_policy", (dict, _NONE), "group policy for the call list"),
    StateKey("issued_call_list", (IssuedCallList, _NONE), "the call list last recorded"),
    StateKey("ab_seed_drawn", (dict,), "A/B seed drawn per cohort", factory=dict),
    StateKey("backtest_config", (BacktestConfig, _NONE), "the backtest last run"),
    StateKey("_reopen_cohort", (int, _NONE), "cohort id from the address, to reopen"),
    StateKey("_keep_choice", (bool,), "the next new cohort keeps the choice", False),
    StateKey("_reopened", (bool,), "the cohort was just reopened from the address", False),
    StateKey("_loaded_upload", (object,), "id of the upload already loaded"),
    StateKey("_choice_signature", (tuple, _NONE), "cohort, model and money last resolved"),
    StateKey("_choice_mode_seen", (str, _NONE), "choice mode last resolved"),
    StateKey("_choice_event", (str, _NONE), "what changed the choice last"),
    StateKey("_choice", (Choice, _NONE), "the choice last resolved"),
    StateKey("_page", (str, _NONE), "the page drawn last"),
    StateKey("_page_changed", (bool,), "this run draws another page than the last", True),
    StateKey("_sign_in_error", (str, _NONE), "why sign-in could not start"),
    StateKey("_blind_results", (dict,), "model-without-protected-inputs results", factory=dict),
    StateKey("_outcomes_demo_file", (bytes, _NONE), "demo outcomes CSV"),
    StateKey("_models_message", (str, _NONE), "message for the Models page's next run"),
    StateKey("_outcomes_message", (str, _NONE), "message for the Outcomes page's next run"),
    StateKey("_monitoring_message", (str, _NONE), "message for the Monitoring page's next run"),
)

KEY_BY_NAME: dict[str, StateKey] = {key.name: key for key in KEYS}

#: The persistent keys and their defaults (``settings`` aside: it is made by a factory).
PERSISTENT_DEFAULTS: dict[str, Any] = {
    key.name: key.default for key in KEYS if key.persistent and key.factory is None
}

#: The sidebar's capacity form: agents x calls per agent per day x days.
CAPACITY_FORM_KEYS = ("capacity_agents", "capacity_calls_per_agent", "capacity_days")


class NoChoiceYetError(LookupError):
    """The threshold was read before any cohort was scored (a programming error)."""


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


class DashboardState:
    """Typed access to the dashboard's session keys (see the module docstring and KEYS).

    Args:
        data: the mapping to keep the state in; by default Streamlit's ``st.session_state``
            of the session being run (looked up on every access). Tests pass a plain dict.
    """

    def __init__(self, data: MutableMapping[str, Any] | None = None) -> None:
        self._data = data

    @property
    def _state(self) -> MutableMapping[str, Any]:
        if self._data is not None:
            return self._data
        return cast(MutableMapping[str, Any], st.session_state)

    # -- generic access (registered keys only) -------------------------------------------

    def get(self, name: str) -> Any:
        """The value of the registered key ``name``, or its default when never written."""
        key = KEY_BY_NAME[name]
        state = self._state
        return state[name] if name in state else key.default_value()

    def set(self, name: str, value: Any) -> None:
        """Write the registered key ``name``."""
        if name not in KEY_BY_NAME:
            raise KeyError(f"unknown dashboard session key: {name!r}")
        self._state[name] = value

    def pop(self, name: str) -> Any:
        """Remove the registered key ``name`` and return its value (its default if unset)."""
        key = KEY_BY_NAME[name]
        return self._state.pop(name, key.default_value())

    def _shared(self, name: str) -> Any:
        """A mutable default (dict) kept in the session on first use, so writes to it stay."""
        state = self._state
        if name not in state:
            state[name] = KEY_BY_NAME[name].default_value()
        return state[name]

    def init_defaults(self) -> bool:
        """Create the persistent keys that are missing; True on the session's first run."""
        state = self._state
        first = "settings" not in state
        for key in KEYS:
            if key.persistent and key.name not in state:
                state[key.name] = key.default_value()
        return first

    # -- widget keys (Streamlit's) -------------------------------------------------------

    def widget(self, key: str) -> Any:
        """The current value of the widget ``key`` (None when it has none)."""
        return self._state.get(key)

    def set_widget(self, key: str, value: Any) -> None:
        """Set the value the widget ``key`` shows on its next draw."""
        self._state[key] = value

    # -- business settings and capacity form ---------------------------------------------

    @property
    def settings(self) -> BusinessSettings:
        """The business settings set in the sidebar."""
        return cast(BusinessSettings, self.get("settings"))

    @settings.setter
    def settings(self, value: BusinessSettings) -> None:
        self.set("settings", value)

    @property
    def limit_to_capacity(self) -> bool:
        """True to call only the best ``settings.capacity`` customers when more qualify."""
        return bool(self.get("limit_to_capacity"))

    @limit_to_capacity.setter
    def limit_to_capacity(self, value: bool) -> None:
        self.set("limit_to_capacity", bool(value))

    @property
    def capacity_on(self) -> bool:
        """The sidebar's capacity form is on."""
        return bool(self.get("capacity_on"))

    @capacity_on.setter
    def capacity_on(self, value: bool) -> None:
        self.set("capacity_on", bool(value))

    @property
    def capacity_form(self) -> tuple[int, int, int]:
        """The capacity form's (agents, calls per agent per day, days)."""
        agents, calls, days = (int(self.get(k)) for k in CAPACITY_FORM_KEYS)
        return agents, calls, days

    @capacity_form.setter
    def capacity_form(self, value: tuple[int, int, int]) -> None:
        for name, number in zip(CAPACITY_FORM_KEYS, value, strict=True):
            self.set(name, int(number))

    def form_capacity(self) -> int | None:
        """Calls the capacity form allows (agents x calls x days), None when it is off."""
        if not self.capacity_on:
            return None
        agents, calls, days = self.capacity_form
        return agents * calls * days

    # -- the cohort ----------------------------------------------------------------------

    @property
    def cohort(self) -> Cohort | None:
        """The validated cohort being worked on."""
        return cast(Cohort | None, self.get("cohort"))

    @property
    def cohort_name(self) -> str | None:
        """The cohort's label (file name or demo week label), used in export names."""
        value = self.get("cohort_name")
        return None if value is None else str(value)

    @property
    def cohort_sha256(self) -> str | None:
        """sha256 of the cohort's bytes (a demo week carries a text key instead)."""
        value = self.get("cohort_sha256")
        return None if value is None else str(value)

    @property
    def scored(self) -> pd.DataFrame | None:
        """The scored cohort (rows in input order), None before one is scored."""
        return cast(pd.DataFrame | None, self.get("scored"))

    @property
    def model_version(self) -> str | None:
        """The version of the model that scored the cohort."""
        value = self.get("model_version")
        return None if value is None else str(value)

    def set_cohort(
        self, cohort: Cohort, name: str, sha256: str, scored: pd.DataFrame, model_version: str
    ) -> None:
        """Make ``cohort`` (scored by ``model_version``) the session's cohort."""
        self.set("cohort", cohort)
        self.set("cohort_name", name)
        self.set("cohort_sha256", sha256)
        self.set("scored", scored)
        self.set("model_version", model_version)

    @property
    def cohort_id(self) -> int | None:
        """The cohort's id in the prediction log (None when not logged)."""
        value = self.get("ops_cohort_id")
        return None if value is None else int(value)

    @cohort_id.setter
    def cohort_id(self, value: int | None) -> None:
        self.set("ops_cohort_id", value)

    @property
    def score_without_log(self) -> bool:
        """The user ticked "score without the prediction log" (a checkbox's own key)."""
        return bool(self.get("ops_score_without_log"))

    # -- the choice of whom to call ------------------------------------------------------

    @property
    def threshold(self) -> float | None:
        """The resolved probability threshold; None before any cohort was scored."""
        return _optional_float(self.get("threshold"))

    @threshold.setter
    def threshold(self, value: float) -> None:
        self.set("threshold", float(value))

    @property
    def chosen_threshold(self) -> float:
        """The resolved threshold, for pages that have a scored cohort.

        Raises:
            NoChoiceYetError: when no cohort was scored yet (nothing is chosen).
        """
        value = self.threshold
        if value is None:
            raise NoChoiceYetError("no threshold is chosen yet: score a cohort first")
        return value

    @property
    def choice_mode(self) -> ChoiceMode:
        """``recommended`` while following the money, else what the user pinned."""
        value = self.get("choice_mode")
        if value not in CHOICE_MODES:
            raise ValueError(f"unknown choice mode {value!r}: expected one of {CHOICE_MODES}")
        return cast(ChoiceMode, value)

    @choice_mode.setter
    def choice_mode(self, value: ChoiceMode) -> None:
        self.set("choice_mode", value)

    @property
    def pinned(self) -> bool:
        """True when the user pinned a threshold, a number of calls or a budget."""
        return self.choice_mode != RECOMMENDED

    @property
    def choice_value(self) -> float | None:
        """The pinned value (probability, number of calls or euros); None when following."""
        return _optional_float(self.get("choice_value"))

    def pin(self, mode: ChoiceMode, value: float | None) -> None:
        """Set the choice: ``mode`` with its ``value`` (``recommended`` with None)."""
        self.set("choice_mode", mode)
        self.set("choice_value", _optional_float(value))

    @property
    def choice_note(self) -> str | None:
        """One line on what is applied and why."""
        return cast(str | None, self.get("choice_note"))

    @choice_note.setter
    def choice_note(self, value: str | None) -> None:
        self.set("choice_note", value)

    # -- choice bookkeeping (scoring.resolve_choice) -------------------------------------

    @property
    def choice_signature(self) -> tuple[Any, ...] | None:
        """Cohort, model, cost, value and capacity when the choice was last resolved."""
        return cast(tuple[Any, ...] | None, self.get("_choice_signature"))

    @choice_signature.setter
    def choice_signature(self, value: tuple[Any, ...]) -> None:
        self.set("_choice_signature", value)

    @property
    def choice_mode_seen(self) -> str | None:
        """The choice mode when the choice was last resolved."""
        return cast(str | None, self.get("_choice_mode_seen"))

    @choice_mode_seen.setter
    def choice_mode_seen(self, value: str) -> None:
        self.set("_choice_mode_seen", value)

    @property
    def choice_event(self) -> str | None:
        """What changed the choice last ("New cohort", "You chose", ...)."""
        return cast(str | None, self.get("_choice_event"))

    @choice_event.setter
    def choice_event(self, value: str) -> None:
        self.set("_choice_event", value)

    @property
    def last_choice(self) -> Choice | None:
        """The choice last resolved."""
        return cast(Choice | None, self.get("_choice"))

    @last_choice.setter
    def last_choice(self, value: Choice) -> None:
        self.set("_choice", value)

    # -- reopening a cohort and loading an upload ----------------------------------------

    def request_reopen(self, cohort_id: int) -> None:
        """Ask for the stored cohort ``cohort_id`` to be reopened (from the page's address)."""
        self.set("_reopen_cohort", int(cohort_id))

    def take_reopen_request(self) -> int | None:
        """The cohort id waiting to be reopened, if any (the request is cleared)."""
        value = self.pop("_reopen_cohort")
        return None if value is None else int(value)

    def mark_reopening(self) -> None:
        """The next cohort is reopened from the address: keep its choice, say so once."""
        self.set("_keep_choice", True)
        self.set("_reopened", True)

    def take_keep_choice(self) -> bool:
        """True once after :meth:`mark_reopening`: the new cohort keeps the choice."""
        return bool(self.pop("_keep_choice"))

    def take_reopened(self) -> bool:
        """True once after :meth:`mark_reopening`: the choice note says it was reopened."""
        return bool(self.pop("_reopened"))

    @property
    def loaded_upload(self) -> object:
        """The id of the upload already loaded (an upload is loaded once)."""
        return cast(object, self.get("_loaded_upload"))

    @loaded_upload.setter
    def loaded_upload(self, value: object) -> None:
        self.set("_loaded_upload", value)

    # -- pages -----------------------------------------------------------------------------

    def enter_page(self, title: str) -> None:
        """Note the page being drawn (``page_changed`` says whether it differs from the last)."""
        self.set("_page_changed", self.get("_page") != title)
        self.set("_page", title)

    @property
    def page_changed(self) -> bool:
        """This run draws another page than the last one (True on the first run)."""
        return bool(self.get("_page_changed"))

    def flash(self, page: FlashPage, message: str) -> None:
        """Keep a message for ``page``'s next run (e.g. after ``st.rerun()``)."""
        self.set(f"_{page}_message", message)

    def take_flash(self, page: FlashPage) -> str | None:
        """The message kept for ``page``, once (it is cleared)."""
        return cast(str | None, self.pop(f"_{page}_message"))

    @property
    def sign_in_error(self) -> str | None:
        """Why sign-in could not start (shown once on the sign-in screen)."""
        return cast(str | None, self.get("_sign_in_error"))

    @sign_in_error.setter
    def sign_in_error(self, value: str) -> None:
        self.set("_sign_in_error", value)

    def take_sign_in_error(self) -> str | None:
        """The sign-in problem to show, once (it is cleared)."""
        return cast(str | None, self.pop("_sign_in_error"))

    # -- values one page makes and another uses ------------------------------------------

    @property
    def fairness_policy(self) -> GroupPolicy | None:
        """The group policy chosen on the Fairness page; None for one threshold for all."""
        return cast(GroupPolicy | None, self.get("fairness_policy"))

    @fairness_policy.setter
    def fairness_policy(self, value: GroupPolicy | None) -> None:
        self.set("fairness_policy", value)

    @property
    def issued_call_list(self) -> IssuedCallList | None:
        """The call list last recorded from the Call list page."""
        value = self.get("issued_call_list")
        return None if value is None else IssuedCallList(*value)

    @issued_call_list.setter
    def issued_call_list(self, value: IssuedCallList) -> None:
        self.set("issued_call_list", value)

    @property
    def ab_seeds(self) -> dict[str | None, int]:
        """A/B hold-out seeds drawn this session, by cohort sha256 (kept in the session)."""
        return cast(dict[str | None, int], self._shared("ab_seed_drawn"))

    @property
    def backtest_config(self) -> BacktestConfig | None:
        """The settings of the backtest last run on the Backtest page."""
        return cast(BacktestConfig | None, self.get("backtest_config"))

    @backtest_config.setter
    def backtest_config(self, value: BacktestConfig) -> None:
        self.set("backtest_config", value)

    @property
    def blind_results(self) -> dict[tuple[Any, ...], BlindComparison]:
        """Models retrained without the protected inputs, by model and settings."""
        return cast(dict[tuple[Any, ...], BlindComparison], self._shared("_blind_results"))

    @property
    def outcomes_demo_file(self) -> bytes | None:
        """The demo outcomes CSV made on the Outcomes page."""
        return cast(bytes | None, self.get("_outcomes_demo_file"))

    @outcomes_demo_file.setter
    def outcomes_demo_file(self, value: bytes) -> None:
        self.set("_outcomes_demo_file", value)


#: The running session's state (Streamlit's ``st.session_state``, typed).
session = DashboardState()
