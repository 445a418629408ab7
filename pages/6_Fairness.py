"""Fairness: does the call list treat demographic groups alike, and what would parity cost?"""

import pandas as pd
import streamlit as st

from termdeposit.apps.dashboard import insight_cache, scoring
from termdeposit.apps.dashboard.common import production_model, setup_page
from termdeposit.apps.dashboard.state import session
from termdeposit.core import labels
from termdeposit.decisions.economics import (
    describe_difference,
    format_count,
    format_money,
    format_percent,
)
from termdeposit.insight import fairness, plots

settings = setup_page("Fairness", icon=":material/balance:")
model = production_model()
if model is None:
    st.stop()
scored = scoring.ensure_scored(model)
if scored is None:
    insight_cache.no_cohort_yet(model, "check", key="fairness_demo")
    st.stop()

called, threshold, cap = insight_cache.current_calls(scored, settings)
outcomes = insight_cache.outcomes_of(scored)
st.caption(
    f"Cohort **{session.cohort_name}** · {format_count(len(scored))} customers · "
    f"**{format_count(called.sum())} called** at threshold {format_percent(threshold, 2)}"
    + (f", capacity {format_count(cap)}" if cap is not None else "")
    + " (change it on the Threshold & profit page) · model "
    f"`{model.version}`."
    + (
        " This file carries the outcomes of the calls, so the true-positive rate, precision "
        "and false-positive rate of each group are shown too."
        if outcomes is not None
        else " Outcomes are not known for this cohort: the page compares who is called."
    )
)
attribute = st.selectbox(
    "Compare groups by",
    fairness.ATTRIBUTE_CHOICES,
    format_func=lambda a: labels.ATTRIBUTE_LABELS.get(a, a),
    key="fairness_attribute",
    help="Age band, marital status, education and job are checked in the model card; any "
    "other customer category can be looked at here.",
)
label = labels.ATTRIBUTE_LABELS.get(attribute, attribute)
report = insight_cache.group_report(model, scored, called, attribute)

st.subheader(f"Who is called, by {label.lower()}")
summary = st.container()
chart_box = st.empty()
table_box = st.empty()


def headline(report: fairness.GroupReport) -> None:
    """The parity and equalized-odds figures, with intervals when computed."""
    intervals = report.intervals
    cols = st.columns(3)

    def interval(name: str, fmt: str) -> str | None:
        bounds = intervals.get(name) if intervals else None
        if not bounds:
            return None
        return f"95% interval {fmt.format(bounds[0])} to {fmt.format(bounds[1])}"

    cols[0].metric(
        "Demographic parity ratio",
        "–" if report.dp_ratio is None else f"{report.dp_ratio:.2f}",
        help="Lowest share called of any group divided by the highest (1 = every group called "
        "at the same rate; below 0.8 fails the four-fifths rule). Groups under "
        f"{fairness.MIN_GROUP_SIZE} people are left out.",
    )
    cols[1].metric(
        "Demographic parity difference",
        "–" if report.dp_difference is None else format_percent(report.dp_difference),
        help="Highest share called minus the lowest, in percentage points.",
    )
    cols[2].metric(
        "Equalized odds difference",
        "–" if report.eo_difference is None else format_percent(report.eo_difference),
        help="The larger of two gaps between groups: in the share of subscribers called "
        "(true-positive rate) and in the share of non-subscribers called (false-positive rate). "
        "Needs known outcomes.",
    )
    notes = [
        interval("dp_ratio", "{:.2f}"),
        interval("dp_difference", "{:.1%}"),
        interval("eo_difference", "{:.1%}"),
    ]
    for col, note in zip(cols, notes, strict=True):
        if note:
            col.caption(note)


