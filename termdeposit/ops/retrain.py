"""Retraining, promotion and recalibration: the model keeps up with the weeks.

- :func:`ingest` loads a data drop (customers contacted, with their outcome ``y``) into the
  store, all or nothing; its rows become training rows like uploaded outcomes.
- :func:`retrain` trains a challenger on the reference data plus every data drop and recorded
  outcome (its artifact is fitted on all of them) and judges it against the production model
  (the champion) at rolling origins: the latest blocks of weeks, each scored by both
  configurations refitted on the rows before it, so neither is judged on weeks it was fitted
  on. It is promoted only if it is better, or when forced with a reason.
  Every decision, including a refusal, is recorded (store table ``promotions``; promotions
  also go to the registry's audit log).
- :func:`recalibrate` refits only the probability scale of the production model on the most
  recent weeks with outcomes (Platt, intercept shift or isotonic map) and records the result
  as a new model version: between retrainings the base rate moves (5% in 2008, 50% in 2010)
  and a calibration fitted once on the past cannot follow it.

Size: Ingesting drops, retraining and recalibrating share the rolling-origin judging, the
training rows (reference, drops and outcomes joined) and the promotion record; split apart they
would pass those private helpers across modules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.utils.validation import check_is_fitted

from termdeposit.core import config, money
from termdeposit.core.config import default_settings
from termdeposit.core.errors import CohortValidationError, Problem, TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS, TARGET, inputs_only
from termdeposit.data.dataset import drop_week, load_reference
from termdeposit.modeling import registry
from termdeposit.modeling.base_rate import follow_weeks_out_of_time
from termdeposit.modeling.card import ModelCard
from termdeposit.modeling.metrics import classification_metrics, expected_calibration_error
from termdeposit.modeling.train import (
    FAMILIES,
    PROFILES,
    build_card,
    build_pipeline,
    train,
    with_calibration,
)
from termdeposit.storage.store import Store, current_user, open_store

log = get_logger("retrain")

RECALIBRATION_METHODS = ("platt", "intercept", "isotonic")

ProgressFn = Callable[[str, float], None]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


@dataclass
class ScoreMap:
    """A monotone map from a model's probability to a recalibrated one.

    ``platt``: p' = sigmoid(slope * logit(p) + intercept); ``intercept``: the same with the
    slope fixed at 1 (only the base rate moves); ``isotonic``: a step function.
    """

    method: str
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: list[float] = field(default_factory=list)
    knots_y: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, method: str, scores: np.ndarray, y: np.ndarray) -> ScoreMap:
        """Fit the map on raw probabilities and outcomes (both classes must occur)."""
        scores = np.asarray(scores, dtype=float)
        y = np.asarray(y, dtype=int)
        if method not in RECALIBRATION_METHODS:
            raise TermDepositError(
                f"Unknown recalibration method '{method}'.",
                hint=f"Use one of: {', '.join(RECALIBRATION_METHODS)}.",
            )
        if len(y) == 0 or y.min() == y.max():
            raise TermDepositError(
                "Recalibration needs outcomes of both kinds (subscribed and not).",
                hint="Wait for more outcomes, or recalibrate on more weeks.",
            )
        z = _logit(scores)
        if method == "intercept":
            shift = 0.0
            for _ in range(100):
                p = _sigmoid(z + shift)
                step = float(np.clip((y - p).sum() / max((p * (1 - p)).sum(), 1e-9), -2, 2))
                shift += step
                if abs(step) < 1e-9:
                    break
            return cls(method, 1.0, shift)
        if method == "platt":
            fitted = LogisticRegression(C=1e6, max_iter=1000).fit(z[:, None], y)
            return cls(method, float(fitted.coef_[0, 0]), float(fitted.intercept_[0]))
        iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(scores, y)
        return cls(method, knots_x=iso.X_thresholds_.tolist(), knots_y=iso.y_thresholds_.tolist())

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Recalibrated probabilities."""
        scores = np.asarray(scores, dtype=float)
        if self.method == "isotonic":
            return np.interp(scores, self.knots_x, self.knots_y)
        return _sigmoid(self.slope * _logit(scores) + self.intercept)

    def describe(self) -> str:
        """The map in words."""
        if self.method == "isotonic":
            return f"isotonic map with {len(self.knots_x)} steps"
        if self.method == "intercept":
            return f"log-odds shifted by {self.intercept:+.3f}"
        return f"log-odds x {self.slope:.3f} {self.intercept:+.3f}"


@dataclass
class _Inner:
    """What explanation code finds inside a calibrated artifact (``.estimator``)."""

    estimator: Any


