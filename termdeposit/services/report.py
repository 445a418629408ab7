"""The stakeholder report: one self-contained HTML page (and a PDF of it).

Model card, quality on both hold-outs, the fairness table, the SHAP summary and this week's
decision with its range, in words a stakeholder reads. The page has no script and no link to
fetch: its charts are plain HTML bars, so the file opens anywhere, prints as it shows, and
WeasyPrint renders the same page to PDF without a browser.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import ATTRIBUTE_LABELS, column_label
from termdeposit.decisions import economics
from termdeposit.decisions.economics import (
    describe_difference,
    format_count,
    format_money,
    format_percent,
)
from termdeposit.modeling.card import ModelCard

#: Section titles, in order (tests and readers look for them).
SECTIONS = (
    "The model",
    "How good it is",
    "Is it fair?",
    "What drives its scores",
    "This week's decision",
)

#: Quality measures shown, with how to read them.
QUALITY_ROWS = (
    ("auc", "Ranking quality (AUC; 0.5 is random, 1 perfect)", "{:.3f}"),
    ("top10_share", "Subscribers found by calling the top 10%", "{:.1%}"),
    ("lift_top10", "Lift in the top 10% (× the average rate)", "{:.2f}"),
    ("ece", "Calibration error (lower is better)", "{:.1%}"),
    ("brier", "Brier score (lower is better)", "{:.4f}"),
    ("base_rate", "Subscription rate", "{:.1%}"),
    ("rows", "Customers", "{:,.0f}"),
)

_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; color: #1f2933; margin: 2em auto;
       max-width: 60em; font-size: 11pt; line-height: 1.45; }
h1 { font-size: 20pt; margin-bottom: 0.2em; } h2 { font-size: 14pt; margin-top: 1.6em;
     border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
.sub { color: #57606a; } table { border-collapse: collapse; margin: 0.6em 0; width: 100%; }
th, td { text-align: left; padding: 0.25em 0.6em; border-bottom: 1px solid #eaeef2;
         vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #2463b0; height: 0.8em; display: inline-block; }
.flag { color: #c0392b; font-weight: bold; } .box { background: #f6f8fa; padding: 0.8em 1em;
        border-left: 4px solid #1b7f3b; margin: 0.8em 0; }
@page { size: A4; margin: 1.6cm; }
"""


@dataclass(frozen=True)
class WeekDecision:
    """This week's decision, for the report.

    Attributes:
        cohort_name: the cohort's label (file name or week).
        settings: cost, value and capacity used.
        summary: the figures of the choice (:func:`economics.summary_at`).
        profit_range: the 80% range of the expected profit.
        recommendation: what the product recommends and why, in a sentence.
        pinned: True when the user pinned the choice (not the recommendation).
    """

    cohort_name: str
    settings: BusinessSettings
    summary: economics.ThresholdSummary
    profit_range: tuple[float, float] | None
    recommendation: str
    pinned: bool = False


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar(share: float, width_em: float = 12.0) -> str:
    share = min(max(float(share), 0.0), 1.0)
    return f'<span class="bar" style="width:{share * width_em:.2f}em"></span>'


def _model_section(card: ModelCard) -> str:
    used = ", ".join(column_label(f).lower() for f in card.features_used)
    left_out = "; ".join(
        f"{column_label(f).lower()}: {why}" for f, why in card.features_excluded.items()
    )
    return (
        f"<p>{_e(card.family_label)}, version "
        f"<b>{_e(card.version)}</b>, trained "
        f"{_e(card.created_day)} on {format_count(card.rows.get('fit_artifact'))} "
        "customers of the bank's past campaign (UCI Bank Marketing, 2008–2010).</p>"
        f"<p>It gives each customer a chance of subscribing to a term deposit if called, "
        f"from: {_e(used)}.</p><p>Left out on purpose: {_e(left_out) or 'nothing'}.</p>"
        f"<p>Default threshold {format_percent(card.default_threshold, 2)}: "
        f"{_e(card.threshold_rule)}.</p>"
    )


