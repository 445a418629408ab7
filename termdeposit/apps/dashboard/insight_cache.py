"""Cached explanations and fairness figures for the Explanations, Fairness and Call list pages.

SHAP explainers are built once per model version; a cohort's explanation, its reason codes
and its fairness figures are computed once per (model version, cohort, choice) and kept for
every session of the process. Reason codes are computed only for the customers that need
them (those on the call list) and kept, so moving the threshold computes only the new ones.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from termdeposit.apps.dashboard import scoring
from termdeposit.apps.dashboard.common import progress_reporter, show_error, show_unexpected
from termdeposit.apps.dashboard.state import session
from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS, TARGET, inputs_only
from termdeposit.insight import dependence, explain, fairness
from termdeposit.insight.explain import Explanation, ModelExplainer
from termdeposit.modeling.registry import LoadedModel
from termdeposit.services import call_lists

#: The demo week offered when no cohort has been scored yet (as on the Score cohort page).
DEMO_WEEK = 39


def _key(model: LoadedModel) -> tuple[str, str]:
    return model.version, model.info.artifact_sha256


@st.cache_resource(show_spinner="Preparing explanations for this model...", max_entries=4)
def _explainer(_model: LoadedModel, version: str, artifact_sha256: str) -> ModelExplainer:
    return explain.build_explainer(_model)


def explainer_for(model: LoadedModel) -> ModelExplainer | None:
    """The SHAP explainer of a model (built once per version); None, with a message, if not."""
    try:
        return _explainer(model, *_key(model))
    except TermDepositError as exc:
        show_error(exc)
    except Exception as exc:  # a model the explainer cannot read must not show a traceback
        show_unexpected(exc, "preparing the explanations")
    return None


def model_note(explainer: ModelExplainer, model: LoadedModel) -> str:
    """What is explained and on which scale, in two sentences."""
    family = model.info.family_label or explainer.family
    method = EXPLANATION_METHODS.get(explainer.family, EXPLANATION_METHODS["xgboost"])
    if explainer.scale == "probability":
        scale = (
            "Contributions are in probability points: they add up, from the average "
            f"customer's {explainer.base_value:.1%}, to the customer's score."
        )
    else:
        scale = (
            "Contributions are on the model's log-odds scale (positive raises the "
            "probability, negative lowers it); they add up, from the average customer's "
            f"{explain.to_probability(explainer.base_value, 'log-odds'):.1%}, to the "
            "customer's score."
        )
    note = (
        f"Model `{model.version}` ({family}), explained with SHAP values: each input's share "
        f"in moving a customer's score away from the average customer's, {method}. {scale}"
    )
    if explainer.calibrated:
        note += (
            " The model is calibrated: the contributions explain the model inside the "
            "calibration step (its ranking), and the probability shown is the calibrated one, "
            "so the two can differ a little."
        )
    return note


#: How each model family is explained, in words a stakeholder can read.
EXPLANATION_METHODS = {
    "logreg": "computed exactly from the regression's weights",
    "xgboost": "computed exactly from the model's decision trees",
    "random_forest": "computed exactly from the forest's decision trees",
    "blend": (
        "computed exactly for each model of the average (its trees, or the regression's "
        "weights) and averaged as the model averages their chances"
    ),
}


def no_cohort_yet(model: LoadedModel, purpose: str, key: str) -> None:
    """Say there is no cohort yet; offer the demo week and the Score cohort page."""
    st.info(
        f"No cohort has been scored yet, so there is nothing to {purpose}. Score this week's "
        "file on the Score cohort page, or look at a demo week of the bank's past campaign.",
        icon=":material/info:",
    )
    weeks = scoring.demo_weeks()
    left, right = st.columns(2)
    if weeks is not None and DEMO_WEEK in set(weeks["week"]):
        row = weeks.loc[weeks["week"] == DEMO_WEEK].iloc[0]
        label = str(row["label"])
        if left.button(
            f"Use the demo week {label} ({int(row['rows']):,} customers)",
            key=key,
            type="primary",
        ) and scoring.load_demo_week(model, DEMO_WEEK, label):
            st.rerun()
    right.page_link("pages/1_Score_cohort.py", label="Score cohort", icon=":material/upload_file:")


def _cohort_key(model: LoadedModel) -> tuple[str, str, str]:
    return (*_key(model), str(session.cohort_sha256))


@st.cache_resource(show_spinner=False, max_entries=8)
def _explanation(
    _explainer: ModelExplainer, _scored: pd.DataFrame, key: tuple[str, ...]
) -> Explanation:
    return explain.explain_sample(_explainer, _scored)


def cohort_explanation(
    model: LoadedModel, explainer: ModelExplainer, scored: pd.DataFrame
) -> Explanation:
    """SHAP contributions of the session's cohort (or of a stated random sample), cached."""
    rows = min(len(scored), explainer.sample_limit)
    with st.spinner(f"Explaining {rows:,} customers..."):
        return _explanation(explainer, scored, _cohort_key(model))


