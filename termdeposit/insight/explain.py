"""Why the model scores customers as it does: SHAP contributions per input, in plain words.

The saved artifact is explained through its underlying pipeline: the ``clean`` and ``prep``
steps turn the inputs into the model's matrix (SMOTE only acts while training), and SHAP
explains the classifier on that matrix: shap's ``TreeExplainer`` (exact, path-dependent) for
XGBoost, :class:`~termdeposit.insight.treeshap.ForestShap` for random forests (the same exact
path-dependent values as ``TreeExplainer``, computed tens of times faster), shap's
``LinearExplainer`` for logistic regression, and :class:`BlendShap` (the two combined, in
probability) for their average. When the artifact is wrapped for calibration, the model
inside is explained: contributions add up to its raw output (log-odds for logistic
regression and XGBoost, probability for a random forest or the average), while the
probability users see comes from the whole calibrated artifact.

One-hot columns are summed back to the input they came from (one ``job``, not twelve
``job_*``; ``never_contacted`` belongs to ``pdays``), so every explanation speaks of the 19
inputs a user knows, with readable labels and values in words ("3-month Euribor rate = 1.3
(low)"), where low and high are judged against the model's own training customers.

Size: One explainer per model family, the reason codes and their words share the one-hot
folding and the value words; the fast forest algorithm is already its own module (treeshap.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import FEATURE_LABELS, caller_phrase, value_words
from termdeposit.core.schema import (
    CATEGORICAL_COLUMNS,
    CONTEXT_INPUTS,
    ID_COLUMN,
    INPUT_COLUMNS,
    NUMERIC_COLUMNS,
    PDAYS_NEVER,
    inputs_only,
)
from termdeposit.modeling.features import raw_feature_of

#: Below this share of training customers a value is "low", above 1 minus it "high".
LEVEL_SHARE = 0.25
#: Rows explained at once by :func:`explain_in_chunks` (bounds memory, drives progress bars).
CHUNK_ROWS = 5_000
#: Most customers the overall view explains per model family: the measured speed of exact
#: SHAP on two cores (``benchmarks/bench_shap.py``) keeps each view within about 2 seconds.
SAMPLE_LIMITS = {"logreg": 50_000, "xgboost": 10_000, "random_forest": 10_000, "blend": 10_000}
#: Families explained in probability (their contributions add up to a probability).
PROBABILITY_FAMILIES = ("random_forest", "blend")
#: A tree model's cost grows with its trees (``ForestShap.work_per_row``,
#: :func:`boosted_work_per_row`): up to this much work per row, 10,000 rows take about 1–1.6 s
#: here; a larger model gets a proportionally smaller sample (never under
#: :data:`MIN_FOREST_SAMPLE`), so the view stays near 2 s.
FOREST_WORK_FOR_FULL_SAMPLE = 150_000
MIN_FOREST_SAMPLE = 500
#: shap's TreeExplainer on an XGBoost model, one core, per 10,000 rows: about 4.7 ms per tree
#: plus 0.053 ms per squared leaf depth (fitted to four models of 60–200 trees of depth 3–8,
#: ``benchmarks/bench_shap.py``); in the forest's work units (150,000 ~ 1 s per 10,000 rows).
BOOSTED_WORK_PER_TREE = 700
BOOSTED_WORK_PER_SQUARED_DEPTH = 8

ProgressFn = Callable[[float], None]


def underlying_pipeline(artifact: Any) -> tuple[Any, bool]:
    """The clean -> prep -> (smote) -> clf pipeline inside an artifact; True if calibrated."""
    if hasattr(artifact, "calibrated_classifiers_"):
        return artifact.calibrated_classifiers_[0].estimator, True
    return artifact, False


def family_of(classifier: Any) -> str:
    """The model family of a fitted classifier (``logreg``, ``random_forest``, ``xgboost``)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from termdeposit.modeling.blend import BlendClassifier

    if isinstance(classifier, BlendClassifier):
        return "blend"
    if isinstance(classifier, LogisticRegression):
        return "logreg"
    if isinstance(classifier, RandomForestClassifier):
        return "random_forest"
    if type(classifier).__name__ == "XGBClassifier":
        return "xgboost"
    raise TermDepositError(
        f"Explanations are not available for a {type(classifier).__name__} model.",
        hint=("Explanations cover logistic regression, random forest, XGBoost and their average."),
    )


