"""Partial dependence with individual curves (ICE): how one input moves the chance.

For a customer and a sample of the cohort, one input is set to each value of a grid while
the others stay as they are; the model scores every copy. Each sampled customer gives one
curve (individual conditional expectation), their average is the partial dependence, and
the chosen customer's own curve shows what changing that input alone would do for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from termdeposit.core.schema import CATEGORICAL_INPUTS, NUMERIC_INPUTS, inputs_only

#: Customers drawn from the cohort for the individual curves.
ICE_SAMPLE = 50
#: Values tried for a numeric input.
GRID_POINTS = 20


@dataclass(frozen=True)
class Dependence:
    """The curves of one input.

    Attributes:
        feature: the input.
        grid: the values tried (numbers, or categories in their usual order).
        individual: one row per sampled customer, one column per grid value (probabilities).
        average: the partial dependence (mean of ``individual``).
        customer: the chosen customer's own curve.
        current: the chosen customer's actual value of the input.
    """

    feature: str
    grid: list
    individual: np.ndarray
    average: np.ndarray
    customer: np.ndarray
    current: object

    @property
    def categorical(self) -> bool:
        """True when the input is a category (a bar per value rather than a line)."""
        return self.feature in CATEGORICAL_INPUTS


def grid_of(feature: str, sample: pd.DataFrame, points: int = GRID_POINTS) -> list:
    """Values to try: every category, or quantiles of the sample within the input's range."""
    if feature in CATEGORICAL_INPUTS:
        return list(CATEGORICAL_INPUTS[feature])
    low, high, whole = NUMERIC_INPUTS[feature]
    values = pd.to_numeric(sample[feature], errors="coerce").dropna().to_numpy(float)
    if len(values) == 0:
        return [low, high]
    grid = np.unique(np.quantile(values, np.linspace(0.02, 0.98, points)))
    if whole:
        grid = np.unique(np.round(grid))
    grid = np.clip(grid, low, high)
    return [int(v) if whole else float(v) for v in np.unique(grid)]


def dependence(
    predict: Callable[[pd.DataFrame], np.ndarray],
    customer: pd.DataFrame,
    cohort: pd.DataFrame,
    feature: str,
    sample_size: int = ICE_SAMPLE,
    random_state: int = 0,
) -> Dependence:
    """Individual curves of a sample of ``cohort`` and of ``customer`` for one input.

    Args:
        predict: the model's probability of subscribing for a frame of the 19 inputs.
        customer: one row with the 19 inputs.
        cohort: the customers the sample is drawn from (the same sample every time).
        feature: the input to vary.
    """
    sample = cohort.sample(min(sample_size, len(cohort)), random_state=random_state)
    grid = grid_of(feature, cohort)
    rows = pd.concat([inputs_only(customer), inputs_only(sample)])
    rows = rows.reset_index(drop=True)
    copies = rows.loc[rows.index.repeat(len(grid))].reset_index(drop=True)
    values = np.tile(np.asarray(grid, dtype=object), len(rows))
    copies[feature] = pd.Series(values).astype(rows[feature].dtype)
    p = np.asarray(predict(copies), dtype=float).reshape(len(rows), len(grid))
    return Dependence(
        feature=feature,
        grid=grid,
        individual=p[1:],
        average=p[1:].mean(axis=0),
        customer=p[0],
        current=customer[feature].iloc[0],
    )