def draw(report: fairness.GroupReport) -> None:
    """The chart and the table of groups (with intervals when computed)."""
    best = None
    if report.best_group is not None:
        best = float(report.table.loc[report.best_group, "selection_rate"])
    chart_box.plotly_chart(
        plots.group_selection_chart(report.table, label, fairness.FOUR_FIFTHS, best),
        width="stretch",
    )
    table = report.table.reset_index()
    shown = pd.DataFrame(
        {
            label: table[attribute],
            "Customers": table["size"],
            "Share called": 100 * table["selection_rate"],
            "Mean probability": 100 * table["mean_score"],
            "Rate vs best group": table["ratio_to_best"],
            "Judgement": table["status"],
        }
    )
    if "selection_low" in table:
        shown.insert(
            3,
            "95% interval",
            [
                "" if pd.isna(lo) else f"{lo:.1%} to {hi:.1%}"
                for lo, hi in zip(table["selection_low"], table["selection_high"], strict=True)
            ],
        )
    if report.has_outcomes:
        shown["TPR"] = 100 * table["tpr"]
        shown["Precision"] = 100 * table["precision"]
        shown["FPR"] = 100 * table["fpr"]

    def percent(help_text: str | None = None) -> st.column_config.NumberColumn:
        return st.column_config.NumberColumn(format="%.1f%%", help=help_text)

    table_box.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            "Share called": percent("Share of the group on the call list."),
            "Mean probability": percent("Average probability of subscribing in the group."),
            "Rate vs best group": st.column_config.NumberColumn(
                format="%.2f",
                help="Share called divided by the best-treated group's (below 0.80: flagged).",
            ),
            "TPR": percent("True-positive rate: share of the group's subscribers called."),
            "Precision": percent("Share of the group's calls that subscribed."),
            "FPR": percent("False-positive rate: share of the group's non-subscribers called."),
        },
    )


with summary:
    if report.calls == 0:
        st.info("Nobody is called at this threshold, so every group is treated alike.")
    flagged, small = report.flagged, report.too_small
    if flagged:
        st.warning(
            f"**Below four fifths:** {', '.join(flagged)} "
            + ("is" if len(flagged) == 1 else "are")
            + f" called at less than 80% of the rate of the best-treated group "
            f"({report.best_group}). That does not prove unfairness (groups can differ in "
            "how likely they are to subscribe), but it needs a reason the bank can defend.",
            icon=":material/warning:",
        )
    elif report.calls and len(report.judged) > 1:
        st.success(
            "Every group large enough to judge is called at 80% or more of the best-treated "
            f"group's rate ({report.best_group}).",
            icon=":material/check_circle:",
        )
    if small:
        st.caption(
            f"Too small to judge (under {fairness.MIN_GROUP_SIZE} customers): "
            f"{', '.join(small)}. They are shown but left out of the figures below."
        )
    headline_box = st.empty()
with headline_box.container():
    headline(report)
draw(report)
report = insight_cache.group_report_with_intervals(model, scored, called, report)
with headline_box.container():
    headline(report)
draw(report)
st.caption(
    f"95% intervals: {fairness.N_BOOT} bootstrap resamples of the customers. All group "
    "figures are computed with Fairlearn's MetricFrame."
)

st.subheader("The price of fairness")
st.markdown(
    f"What if every {label.lower()} group were called at the same rate (demographic parity)? "
    "Each group then gets its own threshold. Expected profit uses the model's probabilities"
    + ("; realised profit uses this file's outcomes." if outcomes is not None else ".")
)
policies = insight_cache.policies(model, scored, called, attribute, settings)
cols = st.columns(len(policies))
chosen_profit = policies[0].expected_profit
for col, policy in zip(cols, policies, strict=True):
    col.markdown(f"**{policy.name}**")
    col.caption(policy.description)
    col.metric("Calls", format_count(policy.calls))
    col.metric(
        "Expected profit",
        format_money(policy.expected_profit),
        delta=None
        if policy is policies[0]
        else f"{format_money(policy.expected_profit - chosen_profit)} vs as chosen",
    )
    if policy.realised_profit is not None:
        col.metric("Realised profit", format_money(policy.realised_profit))
    col.metric(
        "Demographic parity ratio",
        "–" if policy.report.dp_ratio is None else f"{policy.report.dp_ratio:.2f}",
    )
rates = pd.DataFrame({p.name: p.report.table["selection_rate"] for p in policies})
st.plotly_chart(plots.policy_selection_chart(rates, label), width="stretch")
with st.expander("Per-group thresholds of each policy"):
    thresholds = pd.DataFrame({p.name: 100 * p.thresholds for p in policies})
    thresholds.index.name = label
    st.dataframe(
        thresholds.reset_index(),
        hide_index=True,
        width="stretch",
        column_config={p.name: st.column_config.NumberColumn(format="%.2f%%") for p in policies},
    )
    st.caption(
        "The lowest probability called in each group (empty: nobody in the group is called). "
        "Fairlearn's ThresholdOptimizer is not used: it optimises accuracy-type goals and "
        "needs known outcomes, while the bank's goal is profit and new cohorts have none; "
        "per-group shares give parity exactly (up to rounding to whole customers)."
    )

