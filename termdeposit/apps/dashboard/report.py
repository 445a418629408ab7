"""The stakeholder report in the dashboard: HTML and PDF downloads made on click."""

from __future__ import annotations

import datetime as dt
import importlib.util
from functools import partial

import streamlit as st

from termdeposit.apps.dashboard import insight_cache, scenarios, scoring
from termdeposit.apps.dashboard.common import log
from termdeposit.apps.dashboard.state import session
from termdeposit.core.config import BusinessSettings
from termdeposit.decisions import economics
from termdeposit.insight import explain
from termdeposit.modeling.registry import LoadedModel
from termdeposit.services import report


def _decision(model: LoadedModel, settings: BusinessSettings) -> report.WeekDecision | None:
    curve = scoring.cohort_curve()
    if curve is None:
        return None
    capacity = scoring.applied_capacity(settings)
    threshold = session.chosen_threshold
    summary = economics.summary_at(curve, settings, threshold, capacity)
    return report.WeekDecision(
        cohort_name=str(session.cohort_name),
        settings=BusinessSettings(settings.call_cost, settings.subscription_value, capacity),
        summary=summary,
        profit_range=scenarios.profit_range(
            scoring.cohort_forecaster(model), settings, summary.calls
        ),
        recommendation=report.recommendation_sentence(curve, settings, capacity),
        pinned=session.pinned,
    )


def _page(model: LoadedModel, decision: report.WeekDecision | None, scored) -> str:
    importance, method = None, insight_cache.EXPLANATION_METHODS.get("xgboost", "")
    if scored is not None:
        try:
            explainer = explain.build_explainer(model)
            importance = explain.importance(explain.explain_sample(explainer, scored))
            method = insight_cache.EXPLANATION_METHODS.get(explainer.family, method)
        except Exception as exc:  # the report is still useful without the SHAP summary
            log.warning("report without SHAP summary: %s", exc)
    return report.build_report(model.card, importance, method, decision)


def _html(model: LoadedModel, decision: report.WeekDecision | None, scored) -> bytes:
    return _page(model, decision, scored).encode("utf-8")


def _pdf(model: LoadedModel, decision: report.WeekDecision | None, scored) -> bytes:
    return report.report_pdf(_page(model, decision, scored))


def report_downloads(model: LoadedModel, settings: BusinessSettings) -> None:
    """Two buttons: the report as HTML (self-contained) and as PDF, made when clicked."""
    decision = _decision(model, settings)
    scored = session.scored
    stamp = dt.date.today().isoformat()
    what = (
        f"this week's decision on **{decision.cohort_name}**"
        if decision
        else "no decision yet (score a cohort to add this week's)"
    )
    st.caption(
        "Model card, quality on both hold-outs, fairness, what drives the scores (SHAP) and "
        f"{what}, in one file to send to stakeholders."
    )
    left, right = st.columns(2)
    left.download_button(
        "Download the report (HTML)",
        data=partial(_html, model, decision, scored),
        file_name=f"termdeposit_report_{stamp}.html",
        mime="text/html",
        key="report_html",
        on_click="ignore",
        icon=":material/description:",
        type="primary",
    )
    if importlib.util.find_spec("weasyprint") is None:
        right.caption("PDF: WeasyPrint is not installed on this server; the HTML prints the same.")
        return
    right.download_button(
        "Download the report (PDF)",
        data=partial(_pdf, model, decision, scored),
        file_name=f"termdeposit_report_{stamp}.pdf",
        mime="application/pdf",
        key="report_pdf",
        on_click="ignore",
        icon=":material/picture_as_pdf:",
    )
