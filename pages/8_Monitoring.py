"""Monitoring: weekly figures (expected, then realised), drift, alerts and their limits."""

from dataclasses import replace

import streamlit as st

from termdeposit.apps.dashboard import alerts, ops
from termdeposit.apps.dashboard.common import setup_page, show_error
from termdeposit.apps.dashboard.state import session
from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import feature_label, readable_columns, rule_words
from termdeposit.decisions.economics import format_count, format_money, format_percent
from termdeposit.insight import plots
from termdeposit.ops import monitoring

settings = setup_page("Monitoring", icon=":material/monitor_heart:")
store = ops.open_ops_store()
if store is None:
    st.stop()
message = session.take_flash("monitoring")
if message:
    st.success(message, icon=":material/check_circle:")

limits = monitoring.load_limits(store)
result = ops.run_checks()
if result is None:
    st.stop()
weekly = result.weekly
if weekly.empty:
    st.info("No cohort has been scored yet: nothing to monitor.", icon=":material/info:")
    st.stop()

st.subheader("Alerts")
active = result.active
stored = store.alerts(active_only=True)
information = stored[stored["severity"] == "info"] if len(stored) else stored
stored = stored[stored["severity"] != "info"] if len(stored) else stored
if stored.empty:
    st.success("No active alerts.", icon=":material/check_circle:")
for alert in stored.itertuples(index=False):
    box = st.error if alert.severity == "critical" else st.warning
    box(
        f"{alert.message}  \n*{rule_words(alert.rule).capitalize()}; first raised "
        f"{str(alert.raised_at)[:16].replace('T', ' ')} UTC*",
        icon=":material/notifications_active:",
    )
    if st.button("Acknowledge (handled)", key=f"ack_{alert.id}"):
        store.acknowledge_alert(int(alert.id))
        alerts.refresh_alerts()
        session.flash("monitoring", f"Alert {alert.id} acknowledged.")
        st.rerun()
st.caption(
    f"{format_count(len(active))} alerts in force, not acknowledged. An alert stands for a "
    "condition while it lasts (refreshed every week, cleared when it goes away); it needs "
    "enough customers (drift) or outcomes (AUC, conversion, calibration), and an effect "
    "clearly beyond chance. The same checks run weekly ('termdeposit weekly', which also "
    "sends new alerts by webhook and e-mail) and from cron with `termdeposit monitor --check`."
)
for finding in information.itertuples(index=False):
    st.info(f"**For information.** {finding.message}", icon=":material/info:")

st.subheader("Week by week")
latest = weekly.iloc[-1]
cols = st.columns(4)
cols[0].metric(
    "Latest cohort",
    str(latest["week_label"]),
    f"{format_count(latest['customers'])} customers",
    delta_color="off",
)
cols[1].metric("Planned calls", format_count(latest["planned_calls"]))
cols[2].metric(
    "Expected profit",
    format_money(latest["expected_profit"]),
    f"80% range {format_money(latest['expected_profit_low'])} to "
    f"{format_money(latest['expected_profit_high'])}",
    delta_color="off",
    delta_arrow="off",
)
cols[3].metric("Estimated AUC (no outcomes needed)", f"{latest['estimated_auc']:.3f}")
with_outcomes = weekly[weekly["has_outcomes"]]
if len(with_outcomes):
    last = with_outcomes.iloc[-1]
    cols = st.columns(4)
    cols[0].metric("Latest week with outcomes", str(last["week_label"]))
    cols[1].metric(
        "Conversion among the called",
        format_percent(last["conversion"]),
        f"expected {format_percent(last['expected_conversion'])}",
        delta_color="off",
    )
    cols[2].metric(
        "Realised profit",
        format_money(last["profit"]),
        f"expected {format_money(last['expected_profit_of_called'])} for those called (80% "
        f"range {format_money(last['expected_profit_of_called_low'])} to "
        f"{format_money(last['expected_profit_of_called_high'])})",
        delta_color="off",
        delta_arrow="off",
    )
    cols[3].metric(
        "AUC among the called",
        "–" if last["auc"] != last["auc"] else f"{last['auc']:.3f}",
        f"estimated {last['estimated_auc']:.3f}",
        delta_color="off",
    )
