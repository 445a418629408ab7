"""An equal-weight average of a logistic regression and a random forest (the ``blend`` family).

The two families fail in opposite places on this data (README, "Model choice"): the random
forest ranks best when the future looks like the past (random hold-out) but extrapolates
badly as the economy moves (time hold-out); the logistic regression, on the customer inputs
and ``nr.employed`` only, extrapolates best but misses the forest's interactions. Averaging
their probabilities keeps most of both. The weight is fixed at one half, not tuned: one choice
fewer made on the small time-ordered validation slice.

:class:`BlendClassifier` is the classifier step of the one scoring pipeline (clean -> encode
-> optional SMOTE -> classifier), so every other part of the product (calibration, registry,
scoring, fairness twins) treats it like any other family. Each member may leave out some
macro-economic columns of the encoded matrix: the regression usually sees only
``nr.employed``, the forest all five. Those columns are named by their position from the end
of the matrix (the numeric block comes last, in a fixed order), so the positions hold whatever
categories a training fold happens to contain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from termdeposit.features import CLEAN_NUMERIC, MACRO_COLUMNS

#: The regression's share of the averaged probability.
BLEND_WEIGHT = 0.5


def macro_drop_positions(macro: str) -> tuple[int, ...]:
    """Positions, counted from the end of the encoded matrix, of the macro columns a member
    with macro-economic input set ``macro`` (``all`` or ``nr.employed``) leaves out.

    The encoded matrix ends with the numeric block in :data:`~termdeposit.features.CLEAN_NUMERIC`
    order; every macro column comes after ``age`` (the one numeric input a fairness twin may
    drop), so these positions do not move when the pipeline drops protected inputs.
    """
    if macro == "all":
        return ()
    if macro != "nr.employed":
        raise ValueError(f"macro must be 'all' or 'nr.employed', not {macro!r}")
    tail = list(CLEAN_NUMERIC)
    return tuple(tail.index(c) - len(tail) for c in MACRO_COLUMNS if c != "nr.employed")


def dropped_inputs(positions: Any) -> list[str]:
    """Names of the inputs at positions given by :func:`macro_drop_positions`."""
    tail = list(CLEAN_NUMERIC)
    return [tail[len(tail) + int(p)] for p in positions or ()]


def kept_columns(X: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """``X[:, kept]``, without a copy when every column is kept."""
    return X if len(kept) == X.shape[1] else X[:, kept]


class BlendClassifier(ClassifierMixin, BaseEstimator):
    """Probability = weight x regression's + (1 - weight) x forest's.

    Args:
        linear: the (unfitted) logistic regression.
        forest: the (unfitted) random forest.
        weight: the regression's share.
        linear_drop / forest_drop: encoded columns each member leaves out, as negative
            positions (see :func:`macro_drop_positions`).
    """

    def __init__(
        self,
        linear: Any = None,
        forest: Any = None,
        weight: float = BLEND_WEIGHT,
        linear_drop: tuple[int, ...] = (),
        forest_drop: tuple[int, ...] = (),
    ) -> None:
        self.linear = linear
        self.forest = forest
        self.weight = weight
        self.linear_drop = linear_drop
        self.forest_drop = forest_drop

    @staticmethod
    def _kept(width: int, drop: tuple[int, ...]) -> np.ndarray:
        dropped = {width + int(p) if int(p) < 0 else int(p) for p in drop}
        if any(not 0 <= p < width for p in dropped):
            raise ValueError(f"cannot leave out columns {drop} of a {width}-column matrix")
        return np.array([i for i in range(width) if i not in dropped], dtype=np.intp)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BlendClassifier:
        """Fit both members on their columns of the encoded matrix."""
        if not 0.0 <= float(self.weight) <= 1.0:
            raise ValueError(f"weight must be between 0 and 1, not {self.weight}")
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        self.n_features_in_ = X.shape[1]
        self.linear_columns_ = self._kept(X.shape[1], tuple(self.linear_drop))
        self.forest_columns_ = self._kept(X.shape[1], tuple(self.forest_drop))
        linear = LogisticRegression(max_iter=2000) if self.linear is None else clone(self.linear)
        forest = RandomForestClassifier() if self.forest is None else clone(self.forest)
        self.linear_ = linear.fit(X[:, self.linear_columns_], y, sample_weight=sample_weight)
        self.forest_ = forest.fit(X[:, self.forest_columns_], y, sample_weight=sample_weight)
        if list(self.linear_.classes_) != list(self.forest_.classes_):
            raise ValueError("the two members learned different classes")
        self.classes_ = self.linear_.classes_
        return self

    def member_probabilities(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each member's positive-class probability (regression, forest)."""
        check_is_fitted(self, "linear_")
        X = np.asarray(X, dtype=np.float64)
        return (
            self.linear_.predict_proba(kept_columns(X, self.linear_columns_))[:, 1],
            self.forest_.predict_proba(kept_columns(X, self.forest_columns_))[:, 1],
        )

    def combine(self, linear: np.ndarray, forest: np.ndarray) -> np.ndarray:
        """The blended positive-class probability from the members' (one formula, shared
        with the compiled scorer so both give the same bits)."""
        w = float(self.weight)
        return w * linear + (1.0 - w) * forest

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of both classes."""
        p = self.combine(*self.member_probabilities(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The more probable class."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