def value_text(feature: str, value: Any) -> str:
    """An input's value in words: ``6 days ago``, ``university degree``, ``1.3``."""
    return value_words(feature, value)


def effect_words(contribution: float) -> str:
    """``raises the score``, ``lowers the score`` or ``does not change the score``."""
    if contribution > 0:
        return "raises the score"
    if contribution < 0:
        return "lowers the score"
    return "does not change the score"


@dataclass
class Explanation:
    """SHAP contributions of a set of customers, one column per input the model uses.

    Attributes:
        ids: customer ids (row order of ``values``).
        inputs: the customers' inputs as given (before cleaning).
        values: contribution of each input to each customer's model output.
        base_value: the model's average output over its training customers.
        output: the model's raw output per customer (``base_value`` + the row's contributions,
            which is what the model computes: see :meth:`ModelExplainer.model_output`).
        scale: what the output is measured in (``log-odds`` or ``probability``).
        sampled_from: the number of customers the rows were sampled from (None: all of them).
        seconds: time taken to compute the contributions.
    """

    ids: pd.Series
    inputs: pd.DataFrame
    values: pd.DataFrame
    base_value: float
    output: np.ndarray
    scale: str
    sampled_from: int | None = None
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.values)

    @property
    def features(self) -> list[str]:
        """The inputs explained, in the data set's column order."""
        return list(self.values.columns)

    def row(self, position: int) -> Explanation:
        """The explanation of one customer (by row position)."""
        keep = slice(position, position + 1)
        return Explanation(
            ids=self.ids.iloc[keep].reset_index(drop=True),
            inputs=self.inputs.iloc[keep].reset_index(drop=True),
            values=self.values.iloc[keep].reset_index(drop=True),
            base_value=self.base_value,
            output=self.output[keep],
            scale=self.scale,
        )


