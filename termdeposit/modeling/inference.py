"""The fitted scoring pipeline's arithmetic in numpy and on the trees' own engines.

Scoring one customer through the scikit-learn pipeline costs tens of milliseconds, nearly all
of it overhead (pandas frames built and copied by each step, column selection, one joblib task
per tree), not arithmetic; on a million customers the encoding steps alone take a third of the
scoring time, holding Python's lock while other threads read and write the files.
:class:`CompiledScorer` reads the fitted steps once — the modes of
:class:`~.features.BankCleaner`, the categories of the one-hot encoder, the means
and scales of the scaler, the trees of a forest, the calibration map — and replays the same
operations on numpy arrays:

- cleaning and encoding: the same comparisons, ``min`` and ``(x - mean) / scale`` in float64,
  so the encoded matrix is identical, bit for bit, to ``pipeline[:2].transform``;
- a Random Forest: for up to :data:`FOREST_ENGINE_MAX_ROWS` rows, Treelite's predictor on a
  Treelite model imported from the fitted forest at load time (the same bits as the forest's
  own ``predict_proba`` with joblib's sequential backend); for more rows, the forest's own
  ``predict_proba`` on the encoded matrix (sequential backend), the fastest engine measured
  for large batches (benchmarks/README.md, "Scoring engines");
- logistic regression and XGBoost: the fitted classifier's own ``predict_proba`` /
  ``decision_function`` on the encoded matrix (XGBoost's own predictor);
- the average of the families (blend): the regression's and XGBoost's ``predict_proba`` and
  the forest as above, each on its member's columns, combined by the blend's own formula;
- calibration (``CalibratedClassifierCV`` with ``ensemble=False``): the fitted calibrator on
  the same response the wrapper uses.

Anything else (another step, an ensemble of calibrated copies, missing values) raises
:class:`NotCompilableError` at build time or :class:`~termdeposit.fast_csv.FastPathDeclinedError`
at scoring time, and the caller uses the pipeline: speed never changes a result. Tests compare
the two on thousands of rows for every family, with and without calibration.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import treelite
import treelite.sklearn
from joblib import parallel_config

from termdeposit.core.schema import INPUT_COLUMNS
from termdeposit.data.fast_csv import FastPathDeclinedError, shared_pool
from termdeposit.modeling.blend import BlendClassifier, kept_columns
from termdeposit.modeling.features import NEVER_CONTACTED, PDAYS_CAP, PDAYS_NEVER, BankCleaner

#: Up to this many rows a forest is scored by Treelite's predictor; above, scikit-learn's own
#: tree code is faster (benchmarks/README.md, "Scoring engines": one row of the full profile's
#: forest 0.1 ms against about 4 ms of per-call overhead, but 11x slower per row in bulk).
FOREST_ENGINE_MAX_ROWS = 32
#: Up to this many rows categories are looked up one by one; above, per distinct value.
_LOOKUP_ROWS = 64


def _codes(values: np.ndarray, lookup: dict[str, int]) -> np.ndarray:
    """One-hot column offset of each value (-1: a category the encoder never saw)."""
    if len(values) <= _LOOKUP_ROWS:
        return np.fromiter((lookup.get(str(v), -1) for v in values), np.intp, len(values))
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    offsets = np.fromiter((lookup.get(str(u), -1) for u in uniques), np.intp, len(uniques))
    return offsets[codes]


class NotCompilableError(Exception):
    """The pipeline has a step this module does not replay exactly."""


class _Forest:
    """A fitted ``RandomForestClassifier`` as a Treelite model, for small batches.

    Built at load time from the saved forest itself (``treelite.sklearn.import_model``: same
    trees, thresholds and leaf fractions), never trained apart. Treelite's predictor (GTIL)
    compares the inputs rounded to float32 with the float64 thresholds and adds the trees'
    fractions in tree order before dividing by their number: what scikit-learn's forest does
    with joblib's sequential backend, bit for bit (tests check it).
    """

    def __init__(self, forest: Any) -> None:
        if getattr(forest, "n_outputs_", 1) != 1 or list(forest.classes_) != [0, 1]:
            raise NotCompilableError("only single-output 0/1 forests are compiled")
        try:
            self.model = treelite.sklearn.import_model(forest)
        except treelite.TreeliteError as exc:
            raise NotCompilableError(f"Treelite cannot read this forest: {exc}") from exc

    def positive_proba(self, X: np.ndarray) -> np.ndarray:
        """Mean over trees of the leaf's class-1 fraction (trees added in order)."""
        rounded = np.ascontiguousarray(X, dtype=np.float32).astype(np.float64)
        return treelite.gtil.predict(self.model, rounded, nthread=1)[:, 0, 1]