class _ReasonStore:
    """Reason codes computed so far, per (model, cohort), shared by all sessions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.baselines: dict[tuple[str, ...], pd.Series] = {}
        self.tables: dict[tuple[str, ...], pd.DataFrame] = {}


@st.cache_resource
def _reason_store() -> _ReasonStore:
    return _ReasonStore()


def reasons_provider(
    model: LoadedModel | None, scored: pd.DataFrame
) -> tuple[call_lists.ReasonsFn | None, str | None]:
    """The call list's reasons for this session's cohort, computed once per customer.

    The same reasons as :func:`termdeposit.services.call_lists.model_reasons` (the command
    line's), measured against the same average customer of the cohort; customers already
    explained for this model and cohort are not explained again when the threshold moves.
    Returns (provider, None), or (None, why) when the model cannot be explained.
    """
    if model is None:
        return None, "Reasons: not available (no model in production)"
    explainer = explainer_for(model)
    if explainer is None:
        return None, "Reasons: not available (this model cannot be explained)"
    store = _reason_store()
    key = _cohort_key(model)
    with store.lock:
        baseline = store.baselines.get(key)
    if baseline is None:
        with st.spinner("Measuring this week's average customer for the reasons..."):
            baseline = explain.cohort_baseline(
                explainer, scored.loc[:, [ID_COLUMN, *INPUT_COLUMNS]].reset_index(drop=True)
            )
        with store.lock:
            store.baselines[key] = baseline

    def reasons(rows: pd.DataFrame) -> pd.DataFrame:
        with store.lock:
            known = store.tables.get(key)
        done = pd.Index([] if known is None else known[ID_COLUMN])
        wanted = pd.Index(rows[ID_COLUMN].astype(str).unique())
        missing = wanted.difference(done)
        if len(missing):
            todo = rows.loc[rows[ID_COLUMN].astype(str).isin(missing)]
            bar = st.progress(0.0, text=f"Finding the reasons for {len(todo):,} calls...")
            new = explain.reason_codes(
                None,
                todo.loc[:, [ID_COLUMN, *INPUT_COLUMNS]].reset_index(drop=True),
                explainer=explainer,
                baseline=baseline,
                phrasing="caller",
                progress=progress_reporter(bar, f"Finding the reasons for {len(todo):,} calls..."),
            )
            bar.empty()
            with store.lock:
                current = store.tables.get(key)
                merged = new if current is None else pd.concat([current, new], ignore_index=True)
                store.tables[key] = merged.drop_duplicates(ID_COLUMN, keep="last")
                while len(store.tables) > 16:
                    store.tables.pop(next(iter(store.tables)))
                known = store.tables[key]
        if known is None:  # no rows asked for (the call list never asks for none)
            return rows.loc[:, [ID_COLUMN]]
        return known.loc[known[ID_COLUMN].isin(wanted)]

    return reasons, None


def current_calls(
    scored: pd.DataFrame, settings: BusinessSettings
) -> tuple[np.ndarray, float, int | None]:
    """Who is called at the session's threshold and capacity: (mask, threshold, capacity)."""
    threshold = session.chosen_threshold
    cap = settings.capacity if session.limit_to_capacity else None
    return fast_called_mask(scored, threshold, cap), threshold, cap


def fast_called_mask(scored: pd.DataFrame, threshold: float, capacity: int | None) -> np.ndarray:
    """:func:`termdeposit.decisions.calllist.called_mask` without sorting the cohort.

    The customers at or above the threshold; with a capacity, the best-ranked of those (the
    same customers, tested against ``called_mask``): milliseconds for 100,000 customers where
    building the list takes a sort on every page run.
    """
    called = scored["probability"].to_numpy(dtype=float) >= threshold
    if capacity is not None and called.sum() > capacity:
        ranks = scored["rank"].to_numpy()
        limit = np.sort(ranks[called])[int(capacity) - 1] if capacity > 0 else 0
        called &= ranks <= limit
    return called


def outcomes_of(scored: pd.DataFrame) -> pd.Series | None:
    """The known outcomes of the cohort (1/0, NaN unknown), or None when there are none."""
    if TARGET not in scored:
        return None
    y = pd.to_numeric(scored[TARGET], errors="coerce")
    return y if y.notna().any() else None


@st.cache_data(show_spinner=False, max_entries=64)
def _group_report(
    key: tuple[Any, ...], _scored: pd.DataFrame, _called: np.ndarray, attribute: str
) -> fairness.GroupReport:
    return fairness.group_report(
        _scored, _scored["probability"], _called, attribute, outcomes_of(_scored)
    )


@st.cache_data(show_spinner=False, max_entries=64)
def _with_intervals(
    key: tuple[Any, ...],
    _report: fairness.GroupReport,
    _scored: pd.DataFrame,
    _called: np.ndarray,
) -> fairness.GroupReport:
    return fairness.add_intervals(_report, _scored, _called, outcomes_of(_scored))


def _choice_key(model: LoadedModel, called: np.ndarray, attribute: str) -> tuple[str | int, ...]:
    digest = hashlib.sha256(np.packbits(np.asarray(called, dtype=bool)).tobytes()).hexdigest()
    return (*_cohort_key(model), attribute, digest, int(called.sum()))


def group_report(
    model: LoadedModel, scored: pd.DataFrame, called: np.ndarray, attribute: str
) -> fairness.GroupReport:
    """Group metrics of the current calls for one attribute (cached)."""
    return _group_report(_choice_key(model, called, attribute), scored, called, attribute)


def group_report_with_intervals(
    model: LoadedModel,
    scored: pd.DataFrame,
    called: np.ndarray,
    report: fairness.GroupReport,
) -> fairness.GroupReport:
    """The report with 95% bootstrap intervals (cached; takes a few seconds the first time)."""
    key = _choice_key(model, called, report.attribute)
    with st.spinner(
        f"Computing 95% intervals from {fairness.N_BOOT} resamples of the customers..."
    ):
        return _with_intervals(key, report, scored, called)


@st.cache_data(show_spinner=False, max_entries=32)
def _policies(
    key: tuple[Any, ...],
    _scored: pd.DataFrame,
    _called: np.ndarray,
    attribute: str,
    call_cost: float,
    value: float,
) -> list[fairness.Policy]:
    settings = BusinessSettings(call_cost=call_cost, subscription_value=value)
    return fairness.price_of_fairness(
        _scored, _scored["probability"], _called, attribute, settings, outcomes_of(_scored)
    )


def policies(
    model: LoadedModel,
    scored: pd.DataFrame,
    called: np.ndarray,
    attribute: str,
    settings: BusinessSettings,
) -> list[fairness.Policy]:
    """The chosen calls beside the demographic-parity alternatives (cached)."""
    key = _choice_key(model, called, attribute)
    return _policies(
        key, scored, called, attribute, settings.call_cost, settings.subscription_value
    )


@st.cache_data(show_spinner=False, max_entries=8)
def _blind(
    version: str, artifact_sha256: str, call_cost: float, value: float, _model: LoadedModel
) -> fairness.BlindComparison:
    from termdeposit.data.dataset import load_reference

    settings = BusinessSettings(call_cost=call_cost, subscription_value=value)
    return fairness.compare_without_protected(_model, load_reference(), settings)


def blind_comparison_cached(
    model: LoadedModel, settings: BusinessSettings
) -> fairness.BlindComparison | None:
    """The comparison if it was already computed for these settings, else None."""
    key = (*_key(model), settings.call_cost, settings.subscription_value)
    return session.blind_results.get(key)


def blind_comparison(
    model: LoadedModel, settings: BusinessSettings
) -> fairness.BlindComparison | None:
    """Retrain without the protected inputs and compare (cached); None, with a message, if not."""
    key = (*_key(model), settings.call_cost, settings.subscription_value)
    try:
        with st.spinner(
            "Training the same model without age and marital status on the past campaign, "
            "then scoring the time hold-out..."
        ):
            result = _blind(*key, model)
    except TermDepositError as exc:
        show_error(exc)
        return None
    except Exception as exc:  # training can fail in many ways; say so plainly
        show_unexpected(exc, "training the model without the protected inputs")
        return None
    session.blind_results[key] = result
    return result


@st.cache_data(show_spinner=False, max_entries=64)
def _dependence(
    key: tuple[str, ...], _model: LoadedModel, _customer: pd.DataFrame, _scored: pd.DataFrame
) -> dependence.Dependence:
    return dependence.dependence(_model.predict_proba, _customer, _scored, key[-1])


def ice_curves(
    model: LoadedModel, scored: pd.DataFrame, customer: pd.DataFrame, feature: str
) -> dependence.Dependence:
    """Partial dependence and individual curves of one input for one customer (cached)."""
    inputs = inputs_only(customer).astype(str).iloc[0].tolist()
    key = (*_cohort_key(model), str(customer[ID_COLUMN].iloc[0]), *inputs, feature)
    return _dependence(key, model, customer, scored)