@dataclass
class ModelExplainer:
    """A fitted artifact ready to explain: its transform, classifier and SHAP explainer.

    Build it with :func:`build_explainer`; it is reused for every explanation of that model.
    """

    artifact: Any
    family: str
    calibrated: bool
    features: list[str]
    encoded: list[str]
    aggregation: np.ndarray
    base_value: float
    steps: list[Any] = field(repr=False)
    classifier: Any = field(repr=False)
    shap_explainer: Any = field(repr=False)
    modes: dict[str, str] = field(default_factory=dict)
    reference: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: SHAP cost of one row of an XGBoost model (:func:`boosted_work_per_row`), set once.
    boosted_work: int | None = None

    @property
    def scale(self) -> str:
        """What contributions are measured in: ``log-odds`` or ``probability``."""
        return "probability" if self.family in PROBABILITY_FAMILIES else "log-odds"

    @property
    def sample_limit(self) -> int:
        """Most customers the overall view explains at once for this model (family and, for
        tree models, their size)."""
        limit = SAMPLE_LIMITS[self.family]
        work = getattr(self.shap_explainer, "work_per_row", None)
        if self.family == "xgboost":
            work = self.boosted_work
        if work and work > FOREST_WORK_FOR_FULL_SAMPLE:
            scaled = int(limit * FOREST_WORK_FOR_FULL_SAMPLE / work) // 100 * 100
            limit = max(MIN_FOREST_SAMPLE, scaled)
        return limit

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input matrix for a frame of inputs (clean and prep, no resampling)."""
        data: Any = inputs_only(frame)
        for step in self.steps:
            data = step.transform(data)
        return np.asarray(data, dtype=np.float64)

    def model_output(self, frame: pd.DataFrame) -> np.ndarray:
        """The explained model's raw output (log-odds, or probability for a random forest)."""
        return self._output(self.matrix(frame))

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        """The probability of subscribing from the whole artifact (calibrated if it is)."""
        return self.artifact.predict_proba(inputs_only(frame))[:, 1]

    def _output(self, matrix: np.ndarray) -> np.ndarray:
        if self.family == "logreg":
            return self.classifier.decision_function(matrix)
        if self.family in PROBABILITY_FAMILIES:
            return self.classifier.predict_proba(matrix)[:, 1]
        import xgboost

        booster = self.shap_explainer.model.original_model
        return np.asarray(
            booster.predict(xgboost.DMatrix(matrix), output_margin=True), dtype=float
        )

    def _shap(self, matrix: np.ndarray) -> np.ndarray:
        if self.family != "xgboost":
            values = self.shap_explainer.shap_values(matrix)
        else:
            values = self.shap_explainer.shap_values(matrix, check_additivity=False)
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 3:
            values = values[:, :, 1]
        return values

    def explain(self, frame: pd.DataFrame, sampled_from: int | None = None) -> Explanation:
        """Contributions of every input for every row of ``frame`` (inputs, optional id)."""
        started = time.perf_counter()
        matrix = self.matrix(frame)
        values = self._shap(matrix) @ self.aggregation
        # SHAP values add up to the model's output (tests check it against model_output):
        # summing them spares a second pass through the model.
        output = self.base_value + values.sum(axis=1)
        ids = (
            frame[ID_COLUMN].astype(str).reset_index(drop=True)
            if ID_COLUMN in frame
            else pd.Series([f"row {i + 1}" for i in range(len(frame))], name=ID_COLUMN)
        )
        return Explanation(
            ids=ids,
            inputs=inputs_only(frame).reset_index(drop=True),
            values=pd.DataFrame(values, columns=self.features),
            base_value=self.base_value,
            output=np.asarray(output, dtype=float),
            scale=self.scale,
            sampled_from=sampled_from,
            seconds=time.perf_counter() - started,
        )

    def level(self, feature: str, value: float) -> str | None:
        """``low``, ``typical`` or ``high`` against the training customers (None if unknown)."""
        reference = self.reference.get(feature)
        if reference is None or len(reference) == 0:
            return None
        below = np.searchsorted(reference, value, side="left")
        at_or_below = np.searchsorted(reference, value, side="right")
        share = (below + at_or_below) / (2 * len(reference))
        if share < LEVEL_SHARE:
            return "low"
        if share > 1 - LEVEL_SHARE:
            return "high"
        return "typical"

    def describe(self, feature: str, value: Any) -> str:
        """An input and its value in words, e.g. ``3-month Euribor rate = 1.3 (low)``."""
        label = FEATURE_LABELS.get(feature, feature)
        text = value_text(feature, value)
        if feature in CATEGORICAL_COLUMNS:
            mode = self.modes.get(feature)
            if str(value) == "unknown" and mode:
                text = f"unknown (read as {value_text(feature, mode)})"
            return f"{label} = {text}"
        if feature == "pdays":
            return f"{label} = {text}"
        level = self.level(feature, float(value))
        return f"{label} = {text} ({level})" if level else f"{label} = {text}"


