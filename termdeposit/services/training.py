"""Train and register: learn from every row known now, write the card, save a version.

The one place a new model is born from the command line, the dashboard's first run and the
tests. The rows are the reference data plus every data drop and recorded outcome in the store
(the learning loop: the production artifact is refitted on all of them, and its card lists the
weeks and rows); the card gets the fairness section computed on the time hold-out, by the twin
fitted before it.
"""

from __future__ import annotations

from termdeposit.core.schema import TARGET
from termdeposit.insight import fairness
from termdeposit.modeling import registry
from termdeposit.modeling.train import ProgressFn, build_card, make_splits, train
from termdeposit.ops.retrain import training_data
from termdeposit.storage.store import Store, open_store


def train_and_register(
    profile: str = "quick",
    promote_to_production: bool = True,
    random_state: int = 0,
    progress: ProgressFn | None = None,
    reason: str | None = None,
    store: Store | None = None,
) -> str:
    """Train on every row known now, save a new model version, promote it; return the version."""
    data = training_data(store or open_store())
    frame = data.frame.drop(columns=["period"])
    result = train(
        frame,
        profile=profile,
        random_state=random_state,
        progress=progress,
        periods=data.periods,
        period_labels=data.labels,
        sources=data.sources,
    )
    card = build_card(result, data.data_sha256, random_state)
    holdout = make_splits(frame[TARGET].to_numpy(dtype=int), random_state).holdout_time
    card["fairness"] = fairness.card_section(
        result.holdout_pipeline, frame.iloc[holdout], card["default_threshold"]
    )
    version = registry.save_model(result.pipeline, card, reference=result.reference)
    if promote_to_production:
        registry.promote(version, reason or f"trained ({profile} profile)")
    return version
