"""Cohorts in the dashboard: read an upload or a demo week, score it once, keep it in session.

Scores are cached by (file sha256, model version) in a small process-wide store, so a rerun,
a page switch or the same file uploaded again never re-scores; the sorted cumulative sums the
threshold page needs are cached beside them, so moving the slider costs microseconds.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from termdeposit.apps.dashboard.common import (
    log,
    progress_reporter,
    show_error,
    show_unexpected,
    write_url,
)
from termdeposit.apps.dashboard.state import RECOMMENDED, session
from termdeposit.core import config
from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import CohortValidationError, TermDepositError
from termdeposit.core.schema import NUMERIC_INPUTS, TARGET, inputs_only
from termdeposit.data.cohort_file import Cohort, load_cohort, validate_cohort
from termdeposit.decisions import economics
from termdeposit.decisions.forecast import ProfitForecaster
from termdeposit.modeling import inference
from termdeposit.modeling.base_rate import WeekForecast, composition_sums
from termdeposit.modeling.predict import (
    assemble_scored,
    decisions,
    follow_week,
    ranks_of,
)
from termdeposit.modeling.registry import LoadedModel
from termdeposit.services import forecasts
from termdeposit.storage import store

#: Rows scored per step of the progress bar.
SCORE_CHUNK_ROWS = 50_000

#: Checkbox key (a session key): the user chose to score without writing the prediction log.
NO_LOG_KEY = "ops_score_without_log"


class _Store:
    """A small thread-safe least-recently-used map (shared by all sessions of the process)."""

    def __init__(self, max_entries: int) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: Any) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)
        return value


@st.cache_resource
def _store() -> _Store:
    return _Store(max_entries=24)


def score_with_progress(
    model: LoadedModel, frame: pd.DataFrame, progress: Callable[[float], None] | None = None
) -> pd.DataFrame:
    """Score a validated cohort frame in chunks, reporting progress; same output as score_frame.

    The week's forecast rate, ranks and decisions are taken over the whole cohort (not per
    chunk): each chunk's model probabilities are made to follow the whole cohort's rate.
    """
    report = progress or (lambda fraction: None)
    inputs = inputs_only(frame)
    raw = []
    for start in range(0, len(frame), SCORE_CHUNK_ROWS):
        raw.append(inference.predict_proba(model, inputs.iloc[start : start + SCORE_CHUNK_ROWS]))
        report(min(1.0, (start + SCORE_CHUNK_ROWS) / max(len(frame), 1)))
    probabilities = follow_week(
        model, np.concatenate(raw) if raw else np.empty(0), composition_sums(frame)
    )
    call = decisions(probabilities, model.threshold)
    scored = assemble_scored(frame, probabilities, call, ranks_of(probabilities))
    return scored


def _scored_for(model: LoadedModel, cohort: Cohort, sha: str) -> pd.DataFrame:
    key = ("scored", sha, model.version)
    scored = _store().get(key)
    if scored is None:
        bar = st.progress(0.0, text=f"Scoring {len(cohort):,} customers...")
        scored = score_with_progress(
            model,
            cohort.frame,
            progress_reporter(bar, f"Scoring {len(cohort):,} customers..."),
        )
        bar.empty()
        _store().put(key, scored)
        log.info("scored %s rows of %s with %s", len(scored), sha[:12], model.version)
    return scored


def hex_sha(sha: str) -> str:
    """A 64-hex file hash (demo cohorts carry a text key instead: it is hashed)."""
    if len(sha) == 64 and all(c in "0123456789abcdef" for c in sha):
        return sha
    return hashlib.sha256(sha.encode("utf-8")).hexdigest()


def log_app_scoring(
    scored: pd.DataFrame, sha: str, name: str, model_version: str, threshold: float
) -> None:
    """Log a dashboard scoring in the prediction log (once per file, model and threshold).

    When the database cannot be reached, the page stops with the reason and a checkbox: the
    user may choose to go on without logging for this session (then a warning stays visible).
    """
    if session.score_without_log:
        st.warning(
            "The prediction log is off for this session (you chose to score without it): "
            "these scores are not recorded for monitoring.",
            icon=":material/warning:",
        )
        return
    try:
        with st.spinner("Writing the prediction log..."):
            result = store.log_scoring(
                scored,
                file_sha256=hex_sha(sha),
                model_version=model_version,
                threshold=threshold,
                name=name,
                week_label=name if name.startswith("20") else None,
                source="app",
            )
        session.cohort_id = result.cohort_id
    except store.StoreUnavailableError as exc:
        show_error(exc)
        st.checkbox(
            "Score without the prediction log for this session (the scores will not be "
            "recorded for monitoring)",
            key=NO_LOG_KEY,
        )
        st.stop()


def set_cohort(model: LoadedModel, cohort: Cohort, name: str, sha: str) -> None:
    """Make ``cohort`` the session's cohort and score it with ``model`` (cached), logged.

    A new cohort follows the money: the recommended choice is applied to it (see
    :func:`resolve_choice`), whatever was pinned for the previous cohort.
    """
    scored = _scored_for(model, cohort, sha)
    log_app_scoring(scored, sha, name, model.version, model.threshold)
    if session.cohort_sha256 != sha and not session.take_keep_choice():
        session.choice_mode = RECOMMENDED
    session.set_cohort(cohort, name, sha, scored, model.version)
    resolve_choice()


def scored_or_stop(model: LoadedModel | None) -> pd.DataFrame:
    """The session's scored cohort (see :func:`ensure_scored`); without one, say so with a
    link to the Score cohort page and stop the page there."""
    scored = ensure_scored(model)
    if scored is None:
        st.info("Score a cohort first.", icon=":material/info:")
        st.page_link(
            "pages/1_Score_cohort.py", label="Score cohort", icon=":material/upload_file:"
        )
        st.stop()
    return scored


def ensure_scored(model: LoadedModel | None) -> pd.DataFrame | None:
    """The session's scored cohort, re-scored if the production model changed; None if none.

    After a reload the cohort named in the page's address (``?cohort=<id>``) is reopened
    from the store. The choice of whom to call is resolved for the current settings.
    """
    if model is None:
        return None
    pending = session.take_reopen_request()
    if session.cohort is None and pending is not None:
        session.mark_reopening()
        reopen_cohort(model, pending)
    cohort = session.cohort
    if cohort is None:
        return None
    if session.model_version != model.version:
        set_cohort(model, cohort, str(session.cohort_name), str(session.cohort_sha256))
    resolve_choice()
    return session.scored


def applied_capacity(settings: BusinessSettings) -> int | None:
    """The capacity the calls are cut to: the sidebar's, unless the user chose not to."""
    return settings.capacity if session.limit_to_capacity else None