def build_explainer(model: Any, reference: pd.DataFrame | None = None) -> ModelExplainer:
    """Prepare SHAP for a saved model (a ``LoadedModel``) or artifact.

    Args:
        model: a loaded model, or a fitted pipeline / calibrated artifact.
        reference: training customers (inputs) used as the SHAP background of a linear model
            and to judge values as low or high; by default the model's saved reference sample.

    Raises:
        TermDepositError: the model family cannot be explained, or no reference sample exists.
    """
    import shap

    artifact = getattr(model, "pipeline", model)
    if reference is None:
        if not hasattr(model, "reference"):
            raise TermDepositError(
                "Explaining this model needs a sample of its training customers.",
                hint="Pass the training rows as 'reference'.",
            )
        reference = model.reference()
    inner, calibrated = underlying_pipeline(artifact)
    named = dict(inner.steps)
    classifier = named["clf"]
    family = family_of(classifier)
    steps = [
        step
        for name, step in inner.steps[:-1]
        if not isinstance(step, str) and step is not None and not hasattr(step, "fit_resample")
    ]
    prep = named["prep"]
    encoded = [str(name) for name in prep.get_feature_names_out()]
    raw = [raw_feature_of(name) for name in encoded]
    features = [c for c in INPUT_COLUMNS if c in raw]
    aggregation = np.zeros((len(encoded), len(features)))
    for row, name in enumerate(raw):
        aggregation[row, features.index(name)] = 1.0

    inputs = inputs_only(reference)
    explainer = ModelExplainer(
        artifact=artifact,
        family=family,
        calibrated=calibrated,
        features=features,
        encoded=encoded,
        aggregation=aggregation,
        base_value=0.0,
        steps=steps,
        classifier=classifier,
        shap_explainer=None,
        modes=dict(getattr(named.get("clean"), "modes_", {}) or {}),
        reference={
            c: np.sort(pd.to_numeric(inputs[c], errors="coerce").dropna().to_numpy(float))
            for c in NUMERIC_COLUMNS
        },
    )
    if family == "logreg":
        background = explainer.matrix(inputs)
        masker = shap.maskers.Independent(background, max_samples=len(background))
        explainer.shap_explainer = shap.LinearExplainer(classifier, masker)
    elif family == "blend":
        explainer.shap_explainer = BlendShap(classifier, explainer.matrix(inputs))
    elif family == "xgboost":
        explainer.shap_explainer = _boosted_explainer(classifier)
        explainer.boosted_work = boosted_work_per_row(classifier)
    else:
        # Exact path-dependent TreeSHAP, as shap.TreeExplainer(classifier), in probability
        # space (termdeposit.insight.treeshap explains how, and why the values are the same).
        from termdeposit.insight.treeshap import ForestShap

        explainer.shap_explainer = ForestShap(classifier)
    # shap sets an XGBoost model's expected value from the model's own bias term only once
    # it has explained a row (before that it is derived from base_score, which can differ).
    explainer._shap(explainer.matrix(inputs.iloc[:1]))
    explainer.base_value = _last(explainer.shap_explainer.expected_value)
    return explainer


def _boosted_explainer(model: Any) -> Any:
    """shap's TreeExplainer on a single-threaded copy of a fitted XGBoost model's booster: on
    a busy machine, waking XGBoost's thread pool costs tens of milliseconds per call, which
    dwarfs explaining one customer (and barely speeds up 10k rows); the model itself is left
    as it is."""
    import shap

    booster = model.get_booster().copy()
    booster.set_param({"nthread": 1})
    return shap.TreeExplainer(booster)


def boosted_work_per_row(model: Any) -> int:
    """The SHAP cost of one row of a fitted XGBoost model, in the forest's work units (see
    :data:`BOOSTED_WORK_PER_TREE`): from its number of trees and the squared depths of its
    leaves (path-dependent TreeSHAP does about depth² work per leaf)."""
    import json

    dumps = model.get_booster().get_dump(dump_format="json")
    squared = 0
    for dump in dumps:
        stack = [(json.loads(dump), 0)]
        while stack:
            node, depth = stack.pop()
            if "leaf" in node:
                squared += depth * depth
            else:
                stack.extend((child, depth + 1) for child in node.get("children", []))
    return int(BOOSTED_WORK_PER_TREE * len(dumps) + BOOSTED_WORK_PER_SQUARED_DEPTH * squared)


def _sigmoid(z: np.ndarray | np.float64) -> np.ndarray | np.float64:
    return 1.0 / (1.0 + np.exp(-z))