class RecalibratedModel(ClassifierMixin, BaseEstimator):
    """A fitted scoring pipeline whose probabilities go through a :class:`ScoreMap`.

    Looks like a calibrated artifact to the rest of the product: ``calibrated_classifiers_``
    holds the inner pipeline (for explanations), ``predict_proba`` gives the mapped
    probabilities. ``fit`` (used when a twin is retrained, e.g. for fairness checks) fits the
    estimator on all rows and the map on the last ``recent_rows`` rows (rows in time order).

    Args:
        estimator: the scoring pipeline (or calibrated artifact) to recalibrate.
        method: ``platt``, ``intercept`` or ``isotonic``.
        recent_rows: rows at the end of the training data the map is fitted on in ``fit``.
    """

    def __init__(self, estimator: Any = None, method: str = "platt", recent_rows: int = 1000):
        self.estimator = estimator
        self.method = method
        self.recent_rows = recent_rows

    @classmethod
    def from_fitted(cls, estimator: Any, score_map: ScoreMap, recent_rows: int) -> Any:
        """Wrap an already fitted model with a fitted map (no refit)."""
        model = cls(estimator, score_map.method, recent_rows)
        model._set_fitted(estimator, score_map)
        return model

    def _set_fitted(self, estimator: Any, score_map: ScoreMap) -> None:
        self.estimator_ = estimator
        self.score_map_ = score_map
        self.classes_ = np.array([0, 1])
        inner = estimator
        if hasattr(inner, "calibrated_classifiers_"):
            inner = inner.calibrated_classifiers_[0].estimator
        self.calibrated_classifiers_ = [_Inner(inner)]

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> RecalibratedModel:
        """Fit the estimator on all rows, then the map on the most recent rows."""
        y = np.asarray(y, dtype=int)
        estimator = clone(self.estimator).fit(X, y)
        recent = slice(max(0, len(y) - self.recent_rows), len(y))
        raw = estimator.predict_proba(X.iloc[recent])[:, 1]
        self._set_fitted(estimator, ScoreMap.fit(self.method, raw, y[recent]))
        return self

    def raw_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities before the map."""
        check_is_fitted(self, "score_map_")
        return self.estimator_.predict_proba(X)[:, 1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Recalibrated probabilities of both classes."""
        p = self.score_map_(self.raw_proba(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the recalibrated probability is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def base_estimator(pipeline: Any) -> Any:
    """The model under any recalibration (recalibrating twice replaces the map)."""
    return pipeline.estimator_ if isinstance(pipeline, RecalibratedModel) else pipeline


# -- promotions ---------------------------------------------------------------------------------


def promote(
    version: str,
    reason: str,
    store: Store | None = None,
    action: str = "promote",
    details: dict[str, Any] | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """Make a version production (registry pointer + audit log) and record it in the store."""
    store = store or open_store()
    entry = registry.promote(version, reason, user=user, action=action)
    store.record_promotion(
        action=action,
        version=version,
        previous=entry.get("previous"),
        reason=reason,
        user=entry["user"],
        at=entry["at"],
        details=details,
    )
    return entry


def rollback(reason: str, store: Store | None = None) -> dict[str, Any]:
    """Put the previous production version back, recorded in the registry and the store."""
    store = store or open_store()
    entry = registry.rollback(reason=reason)
    store.record_promotion(
        action="rollback",
        version=entry["version"],
        previous=entry["previous"],
        reason=reason,
        user=entry["user"],
        at=entry["at"],
    )
    return entry


def audit_table(store: Store | None = None) -> pd.DataFrame:
    """Every promotion decision (promotions, rollbacks, refusals), oldest first.

    The registry's audit log (which also holds promotions made with ``termdeposit models``)
    is copied into the store first, so this table is complete.
    """
    store = store or open_store()
    store.sync_promotions()
    table = store.promotions()
    if table.empty:
        return pd.DataFrame(
            columns=["at", "action", "version", "previous", "user", "reason", "details"]
        )
    return table.drop(columns=["id"]).reset_index(drop=True)


def production_at(when: dt.datetime, store: Store | None = None) -> dict[str, Any] | None:
    """The promotion that made the production version at ``when`` (who, why), or None."""
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    table = audit_table(store)
    effective = table[table["action"].isin(["promote", "rollback", "recalibrate"])]
    effective = effective[effective["at"] <= when]
    if effective.empty:
        return None
    return {str(k): v for k, v in effective.iloc[-1].items()}


# -- ingest -------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    """What :func:`ingest` stored, and the week it was filed under (and why)."""

    cohort_id: int
    new_cohort: bool
    rows: int
    added: int
    subscribers: int
    week_label: str = ""
    label_source: str = ""


def week_label_for(
    store: Store, frame: pd.DataFrame, filename: str, sha256: str, week_label: str | None
) -> tuple[str | None, str]:
    """The week a new cohort file is filed under: as given, as recorded, or from its rows.

    A file already stored keeps its week. Otherwise the week comes from the rows' calendar
    (:func:`~termdeposit.data.dataset.drop_week`), never from today's date.

    Raises:
        TermDepositError: the week cannot be told from the rows; the message says to pass it.
    """
    cohorts = store.cohorts()
    if len(cohorts):
        known = cohorts[cohorts["file_sha256"] == sha256]
        if len(known):
            return str(known.iloc[0]["week_label"]), "recorded with this file before"
    if week_label:
        return week_label, "given"
    labels = cohorts["week_label"].tolist() if len(cohorts) else []
    week = drop_week(frame, filename, labels)
    spans = f"; the rows span {week.weeks} weeks" if week.weeks > 1 else ""
    return week.label, f"from the rows' calendar and {week.source}{spans}"


def ingest(
    data: bytes,
    filename: str,
    week_label: str | None = None,
    store: Store | None = None,
    user: str | None = None,
) -> IngestResult:
    """Load a data drop (contacted customers with their outcome ``y``) into the store.

    The file has the cohort columns (customer id, the 19 inputs) and ``y`` (yes/no) for every
    row, like the reference data. It becomes a cohort whose customers were all called, with
    their outcomes: training rows for the next retraining. All or nothing; the same file again
    changes nothing. Without ``week_label`` the week is told from the rows' calendar
    (:func:`week_label_for`), never from today's date.

    Raises:
        CohortValidationError: the file breaks the cohort contract or lacks outcomes.
        TermDepositError: no week label was given and the rows do not tell the year.
    """
    from termdeposit.data.cohort_file import load_cohort
    from termdeposit.modeling.predict import file_sha256

    store = store or open_store()
    cohort = load_cohort(data, filename)
    frame = cohort.frame
    if TARGET not in frame or frame[TARGET].isna().any():
        missing = frame.index[frame[TARGET].isna()] if TARGET in frame else pd.Index([])
        rows = ", ".join(str(i + 2) for i in list(missing)[:5])
        raise CohortValidationError(
            [
                Problem(
                    TARGET,
                    rows,
                    "every row of a data drop needs its outcome (yes or no)"
                    if TARGET in frame
                    else "missing column: a data drop holds the outcome of each call",
                )
            ],
            summary="The data drop cannot be ingested.",
        )
    outcomes = pd.DataFrame(
        {
            ID_COLUMN: frame[ID_COLUMN].astype(str),
            "called": True,
            "subscribed": frame[TARGET].astype(int).astype(bool),
        }
    )
    sha = file_sha256(data)
    label, source = week_label_for(store, frame, filename, sha, week_label)
    cohort_id, new_cohort, added = store.ingest_labelled(
        frame.loc[:, [ID_COLUMN, *INPUT_COLUMNS]],
        outcomes,
        file_sha256=sha,
        name=filename,
        week_label=label,
        user=user,
    )
    return IngestResult(
        cohort_id, new_cohort, len(frame), added, int(frame[TARGET].sum()), str(label), source
    )


# -- retraining ---------------------------------------------------------------------------------


@dataclass
class TrainingData:
    """Every row known now, in time order, with the evaluation window of the latest weeks.

    Attributes:
        frame: reference rows then data-drop and outcome rows (inputs, ``y``, ``period``).
        window: positions of the latest weeks with outcomes (what challengers are judged on).
        window_label: the window in words.
        outcome_rows: rows that came from the store (data drops and recorded outcomes).
        data_sha256: the reference file's sha256 when the store holds no rows, else a digest
            of every row (the card's data checksum).
        labels: each period's name (reference weeks by their label, store cohorts by id).
    """

    frame: pd.DataFrame
    window: np.ndarray
    window_label: str
    outcome_rows: int
    data_sha256: str
    labels: dict[int, str] = field(default_factory=dict)

    @property
    def periods(self) -> np.ndarray:
        """The week (or store cohort) of every row."""
        return self.frame["period"].to_numpy(int)

    @property
    def sources(self) -> dict[str, int]:
        """Rows by origin, for the model card."""
        return {
            "reference_data": int(len(self.frame) - self.outcome_rows),
            "data_drops_and_recorded_outcomes": int(self.outcome_rows),
        }


def training_data(
    store: Store,
    reference: pd.DataFrame | None = None,
    recent_weeks: int = 4,
    min_rows: int = 1000,
) -> TrainingData:
    """Every row a model learns from now, and the most recent weeks it is judged on.

    The rows are the reference data, then each cohort of the store with outcomes (data drops
    and recorded outcomes joined to the customers' inputs), one period per cohort. The window
    is the last ``recent_weeks`` periods with outcomes, widened to whole earlier periods until
    it holds at least ``min_rows`` rows with both outcomes.
    """
    reference = load_reference() if reference is None else reference
    base = reference.loc[:, [*INPUT_COLUMNS, TARGET]].copy()
    base["period"] = reference["week"].to_numpy(int)
    labels = (
        dict(zip(reference["week"].astype(int), reference["week_label"].astype(str), strict=False))
        if "week_label" in reference
        else {int(w): f"week {int(w)}" for w in base["period"].unique()}
    )
    extra = store.training_rows()
    if len(extra):
        rows = extra.loc[:, [*INPUT_COLUMNS, TARGET]].copy()
        offset = int(base["period"].max()) + 1
        cohort_ids, codes = np.unique(extra["cohort_id"].to_numpy(int), return_inverse=True)
        rows["period"] = offset + codes
        labels.update({offset + i: f"cohort {int(c)}" for i, c in enumerate(cohort_ids)})
        frame = pd.concat([base, rows], ignore_index=True)
    else:
        frame = base.reset_index(drop=True)
    periods = frame["period"].to_numpy(int)
    order = np.unique(periods)
    chosen = list(order[-recent_weeks:])
    while True:
        mask = np.isin(periods, chosen)
        y = frame.loc[mask, TARGET]
        if (mask.sum() >= min_rows and 0 < y.sum() < len(y)) or len(chosen) == len(order) - 1:
            break
        chosen.insert(0, order[len(order) - len(chosen) - 1])
    window = np.flatnonzero(mask)
    in_store = len(extra) > 0
    label = (
        f"the last {len(chosen)} cohorts with outcomes ({int(mask.sum())} rows)"
        if in_store and chosen[0] > base["period"].max()
        else f"the last {len(chosen)} weeks with outcomes ({int(mask.sum())} rows)"
    )
    if in_store:
        digest = hashlib.sha256()
        digest.update(config.RAW_FILE_SHA256.encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        checksum = digest.hexdigest()
    else:
        checksum = config.RAW_FILE_SHA256  # exactly the reference file
    return TrainingData(frame, window, label, len(extra), checksum, labels)


def rolling_windows(
    periods: np.ndarray, y: np.ndarray, origins: int, recent_weeks: int, min_rows: int
) -> list[np.ndarray]:
    """The latest ``origins`` blocks of whole periods, oldest first, as row positions.

    Each block is ``recent_weeks`` periods, widened to earlier periods until it holds at least
    ``min_rows`` rows with both outcomes; blocks do not overlap. Every block is scored by
    models fitted on the rows before it only (a rolling origin).
    """
    order = list(np.unique(periods))
    blocks: list[np.ndarray] = []
    while len(blocks) < origins and len(order) > 2:
        chosen = order[-recent_weeks:]
        del order[-recent_weeks:]
        while order:
            mask = np.isin(periods, chosen)
            if mask.sum() >= min_rows and 0 < y[mask].sum() < mask.sum():
                break
            chosen.insert(0, order.pop())
        mask = np.isin(periods, chosen)
        if 0 < y[mask].sum() < mask.sum() and order:
            blocks.insert(0, np.flatnonzero(mask))
        else:
            break
    return blocks


@dataclass
class Comparison:
    """Champion and challenger judged on the same recent weeks."""

    challenger: str
    champion: str | None
    window: str
    rows: int
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    min_gain: float

    @property
    def challenger_better(self) -> bool:
        """True when the challenger's AUC beats the champion's by at least ``min_gain``."""
        if self.champion_metrics is None:
            return True
        return self.challenger_metrics["auc"] >= self.champion_metrics["auc"] + self.min_gain

    def as_dict(self) -> dict[str, Any]:
        """Plain values (stored with the decision)."""
        return {**asdict(self), "challenger_better": self.challenger_better}


def judge(model: Any, X: pd.DataFrame, y: np.ndarray, settings: Any) -> dict[str, float]:
    """Metrics of a model on labelled rows: AUC, AP, log loss, ECE and profit at break-even."""
    return judge_scores(np.asarray(model.predict_proba(X), dtype=float), y, settings)


def judge_scores(scores: np.ndarray, y: np.ndarray, settings: Any) -> dict[str, float]:
    """:func:`judge` for probabilities already computed."""
    metrics = classification_metrics(y, scores)
    calls = scores >= settings.break_even
    metrics["log_loss"] = round(float(log_loss(y, np.clip(scores, 1e-6, 1 - 1e-6))), 5)
    metrics["profit_at_break_even"] = float(
        money.profit(y[calls].sum(), calls.sum(), settings.call_cost, settings.subscription_value)
    )
    metrics["calls_at_break_even"] = int(calls.sum())
    return metrics


def compare(
    challenger: str,
    data: TrainingData,
    champion: str | None = None,
    min_gain: float = 0.0,
) -> Comparison:
    """Score champion and challenger on the evaluation window of ``data``."""
    settings = default_settings()
    window = data.frame.iloc[data.window]
    X = inputs_only(window)
    y = window[TARGET].to_numpy(int)
    champion = champion if champion is not None else registry.production_version()
    return Comparison(
        challenger=challenger,
        champion=champion,
        window=data.window_label,
        rows=len(y),
        challenger_metrics=judge(registry.load_model(challenger), X, y, settings),
        champion_metrics=(
            judge(registry.load_model(champion), X, y, settings) if champion else None
        ),
        min_gain=min_gain,
    )


@dataclass
class Decision:
    """What happened to a challenger."""

    promoted: bool
    forced: bool
    reason: str
    comparison: Comparison

    def summary(self) -> str:
        """Two lines for the user."""
        c = self.comparison
        champ = c.champion_metrics
        figures = f"challenger {c.challenger} AUC {c.challenger_metrics['auc']:.4f}" + (
            f" vs champion {c.champion} AUC {champ['auc']:.4f}" if champ else " (no champion)"
        )
        verdict = (
            f"Promoted {c.challenger}{' (forced)' if self.forced else ''}: {self.reason}"
            if self.promoted
            else f"Kept {c.champion}: {self.reason}"
        )
        return f"On {c.window}: {figures}.\n{verdict}"


def decide(
    comparison: Comparison,
    force: bool = False,
    reason: str | None = None,
    store: Store | None = None,
    action: str = "promote",
) -> Decision:
    """Promote the challenger if better (or forced with a reason); record the decision.

    Raises:
        TermDepositError: ``force`` without a reason.
    """
    store = store or open_store()
    if force and not (reason and reason.strip()):
        raise TermDepositError(
            "--force needs a reason: say why the challenger goes to production anyway.",
            hint='For example: --force --reason "champion trained on the broken March file"',
        )
    c = comparison
    if c.champion_metrics is None:
        why = "there was no production model"
    elif c.challenger_better:
        why = (
            f"AUC {c.challenger_metrics['auc']:.4f} >= {c.champion_metrics['auc']:.4f}"
            f" + {c.min_gain:g} on {c.window}"
        )
    else:
        why = (
            f"AUC {c.challenger_metrics['auc']:.4f} < {c.champion_metrics['auc']:.4f}"
            f" + {c.min_gain:g} on {c.window}"
        )
    details = c.as_dict()
    if c.challenger_better or force:
        text = why if not force else f"{(reason or '').strip()} (forced; {why})"
        promote(c.challenger, text, store, action=action, details=details)
        return Decision(True, force and not c.challenger_better, text, c)
    store.record_promotion(
        action="refused",
        version=c.challenger,
        previous=c.champion,
        reason=f"challenger not better: {why}",
        details=details,
    )
    return Decision(False, False, f"challenger not better: {why}", c)


#: The promotion rule, written on every challenger's card.
ROLLING_RULE = (
    "rolling origin: the latest {origins} blocks of whole weeks with outcomes (each at least "
    "{recent_weeks} weeks and {min_rows} rows) are each scored by the champion's and the "
    "challenger's configurations refitted on the rows before that block only, so both are "
    "judged on weeks neither was fitted on; the probabilities follow each week's forecast rate "
    "as in production; the challenger is promoted when its AUC over the blocks is at least the "
    "champion's + {min_gain:g} (or when forced with a reason); the promoted artifact is then "
    "the configuration refitted on every row"
)


def configuration_of(card: Mapping[str, Any], random_state: int = 0) -> Any | None:
    """An unfitted pipeline with a saved model's configuration (family, settings,
    calibration), or None when its card does not say."""
    info = ModelCard.from_dict(card)
    if not info.family or info.params is None:
        return None
    profile = PROFILES.get(info.profile or "quick", PROFILES["quick"])
    base = build_pipeline(info.family, random_state).set_params(**info.params)
    return with_calibration(base, info.calibration_method, profile, random_state)


@dataclass
class RollingJudgement:
    """Champion and challenger configurations scored on the same rolling-origin blocks."""

    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    rows: int
    label: str
    origins: list[dict[str, Any]]
    champion_how: str


def judge_rolling(
    data: TrainingData,
    challenger: Any,
    champion: Any | None,
    champion_artifact: Any | None = None,
    origins: int = 3,
    recent_weeks: int = 4,
    min_rows: int = 1000,
    settings: Any = None,
) -> RollingJudgement:
    """Score both configurations at rolling origins (see :data:`ROLLING_RULE`).

    ``champion`` is the champion's unfitted configuration; when its card does not give one,
    ``champion_artifact`` (the saved model as is) scores the blocks instead.
    """
    settings = settings or default_settings()
    frame = data.frame.reset_index(drop=True)
    periods = data.periods
    X = inputs_only(frame)
    y = frame[TARGET].to_numpy(int)
    blocks = rolling_windows(periods, y, origins, recent_weeks, min_rows)
    if not blocks:
        raise TermDepositError(
            "There are not enough weeks with outcomes to judge a challenger.",
            hint="Record the outcomes of more weeks, or lower --min-rows.",
        )
    scores: dict[str, list[np.ndarray]] = {"challenger": [], "champion": []}
    described = []
    for block in blocks:
        before = np.arange(int(block.min()))
        for name, config_ in (("challenger", challenger), ("champion", champion)):
            if config_ is not None:
                fitted = clone(config_).fit(X.iloc[before], y[before])
            elif name == "champion" and champion_artifact is not None:
                fitted = champion_artifact
            else:
                continue
            raw = np.asarray(fitted.predict_proba(X.iloc[block])[:, 1], dtype=float)
            scores[name].append(follow_weeks_out_of_time(frame, periods, raw, block))
        weeks = [data.labels.get(int(p), str(p)) for p in np.unique(periods[block])]
        described.append(
            {
                "weeks": f"{weeks[0]} to {weeks[-1]}",
                "rows": int(len(block)),
                "fitted_rows": int(len(before)),
            }
        )
    rows = np.concatenate(blocks)
    X_judged, y_judged = X.iloc[rows], y[rows]

    def metrics(parts: list[np.ndarray]) -> dict[str, float] | None:
        if not parts:
            return None
        return judge_scores(np.concatenate(parts), y_judged, settings)

    del X_judged
    challenger_m = metrics(scores["challenger"])
    assert challenger_m is not None
    return RollingJudgement(
        challenger_metrics=challenger_m,
        champion_metrics=metrics(scores["champion"]),
        rows=int(len(rows)),
        label=(
            f"{len(blocks)} rolling origins over the latest weeks with outcomes ({len(rows)} rows)"
        ),
        origins=described,
        champion_how=(
            "its configuration refitted at each origin"
            if champion is not None
            else "the saved artifact as is (its card gives no configuration)"
        ),
    )


def retrain(
    profile: str = "quick",
    families: tuple[str, ...] | None = None,
    recent_weeks: int = 4,
    min_rows: int = 1000,
    min_gain: float = 0.0,
    force: bool = False,
    reason: str | None = None,
    random_state: int = 0,
    store: Store | None = None,
    reference: pd.DataFrame | None = None,
    progress: ProgressFn | None = None,
    origins: int = 3,
) -> Decision:
    """Train a challenger on every row known now and promote it if it judges better.

    The challenger is searched and chosen like any training, on the reference data plus every
    data drop and recorded outcome, and its artifact is fitted on all of them (the learning
    loop). Champion and challenger are judged at rolling origins (:data:`ROLLING_RULE`): the
    latest blocks of weeks, each scored by both configurations refitted on the rows before it.
    The challenger is saved as a new version either way; the rule is on its card.
    """
    if profile not in PROFILES:
        raise TermDepositError(
            f"Unknown profile '{profile}'.", hint=f"Use one of: {', '.join(PROFILES)}."
        )
    if force and not (reason and reason.strip()):
        raise TermDepositError(
            "--force needs a reason: say why the challenger goes to production anyway.",
            hint='For example: --force --reason "champion trained on the broken March file"',
        )
    store = store or open_store()
    report = progress or (lambda step, fraction: None)
    report("Gathering the reference data and recorded outcomes", 0.02)
    data = training_data(store, reference, recent_weeks, min_rows)

    def inner_progress(step: str, fraction: float) -> None:
        report(step, 0.05 + 0.75 * fraction)

    result = train(
        data.frame.drop(columns=["period"]),
        profile=profile,
        families=tuple(families or FAMILIES),
        random_state=random_state,
        progress=inner_progress,
        periods=data.periods,
        period_labels=data.labels,
        sources=data.sources,
    )
    card = build_card(result, data.data_sha256, random_state)
    report("Judging champion and challenger at rolling origins", 0.82)
    champion_version = registry.production_version()
    champion = registry.load_model(champion_version) if champion_version else None
    judgement = judge_rolling(
        data,
        configuration_of(card, random_state),
        configuration_of(champion.card, random_state) if champion else None,
        champion.pipeline if champion else None,
        origins,
        recent_weeks,
        min_rows,
    )
    card["retraining"] = {
        **data.sources,
        "rule": ROLLING_RULE.format(
            origins=origins, recent_weeks=recent_weeks, min_rows=min_rows, min_gain=min_gain
        ),
        "origins": judgement.origins,
        "champion": champion_version,
        "champion_judged_by": judgement.champion_how,
        "challenger_metrics": judgement.challenger_metrics,
        "champion_metrics": judgement.champion_metrics,
    }
    challenger = registry.save_model(result.pipeline, card, reference=result.reference)
    comparison = Comparison(
        challenger=challenger,
        champion=champion_version,
        window=judgement.label,
        rows=judgement.rows,
        challenger_metrics=judgement.challenger_metrics,
        champion_metrics=judgement.champion_metrics,
        min_gain=min_gain,
    )
    decision = decide(comparison, force, reason, store)
    report("Done", 1.0)
    return decision


# -- recalibration ------------------------------------------------------------------------------


class CalibrationCheck(TypedDict):
    """The out-of-sample check of a recalibration map (kept in the new version's card).

    ``how`` says which rows fitted and which judged the map; ``rows`` the rows judged; log loss
    and expected calibration error before and after the map; ``auc`` of the raw scores (NaN
    when the judged rows hold a single outcome).
    """

    how: str
    rows: int
    log_loss_before: float
    log_loss_after: float
    ece_before: float
    ece_after: float
    auc: float


@dataclass
class RecalibrationResult:
    """What :func:`recalibrate` did."""

    version: str
    base_version: str
    score_map: ScoreMap
    rows: int
    cohorts: list[int]
    check: CalibrationCheck
    promoted: bool
    message: str


def _recent_outcomes(store: Store, min_rows: int) -> pd.DataFrame:
    """Called customers with outcomes from the most recent cohorts (>= min_rows rows)."""
    rows = store.training_rows()
    if rows.empty:
        raise TermDepositError(
            "No outcomes have been recorded yet, so there is nothing to recalibrate on.",
            hint="Upload the week's outcomes first ('termdeposit feedback OUTCOMES.csv').",
        )
    cohort_ids = sorted(rows["cohort_id"].unique())
    chosen: list[int] = []
    for cohort_id in reversed(cohort_ids):
        chosen.insert(0, cohort_id)
        part = rows[rows["cohort_id"].isin(chosen)]
        if len(part) >= min_rows and 0 < part[TARGET].sum() < len(part):
            break
    part = rows[rows["cohort_id"].isin(chosen)]
    if part[TARGET].nunique() < 2:
        raise TermDepositError(
            "The recorded outcomes are all of one kind (all subscribed or none).",
            hint="Recalibration needs both; wait for more outcomes.",
        )
    return part.reset_index(drop=True)


def recalibrate(
    method: str = "platt",
    min_rows: int = 1000,
    force: bool = False,
    reason: str | None = None,
    store: Store | None = None,
    models_dir: Path | None = None,
) -> RecalibrationResult:
    """Refit the production model's probability scale on the latest outcomes; new version.

    The map is fitted on the most recent cohorts with outcomes (at least ``min_rows`` called
    customers). It is checked out of sample: fitted without the latest cohort and judged on
    it (or cross-fitted in two halves when there is a single cohort). The new version is
    promoted when the check lowers the log loss, or when forced with a reason; it is saved
    and the decision recorded either way.
    """
    store = store or open_store()
    if force and not (reason and reason.strip()):
        raise TermDepositError(
            "--force needs a reason.", hint='For example: --force --reason "base rate jumped"'
        )
    production = registry.load_model(models_dir=models_dir)
    base = base_estimator(production.pipeline)
    rows = _recent_outcomes(store, min_rows)
    X = inputs_only(rows)
    y = rows[TARGET].to_numpy(int)
    raw = base.predict_proba(X)[:, 1]
    score_map = ScoreMap.fit(method, raw, y)
    check = _out_of_sample_check(method, raw, y, rows["cohort_id"].to_numpy())
    better = check["log_loss_after"] < check["log_loss_before"]
    model = RecalibratedModel.from_fitted(base, score_map, min_rows)
    base_version = production.info.base_version
    card = _recalibrated_card(production, base_version, score_map, rows, raw, y, check)
    reference = production.reference().copy() if _has_reference(production) else None
    if reference is not None:
        reference["score"] = model.predict_proba(inputs_only(reference))[:, 1]
    version = registry.save_model(model, card, reference=reference, models_dir=models_dir)
    cohorts = [int(c) for c in sorted(rows["cohort_id"].unique())]
    verdict = (
        f"{method} recalibration on {len(rows)} outcomes of cohorts {cohorts}: log loss "
        f"{check['log_loss_before']:.4f} -> {check['log_loss_after']:.4f} out of sample, ECE "
        f"{check['ece_before']:.4f} -> {check['ece_after']:.4f}"
    )
    details = {"check": check, "map": asdict(score_map), "cohorts": cohorts}
    if better or force:
        text = verdict if not force else f"{(reason or '').strip()} (forced; {verdict})"
        promote(version, text, store, action="recalibrate", details=details)
        promoted = True
    else:
        store.record_promotion(
            action="refused",
            version=version,
            previous=production.version,
            reason=f"recalibration did not help: {verdict}",
            details=details,
        )
        promoted = False
    return RecalibrationResult(
        version, production.version, score_map, len(rows), cohorts, check, promoted, verdict
    )


def _has_reference(model: registry.LoadedModel) -> bool:
    return model.has_reference()


def _out_of_sample_check(
    method: str, raw: np.ndarray, y: np.ndarray, cohort_ids: np.ndarray
) -> CalibrationCheck:
    """Log loss and ECE before/after the map, on rows the map was not fitted on."""
    latest = cohort_ids == cohort_ids.max()
    if (~latest).sum() >= 50 and len(np.unique(y[~latest])) == 2:
        folds = [(~latest, latest)]
        how = "fitted without the latest cohort, judged on it"
    else:
        rng = np.random.default_rng(0)
        half = rng.random(len(y)) < 0.5
        folds = [(half, ~half), (~half, half)]
        how = "cross-fitted on two random halves"
    mapped = np.empty(0)
    judged = np.empty(0, dtype=int)
    before = np.empty(0)
    for fit_rows, eval_rows in folds:
        if len(np.unique(y[fit_rows])) < 2 or eval_rows.sum() == 0:
            continue
        part = ScoreMap.fit(method, raw[fit_rows], y[fit_rows])
        mapped = np.r_[mapped, part(raw[eval_rows])]
        before = np.r_[before, raw[eval_rows]]
        judged = np.r_[judged, y[eval_rows]]
    if len(judged) == 0:
        mapped, before, judged = raw, raw, y
        how = "not checked out of sample (too few outcomes)"

    def loss(scores: np.ndarray) -> float:
        return round(float(log_loss(judged, np.clip(scores, 1e-6, 1 - 1e-6), labels=[0, 1])), 5)

    return {
        "how": how,
        "rows": int(len(judged)),
        "log_loss_before": loss(before),
        "log_loss_after": loss(mapped),
        "ece_before": round(expected_calibration_error(judged, before), 5),
        "ece_after": round(expected_calibration_error(judged, mapped), 5),
        "auc": round(float(roc_auc_score(judged, before)), 5)
        if len(np.unique(judged)) == 2
        else float("nan"),
    }


def _recalibrated_card(
    production: registry.LoadedModel,
    base_version: str,
    score_map: ScoreMap,
    rows: pd.DataFrame,
    raw: np.ndarray,
    y: np.ndarray,
    check: CalibrationCheck,
) -> dict[str, Any]:
    keep = {
        k: v
        for k, v in production.card.items()
        if k not in ("version", "created", "artifact", "artifact_sha256", "reference_sha256")
    }
    mapped = score_map(raw)
    return {
        **keep,
        "recalibration": {
            "base_version": base_version,
            "recalibrated_from": production.version,
            "method": score_map.method,
            "map": asdict(score_map),
            "described": score_map.describe(),
            "rows": int(len(y)),
            "cohorts": [int(c) for c in sorted(rows["cohort_id"].unique())],
            "base_rate": round(float(y.mean()), 5),
            "mean_score_before": round(float(raw.mean()), 5),
            "mean_score_after": round(float(mapped.mean()), 5),
            "ece_before": round(expected_calibration_error(y, raw), 5),
            "ece_after": round(expected_calibration_error(y, mapped), 5),
            "check": check,
            "by": current_user(),
            "note": "metrics above are those of the base model; the map changes the "
            "probability scale (calibration), not the ranking",
        },
    }