def _money_signature(settings: BusinessSettings) -> tuple[Any, ...]:
    return (
        session.cohort_sha256,
        session.model_version,
        float(settings.call_cost),
        float(settings.subscription_value),
        applied_capacity(settings),
    )


def _what_changed(before: tuple[Any, ...] | None, after: tuple[Any, ...]) -> str:
    if before is None or before[:2] != after[:2]:
        return "New cohort"
    changed = [
        name
        for name, old, new in zip(
            ("cost per call", "subscription value", "capacity"), before[2:], after[2:], strict=True
        )
        if old != new
    ]
    if not changed:
        return "Settings changed"
    text = " and ".join(changed)
    return text[0].upper() + text[1:] + " changed"


def resolve_choice() -> economics.Choice | None:
    """Apply the session's choice to its cohort and settings; keep ``threshold`` in step.

    Unless the user pinned a threshold, a number of calls or a budget, the recommended
    choice (the most expected profit within the capacity) is applied, and a change of cost,
    value, capacity or cohort is said in one line (``choice_note``).
    """
    curve = cohort_curve()
    if curve is None:
        return None
    settings = session.settings
    capacity = applied_capacity(settings)
    mode = session.choice_mode
    if mode == RECOMMENDED:
        target = economics.recommended_threshold(curve, settings, capacity)
        choice = economics.resolve_choice(curve, settings, "threshold", target, capacity)
    else:
        value = session.choice_value
        if value is None:
            value = session.threshold or 0.0
        choice = economics.resolve_choice(curve, settings, mode, float(value), capacity)
    session.threshold = choice.threshold
    signature = _money_signature(settings)
    before = session.choice_signature
    if before != signature:
        session.choice_event = (
            "Reopened with the settings in the page's address"
            if session.take_reopened()
            else _what_changed(before, signature)
        )
    elif session.choice_mode_seen != mode:
        session.choice_event = "Following the money again" if mode == RECOMMENDED else "You chose"
    session.choice_signature = signature
    session.choice_mode_seen = mode
    session.choice_note = choice_sentence(
        session.choice_event or "Settings changed", mode, choice, capacity
    )
    session.last_choice = choice
    write_url()
    return choice


def choice_sentence(event: str, mode: str, choice: economics.Choice, capacity: int | None) -> str:
    """What is applied and why, in one line (e.g. "Cost per call changed: the most profitable
    choice is applied (threshold 20.00%, 412 calls, €4,120).")."""
    figures = (
        f"threshold {economics.format_percent(choice.threshold, 2)}, "
        f"{economics.format_count(choice.calls)} calls, {economics.format_money(choice.budget)}"
    )
    if mode == RECOMMENDED:
        within = " within the capacity" if capacity is not None else ""
        return f"{event}: the most profitable choice{within} is applied ({figures})."
    what = {"threshold": "threshold", "calls": "number of calls", "budget": "budget"}[mode]
    if event == "You chose":
        return f"You pinned the {what} ({figures}); it stays until you follow the money again."
    return f"{event}: your pinned {what} is kept ({figures})."


