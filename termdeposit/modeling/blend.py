"""An equal-weight average of the searched families (the ``blend`` family).

The families fail in opposite places on this data (README, "Model choice"): the tree models
rank best when the future looks like the past (random hold-out) but extrapolate badly as the
economy moves (time hold-out); the logistic regression, on the customer inputs and
``nr.employed`` only, extrapolates best but misses the trees' interactions. Averaging their
probabilities keeps most of both. The members are the logistic regression, the random forest
and, when it was searched, XGBoost; each has the same share, not a tuned one: one choice fewer
made on the small time-ordered validation slice.

:class:`BlendClassifier` is the classifier step of the one scoring pipeline (clean -> encode
-> optional SMOTE -> classifier), so every other part of the product (calibration, registry,
scoring, fairness twins) treats it like any other family. Each member may leave out some
macro-economic columns of the encoded matrix: the regression usually sees only
``nr.employed``, the trees all five. Those columns are named by their position from the end
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

from termdeposit.modeling.features import CLEAN_NUMERIC, MACRO_COLUMNS

#: The members, in the order their probabilities are added: (attribute, drop setting, label).
MEMBERS = (
    ("linear", "linear_drop", "logistic_regression"),
    ("forest", "forest_drop", "random_forest"),
    ("boosted", "boosted_drop", "xgboost"),
)


def macro_drop_positions(macro: str) -> tuple[int, ...]:
    """Positions, counted from the end of the encoded matrix, of the macro columns a member
    with macro-economic input set ``macro`` (``all`` or ``nr.employed``) leaves out.

    The encoded matrix ends with the numeric block in :data:`~.features.CLEAN_NUMERIC`
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
    """Probability = weight x regression's + the rest shared equally by the tree members.

    Args:
        linear: the (unfitted) logistic regression.
        forest: the (unfitted) random forest.
        boosted: the (unfitted) XGBoost model, or None for a regression + forest average.
        weight: the regression's share; None (the default) gives every member the same share.
        linear_drop / forest_drop / boosted_drop: encoded columns each member leaves out, as
            negative positions (see :func:`macro_drop_positions`).
    """

    def __init__(
        self,
        linear: Any = None,
        forest: Any = None,
        boosted: Any = None,
        weight: float | None = None,
        linear_drop: tuple[int, ...] = (),
        forest_drop: tuple[int, ...] = (),
        boosted_drop: tuple[int, ...] = (),
    ) -> None:
        self.linear = linear
        self.forest = forest
        self.boosted = boosted
        self.weight = weight
        self.linear_drop = linear_drop
        self.forest_drop = forest_drop
        self.boosted_drop = boosted_drop

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A blend saved before XGBoost could join (a regression + forest average) has no
        # XGBoost member at all: it loads as one whose member is None.
        state = {
            "boosted": None,
            "boosted_drop": (),
            **({"boosted_": None, "boosted_columns_": None} if "linear_" in state else {}),
            **state,
        }
        super().__setstate__(state)

    @property
    def members(self) -> tuple[str, ...]:
        """Names of the members this blend has (``linear``, ``forest`` and maybe ``boosted``)."""
        return tuple(
            name for name, _, _ in MEMBERS if name != "boosted" or self.boosted is not None
        )

    def shares(self) -> tuple[float, ...]:
        """Each member's share of the probability, in :attr:`members` order."""
        n = len(self.members)
        w = 1.0 / n if self.weight is None else float(self.weight)
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"weight must be between 0 and 1, not {self.weight}")
        return (w, *([(1.0 - w) / (n - 1)] * (n - 1)))

    @staticmethod
    def _kept(width: int, drop: tuple[int, ...]) -> np.ndarray:
        dropped = {width + int(p) if int(p) < 0 else int(p) for p in drop}
        if any(not 0 <= p < width for p in dropped):
            raise ValueError(f"cannot leave out columns {drop} of a {width}-column matrix")
        return np.array([i for i in range(width) if i not in dropped], dtype=np.intp)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BlendClassifier:
        """Fit every member on its columns of the encoded matrix."""
        self.shares()  # refuses a bad weight before any work
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        self.n_features_in_ = X.shape[1]
        defaults = {
            "linear": LogisticRegression(max_iter=2000),
            "forest": RandomForestClassifier(),
        }
        classes: np.ndarray | None = None
        for name, drop, _ in MEMBERS:
            if name not in self.members:
                setattr(self, f"{name}_", None)
                setattr(self, f"{name}_columns_", None)
                continue
            columns = self._kept(X.shape[1], tuple(getattr(self, drop)))
            unfitted = getattr(self, name)
            model = clone(defaults[name] if unfitted is None else unfitted)
            model.fit(X[:, columns], y, sample_weight=sample_weight)
            if classes is not None and list(model.classes_) != list(classes):
                raise ValueError("the members learned different classes")
            classes = model.classes_
            setattr(self, f"{name}_", model)
            setattr(self, f"{name}_columns_", columns)
        assert classes is not None  # the regression is always a member
        self.classes_: np.ndarray = classes
        return self

    def member_probabilities(self, X: Any) -> tuple[np.ndarray, ...]:
        """Each member's positive-class probability, in :attr:`members` order."""
        check_is_fitted(self, "linear_")
        X = np.asarray(X, dtype=np.float64)
        return tuple(
            np.asarray(
                getattr(self, f"{name}_").predict_proba(
                    kept_columns(X, getattr(self, f"{name}_columns_"))
                )[:, 1],
                dtype=np.float64,
            )
            for name in self.members
        )

    def combine(self, *probabilities: np.ndarray) -> np.ndarray:
        """The blended positive-class probability from the members' (one formula, shared
        with the compiled scorer so both give the same bits)."""
        shares = self.shares()
        if len(probabilities) != len(shares):
            raise ValueError(f"expected {len(shares)} member probabilities")
        out = shares[0] * probabilities[0]
        for share, p in zip(shares[1:], probabilities[1:], strict=True):
            out = out + share * p
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of both classes."""
        p = self.combine(*self.member_probabilities(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The more probable class."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]