left, right = st.columns(2)
left.plotly_chart(plots.weekly_profit_chart(weekly), width="stretch")
right.plotly_chart(plots.weekly_rate_chart(weekly), width="stretch")
columns = {
    "week_label": "Week",
    "customers": "Customers",
    "model_version": "Model",
    "planned_calls": "Planned calls",
    "expected_conversion": "Expected conversion",
    "expected_profit": "Expected profit",
    "estimated_uplift": "Estimated uplift vs calling all",
    "estimated_auc": "Estimated AUC",
    "calls_made": "Calls made",
    "conversion": "Conversion",
    "call_cost": "Call cost",
    "revenue": "Revenue",
    "profit": "Profit",
    "auc": "AUC",
    "calibration_error": "Calibration error",
    "ab_uplift_per_customer": "A/B uplift per customer",
    "ab_uplift_low": "A/B 95% low",
    "ab_uplift_high": "A/B 95% high",
    "ab_verdict": "A/B verdict",
}
shown = weekly.loc[:, [c for c in columns if c in weekly]].rename(columns=columns)
st.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    column_config={
        name: st.column_config.NumberColumn(format="percent")
        for name in ("Expected conversion", "Conversion")
    }
    | {
        name: st.column_config.NumberColumn(format="€%.0f")
        for name in (
            "Expected profit",
            "Estimated uplift vs calling all",
            "Call cost",
            "Revenue",
            "Profit",
        )
    },
)

st.subheader("Drift against the training reference")
drift = result.drift
cohort_options = list(reversed(weekly["cohort_id"].tolist()))
labels = dict(zip(weekly["cohort_id"], weekly["week_label"], strict=True))
picked = st.selectbox(
    "Cohort", cohort_options, format_func=lambda c: f"{c}: {labels[c]}", key="drift_cohort"
)
if drift is None or drift.cohort_id != picked:
    try:
        drift = monitoring.cohort_drift(store, int(picked), limits)
    except TermDepositError as exc:
        show_error(exc)
        drift = None
if drift is not None:
    if not drift.judged:
        st.info(
            f"{format_count(drift.rows)} customers (with the weeks before, up to "
            f"{limits.recent_weeks}): too few to judge drift; at least "
            f"{format_count(limits.min_rows)} are needed.",
            icon=":material/info:",
        )
    elif drift.weeks > 1:
        st.caption(
            f"A small week: judged together with the {drift.weeks - 1} weeks before it "
            f"({format_count(drift.rows)} customers)."
        )
    cols = st.columns(4)
    cols[0].metric(
        "Score spread PSI (beyond chance)",
        f"{drift.score_psi:.3f}",
        monitoring.psi_band(drift.score_psi),
        delta_color="off",
    )
    cols[1].metric("Customer inputs drifted (PSI > 0.25)", format_percent(drift.drifted_share, 0))
    cols[2].metric(
        "Mean confidence",
        format_percent(drift.mean_confidence),
        f"training {format_percent(drift.reference_confidence)}",
        delta_color="off",
        help="How far the chances given are from a coin toss, on average (100% = every "
        "customer scored 0% or 100%).",
    )
    cols[3].metric(
        "Economy outside what the model saw", format_count(len(drift.context_out_of_range))
    )
    shown = drift.table.assign(psi=drift.table["psi_beyond_chance"])
    st.plotly_chart(plots.psi_chart(shown), width="stretch")
    st.caption(
        "PSI beyond chance: the PSI less what sampling alone gives with this many customers. "
        "Bands: below 0.1 stable, 0.1-0.25 moderate, above 0.25 significant; 'psi_recent' "
        "compares with the weeks before. The month, the weekday and the five economic rates are "
        "the same for everyone in a week: they are checked against the range the model was "
        "trained on, for information, and the scores' drift is judged on their spread around "
        "the week's median, so the economy moving every score together is not counted."
    )
    drift_table = drift.table.assign(
        input=drift.table["input"].map(feature_label),
        kind=drift.table["kind"].map({"customer": "customer", "context": "the week's context"}),
        outside_range=drift.table["outside_range"].map({True: "yes", False: ""}),
    )
    st.dataframe(
        readable_columns(drift_table, {"kind": "Kind"}),
        hide_index=True,
        width="stretch",
        column_config={"Shift (PSI)": st.column_config.NumberColumn(format="%.3f")},
    )