def recent_cohorts(limit: int = 12) -> pd.DataFrame | None:
    """The latest cohorts in the store, newest first (None, quietly, if it cannot be read)."""
    try:
        table = store.open_store().cohorts()
    except TermDepositError as exc:
        log.warning("recent cohorts unavailable: %s", exc)
        return None
    return table.iloc[::-1].head(limit).reset_index(drop=True)


def _demo_week_of(sha: str) -> int | None:
    """The demo week whose key hashes to ``sha`` (demo cohorts are stored under a hashed key)."""
    for week in range(0, 130):
        if hex_sha(f"demo-week-{week}-{config.RAW_FILE_SHA256[:12]}") == sha:
            return week
    return None


def reopen_cohort(model: LoadedModel, cohort_id: int) -> bool:
    """Make a cohort stored earlier the session's cohort again (a demo week with its outcomes).

    The store keeps every cohort's inputs, so a reload or another day reopens it without the
    file; the scores come from the cache or are made again by the production model.
    """
    try:
        ops_store = store.open_store()
        row = ops_store.find_cohort(int(cohort_id))
        sha, name = str(row["file_sha256"]), str(row["name"])
        week = _demo_week_of(sha)
        if week is not None:
            return load_demo_week(model, week, name)
        cohort = _store().get(("cohort", sha))
        if cohort is None:
            frame = ops_store.cohort_inputs(int(cohort_id))
            for column, (_, _, whole) in NUMERIC_INPUTS.items():
                if whole:
                    frame[column] = frame[column].round().astype("int64")
            cohort = _store().put(("cohort", sha), Cohort(frame=frame))
        set_cohort(model, cohort, name, sha)
        return True
    except TermDepositError as exc:
        show_error(exc)
    except Exception as exc:  # a damaged stored cohort must not show a traceback
        show_unexpected(exc, f"reopening cohort {cohort_id}")
    return False


def cohort_curve() -> economics.ThresholdCurve | None:
    """Sorted probabilities and cumulative sums of the session's scored cohort (cached)."""
    scored = session.scored
    if scored is None:
        return None
    key = ("curve", session.cohort_sha256, session.model_version)
    curve = _store().get(key)
    if curve is None:
        outcomes = scored.get(TARGET)
        curve = _store().put(key, economics.build_curve(scored["probability"], outcomes))
    return curve


def cohort_forecaster(model: LoadedModel) -> ProfitForecaster | None:
    """Profit ranges of the session's scored cohort for any number of calls (cached)."""
    curve = cohort_curve()
    if curve is None:
        return None
    key = ("forecaster", session.cohort_sha256, session.model_version)
    forecaster = _store().get(key)
    if forecaster is None:
        forecaster = _store().put(key, forecasts.cohort_forecaster(model.card, curve))
    return forecaster


def cohort_week_forecast(model: LoadedModel) -> WeekForecast | None:
    """The session's cohort's forecast subscription rate and its range (cached)."""
    scored = session.scored
    if scored is None:
        return None
    key = ("week", session.cohort_sha256, session.model_version)
    week = _store().get(key)
    if week is None:
        week = _store().put(key, forecasts.week_forecast(model.card, scored))
    return week


def cohort_curve_table(settings: BusinessSettings) -> pd.DataFrame | None:
    """Figures at every threshold for the charts, cut to the applied capacity (cached)."""
    curve = cohort_curve()
    if curve is None:
        return None
    capacity = applied_capacity(settings)
    key = (
        "table",
        session.cohort_sha256,
        session.model_version,
        settings.call_cost,
        settings.subscription_value,
        capacity,
    )
    table = _store().get(key)
    if table is None:
        table = _store().put(key, economics.capped_curve_table(curve, settings, capacity))
    return table


def _check_upload(name: str, size: int) -> None:
    """Refuse an upload over the dashboard's size limit.

    The file's type is not judged by its name: the content decides, in the same reader as
    the command line and the API, so a file gets the same message in all three.
    """
    limit = config.MAX_UPLOAD_MB
    if size > limit * 1024 * 1024:
        raise TermDepositError(
            f"'{name}' is {size / 1024 / 1024:,.1f} MB; the limit is {limit:g} MB.",
            hint="Split the cohort into smaller files, or score it with the command line "
            "('termdeposit score FILE'), which has no size limit.",
        )


def _validated(data: bytes, name: str, sha: str) -> Cohort:
    key = ("cohort", sha)
    cohort = _store().get(key)
    if cohort is None:
        with st.spinner(f"Reading and checking '{name}'..."):
            cohort = _store().put(key, load_cohort(data, name))
    return cohort


