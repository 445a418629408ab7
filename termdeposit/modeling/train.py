"""Train the scoring pipeline: search three model families, choose, calibrate, evaluate.

The pipeline (one imbalanced-learn ``Pipeline``) is clean -> one-hot + scale -> optional
SMOTE (a searched on/off choice) -> classifier. Each family (logistic regression, random
forest, XGBoost) is tuned with ``BayesSearchCV`` over ``StratifiedKFold``. The family is then
chosen with the production use in view: trained on the past, scoring the future. So each
family's best configuration is also scored on a time-ordered validation slice taken from the
end of the training rows, and that score decides (the random-fold CV score breaks near-ties).
The average of the searched logistic regression and random forest (``blend``, see
:mod:`termdeposit.modeling.blend`) is a fourth candidate, scored the same two ways.
Calibration is applied only when it measurably lowers the calibration error of out-of-fold
probabilities. The two hold-outs (random 20%, last 20% in time) are never looked at before the
final evaluation.

Size: The training procedure, read top to bottom: splits, search spaces, search, choice,
calibration, evaluation; every step uses the same splits and search settings.
"""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline as ImbPipeline
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import (
    StratifiedKFold,
    cross_val_predict,
    cross_val_score,
    train_test_split,
)
from skopt import BayesSearchCV
from skopt.space import Categorical, Integer, Real
from xgboost import XGBClassifier

from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.core.schema import INPUT_COLUMNS, TARGET, inputs_only
from termdeposit.modeling.base_rate import BaseRateModel, follow_weeks_out_of_time, week_table
from termdeposit.modeling.blend import (
    MEMBERS,
    BlendClassifier,
    dropped_inputs,
    macro_drop_positions,
)
from termdeposit.modeling.features import EXCLUDED_FEATURES, BankCleaner, build_preprocessor
from termdeposit.modeling.metrics import classification_metrics, expected_calibration_error

log = get_logger("train")

FAMILIES = ("logreg", "random_forest", "xgboost")
#: A fourth candidate, not searched but built from the searched families (see
#: termdeposit.modeling.blend): their probabilities averaged. It needs the regression and the
#: forest; XGBoost joins when it was searched too.
BLEND = "blend"
BLEND_MEMBERS = ("logreg", "random_forest")
FAMILY_LABELS = {
    "logreg": "Logistic Regression",
    "random_forest": "Random Forest",
    "xgboost": "XGBoost",
    BLEND: "Average of Logistic Regression, Random Forest and XGBoost",
}
HOLDOUT_SHARE = 0.2
#: A family within this much time-validation AUC of the best is a near-tie (CV score decides).
NEAR_TIE = 0.005
#: Calibration is used only if it lowers cross-fitted ECE by at least this much.
CALIBRATION_MIN_GAIN = 0.002

#: Macro-economic input sets tried on the time-ordered validation slice (see BankCleaner).
MACRO_CHOICES = ("all", "nr.employed")

ProgressFn = Callable[[str, float], None]


