"""The stakeholder report: every section, the figures of the decision, self-contained; PDF."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

from termdeposit.core.config import BusinessSettings
from termdeposit.decisions import economics
from termdeposit.decisions.forecast import ProfitForecaster
from termdeposit.services import report

CARD = {
    "version": "v20261206-000000",
    "family_label": "Random Forest",
    "created": "2026-12-06T00:00:00",
    "rows": {"fit_artifact": 32950},
    "features_used": ["age", "job", "nr.employed"],
    "features_excluded": {"duration": "known only after the call"},
    "default_threshold": 0.05,
    "threshold_rule": "break-even = cost / value",
    "metrics": {
        "random": {"auc": 0.79, "top10_share": 0.42, "ece": 0.01, "rows": 8238},
        "time": {"auc": 0.75, "top10_share": 0.31, "ece": 0.14, "rows": 8238},
    },
    "evaluation": "time hold-out = last 20% of rows",
    "fairness": {
        "computed_on": "time hold-out",
        "rules": "four-fifths",
        "attributes": {
            "age band": {
                "groups": {
                    "<25": {"size": 500, "selection_rate": 0.9, "mean_score": 0.2, "status": "ok"},
                    "65+": {
                        "size": 90,
                        "selection_rate": 0.5,
                        "mean_score": 0.4,
                        "status": "below four-fifths",
                    },
                },
                "demographic_parity_ratio": 0.56,
                "equalized_odds_difference": 0.2,
                "below_four_fifths": ["65+"],
            }
        },
    },
}


def decision(settings: BusinessSettings) -> report.WeekDecision:
    p = np.linspace(0.01, 0.4, 200)
    curve = economics.build_curve(p)
    threshold = economics.recommended_threshold(curve, settings)
    summary = economics.summary_at(curve, settings, threshold)
    return report.WeekDecision(
        cohort_name="2009-05 wk2 <script>",
        settings=settings,
        summary=summary,
        profit_range=(lambda m: (m.low, m.high))(
            ProfitForecaster(curve, sigma=0.3).profit(summary.calls, settings)
        ),
        recommendation=report.recommendation_sentence(curve, settings, None),
    )


def test_report_has_every_section_and_the_decision():
    settings = BusinessSettings(call_cost=10, subscription_value=50)
    week = decision(settings)
    importance = pd.DataFrame(
        {"feature": ["age", "job"], "label": ["Age", "Job"], "mean_abs": [0.03, 0.01]}
    )
    page = report.build_report(
        CARD, importance, "computed exactly from the trees", week, dt.datetime(2026, 12, 6)
    )
    for title in report.SECTIONS:
        assert f"<h2>{title.replace(chr(39), '&#x27;')}</h2>" in page
    assert economics.format_money(week.summary.expected_profit) in page
    low, high = week.profit_range
    assert f"80% range {economics.format_money(low)} to {economics.format_money(high)}" in page
    assert economics.format_percent(week.summary.threshold, 2) in page
    assert "Recommendation: call the" in page
    assert "0.750" in page and "0.790" in page  # both hold-outs
    assert "below four-fifths" in page and "Age band" in page
    assert "People employed (thousands)".lower() in page  # labels, not nr.employed
    assert "nr.employed" not in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # escaped, no script at all
    assert not re.search(r"(src|href)=", page)  # nothing fetched: self-contained


def test_report_without_cohort_says_so():
    page = report.build_report(CARD)
    assert "No cohort was scored" in page and "No cohort was explained" in page


def test_recommendation_calls_nobody_when_every_call_loses():
    curve = economics.build_curve(np.full(50, 0.01))
    text = report.recommendation_sentence(curve, BusinessSettings(10, 50), None)
    assert text.startswith("Recommendation: call nobody")


def test_pdf_renders():
    pdf = report.report_pdf(report.build_report(CARD, decision=decision(BusinessSettings())))
    assert pdf.startswith(b"%PDF") and len(pdf) > 5_000