st.subheader("Alert limits")
with st.form("limits"):
    c1, c2, c3, c4 = st.columns(4)
    psi_input = c1.number_input("PSI of a watched input above", 0.0, 10.0, limits.psi_input, 0.05)
    drifted = c2.number_input(
        "Share of inputs drifted above", 0.0, 1.0, limits.drifted_share, 0.05
    )
    psi_score = c3.number_input("PSI of the score above", 0.0, 10.0, limits.psi_score, 0.05)
    margin = c4.number_input(
        "Context outside training range by (share of range)", 0.0, 1.0, limits.context_margin, 0.05
    )
    c1, c2, c3, c4 = st.columns(4)
    conversion = c1.number_input(
        "Conversion below the 4-week mean by (share)", 0.01, 1.0, limits.conversion_drop, 0.05
    )
    auc_min = c2.number_input("AUC among the called below", 0.5, 1.0, limits.auc_min, 0.01)
    ece_max = c3.number_input("Calibration error above", 0.005, 1.0, limits.ece_max, 0.01)
    min_rows = c4.number_input(
        "Customers needed to judge drift", 20, 1_000_000, int(limits.min_rows), 50
    )
    c1, c2, c3, _ = st.columns(4)
    min_outcomes = c1.number_input(
        "Outcomes needed for AUC, conversion, calibration",
        20,
        1_000_000,
        int(limits.min_outcomes),
        50,
    )
    min_subscribers = c2.number_input(
        "Subscribers (and non-subscribers) needed for AUC",
        1,
        100_000,
        int(limits.min_subscribers),
        5,
    )
    recent = c3.number_input("Weeks pooled / compared with", 1, 52, int(limits.recent_weeks), 1)
    watched = st.multiselect(
        "Watched customer inputs (a shift in any raises an alert)",
        list(monitoring.CUSTOMER_INPUTS),
        list(limits.watched_inputs),
        format_func=feature_label,
    )
    if st.form_submit_button("Save the limits", type="primary"):
        try:
            monitoring.save_limits(
                replace(
                    limits,
                    psi_input=psi_input,
                    drifted_share=drifted,
                    psi_score=psi_score,
                    context_margin=margin,
                    conversion_drop=conversion,
                    auc_min=auc_min,
                    ece_max=ece_max,
                    min_rows=int(min_rows),
                    min_outcomes=int(min_outcomes),
                    min_subscribers=int(min_subscribers),
                    recent_weeks=int(recent),
                    watched_inputs=tuple(watched),
                ),
                store,
            )
            session.flash("monitoring", "Alert limits saved (app and cron use them).")
            st.rerun()
        except TermDepositError as exc:
            show_error(exc)

st.subheader("Keep the model current")
st.markdown(
    "Between retrainings the probabilities drift with the base rate. **Recalibrate** refits "
    "only the probability scale of the production model on the latest weeks with outcomes "
    "(a new model version; promoted only if it predicts the latest week better)."
)
if st.button("Recalibrate on recent outcomes", key="recalibrate"):
    from termdeposit.ops.retrain import recalibrate

    try:
        with st.spinner("Recalibrating..."):
            done = recalibrate("platt", store=store)
        alerts.refresh_alerts()
        said = done.message + (
            f" — {done.version} is now in production." if done.promoted else " — not promoted."
        )
        session.flash("monitoring", said)
        st.rerun()
    except TermDepositError as exc:
        show_error(exc)
st.caption(
    "Retraining (a challenger trained on the data plus every recorded outcome, promoted only if "
    "better on the most recent weeks) runs from the command line or cron: `termdeposit retrain`."
)