class OptionalSMOTE(SMOTE):
    """SMOTE that can be switched off, so the search can decide whether it earns its place.

    Args:
        enabled: resample when True, pass the data through unchanged when False.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        sampling_strategy: Any = "auto",
        random_state: Any = None,
        k_neighbors: int = 5,
    ) -> None:
        super().__init__(
            sampling_strategy=sampling_strategy, random_state=random_state, k_neighbors=k_neighbors
        )
        self.enabled = enabled

    def fit_resample(self, X: Any, y: Any, **params: Any) -> tuple[Any, Any]:
        """Resample with SMOTE, or return the data unchanged when disabled."""
        if not self.enabled:
            return X, y
        return super().fit_resample(X, y, **params)


@dataclass(frozen=True)
class Profile:
    """How hard to search: folds, iterations per family, rows used by the search."""

    name: str
    folds: int
    iterations: dict[str, int]
    search_rows: int | None
    calibration_folds: int
    rf_trees: tuple[int, int]
    xgb_trees: tuple[int, int]


PROFILES = {
    "quick": Profile(
        name="quick",
        folds=3,
        iterations={"logreg": 6, "random_forest": 4, "xgboost": 6},
        search_rows=8000,
        calibration_folds=3,
        rf_trees=(60, 150),
        xgb_trees=(60, 250),
    ),
    "full": Profile(
        name="full",
        folds=5,
        iterations={"logreg": 16, "random_forest": 16, "xgboost": 20},
        search_rows=None,
        calibration_folds=5,
        rf_trees=(100, 250),
        xgb_trees=(100, 500),
    ),
}


def build_pipeline(family: str, random_state: int = 0) -> ImbPipeline:
    """Return a fresh, unfitted scoring pipeline for one model family."""
    if family == "logreg":
        classifier: Any = LogisticRegression(max_iter=2000, C=1.0)
    elif family == "random_forest":
        classifier = RandomForestClassifier(
            n_estimators=200, min_samples_leaf=10, n_jobs=2, random_state=random_state
        )
    elif family == BLEND:
        classifier = BlendClassifier(
            linear=LogisticRegression(max_iter=2000, C=1.0),
            forest=RandomForestClassifier(
                n_estimators=200, min_samples_leaf=10, n_jobs=2, random_state=random_state
            ),
            boosted=_xgboost(random_state),
        )
    elif family == "xgboost":
        classifier = _xgboost(random_state)
    else:
        raise ValueError(f"Unknown model family {family!r}; choose one of {(*FAMILIES, BLEND)}.")
    return ImbPipeline(
        [
            ("clean", BankCleaner()),
            ("prep", build_preprocessor()),
            ("smote", OptionalSMOTE(enabled=False, random_state=random_state)),
            ("clf", classifier),
        ]
    )


def _xgboost(random_state: int) -> XGBClassifier:
    return XGBClassifier(
        n_estimators=200,
        max_depth=3,
        learning_rate=0.05,
        tree_method="hist",
        n_jobs=2,
        random_state=random_state,
        eval_metric="logloss",
    )


def blend_label(params: dict[str, Any]) -> str:
    """The blend's name in words, from its settings: XGBoost is a member when its settings are
    there (training always copies them in) and it is not set to None."""
    boosted = params.get("clf__boosted", "") is not None and any(
        key.startswith("clf__boosted__") for key in params
    )
    if not boosted:
        return "Average of Logistic Regression and Random Forest"
    return FAMILY_LABELS[BLEND]


def family_label(family: str, params: dict[str, Any]) -> str:
    """A family's name in words (the blend's names its members)."""
    return blend_label(params) if family == BLEND else FAMILY_LABELS[family]


def search_space(family: str, profile: Profile) -> dict[str, Any]:
    """Bayesian search space of one family (SMOTE on/off is searched for every family)."""
    smote = {"smote__enabled": Categorical([False, True])}
    if family == "logreg":
        return {
            **smote,
            "clf__C": Real(1e-3, 10.0, prior="log-uniform"),
            "clf__class_weight": Categorical([None, "balanced"]),
        }
    if family == "random_forest":
        return {
            **smote,
            "clf__n_estimators": Integer(*profile.rf_trees),
            "clf__max_depth": Integer(4, 14),
            "clf__min_samples_leaf": Integer(1, 60),
            "clf__max_features": Real(0.1, 0.6),
        }
    return {
        **smote,
        "clf__n_estimators": Integer(*profile.xgb_trees),
        "clf__max_depth": Integer(2, 6),
        "clf__learning_rate": Real(0.02, 0.3, prior="log-uniform"),
        "clf__subsample": Real(0.6, 1.0),
        "clf__colsample_bytree": Real(0.5, 1.0),
        "clf__min_child_weight": Integer(1, 20),
        "clf__reg_lambda": Real(0.1, 10.0, prior="log-uniform"),
    }


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Turn numpy scalars into Python ones and the class_weight 'none' label into None."""
    out = {}
    for key, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        if key == "clf__class_weight" and value == "none":
            value = None
        out[key] = value
    return out


@dataclass
class Splits:
    """Row positions (time order) of the two hold-outs and of the rows used to choose a model.

    ``holdout_random`` is a stratified 20% of all rows, ``holdout_time`` the last 20%; they may
    share rows. ``selection`` holds the rows in neither: the search, the family choice and the
    calibration choice see only these. ``fit_time`` (all rows before the time hold-out) trains
    the saved artifact; ``fit_random`` (all rows outside the random hold-out) trains its twin,
    with the same configuration, that is scored on the random hold-out.
    """

    holdout_random: np.ndarray
    holdout_time: np.ndarray
    selection: np.ndarray
    fit_time: np.ndarray
    fit_random: np.ndarray


