"""Partial dependence with individual curves: every curve is the model's own score."""

from __future__ import annotations

import numpy as np
import pytest

from termdeposit.core.schema import INPUT_COLUMNS
from termdeposit.insight import dependence


@pytest.mark.parametrize("feature", ["age", "job", "campaign"])
def test_curves_are_the_models_scores(production_model, week_cohort, feature):
    cohort = week_cohort.loc[:, ["customer_id", *INPUT_COLUMNS]].head(300)
    customer = cohort.iloc[[7]].reset_index(drop=True)
    curves = dependence.dependence(
        production_model.predict_proba, customer, cohort, feature, sample_size=20
    )
    assert curves.individual.shape == (20, len(curves.grid))
    np.testing.assert_allclose(curves.average, curves.individual.mean(axis=0))
    changed = customer.copy()
    changed[feature] = curves.grid[-1]
    expected = production_model.predict_proba(changed.loc[:, list(INPUT_COLUMNS)])[0]
    assert curves.customer[-1] == pytest.approx(expected)
    if feature == "job":
        assert "student" in curves.grid and curves.categorical
    else:
        assert curves.grid == sorted(curves.grid) and not curves.categorical