def _quality_section(card: ModelCard) -> str:
    rows = []
    for key, label, fmt in QUALITY_ROWS:
        cells = []
        for split in ("random", "time"):
            value = card.metric(split, key)
            cells.append("–" if value is None else _e(fmt.format(value)))
        rows.append([_e(label), *cells])
    table = _table(
        ["Measure", "Random hold-out (20% of all customers)", "Time hold-out (the last 20%)"],
        rows,
        {1, 2},
    )
    return (
        "<p>Judged on customers the model never saw: a random fifth of the data, and the last "
        "fifth in time (the harder test: the future).</p>"
        + table
        + f'<p class="sub">{_e(card.evaluation)}</p>'
    )


def _fairness_section(card: ModelCard) -> str:
    section = card.fairness
    if not section:
        return "<p>This model's card has no fairness section (trained before it existed).</p>"
    parts = [f'<p class="sub">Computed on the {_e(section.get("computed_on", ""))}.</p>']
    for name, part in section.get("attributes", {}).items():
        flagged = part.get("below_four_fifths") or []
        rows = []
        for group, figures in part.get("groups", {}).items():
            rate = float(figures.get("selection_rate", 0.0))
            status = str(figures.get("status", ""))
            mark = f'<span class="flag">{_e(status)}</span>' if "below" in status else _e(status)
            rows.append(
                [
                    _e(group),
                    format_count(figures.get("size")),
                    f"{_bar(rate)} {format_percent(rate)}",
                    format_percent(figures.get("mean_score")),
                    mark,
                ]
            )
        parts.append(
            f"<h3>{_e(ATTRIBUTE_LABELS.get(name, name))}</h3>"
            f"<p>Parity ratio {_e(part.get('demographic_parity_ratio'))} (1 = every group "
            "called at the same rate; below 0.8 fails the four-fifths rule); equalized-odds "
            f"difference {_e(part.get('equalized_odds_difference'))}. Below four fifths: "
            f"{_e(', '.join(flagged)) if flagged else 'none'}.</p>"
            + _table(
                ["Group", "Customers", "Share called", "Average chance", "Judgement"],
                rows,
                {1, 3},
            )
        )
    parts.append(f'<p class="sub">Rules: {_e(section.get("rules", ""))}.</p>')
    return "".join(parts)


def _shap_section(importance: pd.DataFrame | None, method: str) -> str:
    if importance is None or importance.empty:
        return "<p>No cohort was explained for this report.</p>"
    top = importance.head(10)
    biggest = float(top["mean_abs"].max()) or 1.0
    rows = [
        [_e(label), f"{_bar(mean_abs / biggest)} {mean_abs:.3f}"]
        for label, mean_abs in zip(top["label"], top["mean_abs"].astype(float), strict=True)
    ]
    words = ", then ".join(_e(label.lower()) for label in top["label"].head(3))
    return (
        f"<p>Across this week's customers, {words} move the scores most. The method: SHAP "
        f"values, {_e(method)}: each input's share in moving a customer's score away from the "
        "average customer's.</p>" + _table(["Input", "Average size of its effect"], rows)
    )