def make_splits(y: np.ndarray, random_state: int = 0) -> Splits:
    """Split row positions into the two hold-outs, the selection rows and the two fit sets."""
    n = len(y)
    time_start = int(round(n * (1 - HOLDOUT_SHARE)))
    everything = np.arange(n)
    fit_random, holdout_random = train_test_split(
        everything, test_size=HOLDOUT_SHARE, stratify=y, random_state=random_state
    )
    holdout_time = everything[time_start:]
    selection = np.setdiff1d(np.sort(fit_random), holdout_time)
    return Splits(
        holdout_random=np.sort(holdout_random),
        holdout_time=holdout_time,
        selection=selection,
        fit_time=everything[:time_start],
        fit_random=np.sort(fit_random),
    )


@dataclass
class FamilyResult:
    """What the search found for one family."""

    family: str
    cv_auc: float
    time_val_auc: float
    params: dict[str, Any]
    seconds: float
    time_val_auc_by_macro: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainingResult:
    """The trained pipeline and everything the model card reports about it.

    ``pipeline`` is the production artifact (the chosen configuration fitted on every row);
    ``holdout_pipeline`` the same configuration fitted on the rows before the time hold-out,
    which scored it (for anything computed on the time hold-out, e.g. fairness).
    """

    pipeline: Any
    holdout_pipeline: Any
    base_rate: BaseRateModel | None
    fitted_on: dict[str, Any]
    family: str
    params: dict[str, Any]
    families: list[FamilyResult]
    selection: dict[str, Any]
    calibration: dict[str, Any]
    metrics: dict[str, dict[str, float]]
    rows: dict[str, int]
    profile: str
    seconds: float
    reference: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


