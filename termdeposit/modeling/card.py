"""The model card, typed: what a saved model is, how it was trained and how good it is.

``model_card.json`` is written once by training (:func:`termdeposit.modeling.train.build_card`)
and checksummed by the registry, so its bytes stay a plain JSON document. Everything that
*reads* a card — the Models page, the home page, the command line, evaluation, fairness —
reads it through :class:`ModelCard`, whose fields say what exists and what type it has,
instead of ``card.get("...")`` chains that silently give ``None`` for a misspelt key. Cards
saved by earlier versions (without the newer sections) read with empty defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The hold-outs every card reports (README, "Models").
HOLDOUTS = ("random", "time")


@dataclass(frozen=True)
class FamilyResult:
    """One candidate of the search: its cross-validated and time-validation AUC."""

    family: str
    cv_auc: float | None
    time_val_auc: float | None
    params: Mapping[str, Any]
    seconds: float | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FamilyResult:
        """Read one entry of the card's ``families`` list."""
        return cls(
            family=str(data.get("family", "")),
            cv_auc=_float(data.get("cv_auc")),
            time_val_auc=_float(data.get("time_val_auc")),
            params=dict(data.get("params") or {}),
            seconds=_float(data.get("seconds")),
        )


@dataclass(frozen=True)
class ModelCard:
    """A typed view of a model card (``model_card.json``).

    Attributes:
        version / created: the version name and when it was saved (ISO 8601, UTC).
        family / family_label: the chosen model family, as a code and in words.
        profile: the training profile (``quick`` or ``full``), None for derived versions.
        random_state: the seed of the splits and the search.
        params: the chosen configuration's settings (pipeline parameters); None when the
            card does not record them.
        default_threshold / threshold_rule: the default decision threshold and why.
        metrics: per hold-out (``random``, ``time``, ...) the metric name -> value table.
        features_used / features_excluded: the inputs the model sees, and those left out
            with the reason.
        families: every candidate of the search with its scores.
        selection / calibration: how the family and the calibration map were chosen.
        evaluation: how the hold-outs were scored, in words.
        rows: rows used for each fit (``fit_artifact``, ...).
        fitted_on: the rows and weeks the production artifact was fitted on (learning loop).
        fairness / recalibration / retraining / base_rate: optional sections.
        artifact_sha256: the checksum of the pipeline artifact.
        raw: the card exactly as saved (for the JSON view and the API).
    """

    version: str
    created: str
    family: str
    family_label: str
    profile: str | None
    random_state: int
    params: Mapping[str, Any] | None
    default_threshold: float
    threshold_rule: str
    metrics: Mapping[str, Mapping[str, Any]]
    features_used: tuple[str, ...]
    features_excluded: Mapping[str, str]
    families: tuple[FamilyResult, ...]
    selection: Mapping[str, Any]
    calibration: Mapping[str, Any]
    evaluation: str
    rows: Mapping[str, Any]
    fitted_on: Mapping[str, Any]
    fairness: Mapping[str, Any] | None
    recalibration: Mapping[str, Any] | None
    retraining: Mapping[str, Any] | None
    base_rate: Mapping[str, Any] | None
    artifact_sha256: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Read a card as saved (older cards miss newer sections: they read as empty)."""
        family = str(data.get("family", ""))
        return cls(
            version=str(data.get("version", "")),
            created=str(data.get("created", "")),
            family=family,
            family_label=str(data.get("family_label") or family),
            profile=None if data.get("profile") is None else str(data["profile"]),
            random_state=int(data.get("random_state", 0) or 0),
            params=_section(data, "params"),
            default_threshold=float(data.get("default_threshold", 0.5)),
            threshold_rule=str(data.get("threshold_rule", "")),
            metrics={str(k): dict(v) for k, v in (data.get("metrics") or {}).items()},
            features_used=tuple(data.get("features_used") or ()),
            features_excluded=dict(data.get("features_excluded") or {}),
            families=tuple(FamilyResult.from_dict(f) for f in data.get("families") or ()),
            selection=dict(data.get("selection") or {}),
            calibration=dict(data.get("calibration") or {}),
            evaluation=str(data.get("evaluation", "")),
            rows=dict(data.get("rows") or {}),
            fitted_on=dict(data.get("fitted_on") or {}),
            fairness=_section(data, "fairness"),
            recalibration=_section(data, "recalibration"),
            retraining=_section(data, "retraining"),
            base_rate=_section(data, "base_rate"),
            artifact_sha256=str(data.get("artifact_sha256", "")),
            raw=data,
        )

    @property
    def created_day(self) -> str:
        """The day the model was saved (``2026-12-06``)."""
        return self.created[:10]

    @property
    def created_minute(self) -> str:
        """When the model was saved, to the minute (``2026-12-06 05:58``)."""
        return self.created[:16].replace("T", " ")

    @property
    def calibration_method(self) -> str:
        """``none``, ``sigmoid`` or ``isotonic``."""
        return str(self.calibration.get("method", "none"))

    @property
    def base_version(self) -> str:
        """The version a recalibrated model was made from (its own version otherwise)."""
        if self.recalibration:
            return str(self.recalibration.get("base_version", self.version))
        return self.version

    def metric(self, holdout: str, name: str) -> float | None:
        """One hold-out metric (e.g. ``metric("time", "auc")``), None when not measured."""
        return _float(self.metrics.get(holdout, {}).get(name))


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    return dict(value) if isinstance(value, Mapping) else None


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
