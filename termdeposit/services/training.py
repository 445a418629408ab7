"""Train and register: fit the pipeline on the reference data, write its card, save a version.

The one place a new model is born from the command line, the dashboard's first run and the
tests; the card gets the fairness section computed on the time hold-out.
"""

from __future__ import annotations

from termdeposit.core import config
from termdeposit.core.schema import TARGET
from termdeposit.data.dataset import load_reference, sha256_file
from termdeposit.insight import fairness
from termdeposit.modeling import registry
from termdeposit.modeling.train import ProgressFn, build_card, make_splits, train


def train_and_register(
    profile: str = "quick",
    promote_to_production: bool = True,
    random_state: int = 0,
    progress: ProgressFn | None = None,
    reason: str | None = None,
) -> str:
    """Train on the reference data, save a new model version, promote it; return the version."""
    frame = load_reference()
    result = train(frame, profile=profile, random_state=random_state, progress=progress)
    card = build_card(result, sha256_file(config.raw_data_file()), random_state)
    holdout = make_splits(frame[TARGET].to_numpy(dtype=int), random_state).holdout_time
    card["fairness"] = fairness.card_section(
        result.pipeline, frame.iloc[holdout], card["default_threshold"]
    )
    version = registry.save_model(result.pipeline, card, reference=result.reference)
    if promote_to_production:
        registry.promote(version, reason or f"trained ({profile} profile)")
    return version