def _search_family(
    family: str,
    X: pd.DataFrame,
    y: np.ndarray,
    profile: Profile,
    random_state: int,
) -> tuple[dict[str, Any], float]:
    search = BayesSearchCV(
        build_pipeline(family, random_state),
        search_space(family, profile),
        n_iter=profile.iterations[family],
        cv=StratifiedKFold(profile.folds, shuffle=True, random_state=random_state),
        scoring="roc_auc",
        n_jobs=1 if family == "random_forest" else 2,
        n_points=1 if family == "random_forest" else 2,
        random_state=random_state,
        refit=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        search.fit(X, y)
    return _plain(dict(search.best_params_)), float(search.best_score_)


def blend_params(
    linear: FamilyResult,
    forest: FamilyResult,
    tree_macro: str | None = None,
    boosted: FamilyResult | None = None,
) -> dict[str, Any]:
    """Settings of the blend pipeline from the searched families.

    Each member keeps its searched hyper-parameters and the regression its macro-economic
    inputs; the tree members' inputs are ``tree_macro`` (default: each tree family's own
    choice). Without ``boosted`` the blend is the regression + forest average. Averaging needs
    every probability on the same scale, so no member is fitted with class weights or SMOTE
    (both inflate the probabilities of the rare class; calibration comes after the average).
    """
    searched = {"linear": linear, "forest": forest, "boosted": boosted}
    macros = {
        name: (
            result.params.get("clean__macro", "all")
            if name == "linear" or tree_macro is None
            else tree_macro
        )
        for name, result in searched.items()
        if result is not None
    }
    shared = "all" if "all" in macros.values() else "nr.employed"
    params: dict[str, Any] = {"clean__macro": shared, "smote__enabled": False}
    if boosted is None:
        params["clf__boosted"] = None
    for name, drop, _ in MEMBERS:
        if name in macros:
            positions = macro_drop_positions(macros[name]) if shared == "all" else ()
            params[f"clf__{drop}"] = list(positions)
    for name, result in searched.items():
        if result is None:
            continue
        for key, value in result.params.items():
            if key.startswith("clf__"):
                params[f"clf__{name}__{key[len('clf__') :]}"] = value
        if f"clf__{name}__class_weight" in params:
            params[f"clf__{name}__class_weight"] = None
    return params


def _near_tie_choice(scores: dict[str, tuple[float, float]]) -> str:
    """The option with the best time-validation AUC; options within NEAR_TIE of it are a
    near-tie decided by the random-fold CV AUC. ``scores``: option -> (cv, time-val)."""
    best_time = max(t for _, t in scores.values())
    contenders = [k for k, (_, t) in scores.items() if t >= best_time - NEAR_TIE]
    return max(contenders, key=lambda k: scores[k][0])


def _blend_candidate(
    linear: FamilyResult,
    forest: FamilyResult,
    boosted: FamilyResult | None,
    X: pd.DataFrame,
    y: np.ndarray,
    search_idx: np.ndarray,
    cut: int,
    profile: Profile,
    random_state: int,
) -> FamilyResult:
    """Score the average of the searched families like the families themselves: random-fold CV
    AUC on the search rows (the same folds) and AUC on the time-ordered validation slice. The
    tree members' macro-economic inputs are chosen again for the average, together, by the
    family rule (best on the time slice, near-ties to the CV score): what suits a tree model
    alone need not suit it beside the regression."""
    t0 = time.perf_counter()
    folds = StratifiedKFold(profile.folds, shuffle=True, random_state=random_state)
    scores: dict[str, tuple[float, float]] = {}
    options: dict[str, dict[str, Any]] = {}
    for macro in MACRO_CHOICES:
        params = blend_params(linear, forest, tree_macro=macro, boosted=boosted)
        model = build_pipeline(BLEND, random_state).set_params(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cv = cross_val_score(
                model, X.iloc[search_idx], y[search_idx], cv=folds, scoring="roc_auc"
            )
            fitted = clone(model).fit(X.iloc[:cut], y[:cut])
        time_auc = roc_auc_score(y[cut:], fitted.predict_proba(X.iloc[cut:])[:, 1])
        scores[macro] = (float(np.mean(cv)), float(time_auc))
        options[macro] = params
    macro = _near_tie_choice(scores)
    return FamilyResult(
        BLEND,
        scores[macro][0],
        scores[macro][1],
        options[macro],
        time.perf_counter() - t0,
        {f"trees: {m}": round(t, 5) for m, (_, t) in scores.items()},
    )


def _cross_fitted_ece(y: np.ndarray, scores: np.ndarray, method: str, seed: int) -> float:
    """ECE of a calibration map fitted on half the out-of-fold scores, judged on the other."""
    if method == "none":
        return expected_calibration_error(y, scores)
    folds = StratifiedKFold(2, shuffle=True, random_state=seed)
    errors = []
    for fit_idx, eval_idx in folds.split(scores, y):
        if method == "isotonic":
            mapper = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
            mapper.fit(scores[fit_idx], y[fit_idx])
            calibrated = mapper.predict(scores[eval_idx])
        else:
            logit = np.log(np.clip(scores, 1e-6, 1 - 1e-6) / (1 - np.clip(scores, 1e-6, 1 - 1e-6)))
            model = LogisticRegression(C=1e6).fit(logit[fit_idx, None], y[fit_idx])
            calibrated = model.predict_proba(logit[eval_idx, None])[:, 1]
        errors.append(expected_calibration_error(y[eval_idx], calibrated))
    return float(np.mean(errors))


def choose_calibration(
    pipeline: Any, X: pd.DataFrame, y: np.ndarray, folds: int, random_state: int
) -> dict[str, Any]:
    """Decide whether the pipeline's probabilities need calibrating, from out-of-fold scores."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    oof = cross_val_predict(pipeline, X, y, cv=cv, method="predict_proba")[:, 1]
    ece = {m: _cross_fitted_ece(y, oof, m, random_state) for m in ("none", "sigmoid", "isotonic")}
    return {
        "method": calibration_rule(ece),
        "oof_ece": {k: round(v, 5) for k, v in ece.items()},
        "rule": (
            f"calibrate only if cross-fitted ECE drops by >= {CALIBRATION_MIN_GAIN}; isotonic "
            f"(a step function: it ties customers and so loses ranking) only if it beats the "
            f"sigmoid by >= {CALIBRATION_MIN_GAIN} too"
        ),
    }


def calibration_rule(ece: dict[str, float]) -> str:
    """The calibration method from cross-fitted ECEs of ``none``, ``sigmoid`` and ``isotonic``:
    each step up in flexibility must lower the error by at least CALIBRATION_MIN_GAIN."""
    method = "none"
    if ece["none"] - ece["sigmoid"] >= CALIBRATION_MIN_GAIN:
        method = "sigmoid"
    if ece[method] - ece["isotonic"] >= CALIBRATION_MIN_GAIN:
        method = "isotonic"
    return method


def with_calibration(base: Any, method: str, profile: Profile, random_state: int) -> Any:
    """Wrap an unfitted pipeline for calibration (or return a clone when none is needed)."""
    if method == "none":
        return clone(base)
    return CalibratedClassifierCV(
        clone(base),
        method=method,
        cv=StratifiedKFold(profile.calibration_folds, shuffle=True, random_state=random_state),
        ensemble=False,
    )


def train(
    frame: pd.DataFrame,
    profile: str = "quick",
    families: tuple[str, ...] = FAMILIES,
    random_state: int = 0,
    progress: ProgressFn | None = None,
    periods: np.ndarray | None = None,
    period_labels: dict[Any, str] | None = None,
    sources: dict[str, int] | None = None,
) -> TrainingResult:
    """Search, choose, calibrate and evaluate; then refit on every row (the learning loop).

    The family, its settings and the calibration are chosen on the selection rows; the two
    hold-outs judge the choice (scored by twins fitted on the rows outside them); then the
    production artifact is the chosen configuration refitted on every row of ``frame``, and
    the weekly rate model is fitted on every week.

    Args:
        frame: the rows to learn from (reference data, data drops, recorded outcomes) in time
            order, with the 19 inputs and ``y``.
        profile: ``quick`` (minutes, used by first run and tests) or ``full``.
        families: which model families to search.
        random_state: seed of every random choice (splits, search, models).
        progress: called with (step description, fraction done).
        periods: the week (or cohort) of each row; default ``frame["week"]`` when present.
            Without weeks no weekly rate model is fitted.
        period_labels: each period's name on the card (default: the period itself).
        sources: rows by origin (e.g. reference, data drops, outcomes), for the card.
    """
    started = time.perf_counter()
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise TermDepositError(
            f"Unknown model family: {', '.join(map(repr, unknown))}."
            if unknown
            else "No model family to search.",
            hint=(
                f"Use {', '.join(FAMILIES)}. The average of the searched families is added "
                f"by itself when {BLEND_MEMBERS[0]} and {BLEND_MEMBERS[1]} are among them."
            ),
        )
    settings = PROFILES[profile]
    report = progress or (lambda step, fraction: None)
    for column in EXCLUDED_FEATURES:
        if column in INPUT_COLUMNS:
            raise AssertionError(f"leakage: {column} is a model input")
    X_all = inputs_only(frame).reset_index(drop=True)
    y_all = frame[TARGET].to_numpy(dtype=int)
    splits = make_splits(y_all, random_state)
    X_train, y_train = X_all.iloc[splits.selection], y_all[splits.selection]

    search_idx = np.arange(len(X_train))
    if settings.search_rows and len(X_train) > settings.search_rows:
        search_idx, _ = train_test_split(
            search_idx,
            train_size=settings.search_rows,
            stratify=y_train,
            random_state=random_state,
        )
        search_idx = np.sort(search_idx)
    cut = int(round(len(X_train) * 0.8))

    results: list[FamilyResult] = []
    with_blend = all(f in families for f in BLEND_MEMBERS)
    steps = len(families) + 2 + int(with_blend)
    for i, family in enumerate(families):
        report(f"Searching {FAMILY_LABELS[family]}", i / steps)
        t0 = time.perf_counter()
        params, cv_auc = _search_family(
            family, X_train.iloc[search_idx], y_train[search_idx], settings, random_state
        )
        macro_auc = {}
        for macro in MACRO_CHOICES:
            slice_model = build_pipeline(family, random_state).set_params(
                **params, clean__macro=macro
            )
            slice_model.fit(X_train.iloc[:cut], y_train[:cut])
            macro_auc[macro] = float(
                roc_auc_score(y_train[cut:], slice_model.predict_proba(X_train.iloc[cut:])[:, 1])
            )
        macro = max(macro_auc, key=lambda m: macro_auc[m])
        params["clean__macro"] = macro
        time_auc = macro_auc[macro]
        results.append(
            FamilyResult(family, cv_auc, time_auc, params, time.perf_counter() - t0, macro_auc)
        )
        log.info("%s: cv auc %.4f, time-val auc %.4f", family, cv_auc, time_auc)

    if with_blend:
        members = {r.family: r for r in results}
        report(f"Averaging {', '.join(FAMILY_LABELS[f] for f in members)}", len(families) / steps)
        results.append(
            _blend_candidate(
                members["logreg"],
                members["random_forest"],
                members.get("xgboost"),
                X_train,
                y_train,
                search_idx,
                cut,
                settings,
                random_state,
            )
        )
        blend = results[-1]
        log.info("blend: cv auc %.4f, time-val auc %.4f", blend.cv_auc, blend.time_val_auc)

    by_family = {r.family: r for r in results}
    chosen = by_family[_near_tie_choice({r.family: (r.cv_auc, r.time_val_auc) for r in results})]
    selection = {
        "chosen": chosen.family,
        "best_by_random_cv": max(results, key=lambda r: r.cv_auc).family,
        "best_by_time_validation": max(results, key=lambda r: r.time_val_auc).family,
        "rule": (
            "each family's hyper-parameters come from BayesSearchCV on random stratified "
            "folds; its macro-economic input set and the family itself are chosen by AUC on a "
            "time-ordered validation slice (last 20% of the selection rows, model fitted on "
            f"the rows before it); the equal-share average of the searched families (blend) is "
            f"scored the same way; candidates within {NEAR_TIE} of the best are a "
            "near-tie decided by the random-fold CV AUC"
        ),
    }

    report(
        f"Checking calibration of {family_label(chosen.family, chosen.params)}",
        (len(families) + int(with_blend)) / steps,
    )
    base = build_pipeline(chosen.family, random_state).set_params(**chosen.params)
    calibration = choose_calibration(
        base, X_train, y_train, settings.calibration_folds, random_state
    )
    artifact = with_calibration(base, calibration["method"], settings, random_state)
    pipeline = artifact.fit(X_all.iloc[splits.fit_time], y_all[splits.fit_time])

    report("Evaluating on the two hold-outs", (steps - 1) / steps)
    twin = clone(artifact).fit(X_all.iloc[splits.fit_random], y_all[splits.fit_random])
    time_scores = pipeline.predict_proba(X_all.iloc[splits.holdout_time])[:, 1]
    metrics = {
        "random": classification_metrics(
            y_all[splits.holdout_random],
            twin.predict_proba(X_all.iloc[splits.holdout_random])[:, 1],
        ),
        "time": classification_metrics(y_all[splits.holdout_time], time_scores),
    }
    if periods is None and "week" in frame:
        periods = frame["week"].to_numpy()
    rate_model = None
    fitted_on = fitted_rows(frame, periods, period_labels, sources)
    if periods is not None:
        periods = np.asarray(periods)
        metrics["time_following_week"] = classification_metrics(
            y_all[splits.holdout_time],
            follow_weeks_out_of_time(
                frame.reset_index(drop=True), periods, time_scores, splits.holdout_time
            ),
        )
        rate_model = BaseRateModel.fit(
            week_table(frame.reset_index(drop=True), periods).assign(
                week=lambda t: [(period_labels or {}).get(w, w) for w in t["week"]]
            )
        )
    report("Refitting the chosen model on every row", (steps - 0.5) / steps)
    production = clone(artifact).fit(X_all, y_all)
    reference = X_train.sample(min(5000, len(X_train)), random_state=random_state).copy()
    reference["score"] = production.predict_proba(reference)[:, 1]
    reference[TARGET] = y_train[X_train.index.get_indexer(reference.index)]
    report("Done", 1.0)
    return TrainingResult(
        pipeline=production,
        holdout_pipeline=pipeline,
        base_rate=rate_model,
        fitted_on=fitted_on,
        family=chosen.family,
        params=chosen.params,
        families=results,
        selection=selection,
        calibration=calibration,
        metrics=metrics,
        rows={
            "selection": len(splits.selection),
            "fit_artifact": len(X_all),
            "fit_time_twin": len(splits.fit_time),
            "fit_random_twin": len(splits.fit_random),
            "holdout_random": len(splits.holdout_random),
            "holdout_time": len(splits.holdout_time),
        },
        profile=profile,
        seconds=time.perf_counter() - started,
        reference=reference.reset_index(drop=True),
    )


def fitted_rows(
    frame: pd.DataFrame,
    periods: np.ndarray | None,
    labels: dict[Any, str] | None = None,
    sources: dict[str, int] | None = None,
) -> dict[str, Any]:
    """What the production artifact was fitted on: rows, and every week with its rows."""
    out: dict[str, Any] = {"rows": int(len(frame))}
    if sources:
        out["sources"] = {k: int(v) for k, v in sources.items()}
    if periods is not None:
        periods = np.asarray(periods)
        keys, first, counts = np.unique(periods, return_index=True, return_counts=True)
        order = np.argsort(first)
        names = [
            str((labels or {}).get(k.item() if isinstance(k, np.generic) else k, k))
            for k in keys[order]
        ]
        out["weeks"] = len(keys)
        out["first_week"] = names[0] if names else None
        out["last_week"] = names[-1] if names else None
        out["rows_by_week"] = dict(zip(names, (int(c) for c in counts[order]), strict=True))
    return out


def library_versions() -> dict[str, str]:
    """Versions of the libraries the artifact depends on (recorded in the model card)."""
    import imblearn
    import joblib
    import sklearn
    import skopt
    import xgboost

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "imbalanced-learn": imblearn.__version__,
        "xgboost": xgboost.__version__,
        "scikit-optimize": skopt.__version__,
        "joblib": joblib.__version__,
    }


def build_card(result: TrainingResult, data_sha256: str, random_state: int = 0) -> dict[str, Any]:
    """The model card: what was trained, on what, how it was chosen and how well it does."""
    from termdeposit.core.config import default_settings

    settings = default_settings()
    fitted = result.pipeline
    inner = (
        fitted.calibrated_classifiers_[0].estimator
        if hasattr(fitted, "calibrated_classifiers_")
        else fitted
    )
    cleaner = inner.named_steps["clean"]
    used = [str(c) for c in cleaner.get_feature_names_out()]
    return {
        "family": result.family,
        "family_label": family_label(result.family, result.params),
        "profile": result.profile,
        "random_state": random_state,
        "data_sha256": data_sha256,
        "rows": result.rows,
        "features_used": used,
        "features_excluded": {
            "duration": "known only after the call (leakage guard)",
            **{
                c: "not in the chosen macro-economic input set"
                for c in INPUT_COLUMNS
                if c not in used
            },
        },
        "unknown_handling": {
            "to_training_mode": list(cleaner.unknown_to_mode),
            "own_category": ["default"],
            "modes_learned": dict(cleaner.modes_),
        },
        "params": result.params,
        **(_blend_card(result.params) if result.family == BLEND else {}),
        "smote": bool(result.params.get("smote__enabled", False)),
        "families": [
            {
                "family": r.family,
                "cv_auc": round(r.cv_auc, 5),
                "time_val_auc": round(r.time_val_auc, 5),
                "time_val_auc_by_macro": {
                    k: round(v, 5) for k, v in r.time_val_auc_by_macro.items()
                },
                "params": r.params,
                "seconds": round(r.seconds, 1),
            }
            for r in result.families
        ],
        "selection": result.selection,
        "calibration": result.calibration,
        "metrics": result.metrics,
        "evaluation": (
            "time hold-out = last 20% of rows, scored by a twin of this configuration fitted "
            "on all earlier rows (time_following_week: the same scores made to follow each "
            "week's forecast rate, the rate model fitted on the weeks before it); random "
            "hold-out = stratified 20% of all rows, scored by a twin fitted on the other 80%; "
            "the production artifact is then refitted on every row (fitted_on)"
        ),
        "fitted_on": result.fitted_on,
        **({"base_rate": result.base_rate.as_card()} if result.base_rate is not None else {}),
        "default_threshold": round(settings.break_even, 6),
        "threshold_rule": (
            f"break-even probability = call cost / subscription value "
            f"({settings.call_cost:g} / {settings.subscription_value:g}); with calibrated "
            "probabilities a call pays off on average above it"
        ),
        "training_seconds": round(result.seconds, 1),
        "libraries": library_versions(),
    }


def _blend_card(params: dict[str, Any]) -> dict[str, Any]:
    """What the model card says about the members of a blend: share and inputs left out."""
    model = build_pipeline(BLEND).set_params(**params).named_steps["clf"]
    shares = dict(zip(model.members, model.shares(), strict=True))
    return {
        "blend": {
            label: {
                "share": round(shares[name], 6),
                "inputs_left_out": dropped_inputs(params.get(f"clf__{drop}")),
            }
            for name, drop, label in MEMBERS
            if name in shares
        }
    }