class BlendShap:
    """SHAP values of the average of the families (blend), in probability.

    The forest's part is its exact path-dependent TreeSHAP (probability), times its share. The
    regression's and XGBoost's exact SHAP values are in log-odds (``LinearExplainer`` against
    the training sample, TreeSHAP for XGBoost); each customer's are scaled by the slope of the
    logistic curve between the member's average log-odds and the customer's (the secant, the
    derivative when the two meet), so they add up to the member's probability minus the
    probability at its average log-odds, times its share.
    Contributions therefore add up, for every customer, to the blended probability minus the
    base value; signs and the order within each member's part are kept.

    Args:
        blend: the fitted :class:`~termdeposit.modeling.blend.BlendClassifier`.
        background: encoded training customers (the regression's reference).
    """

    def __init__(self, blend: Any, background: np.ndarray) -> None:
        import shap

        from termdeposit.insight.treeshap import ForestShap

        self.blend = blend
        self.shares = dict(zip(blend.members, blend.shares(), strict=True))
        linear_background = background[:, blend.linear_columns_]
        masker = shap.maskers.Independent(linear_background, max_samples=len(linear_background))
        #: member -> (explainer in log-odds, its average log-odds)
        self.margin: dict[str, tuple[Any, float]] = {}
        linear = shap.LinearExplainer(blend.linear_, masker)
        self.margin["linear"] = (linear, _last(linear.expected_value))
        if blend.boosted_ is not None:
            boosted = _boosted_explainer(blend.boosted_)
            # shap settles XGBoost's expected value once it has explained a row.
            boosted.shap_values(background[:1, blend.boosted_columns_])
            self.margin["boosted"] = (boosted, _last(boosted.expected_value))
        self.forest = ForestShap(blend.forest_)
        self.boosted_work = 0 if blend.boosted_ is None else boosted_work_per_row(blend.boosted_)
        self.expected_value = sum(
            self.shares[name] * float(_sigmoid(np.float64(base)))
            for name, (_, base) in self.margin.items()
        ) + self.shares["forest"] * float(self.forest.expected_value)

    @property
    def work_per_row(self) -> int:
        """The tree members' cost per row (the regression's is negligible)."""
        return int(self.forest.work_per_row) + self.boosted_work

    def shap_values(self, X: np.ndarray) -> np.ndarray:
        """Contributions of every encoded column, rows x columns, in probability."""
        X = np.asarray(X, dtype=np.float64)
        out = np.zeros(X.shape, dtype=np.float64)
        for name, (explainer, base) in self.margin.items():
            columns = getattr(self.blend, f"{name}_columns_")
            member = getattr(self.blend, f"{name}_")
            phi = np.asarray(explainer.shap_values(X[:, columns]), float)
            probability = np.asarray(member.predict_proba(X[:, columns])[:, 1], float)
            gap = phi.sum(axis=1)
            close = np.abs(gap) < 1e-9
            p_base = _sigmoid(np.float64(base))
            secant = np.where(
                close,
                p_base * (1.0 - p_base),
                (probability - p_base) / np.where(close, 1.0, gap),
            )
            out[:, columns] += self.shares[name] * phi * secant[:, None]
        forest = np.asarray(self.forest.shap_values(X[:, self.blend.forest_columns_]), float)
        if forest.ndim == 3:
            forest = forest[:, :, 1]
        out[:, self.blend.forest_columns_] += self.shares["forest"] * forest
        return out


def _last(value: Any) -> float:
    """The positive class's entry of a SHAP expected value (a scalar or one per class)."""
    return float(np.ravel(np.asarray(value, dtype=float))[-1])


