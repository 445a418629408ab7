"""Feature engineering: the cleaning and encoding steps of the one scoring pipeline.

Cleaning is a fitted step (:class:`BankCleaner`) inside the pipeline, so scoring always uses
what was learned at training time (the modes that replace ``unknown``) and no second copy of
the cleaning logic exists anywhere.

``unknown`` handling, per column (documented in the README):
- ``job``, ``marital``, ``education``, ``housing``, ``loan``: ``unknown`` is rare (0.2%-4%)
  and carries no signal of its own, so it becomes the training mode.
- ``default``: ``unknown`` is 21% of customers and converts at half the rate of ``no``
  (people who do not disclose their credit status), while ``yes`` occurs 3 times in 41,188 rows;
  replacing it by the mode would destroy the column's only signal, so it stays its own category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from termdeposit.core.schema import (
    CATEGORICAL_COLUMNS,
    INPUT_COLUMNS,
    NUMERIC_COLUMNS,
    PDAYS_NEVER,
    inputs_only,
)

#: Columns whose ``unknown`` is replaced by the training mode (the rest keep it as a category).
UNKNOWN_TO_MODE = ("job", "marital", "education", "housing", "loan")
#: ``pdays`` value meaning "never contacted before".
#: Days since last contact are capped here; "never contacted" is its own 0/1 column.
PDAYS_CAP = 30
NEVER_CONTACTED = "never_contacted"

CLEAN_NUMERIC = (*NUMERIC_COLUMNS, NEVER_CONTACTED)
MACRO_COLUMNS = ("emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed")
#: Never a model input: known only after the call (the leakage guard checks this).
EXCLUDED_FEATURES = ("duration",)


class BankCleaner(TransformerMixin, BaseEstimator):
    """Replace ``unknown`` by the training mode where documented; split ``pdays``.

    Keeps only the 19 inputs (anything else in the frame, such as ``duration``, ``y`` or an id,
    is dropped here) and adds ``never_contacted`` (pdays == 999), with ``pdays`` capped at 30.

    Args:
        unknown_to_mode: columns whose ``unknown`` becomes the training mode.
        macro: which macro-economic context inputs the model sees: ``"all"`` five of them, or
            ``"nr.employed"`` only. The rates move with the base rate over the years, and
            models extrapolate badly on them; the search decides which set earns its place.
    """

    def __init__(
        self, unknown_to_mode: tuple[str, ...] = UNKNOWN_TO_MODE, macro: str = "all"
    ) -> None:
        self.unknown_to_mode = unknown_to_mode
        self.macro = macro

    def fit(self, X: pd.DataFrame, y: object = None) -> BankCleaner:
        """Learn the mode of each listed column among its known values."""
        X = self._inputs(X)
        self.modes_ = {}
        for column in self.unknown_to_mode:
            known = X[column][X[column] != "unknown"]
            self.modes_[column] = str(known.mode().iloc[0]) if len(known) else "unknown"
        self.n_features_in_ = len(INPUT_COLUMNS)
        self.feature_names_in_ = np.asarray(INPUT_COLUMNS, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return the cleaned inputs plus ``never_contacted``."""
        check_is_fitted(self, "modes_")
        X = self._inputs(X).copy()
        for column, mode in self.modes_.items():
            X[column] = X[column].where(X[column] != "unknown", mode)
        pdays = X["pdays"].astype(float)
        X[NEVER_CONTACTED] = (pdays == PDAYS_NEVER).astype(float)
        X["pdays"] = np.minimum(pdays, PDAYS_CAP)
        return X.drop(columns=self._dropped())

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the columns :meth:`transform` returns."""
        dropped = self._dropped()
        names = [c for c in (*INPUT_COLUMNS, NEVER_CONTACTED) if c not in dropped]
        return np.asarray(names, dtype=object)

    def _dropped(self) -> list[str]:
        if self.macro == "all":
            return []
        if self.macro == "nr.employed":
            return [c for c in MACRO_COLUMNS if c != "nr.employed"]
        raise ValueError(f"macro must be 'all' or 'nr.employed', not {self.macro!r}")

    @staticmethod
    def _inputs(X: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("BankCleaner expects a pandas DataFrame with the cohort columns.")
        missing = [c for c in INPUT_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"Missing input columns: {', '.join(missing)}")
        frame = inputs_only(X)
        for column in CATEGORICAL_COLUMNS:
            frame[column] = frame[column].astype(object)
        return frame


def build_preprocessor() -> ColumnTransformer:
    """One-hot encode the categories and standard-scale the numbers (a fresh, unfitted step)."""
    return ColumnTransformer(
        [
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
                make_column_selector(dtype_exclude=np.number),
            ),
            ("num", StandardScaler(), make_column_selector(dtype_include=np.number)),
        ],
        remainder="drop",
        verbose_feature_names_out=True,
    )


def raw_feature_of(encoded_name: str) -> str:
    """Map an encoded column name (``cat__job_admin.``) back to its raw input (``job``)."""
    _, _, name = encoded_name.partition("__")
    if name in CLEAN_NUMERIC:
        return "pdays" if name == NEVER_CONTACTED else name
    for column in sorted(CATEGORICAL_COLUMNS, key=len, reverse=True):
        if name.startswith(column + "_"):
            return column
    return name