st.subheader("Apply a group policy to the call list")
policy = st.radio(
    "When the call list is downloaded",
    list(fairness.POLICY_CHOICES),
    format_func=fairness.POLICY_CHOICES.get,
    key="fairness_policy_choice",
    help="An equal-share policy gives each group its own threshold so that the same share "
    f"of every {label.lower()} group is called. The choice is kept for this session and "
    "recorded with the list when it is issued.",
)
applied = fairness.apply_policy(scored, scored["probability"], called, policy, attribute, settings)
session.fairness_policy = (
    None if policy == "single" else {"policy": policy, "attribute": attribute}
)
if policy == "single":
    st.caption("The call list uses one threshold for everyone (the choice on Threshold & profit).")
else:
    st.info(
        f"{applied.description} That is {format_count(applied.called.sum())} calls "
        f"(one threshold: {format_count(called.sum())}). The Call list page applies it to the "
        "downloads.",
        icon=":material/balance:",
    )

st.subheader("A model that never sees age or marital status")
st.markdown(
    "The same model (family, settings, calibration) retrained on the same past customers "
    "without `age` and `marital`, both judged on the last 20% of the past campaign (customers "
    "neither model saw) at the break-even threshold "
    f"({format_percent(settings.break_even, 2)})."
)
comparison = insight_cache.blind_comparison_cached(model, settings)
clicked = comparison is None and st.button(
    "Train it and compare (takes a little while)", key="fairness_blind", type="primary"
)
if clicked and insight_cache.blind_comparison(model, settings) is not None:
    st.rerun()
if comparison is not None:
    table = comparison.table
    cols = st.columns(2)
    for col, name in zip(cols, table.index, strict=True):
        row = table.loc[name]
        col.markdown(f"**{name}**")
        col.metric("AUC on the hold-out", f"{row['auc']:.3f}")
        col.metric("Calls", format_count(row["calls"]))
        col.metric("Expected profit", format_money(row["expected_profit"]))
        col.metric("Realised profit", format_money(row["realised_profit"]))
    production, blind = table.iloc[0], table.iloc[1]
    auc_change = blind["auc"] - production["auc"]
    profit_change = blind["realised_profit"] - production["realised_profit"]
    ranks = "ranks customers worse" if auc_change < 0 else "ranks customers as well or better"
    st.markdown(
        f"Without age and marital status the model {ranks} (AUC {production['auc']:.3f} → "
        f"{blind['auc']:.3f}, {auc_change:+.3f}) and its calls would have earned "
        f"**{describe_difference(profit_change)}** on these "
        f"{format_count(comparison.rows_holdout)} customers (realised profit "
        f"{format_money(production['realised_profit'])} → "
        f"{format_money(blind['realised_profit'])}; expected profit "
        f"{format_money(production['expected_profit'])} → "
        f"{format_money(blind['expected_profit'])})."
    )
    fair = comparison.fairness.assign(
        attribute=comparison.fairness["attribute"].map(labels.ATTRIBUTE_LABELS)
    )
    st.dataframe(
        fair.rename(
            columns={
                "model": "Model",
                "attribute": "Groups",
                "dp_ratio": "Demographic parity ratio",
                "dp_difference": "Demographic parity difference",
                "eo_difference": "Equalized odds difference",
                "flagged": "Below four-fifths",
            }
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "Demographic parity ratio": st.column_config.NumberColumn(format="%.2f"),
            "Demographic parity difference": st.column_config.NumberColumn(format="%.3f"),
            "Equalized odds difference": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.caption(
        f"Fitted on {format_count(comparison.rows_fit)} customers in "
        f"{comparison.seconds:.0f} s. A model can still treat groups differently without "
        "seeing age or marital status, through inputs that go with them (job = retired or "
        "student, for example): the table shows whether dropping them changed that."
    )

with st.expander("The model card's fairness section (time hold-out, default threshold)"):
    section = model.info.fairness
    if not section:
        st.info(
            "This model was trained before the model card had a fairness section. Train a new "
            "model to get one.",
            icon=":material/info:",
        )
    else:
        st.caption(f"Computed on the {section['computed_on']}. Rules: {section['rules']}.")
        for name, part in section["attributes"].items():
            groups = pd.DataFrame(part["groups"]).T
            groups.index.name = labels.ATTRIBUTE_LABELS.get(name, name)
            st.markdown(
                f"**{labels.ATTRIBUTE_LABELS.get(name, name)}** · parity ratio "
                f"{part['demographic_parity_ratio']} · parity difference "
                f"{part['demographic_parity_difference']} · equalized odds difference "
                f"{part['equalized_odds_difference']} · below four-fifths: "
                f"{', '.join(part['below_four_fifths']) or 'none'}"
            )
            st.dataframe(groups.reset_index(), hide_index=True, width="stretch")
