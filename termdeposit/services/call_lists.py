"""Issue a call list: build → reasons → hold-out → record → export, once for every front door.

The command line (``termdeposit issue``) and the dashboard's Call list page both call
:func:`prepare_call_list` and :func:`record_call_list`, so the same cohort, model and settings
give the same customers, the same reasons and byte-identical CSV files wherever the list is
issued. The steps:

1. **build** the model's choice: customers at or above the threshold, minus the do-not-call
   list, cut to the call capacity (:func:`termdeposit.decisions.calllist.build_call_list`);
2. **hold-out**: optionally draw a business-as-usual group (A/B comparison) among the callable
   customers and call a random sample of it at the model's rate
   (:func:`termdeposit.decisions.abtest.plan_holdout`);
3. **reasons** for every customer on the final list (model picks and random picks alike): what
   sets them apart from this week's other customers, in a caller's words
   (:func:`termdeposit.insight.explain.reason_codes` against :func:`~termdeposit.insight.
   explain.cohort_baseline`);
4. **record** it in the store for monitoring and the A/B report (the same list issued again is
   recorded once);
5. **export** it: a CSV for people, a CSV for diallers, an Excel workbook with an About sheet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS, NUMERIC_INPUTS
from termdeposit.decisions import abtest, calllist
from termdeposit.decisions.calllist import GROUP_HOLDOUT, GROUP_MODEL, CallList, ids_in
from termdeposit.insight import explain, fairness
from termdeposit.modeling import registry
from termdeposit.modeling.predict import ranks_of
from termdeposit.services.forecasts import CohortOutlook, cohort_outlook
from termdeposit.storage.store import Store, open_store

#: File formats a call list is written in (``termdeposit issue --format``).
FORMATS = ("csv", "dialler", "xlsx")

#: Reasons of some customers: (scored rows of those customers) -> customer_id, reason_1..3.
ReasonsFn = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class CallListRequest:
    """What the manager chose: whom to call and whether to hold some back for an A/B test.

    Attributes:
        threshold: call customers with at least this probability.
        capacity: the most calls the call centre can make (None: no limit).
        do_not_call: customer ids never to call.
        holdout_share: share of the callable customers drawn as the business-as-usual group.
        seed: seed of the draw (None: a new one, recorded).
        group_policy: a per-group policy, ``(policy, grouping)`` such as
            ``("parity_same_calls", "age band")`` (see
            :func:`termdeposit.insight.fairness.apply_policy`); None: one threshold for all.
    """

    threshold: float
    capacity: int | None = None
    do_not_call: frozenset[str] = field(default_factory=frozenset)
    holdout_share: float = 0.0
    seed: int | None = None
    group_policy: tuple[str, str] | None = None


@dataclass
class PreparedCallList:
    """A call list ready to hand over: who, in which order, why, and how it was made.

    Attributes:
        call_list: the customers to call (model picks and hold-out picks), best first, with
            ``group``, ``priority`` and ``reason_1..3``.
        plan: who is in which A/B group and who is called (recorded with the list).
        request / settings: what the manager chose, and the money settings.
        cohort_name / model_version / cohort_size: what the list was made from.
        reasons_note: why the list carries no reasons, when it does not.
        policy_note: the per-group policy applied, in a sentence (None: one threshold).
        list_id: the id the store gave it, once recorded.
        forecast: the expected profit of the calls with its 80% range, and the recommendation
            (None when the model's card was not given).
    """

    call_list: CallList
    plan: abtest.HoldoutPlan
    request: CallListRequest
    settings: BusinessSettings
    cohort_name: str
    model_version: str
    cohort_size: int
    reasons_note: str | None = None
    policy_note: str | None = None
    list_id: int | None = None
    forecast: CohortOutlook | None = None

    def __len__(self) -> int:
        return len(self.call_list)

    @property
    def held_out_calls(self) -> int:
        """Calls drawn at random from the business-as-usual group."""
        return int((self.call_list.frame["group"] == GROUP_HOLDOUT).sum())

    def count_words(self) -> str:
        """How many customers are on the list and why, in one sentence: "49 customers to call:
        44 chosen by the model, 5 drawn at random from the 48-customer business-as-usual
        group"."""
        if not (self.plan.members["group"] == abtest.HOLDOUT).any():
            return calllist.count_words(self.call_list)
        return abtest.describe_counts(self.plan.members)

    def holdout_check(self) -> abtest.PowerCheck | None:
        """Whether the hold-out is large enough to detect the uplift the model's
        probabilities promise (None without a hold-out)."""
        members = self.plan.members
        held = (members["group"] == abtest.HOLDOUT).to_numpy()
        if not held.any():
            return None
        return abtest.holdout_needed(
            members["probability"].to_numpy(float),
            members["call"].to_numpy(bool) & ~held,
            held,
            self.settings.call_cost,
            self.settings.subscription_value,
        )

    def notes(self) -> list[str]:
        """The About sheet: how the list was made, in plain words."""
        extra = []
        if self.request.holdout_share:
            extra.append(
                f"A/B comparison: {self.request.holdout_share:.0%} of the callable customers "
                f"were drawn as the business-as-usual group (seed {self.plan.seed}); "
                f"{self.held_out_calls:,} of them are called at random, at the model's rate"
            )
        if self.forecast is not None:
            extra.append(
                f"Expected profit of these calls: {self.forecast.chosen.describe()}; the range "
                "covers chance among the called and how far the week's rate can be off"
            )
            extra.append(f"Recommendation: {self.forecast.recommendation.text}")
        if self.policy_note:
            extra.append(f"Group policy: {self.policy_note}")
        if self.reasons_note:
            extra.append(self.reasons_note)
        if self.list_id is not None:
            extra.append(f"Recorded for monitoring as call list {self.list_id}")
        return calllist.export_notes(
            self.call_list,
            self.settings,
            self.cohort_name,
            self.model_version,
            cohort_size=self.cohort_size,
            extra=extra,
        )

    @property
    def file_stem(self) -> str:
        """``call_list_<cohort>_<model version>``."""
        return calllist.file_stem(self.cohort_name, self.model_version)

    def file_name(self, fmt: str) -> str:
        """The file name for a format (see :data:`FORMATS`)."""
        suffix = {"csv": ".csv", "dialler": "_dialler.csv", "xlsx": ".xlsx"}[_format(fmt)]
        return self.file_stem + suffix

    def file_bytes(self, fmt: str) -> bytes:
        """The list in a format: ``csv`` (people), ``dialler`` (machine columns), ``xlsx``."""
        fmt = _format(fmt)
        if fmt == "csv":
            return calllist.export_csv(self.call_list)
        if fmt == "dialler":
            return calllist.export_dialler_csv(self.call_list)
        return calllist.export_xlsx(self.call_list, self.notes())


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise TermDepositError(
            f"Unknown call-list format '{fmt}'.",
            hint="Use csv (for people), dialler (machine-readable columns) or xlsx (Excel).",
        )
    return fmt


def model_reasons(explainer: explain.ModelExplainer, cohort: pd.DataFrame) -> ReasonsFn:
    """Reasons from a prepared explainer, measured against this cohort's average customer."""
    baseline = explain.cohort_baseline(explainer, _inputs(cohort))

    def reasons(rows: pd.DataFrame) -> pd.DataFrame:
        return explain.reason_codes(
            None, _inputs(rows), explainer=explainer, baseline=baseline, phrasing="caller"
        )

    return reasons


def _inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """Id and the 19 inputs, on a fresh index (the same rows give the same sample)."""
    return frame.loc[:, [ID_COLUMN, *INPUT_COLUMNS]].reset_index(drop=True)


def prepare_call_list(
    scored: pd.DataFrame,
    settings: BusinessSettings,
    request: CallListRequest,
    *,
    cohort_name: str,
    model_version: str,
    reasons: ReasonsFn | None = None,
    reasons_note: str | None = None,
    model_card: dict[str, Any] | None = None,
) -> PreparedCallList:
    """Build the list, draw the hold-out and add the reasons (nothing is stored).

    Args:
        scored: the scored cohort, one row per customer in file order: ``customer_id``,
            ``probability`` and the 19 inputs (a ``rank`` column is recomputed here).
        settings: money settings (written into the About sheet).
        request: threshold, capacity, do-not-call ids, hold-out share and seed.
        cohort_name / model_version: what the list is made from (file names, About sheet).
        reasons: gives the reasons of the listed customers (:func:`model_reasons`); None
            leaves the reason columns empty and ``reasons_note`` says why.
        model_card: the scoring model's card: the list then carries its expected profit with
            the 80% range and the recommendation (:mod:`termdeposit.services.forecasts`).
    """
    frame = _typed(scored)
    built = calllist.build_call_list(
        frame, request.threshold, request.capacity, request.do_not_call
    )
    blocked = {str(i).strip() for i in request.do_not_call} - {""}
    policy_note = None
    if request.group_policy is not None and request.group_policy[0] != "single":
        built, policy_note = _with_group_policy(frame, built, request, settings, blocked)
    callable_rows = frame.loc[~ids_in(frame[ID_COLUMN], blocked)].reset_index(drop=True)
    model_calls = ids_in(callable_rows[ID_COLUMN], built.frame[ID_COLUMN])
    plan = abtest.plan_holdout(
        callable_rows[ID_COLUMN],
        callable_rows["probability"].to_numpy(float),
        model_calls,
        request.holdout_share,
        request.seed,
    )
    to_call = plan.members.loc[plan.members["call"], [ID_COLUMN, "group"]]
    chosen = frame.merge(to_call, on=ID_COLUMN, how="inner", validate="one_to_one")
    chosen = chosen.sort_values("rank", kind="stable").reset_index(drop=True)
    chosen["group"] = np.where(chosen["group"] == abtest.HOLDOUT, GROUP_HOLDOUT, GROUP_MODEL)
    listed = chosen.loc[:, [c for c in (*calllist.LIST_COLUMNS, "group") if c in chosen]]
    if reasons is not None and len(listed):
        listed = explain.add_reasons(listed, reasons(chosen))
    elif reasons_note is None and len(listed):
        reasons_note = "Reasons: not available for this list"
    final = replace(built, frame=listed)
    forecast = None
    if model_card is not None:
        forecast = cohort_outlook(
            model_card,
            frame["probability"].to_numpy(float),
            settings,
            called=ids_in(frame[ID_COLUMN], to_call[ID_COLUMN]),
        )
    return PreparedCallList(
        call_list=final,
        plan=plan,
        request=request,
        settings=settings,
        cohort_name=cohort_name,
        model_version=model_version,
        cohort_size=len(frame),
        reasons_note=reasons_note,
        policy_note=policy_note,
        forecast=forecast,
    )


def _with_group_policy(
    frame: pd.DataFrame,
    built: CallList,
    request: CallListRequest,
    settings: BusinessSettings,
    blocked: set[str],
) -> tuple[CallList, str]:
    """The model's choice under a per-group policy (do-not-call and capacity still apply)."""
    assert request.group_policy is not None
    policy, grouping = request.group_policy
    called = ids_in(frame[ID_COLUMN], built.frame[ID_COLUMN])
    applied = fairness.apply_policy(
        frame, frame["probability"].to_numpy(float), called, policy, grouping, settings
    )
    chosen = frame.loc[applied.called & ~ids_in(frame[ID_COLUMN], blocked)]
    chosen = chosen.sort_values("rank", kind="stable")
    note = applied.description
    if request.capacity is not None and len(chosen) > request.capacity:
        note += (
            f" The capacity of {request.capacity:,} calls keeps the best "
            f"{request.capacity:,} of them, so the shares are equal only approximately."
        )
        chosen = chosen.iloc[: max(int(request.capacity), 0)]
    listed = chosen.loc[:, [c for c in calllist.LIST_COLUMNS if c in chosen]].reset_index(
        drop=True
    )
    return replace(built, frame=listed), note


def _typed(scored: pd.DataFrame) -> pd.DataFrame:
    """Ids as text, whole-number inputs as integers, ranks from the probabilities."""
    frame = scored.reset_index(drop=True).copy()
    frame[ID_COLUMN] = frame[ID_COLUMN].astype(str)
    for column, (_, _, whole) in NUMERIC_INPUTS.items():
        if whole and column in frame:
            frame[column] = pd.to_numeric(frame[column]).astype("int64")
    frame["rank"] = ranks_of(frame["probability"].to_numpy(float))
    return frame


def record_call_list(
    prepared: PreparedCallList,
    *,
    file_sha256: str,
    store: Store | None = None,
    user: str | None = None,
) -> PreparedCallList:
    """Record the list as issued (for monitoring and the A/B report); return it with its id.

    Issuing the same list again (same cohort, model, settings, threshold, capacity, hold-out
    draw and customers) records nothing new and returns the earlier id.
    """
    store = store or open_store()
    existing = _same_list(prepared, file_sha256, store)
    if existing is not None:
        return replace(prepared, list_id=existing)
    list_id = abtest.issue_call_list(
        prepared.plan,
        file_sha256=file_sha256,
        model_version=prepared.model_version,
        threshold=prepared.request.threshold,
        settings=replace(prepared.settings, capacity=prepared.request.capacity),
        store=store,
        user=user,
    )
    return replace(prepared, list_id=list_id)


def recorded_list_id(
    prepared: PreparedCallList, *, file_sha256: str, store: Store | None = None
) -> int | None:
    """The id of this very list if it was already recorded (same cohort, model, settings,
    hold-out draw and customers), else None: how a page reloaded after issuing knows it."""
    return _same_list(prepared, file_sha256, store or open_store())


def _same_list(prepared: PreparedCallList, file_sha256: str, store: Store) -> int | None:
    """The id of an identical list already recorded for this cohort, if any."""
    cohorts = store.cohorts()
    match = cohorts[cohorts["file_sha256"] == file_sha256] if len(cohorts) else cohorts
    if match.empty:
        return None
    lists = store.call_lists(int(match.iloc[0]["id"]))
    request, settings = prepared.request, prepared.settings
    for row, list_id in zip(lists.itertuples(), lists["id"].astype(int), strict=True):
        same = (
            row.model_version == prepared.model_version
            and _close(row.threshold, request.threshold)
            and _close(row.call_cost, settings.call_cost)
            and _close(row.subscription_value, settings.subscription_value)
            and _same_int(row.capacity, request.capacity)
            and _close(row.ab_share, request.holdout_share)
            and _same_int(row.ab_seed, prepared.plan.seed)
        )
        if same and _same_members(store.call_list_members(list_id), prepared.plan.members):
            return list_id
    return None


def _close(stored: Any, value: float | None) -> bool:
    if stored is None or (isinstance(stored, float) and np.isnan(stored)):
        return value is None
    return value is not None and abs(float(stored) - float(value)) < 1e-12


def _same_int(stored: Any, value: int | None) -> bool:
    if stored is None or (isinstance(stored, float) and np.isnan(stored)):
        return value is None
    return value is not None and int(stored) == int(value)


def _same_members(stored: pd.DataFrame, members: pd.DataFrame) -> bool:
    columns = [ID_COLUMN, "group", "call"]
    a = stored.loc[:, columns].astype({ID_COLUMN: str, "group": str, "call": bool})
    b = members.loc[:, columns].astype({ID_COLUMN: str, "group": str, "call": bool})
    if len(a) != len(b):
        return False
    a = a.sort_values(ID_COLUMN).reset_index(drop=True)
    b = b.sort_values(ID_COLUMN).reset_index(drop=True)
    return bool(a.equals(b))


@dataclass
class LoggedScoring:
    """A cohort's latest logged scoring, as the prediction log holds it."""

    cohort_id: int
    cohort_name: str
    file_sha256: str
    model_version: str
    threshold: float | None
    top_n: int | None
    scored: pd.DataFrame


def logged_scoring(cohort: str | int, store: Store | None = None) -> LoggedScoring:
    """The latest scoring of a cohort (id or week label) with its customers' inputs.

    Raises:
        TermDepositError: the cohort is unknown or was never scored with the log on.
    """
    store = store or open_store()
    chosen = store.find_cohort(cohort)
    runs = store.scoring_runs(int(chosen["id"]))
    if runs.empty:
        raise TermDepositError(
            f"Cohort {chosen['id']} has no logged scoring.",
            hint="Score it with the prediction log on (the default), then issue its list.",
        )
    run = runs.iloc[-1]
    predictions = store.predictions(int(run["id"])).loc[:, [ID_COLUMN, "probability"]]
    inputs = store.cohort_inputs(int(chosen["id"]))
    scored = inputs.merge(predictions, on=ID_COLUMN, how="inner", validate="one_to_one")
    threshold = run["threshold"]
    top_n = run.get("top_n")
    return LoggedScoring(
        cohort_id=int(chosen["id"]),
        cohort_name=str(chosen.get("name") or chosen.get("week_label") or chosen["id"]),
        file_sha256=str(chosen["file_sha256"]),
        model_version=str(run["model_version"]),
        threshold=None if pd.isna(threshold) else float(threshold),
        top_n=None if top_n is None or pd.isna(top_n) else int(top_n),
        scored=scored.loc[:, [ID_COLUMN, "probability", *INPUT_COLUMNS]],
    )


def do_not_call_ids(ids: Iterable[str]) -> frozenset[str]:
    """Customer ids never to call, cleaned (blank ids dropped)."""
    return frozenset(str(i).strip() for i in ids) - {""}


def issue_logged(
    logged: LoggedScoring,
    settings: BusinessSettings,
    request: CallListRequest,
    *,
    store: Store | None = None,
    user: str | None = None,
) -> PreparedCallList:
    """Issue a logged scoring's call list with the reasons of the model that scored it.

    What the command line's ``issue`` and the weekly job do: load that model, explain the
    listed customers, prepare the list (with the model card's forecast) and record it once.
    A model that can no longer be loaded still gives the list, with a note saying why the
    reasons are missing.
    """
    reasons, note, card = None, None, None
    try:
        model = registry.load_model(logged.model_version)
        card = model.card
        reasons = model_reasons(explain.build_explainer(model), logged.scored)
    except TermDepositError as exc:
        note = f"Reasons: not available (model {logged.model_version}: {exc.message})"
    prepared = prepare_call_list(
        logged.scored,
        settings,
        request,
        cohort_name=logged.cohort_name,
        model_version=logged.model_version,
        reasons=reasons,
        reasons_note=note,
        model_card=card,
    )
    return record_call_list(prepared, file_sha256=logged.file_sha256, store=store, user=user)
