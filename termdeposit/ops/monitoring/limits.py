"""Alert limits: what each limit means, its bounds in words, stored in the operations store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import CUSTOMER_INPUTS
from termdeposit.ops.monitoring.statistics import PSI_SIGNIFICANT
from termdeposit.storage.store import Store, open_store

LIMITS_KEY = "alert_limits"


@dataclass(frozen=True)
class LimitSpec:
    """What values a limit accepts, and how to say it to a user."""

    low: float
    high: float
    whole: bool
    words: str


#: The accepted range of every limit, with what it means in words (checked on every change).
LIMIT_SPECS: dict[str, LimitSpec] = {
    "psi_input": LimitSpec(0.01, 10, False, "a PSI: 0.1 is a moderate shift, 0.25 a large one"),
    "drifted_share": LimitSpec(0, 1, False, "a share of the 12 customer inputs, from 0 to 1"),
    "psi_score": LimitSpec(0.01, 10, False, "a PSI: 0.1 is a moderate shift, 0.25 a large one"),
    "context_margin": LimitSpec(0, 1, False, "a share of the training range, from 0 to 1"),
    "conversion_drop": LimitSpec(
        0.01, 1, False, "a share of the trailing conversion: 0.25 means a quarter below it"
    ),
    "auc_min": LimitSpec(
        0.5, 1, False, "an AUC, between 0.5 (no better than chance) and 1 (perfect); 0.65 is usual"
    ),
    "ece_max": LimitSpec(
        0.005, 1, False, "a calibration error, a probability from 0 to 1; 0.1 is usual"
    ),
    "min_rows": LimitSpec(20, 1_000_000, True, "a number of customers, at least 20"),
    "min_outcomes": LimitSpec(20, 1_000_000, True, "a number of called customers, at least 20"),
    "min_subscribers": LimitSpec(1, 100_000, True, "a number of subscribers, at least 1"),
    "recent_weeks": LimitSpec(1, 52, True, "a number of weeks, from 1 to 52"),
}


@dataclass(frozen=True)
class AlertLimits:
    """Editable limits of the alert rules (stored in the database, shared by app and cron).

    Attributes:
        psi_input: a watched customer input drifted when its PSI beyond chance is above this.
        drifted_share: the customers drifted (critical) when more than this share of the 12
            customer inputs did.
        psi_score: the spread of the scores drifted when its PSI beyond chance is above this.
        context_margin: the economy is outside what the model saw when a rate lies outside
            the training range by more than this share of that range (information only).
        conversion_drop: conversion among the called fell when it is below the trailing
            4-week conversion by more than this share (0.25 = a quarter below).
        auc_min: the ranking fell when the AUC among the called is below this.
        ece_max: the probabilities are off when the calibration error beyond chance is above.
        min_rows: customers a period needs (pooled with up to ``recent_weeks`` weeks before
            it) before its drift is judged.
        min_outcomes: called customers with a known result needed before the outcome rules.
        min_subscribers: subscribers and non-subscribers each needed before the AUC rule.
        recent_weeks: weeks pooled for small periods, and the "last weeks" drift is compared
            with (a new change, or a lasting shift).
        watched_inputs: the customer inputs whose drift raises an alert on its own.
    """

    psi_input: float = PSI_SIGNIFICANT
    drifted_share: float = 0.3
    psi_score: float = PSI_SIGNIFICANT
    context_margin: float = 0.05
    conversion_drop: float = 0.25
    auc_min: float = 0.65
    ece_max: float = 0.10
    min_rows: int = 200
    min_outcomes: int = 100
    min_subscribers: int = 10
    recent_weeks: int = 4
    watched_inputs: tuple[str, ...] = ("age", "job", "contact", "pdays", "previous", "poutcome")

    def check(self) -> AlertLimits:
        """Refuse limits that make no sense, saying which, why and what is usual."""
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "watched_inputs":
                unknown = [v for v in value if v not in CUSTOMER_INPUTS]
                if unknown:
                    raise TermDepositError(
                        f"Unknown watched inputs: {', '.join(unknown)}.",
                        hint=f"Choose among the customer inputs: {', '.join(CUSTOMER_INPUTS)}.",
                    )
                continue
            spec = LIMIT_SPECS[item.name]
            number = float(value)
            if not (spec.low <= number <= spec.high) or (spec.whole and number != int(number)):
                default = getattr(AlertLimits, item.name)
                raise TermDepositError(
                    f"The limit {item.name} cannot be {value:g}: it is {spec.words}.",
                    hint=f"The default is {default:g}; nothing was changed.",
                )
        return self

    def as_dict(self) -> dict[str, Any]:
        """Plain values (stored as JSON)."""
        out = asdict(self)
        out["watched_inputs"] = list(self.watched_inputs)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AlertLimits:
        """Limits from stored values (unknown keys ignored, missing ones at their default)."""
        names = {f.name for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key not in names:
                continue
            if key == "watched_inputs":
                clean[key] = tuple(value)
            elif LIMIT_SPECS[key].whole:
                clean[key] = int(value)
            else:
                clean[key] = float(value)
        return cls(**clean)


def load_limits(store: Store | None = None) -> AlertLimits:
    """The alert limits in force (stored ones, or the defaults)."""
    store = store or open_store()
    return AlertLimits.from_dict(store.get_setting(LIMITS_KEY, {}) or {})


def save_limits(limits: AlertLimits, store: Store | None = None) -> AlertLimits:
    """Check and store new alert limits."""
    store = store or open_store()
    limits.check()
    store.set_setting(LIMITS_KEY, limits.as_dict())
    return limits


def update_limits(changes: dict[str, str], store: Store | None = None) -> AlertLimits:
    """Change some limits by name (values as text, e.g. from ``--set auc_min=0.7``)."""
    current = load_limits(store)
    values: dict[str, Any] = {}
    names = {f.name for f in fields(AlertLimits)}
    for key, raw in changes.items():
        if key not in names:
            raise TermDepositError(
                f"There is no alert limit '{key}'.", hint=f"Limits: {', '.join(sorted(names))}."
            )
        if key == "watched_inputs":
            values[key] = tuple(v.strip() for v in raw.split(",") if v.strip())
            continue
        try:
            number = float(raw)
        except ValueError as exc:
            raise TermDepositError(
                f"The limit {key} must be a number, not {raw!r}.",
                hint=f"It is {LIMIT_SPECS[key].words}.",
            ) from exc
        whole = LIMIT_SPECS[key].whole and number.is_integer()
        values[key] = int(number) if whole else number
    return save_limits(replace(current, **values), store)