def _decision_section(decision: WeekDecision | None) -> str:
    if decision is None:
        return "<p>No cohort was scored when this report was made.</p>"
    s = decision.summary
    low_high = (
        f" (80% range {format_money(decision.profit_range[0])} to "
        f"{format_money(decision.profit_range[1])})"
        if decision.profit_range
        else ""
    )
    choice = "pinned by the user" if decision.pinned else "the most profitable choice"
    capacity = decision.settings.capacity
    rows = [
        ["Customers in the cohort", format_count(s.customers)],
        ["Threshold (lowest chance called)", format_percent(s.threshold, 2)],
        ["Calls", format_count(s.calls)],
        ["Call cost", format_money(s.cost)],
        ["Expected subscriptions", format_count(s.expected_subscriptions, 1)],
        ["Expected profit", format_money(s.expected_profit) + _e(low_high)],
        ["Expected profit calling everyone", format_money(s.profit_calling_everyone)],
        ["Expected profit calling nobody", format_money(0)],
    ]
    if s.realised_profit is not None:
        rows.append(["Realised profit (known outcomes)", format_money(s.realised_profit)])
    return (
        f"<p>Cohort <b>{_e(decision.cohort_name)}</b>, cost "
        f"{format_money(decision.settings.call_cost, 2)} per call, value "
        f"{format_money(decision.settings.subscription_value, 2)} per subscription, "
        + (f"capacity {format_count(capacity)} calls" if capacity else "no capacity limit")
        + f"; {choice}.</p>"
        f'<div class="box">{_e(decision.recommendation)}</div>'
        + _table(["", ""], [[_e(a), b] for a, b in rows], {1})
        + f"<p>That is {describe_difference(s.uplift_vs_everyone)} than calling everyone and "
        f"{describe_difference(s.expected_profit)} than calling nobody.</p>"
    )


def recommendation_sentence(
    curve: economics.ThresholdCurve, settings: BusinessSettings, capacity: int | None
) -> str:
    """What the product recommends this week and why, in one sentence."""
    best = economics.summary_at(
        curve, settings, economics.recommended_threshold(curve, settings, capacity), capacity
    )
    everyone = best.profit_calling_everyone
    if best.calls == 0:
        return (
            "Recommendation: call nobody this week. No customer's chance is above the "
            f"break-even {format_percent(settings.break_even, 2)}, so every call is expected to "
            f"lose money (calling everyone: {format_money(everyone)})."
        )
    if best.calls == curve.size:
        return (
            f"Recommendation: call everyone ({format_count(best.calls)} customers): every chance "
            f"is above the break-even {format_percent(settings.break_even, 2)}."
        )
    return (
        f"Recommendation: call the {format_count(best.calls)} customers with a chance of at "
        f"least {format_percent(best.threshold, 2)}: expected profit "
        f"{format_money(best.expected_profit)}, against {format_money(everyone)} calling "
        "everyone and €0 calling nobody."
    )


def build_report(
    card: ModelCard | Mapping[str, Any],
    importance: pd.DataFrame | None = None,
    method: str = "computed exactly from the model",
    decision: WeekDecision | None = None,
    made_at: dt.datetime | None = None,
) -> str:
    """The report as one self-contained HTML page (no script, nothing fetched).

    Args:
        card: the production model's card.
        importance: :func:`termdeposit.insight.explain.importance` of this week's cohort.
        method: how the SHAP values were computed, in words.
        decision: this week's decision, or None when no cohort is scored.
        made_at: when the report was made (default: now, UTC).
    """
    made = (made_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    card = card if isinstance(card, ModelCard) else ModelCard.from_dict(card)
    bodies = (
        _model_section(card),
        _quality_section(card),
        _fairness_section(card),
        _shap_section(importance, method),
        _decision_section(decision),
    )
    sections = "".join(
        f'<section id="s{i}"><h2>{_e(title)}</h2>{body}</section>'
        for i, (title, body) in enumerate(zip(SECTIONS, bodies, strict=True), 1)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Term-deposit calls: report {_e(made[:10])}</title><style>{_CSS}</style>"
        "</head><body><h1>Term-deposit calls: model and decision report</h1>"
        f'<p class="sub">Made {_e(made)} by the termdeposit dashboard, production model '
        f"{_e(card.version)}.</p>{sections}</body></html>"
    )


def report_pdf(page: str) -> bytes:
    """The report rendered to PDF by WeasyPrint (no browser needed).

    Raises:
        TermDepositError: WeasyPrint (or the system libraries it needs) is not installed.
    """
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # optional: pip install weasyprint
        raise TermDepositError(
            "The PDF cannot be made on this server: WeasyPrint is not installed "
            f"({type(exc).__name__}).",
            hint="Download the HTML report instead (it prints the same), or ask the team "
            "that runs the dashboard to install WeasyPrint ('pip install weasyprint').",
        ) from exc
    return HTML(string=page).write_pdf()