def explain_in_chunks(
    explainer: ModelExplainer,
    frame: pd.DataFrame,
    progress: ProgressFn | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Explanation:
    """Explain every row of ``frame`` a chunk at a time, reporting the share done."""
    report = progress or (lambda fraction: None)
    if len(frame) <= chunk_rows:
        result = explainer.explain(frame)
        report(1.0)
        return result
    parts = []
    for start in range(0, len(frame), chunk_rows):
        parts.append(explainer.explain(frame.iloc[start : start + chunk_rows]))
        report(min(1.0, (start + chunk_rows) / len(frame)))
    return Explanation(
        ids=pd.concat([p.ids for p in parts], ignore_index=True),
        inputs=pd.concat([p.inputs for p in parts], ignore_index=True),
        values=pd.concat([p.values for p in parts], ignore_index=True),
        base_value=explainer.base_value,
        output=np.concatenate([p.output for p in parts]),
        scale=explainer.scale,
        seconds=sum(p.seconds for p in parts),
    )


def explain_sample(
    explainer: ModelExplainer,
    frame: pd.DataFrame,
    limit: int | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> Explanation:
    """Explain a cohort, or a random sample of ``limit`` customers when it is larger.

    The sample (``seed`` fixed, so the same cohort always gives the same sample) is stated in
    ``sampled_from``; the default limit is the model family's :data:`SAMPLE_LIMITS`.
    """
    limit = explainer.sample_limit if limit is None else limit
    sampled_from = None
    if len(frame) > limit:
        sampled_from = len(frame)
        frame = frame.sample(limit, random_state=seed).sort_index()
    result = explain_in_chunks(explainer, frame, progress)
    result.sampled_from = sampled_from
    return result


def importance(explanation: Explanation) -> pd.DataFrame:
    """Mean absolute contribution per input, largest first: ``feature, label, mean_abs``."""
    mean_abs = explanation.values.abs().mean(axis=0)
    table = pd.DataFrame(
        {
            "feature": mean_abs.index,
            "label": [FEATURE_LABELS.get(f, f) for f in mean_abs.index],
            "mean_abs": mean_abs.to_numpy(),
        }
    )
    return table.sort_values("mean_abs", ascending=False, kind="stable").reset_index(drop=True)


def constant_inputs(explanation: Explanation) -> list[str]:
    """Inputs with the same value for every explained customer (e.g. the week's economy)."""
    if len(explanation) < 2:
        return []
    return [f for f in explanation.features if explanation.inputs[f].nunique(dropna=False) == 1]


def contributions(
    explainer: ModelExplainer, explanation: Explanation, position: int = 0
) -> pd.DataFrame:
    """One customer's contributions, largest effect first, with each value in words.

    Columns: ``feature, label, value, value_text, contribution, effect, sentence`` where the
    sentence reads e.g. ``3-month Euribor rate = 1.3 (low) raises the score``.
    """
    values = explanation.values.iloc[position]
    inputs = explanation.inputs.iloc[position]
    rows = []
    for feature in explanation.features:
        contribution = float(values[feature])
        described = explainer.describe(feature, inputs[feature])
        rows.append(
            {
                "feature": feature,
                "label": FEATURE_LABELS.get(feature, feature),
                "value": inputs[feature],
                "value_text": described.split(" = ", 1)[1],
                "contribution": contribution,
                "effect": effect_words(contribution),
                "sentence": f"{described} {effect_words(contribution)}",
            }
        )
    table = pd.DataFrame(rows)
    order = np.argsort(-table["contribution"].abs().to_numpy(), kind="stable")
    return table.iloc[order].reset_index(drop=True)


def reason_codes(
    model: Any,
    frame: pd.DataFrame,
    top: int = 3,
    explainer: ModelExplainer | None = None,
    include_context: bool = False,
    progress: ProgressFn | None = None,
    baseline: pd.Series | None = None,
    phrasing: str = "label",
) -> pd.DataFrame:
    """The inputs that raise each customer's score most, in plain words, for callers.

    Columns ``customer_id, reason_1 .. reason_<top>``; a reason reads e.g. ``Outcome of the
    previous campaign = success`` (``phrasing="label"``) or ``said yes in the previous
    campaign`` (``phrasing="caller"``, the call list's words). Only inputs that raise the
    score count; a customer with fewer than ``top`` of them gets empty cells. Ties are broken
    by the data set's column order, so the same customer always gets the same reasons. By
    default the week's context (:data:`CONTEXT_INPUTS`: the call date and the economy) is left
    out: it is the same for everyone called that week and says nothing to a caller.

    Args:
        model: a loaded model or fitted artifact (ignored when ``explainer`` is given).
        frame: customers with ``customer_id`` and the 19 inputs.
        top: how many reasons per customer.
        explainer: a prepared explainer of the model, to avoid rebuilding it.
        include_context: also let the context inputs be reasons.
        progress: called with the share of customers done.
        baseline: mean contribution of each input over this week's customers
            (:func:`cohort_baseline`); when given, a reason is what raises this customer's
            score *more than it raises the week's average customer's*, so a trait most of
            the week shares (a mobile phone, say) does not crowd out what sets them apart.
        phrasing: ``label`` (``Input = value``) or ``caller`` (a caller's words).
    """
    if phrasing not in ("label", "caller"):
        raise ValueError(f"unknown phrasing {phrasing!r}")
    explainer = explainer or build_explainer(model)
    explanation = explain_in_chunks(explainer, frame, progress)
    features = [f for f in explanation.features if include_context or f not in CONTEXT_INPUTS]
    values = explanation.values.loc[:, features].to_numpy()
    if baseline is not None:
        values = values - baseline.reindex(features).fillna(0.0).to_numpy()[None, :]
    order = np.argsort(-values, axis=1, kind="stable")[:, :top]
    texts = np.empty(values.shape, dtype=object)
    for j, feature in enumerate(features):
        column = explanation.inputs[feature]
        if phrasing == "caller":
            words = {value: caller_phrase(feature, value) for value in pd.unique(column)}
        else:
            words = {value: explainer.describe(feature, value) for value in pd.unique(column)}
        texts[:, j] = column.map(words).to_numpy(dtype=object)
    chosen = np.take_along_axis(texts, order, axis=1)
    raises = np.take_along_axis(values, order, axis=1) > 0
    out = pd.DataFrame(
        np.where(raises, chosen, ""), columns=[f"reason_{k + 1}" for k in range(top)]
    )
    out.insert(0, ID_COLUMN, explanation.ids.to_numpy())
    return out


#: Customers explained to measure the week's average contributions (a fixed sample).
BASELINE_SAMPLE = 2_000


def cohort_baseline(
    explainer: ModelExplainer, cohort: pd.DataFrame, limit: int = BASELINE_SAMPLE
) -> pd.Series:
    """Mean contribution of each input over this week's customers (a fixed sample of them).

    The reasons on a call list are measured against it (:func:`reason_codes`): what sets a
    customer apart from the rest of the week, not what the whole week has in common.
    """
    explanation = explain_sample(explainer, cohort, limit=min(limit, len(cohort)))
    return explanation.values.mean(axis=0)


def add_reasons(table: pd.DataFrame, reasons: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the reason columns of ``reasons`` after its ``decision`` column."""
    columns = [c for c in reasons.columns if c.startswith("reason_")]
    merged = table.drop(columns=[c for c in columns if c in table]).merge(
        reasons.loc[:, [ID_COLUMN, *columns]], on=ID_COLUMN, how="left", validate="many_to_one"
    )
    merged[columns] = merged[columns].fillna("")
    anchor = "decision" if "decision" in table else table.columns[-1]
    front = list(table.columns[: list(table.columns).index(anchor) + 1])
    rest = [c for c in merged.columns if c not in front and c not in columns]
    return merged.loc[:, [*front, *columns, *rest]]


def dependence_data(
    explainer: ModelExplainer, explanation: Explanation, feature: str
) -> pd.DataFrame:
    """Values of one input against its contribution, for a dependence plot.

    Columns ``value`` (number, or text for categories and for ``pdays`` bands),
    ``contribution`` and ``categorical``. ``pdays`` is shown in bands (never contacted,
    within a week, ...), as 999 means "never" and is not a number of days.
    """
    raw = explanation.inputs[feature]
    if feature == "pdays":
        days = raw.astype(int)
        value = pd.Series(
            np.select(
                [days == PDAYS_NEVER, days <= 7, days <= 14],
                ["never contacted", "within a week", "1-2 weeks ago"],
                default="over 2 weeks ago",
            )
        )
        categorical = True
    elif feature in CATEGORICAL_COLUMNS:
        value = raw.astype(str).map(lambda v: value_text(feature, v))
        categorical = True
    else:
        value = pd.to_numeric(raw, errors="coerce").astype(float)
        categorical = False
    return pd.DataFrame(
        {
            "value": value.to_numpy(),
            "contribution": explanation.values[feature].to_numpy(),
            "categorical": categorical,
        }
    )


def colour_levels(explainer: ModelExplainer, explanation: Explanation) -> pd.DataFrame:
    """Each numeric input's value as its share of training customers below it (0 low, 1 high).

    Category inputs are NaN (they have no low or high); used to colour a beeswarm plot.
    """
    levels = {}
    for feature in explanation.features:
        reference = explainer.reference.get(feature)
        if feature in CATEGORICAL_COLUMNS or reference is None or not len(reference):
            levels[feature] = np.full(len(explanation), np.nan)
            continue
        values = pd.to_numeric(explanation.inputs[feature], errors="coerce").to_numpy(float)
        below = np.searchsorted(reference, values, side="left")
        at_or_below = np.searchsorted(reference, values, side="right")
        levels[feature] = (below + at_or_below) / (2 * len(reference))
    return pd.DataFrame(levels)


@dataclass
class WhatIf:
    """One customer before and after a change of inputs.

    Attributes:
        table: one row per input: ``feature, label, before, after, contribution_before,
            contribution_after`` (values in words).
        changes: the inputs changed, in words (``Age from 34 to 60``).
        before: explanation before the change.
        after: explanation after the change.
        probability_before: the artifact's probability before the change.
        probability_after: the artifact's probability after it.
    """

    table: pd.DataFrame
    changes: list[str]
    before: Explanation
    after: Explanation
    probability_before: float
    probability_after: float


def what_if(explainer: ModelExplainer, customer: pd.DataFrame, changes: dict[str, Any]) -> WhatIf:
    """Change some inputs of one customer and compare scores and contributions.

    Args:
        explainer: the model's explainer.
        customer: one row with the 19 inputs (and optionally ``customer_id``).
        changes: input -> new value (values a cohort file could hold).

    Raises:
        TermDepositError: a change names something that is not an input.
    """
    unknown = [c for c in changes if c not in INPUT_COLUMNS]
    if unknown:
        raise TermDepositError(
            f"'{unknown[0]}' is not one of the model's inputs.",
            hint="Change only the 19 cohort inputs.",
        )
    before_row = customer.iloc[:1].reset_index(drop=True)
    after_row = before_row.copy()
    for column, value in changes.items():
        if column in NUMERIC_COLUMNS:
            after_row[column] = pd.Series([float(value)], dtype=float)
        else:
            after_row[column] = pd.Series([str(value)], dtype=object)
    before = explainer.explain(before_row)
    after = explainer.explain(after_row)
    table = pd.DataFrame(
        {
            "feature": before.features,
            "label": [FEATURE_LABELS.get(f, f) for f in before.features],
            "before": [value_text(f, before_row.at[0, f]) for f in before.features],
            "after": [value_text(f, after_row.at[0, f]) for f in before.features],
            "contribution_before": before.values.iloc[0].to_numpy(),
            "contribution_after": after.values.iloc[0].to_numpy(),
        }
    )
    described = [
        f"{FEATURE_LABELS.get(c, c)} from {value_text(c, before_row.at[0, c])} "
        f"to {value_text(c, after_row.at[0, c])}"
        for c in changes
    ]
    return WhatIf(
        table=table,
        changes=described,
        before=before,
        after=after,
        probability_before=float(explainer.probability(before_row)[0]),
        probability_after=float(explainer.probability(after_row)[0]),
    )


def to_probability(output: float | np.ndarray, scale: str) -> Any:
    """Turn a model output into a probability (log-odds through the logistic function)."""
    if scale == "probability":
        return output
    return 1.0 / (1.0 + np.exp(-np.asarray(output, dtype=float)))