class CompiledScorer:
    """Positive-class probabilities of a fitted scoring pipeline, computed in numpy.

    Args:
        model: the artifact (a pipeline, or ``CalibratedClassifierCV`` around one).

    Raises:
        NotCompilableError: a step or wrapper that is not replayed exactly.
    """

    def __init__(self, model: Any) -> None:
        from sklearn.calibration import CalibratedClassifierCV

        self.calibrator = None
        pipeline = model
        if isinstance(model, CalibratedClassifierCV):
            fitted = model.calibrated_classifiers_
            if len(fitted) != 1 or len(fitted[0].calibrators) != 1:
                raise NotCompilableError("an ensemble of calibrated copies is not compiled")
            if fitted[0].method not in ("sigmoid", "isotonic"):
                raise NotCompilableError(f"calibration {fitted[0].method!r} is not compiled")
            pipeline = fitted[0].estimator
            self.calibrator = fitted[0].calibrators[0]
        steps = getattr(pipeline, "steps", None)
        if not steps or len(steps) < 3:
            raise NotCompilableError("not a clean -> encode -> classifier pipeline")
        clean, prep, classifier = steps[0][1], steps[1][1], steps[-1][1]
        for _, middle in steps[2:-1]:  # samplers (SMOTE) do nothing at prediction time
            if not hasattr(middle, "fit_resample"):
                raise NotCompilableError(f"step {type(middle).__name__} is not compiled")
        if type(clean) is not BankCleaner:
            raise NotCompilableError("the first step is not the BankCleaner")
        self.modes = dict(clean.modes_)
        self.dropped = set(clean._dropped())
        self._encoders = self._read_encoder(prep)
        self.width = sum(w for _, _, w, _ in self._encoders)
        if self.width != getattr(classifier, "n_features_in_", self.width):
            raise NotCompilableError("encoded width differs from the classifier's inputs")
        self.classifier = classifier
        self.uses_decision_function = hasattr(pipeline, "decision_function")
        self.forest = self._read_forest(classifier)
        self.blend = classifier if isinstance(classifier, BlendClassifier) else None

    @staticmethod
    def _read_encoder(prep: Any) -> list[tuple[str, list[str], int, Any]]:
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if not isinstance(prep, ColumnTransformer):
            raise NotCompilableError("the encoding step is not a ColumnTransformer")
        encoders: list[tuple[str, list[str], int, Any]] = []
        for name, step, columns in prep.transformers_:
            if step == "drop" or (name == "remainder" and len(columns) == 0):
                continue
            columns = list(columns)
            if isinstance(step, OneHotEncoder):
                if step.drop is not None or getattr(step, "infrequent_categories_", None):
                    raise NotCompilableError("one-hot encoding with drop/infrequent categories")
                if step.handle_unknown != "ignore" or getattr(step, "sparse_output", False):
                    raise NotCompilableError("one-hot encoding that is sparse or strict")
                lookups = [{str(c): i for i, c in enumerate(cats)} for cats in step.categories_]
                width = sum(len(c) for c in step.categories_)
                encoders.append(("onehot", columns, width, (lookups, step.dtype)))
            elif isinstance(step, StandardScaler):
                mean = step.mean_ if step.with_mean else None
                scale = step.scale_ if step.with_std else None
                encoders.append(("scale", columns, len(columns), (mean, scale)))
            else:
                raise NotCompilableError(f"encoder {type(step).__name__} is not compiled")
        return encoders

    @staticmethod
    def _read_forest(classifier: Any) -> _Forest | None:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression

        if isinstance(classifier, RandomForestClassifier):
            return _Forest(classifier)
        if isinstance(classifier, BlendClassifier):
            boosted = classifier.boosted_
            if (
                not isinstance(classifier.linear_, LogisticRegression)
                or not isinstance(classifier.forest_, RandomForestClassifier)
                or (boosted is not None and type(boosted).__name__ != "XGBClassifier")
            ):
                raise NotCompilableError("a blend of other members is not compiled")
            return _Forest(classifier.forest_)
        if isinstance(classifier, LogisticRegression):
            return None
        if type(classifier).__name__ == "XGBClassifier":
            return None
        raise NotCompilableError(f"classifier {type(classifier).__name__} is not compiled")

    def clean(self, columns: Mapping[str, Any] | pd.DataFrame) -> dict[str, np.ndarray]:
        """What :class:`BankCleaner` makes of the 19 inputs (same values, same dtypes)."""
        cleaned: dict[str, np.ndarray] = {}
        for column in INPUT_COLUMNS:
            values = np.asarray(columns[column])
            if column in self.modes:
                values = np.where(values == "unknown", self.modes[column], values).astype(object)
            cleaned[column] = values
        pdays = np.asarray(cleaned["pdays"], dtype=np.float64)
        cleaned[NEVER_CONTACTED] = (pdays == PDAYS_NEVER).astype(np.float64)
        cleaned["pdays"] = np.minimum(pdays, PDAYS_CAP)
        for column in self.dropped:
            del cleaned[column]
        return cleaned

    def encode(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """The encoded matrix ``pipeline[:2].transform`` gives, from the 19 input columns."""
        cleaned = self.clean(columns)
        n = len(cleaned["pdays"])
        out = np.zeros((n, self.width), dtype=np.float64)
        start = 0
        for kind, names, width, params in self._encoders:
            if kind == "onehot":
                lookups, _ = params
                for name, lookup in zip(names, lookups, strict=True):
                    codes = _codes(np.asarray(cleaned[name]), lookup)
                    known = codes >= 0
                    out[np.flatnonzero(known), start + codes[known]] = 1.0
                    start += len(lookup)
            else:
                mean, scale = params
                block = np.column_stack([np.asarray(cleaned[c], dtype=np.float64) for c in names])
                if mean is not None:
                    block = block - mean
                if scale is not None:
                    block = block / scale
                out[:, start : start + width] = block
                start += width
        return out

    def response(self, X: np.ndarray) -> np.ndarray:
        """The uncalibrated classifier's output on the encoded matrix."""
        blend = self.blend
        if blend is not None:
            linear = blend.linear_.predict_proba(kept_columns(X, blend.linear_columns_))[:, 1]
            trees = kept_columns(X, blend.forest_columns_)
            if self.forest is not None and len(X) <= FOREST_ENGINE_MAX_ROWS:
                forest = self.forest.positive_proba(trees)
            else:
                with parallel_config(backend="sequential"):
                    forest = blend.forest_.predict_proba(trees)[:, 1]
            if blend.boosted_ is None:
                return blend.combine(linear, forest)
            boosted = blend.boosted_.predict_proba(kept_columns(X, blend.boosted_columns_))[:, 1]
            return blend.combine(linear, forest, np.asarray(boosted, dtype=np.float64))
        if self.forest is not None and len(X) <= FOREST_ENGINE_MAX_ROWS:
            return self.forest.positive_proba(X)
        if self.forest is not None:
            # Many rows: scikit-learn's own tree code, trees added in order (sequential
            # backend), as the pipeline does in inference.predict_proba.
            with parallel_config(backend="sequential"):
                return self.classifier.predict_proba(X)[:, 1]
        if self.calibrator is not None and self.uses_decision_function:
            return self.classifier.decision_function(X)
        return self.classifier.predict_proba(X)[:, 1]

    def positive_proba(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Probability of subscribing for each row (what ``LoadedModel.predict_proba`` gives).

        Raises:
            FastPathDeclinedError: an input is missing or not a number where one is needed;
                the caller scores with the pipeline, which explains the problem.
        """
        try:
            X = self.encode(columns)
        except (KeyError, TypeError, ValueError) as exc:
            raise FastPathDeclinedError(f"input not compiled: {exc}") from exc
        if not np.isfinite(X).all():
            raise FastPathDeclinedError("missing or infinite values")
        raw = self.response(X)
        if self.calibrator is None:
            return raw
        calibrated = np.asarray(self.calibrator.predict(raw), dtype=np.float64)
        calibrated[(calibrated > 1.0) & (calibrated <= 1.0 + 1e-5)] = 1.0
        return calibrated


_CACHE: weakref.WeakKeyDictionary[Any, CompiledScorer | None] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def scorer_for(model: Any) -> CompiledScorer | None:
    """The compiled scorer of a fitted artifact (built once), or None if it cannot be."""
    with _CACHE_LOCK:
        if model in _CACHE:
            return _CACHE[model]
        try:
            scorer: CompiledScorer | None = CompiledScorer(model)
        except (NotCompilableError, AttributeError):
            scorer = None
        _CACHE[model] = scorer
        return scorer


def positive_proba(model: Any, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray | None:
    """Compiled probabilities for a small batch, or None when the pipeline must do it."""
    scorer = scorer_for(model)
    if scorer is None:
        return None
    try:
        return scorer.positive_proba(columns)
    except FastPathDeclinedError:
        return None


#: Rows per call of the pipeline: bounds the memory of its dense intermediate arrays.
PREDICT_BATCH_ROWS = 100_000


#: Up to this many rows, the API scores a batch with the compiled scorer directly.
COMPILED_MAX_ROWS = 1_000


def predict_proba(
    model: Any, inputs: pd.DataFrame, batch_rows: int = PREDICT_BATCH_ROWS, threads: int = 2
) -> Any:
    """Positive-class probabilities, in batches of at most ``batch_rows`` on ``threads`` threads.

    Each batch runs with joblib's sequential backend, so a forest adds its trees in a fixed
    order: the result is the same on every run and for every batch size (with joblib threads
    the order of the additions, hence the last bit, varies between runs). Each batch goes
    through the compiled scorer above when the pipeline compiles: the same numbers without
    the pipeline's pandas overhead (most of a small batch's time, a third of a large one's).
    """
    n = len(inputs)
    workers = max(1, min(threads, os.cpu_count() or 1))
    batch_rows = min(batch_rows, -(-n // workers))
    if n <= batch_rows or n < 2_000:
        return _predict_sequential(model, inputs)
    starts = range(0, n, batch_rows)
    parts = list(
        shared_pool(workers).map(
            lambda s: _predict_sequential(model, inputs.iloc[s : s + batch_rows]), starts
        )
    )
    return np.concatenate(parts)


def _predict_sequential(model: Any, inputs: pd.DataFrame) -> Any:
    if hasattr(model, "pipeline"):  # a LoadedModel: try the compiled pipeline first
        fast = positive_proba(model.pipeline, inputs)
        if fast is not None:
            return fast
    with parallel_config(backend="sequential"):
        return model.predict_proba(inputs)