def show_problems(exc: CohortValidationError) -> None:
    """Show a validation failure: one box with what is wrong and what to do, then a table.

    The box holds the message the command line prints and the API answers; the table lists
    every problem with its rows.
    """
    st.error(f"{exc.message}\n\n{exc.hint}", icon=":material/error:")
    st.dataframe(
        pd.DataFrame(exc.as_records(), columns=["column", "rows", "problem"]),
        hide_index=True,
        width="stretch",
        column_config={
            "column": st.column_config.TextColumn("Column", width="small"),
            "rows": st.column_config.TextColumn("Rows (as numbered in a spreadsheet)"),
            "problem": st.column_config.TextColumn("Problem", width="large"),
        },
    )


def load_upload(model: LoadedModel, upload: Any) -> bool:
    """Validate and score an uploaded file; show what is wrong if it cannot be. True if loaded.

    An upload is loaded once: on later reruns the file still sitting in the uploader does not
    replace a demo week chosen since. The same bytes are never read or scored twice (cached
    by their sha256).
    """
    upload_id = getattr(upload, "file_id", None) or (upload.name, upload.size)
    if session.loaded_upload == upload_id:
        return True
    try:
        _check_upload(upload.name, upload.size)
        data = upload.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        cohort = _validated(data, upload.name, sha)
        set_cohort(model, cohort, upload.name, sha)
        session.loaded_upload = upload_id
        return True
    except CohortValidationError as exc:
        show_problems(exc)
    except TermDepositError as exc:
        show_error(exc)
    except Exception as exc:  # anything else must still not show a traceback
        show_unexpected(exc, f"reading '{getattr(upload, 'name', 'the file')}'")
    return False


@st.cache_resource(show_spinner="Reading the reference data...", max_entries=1)
def _reference(data_file: str, mtime: float, size: int) -> pd.DataFrame:
    from termdeposit.data.dataset import load_reference

    return load_reference(Path(data_file))


def reference_data() -> pd.DataFrame | None:
    """The reference data, verified and read once (cached), or None with a message."""
    path = config.raw_data_file()
    try:
        if not path.is_file():
            from termdeposit.data.dataset import verify_raw_file

            verify_raw_file(path)
        stat = path.stat()
        return _reference(str(path), stat.st_mtime, stat.st_size)
    except TermDepositError as exc:
        show_error(exc)
        return None


def demo_weeks() -> pd.DataFrame | None:
    """One row per week of the reference data (label, days, rows, subscribers, rate)."""
    from termdeposit.data.dataset import weeks_table

    frame = reference_data()
    return None if frame is None else weeks_table(frame)


def load_demo_week(model: LoadedModel, week: int, label: str) -> bool:
    """Make one week of the reference data (with its outcomes) the session's cohort."""
    from termdeposit.data.dataset import make_cohort

    frame = reference_data()
    if frame is None:
        return False
    try:
        key = f"demo-week-{week}-{config.RAW_FILE_SHA256[:12]}"
        cohort = _store().get(("cohort", key))
        if cohort is None:
            raw = make_cohort(frame, week, with_outcomes=True).astype(str)
            cohort = _store().put(("cohort", key), validate_cohort(raw))
        set_cohort(model, cohort, label, key)
        return True
    except TermDepositError as exc:
        show_error(exc)
    except Exception as exc:  # the demo must never show a traceback either
        show_unexpected(exc, f"preparing week {week}")
    return False


@st.cache_data(show_spinner="Scoring the time hold-out...", max_entries=8)
def holdout_scores(version: str, artifact_sha256: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Outcomes and scores of a model on its time hold-out (the last 20% of the reference rows).

    The saved artifact was fitted only on earlier rows, so this is an honest out-of-time
    evaluation. Without the reference data, the model's saved sample of training rows is
    used instead (and the label says so).

    Returns:
        (outcomes, probabilities, description of the rows).
    """
    from termdeposit.modeling import registry
    from termdeposit.modeling.train import make_splits

    model = registry.load_model(version)
    try:
        from termdeposit.data.dataset import load_reference

        frame = load_reference()
        y = frame[TARGET].to_numpy(dtype=int)
        rows = make_splits(y, model.info.random_state).holdout_time
        p = model.predict_proba(frame.iloc[rows])
        first, last = frame["week_label"].iloc[rows[0]], frame["week_label"].iloc[rows[-1]]
        label = (
            f"the time hold-out: the last {len(rows):,} customers of the reference data "
            f"({first} to {last}), whom this model never saw"
        )
        return y[rows], np.asarray(p, dtype=float), label
    except TermDepositError:
        sample = model.reference()
        label = (
            f"{len(sample):,} of the model's training customers (the reference data is not "
            "on this machine): expect these curves to look better than on new customers"
        )
        return sample[TARGET].to_numpy(dtype=int), sample["score"].to_numpy(dtype=float), label
