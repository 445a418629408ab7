"""Explanations: why the model ranks customers as it does, across the cohort and one by one."""

import pandas as pd
import streamlit as st

from termdeposit.apps.dashboard import insight_cache, scoring
from termdeposit.apps.dashboard.common import production_model, setup_page, show_error
from termdeposit.apps.dashboard.state import session
from termdeposit.core import labels
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import (
    CATEGORICAL_INPUTS,
    CONTEXT_INPUTS,
    ID_COLUMN,
    INPUT_COLUMNS,
    NUMERIC_INPUTS,
)
from termdeposit.decisions.economics import format_count, format_percent
from termdeposit.insight import explain, plots
from termdeposit.services import forecasts

settings = setup_page("Explanations", icon=":material/psychology:")
model = production_model()
if model is None:
    st.stop()
scored = scoring.ensure_scored(model)
if scored is None:
    insight_cache.no_cohort_yet(model, "explain", key="explain_demo")
    st.stop()
explainer = insight_cache.explainer_for(model)
if explainer is None:
    st.stop()

threshold = session.chosen_threshold
st.caption(
    f"Cohort **{session.cohort_name}** · {format_count(len(scored))} customers · "
    + insight_cache.model_note(explainer, model)
)
overall_tab, customer_tab = st.tabs(
    ["Across the cohort", "One customer (and what if)"],
    key="explain_tabs",
    on_change="rerun",
)

if overall_tab.open:
    with overall_tab:
        explanation = insight_cache.cohort_explanation(model, explainer, scored)
        if explanation.sampled_from:
            st.info(
                f"This cohort has {format_count(explanation.sampled_from)} customers; the charts "
                f"below explain a random sample of {format_count(len(explanation))} of them (the "
                "same sample every time), so they appear within seconds. Single customers and "
                "reason codes are always explained exactly.",
                icon=":material/info:",
            )
        else:
            st.caption(
                f"All {format_count(len(explanation))} customers explained in "
                f"{explanation.seconds:.1f} s."
            )
        ranking = explain.importance(explanation)
        constant = explain.constant_inputs(explanation)
        st.markdown(
            "Across this cohort, "
            + ", then ".join(f"**{label.lower()}**" for label in ranking["label"].iloc[:3])
            + " move the score most. Inputs at the bottom of the chart barely change anyone's "
            "score."
        )
        if constant:
            names = ", ".join(labels.FEATURE_LABELS[f].lower() for f in constant)
            st.caption(
                f"The same for every customer in this cohort: {names}. Such inputs (the week's "
                "economy, the day of the call) move every score alike: they change how many "
                "calls pay off, not who is called first."
            )
        left, right = st.columns(2)
        left.plotly_chart(plots.shap_importance_bar(ranking, explanation.scale), width="stretch")
        right.plotly_chart(
            plots.shap_beeswarm(
                explanation.values,
                explain.colour_levels(explainer, explanation),
                list(ranking["feature"]),
                labels.FEATURE_LABELS,
                explanation.scale,
            ),
            width="stretch",
        )
        st.caption(
            "Left: the average size of each input's effect. Right: one dot per customer; dots "
            "right of the zero line are customers whose score the input raises. Red dots have a "
            "high value of the input (for example a high age), blue a low one, grey a category "
            "such as a job."
        )
        varying = [f for f in ranking["feature"] if f not in constant] or list(ranking["feature"])
        feature = st.selectbox(
            "See how one input drives the score",
            varying,
            format_func=labels.FEATURE_LABELS.get,
            key="explain_dependence",
            help="Inputs that are the same for every customer in this cohort are not listed.",
        )
        st.plotly_chart(
            plots.shap_dependence(
                explain.dependence_data(explainer, explanation, feature),
                labels.FEATURE_LABELS[feature],
                explanation.scale,
            ),
            width="stretch",
        )

if customer_tab.open:
    with customer_tab:
        by_rank = scored.sort_values("rank", kind="stable").reset_index(drop=True)
        how = st.radio(
            "Find the customer by", ["Rank", "Customer id"], horizontal=True, key="explain_find"
        )
        if how == "Rank":
            rank = st.number_input(
                f"Rank (1 = most likely to subscribe, {format_count(len(by_rank))} = least)",
                min_value=1,
                max_value=len(by_rank),
                value=1,
                step=1,
                key="explain_rank",
            )
            chosen = by_rank.iloc[[int(rank) - 1]]
        else:
            wanted = st.text_input(
                "Customer id", value=str(by_rank[ID_COLUMN].iloc[0]), key="explain_id"
            ).strip()
            chosen = by_rank.loc[by_rank[ID_COLUMN].astype(str) == wanted]
            if chosen.empty:
                st.warning(
                    f"There is no customer '{wanted}' in this cohort. Ids look like "
                    f"{by_rank[ID_COLUMN].iloc[0]}.",
                    icon=":material/warning:",
                )
                st.stop()
        customer = chosen.iloc[[0]].reset_index(drop=True)
        single = explainer.explain(customer)
        probability = float(customer["probability"].iloc[0])
        on_list = probability >= threshold
        st.markdown(
            f"**Customer {customer[ID_COLUMN].iloc[0]}** · rank {int(customer['rank'].iloc[0]):,} "
            f"of {format_count(len(scored))} · probability of subscribing "
            f"**{format_percent(probability)}** · "
            + (
                f"on the call list (threshold {format_percent(threshold, 2)})"
                if on_list
                else f"not on the call list (threshold {format_percent(threshold, 2)})"
            )
        )
        table = explain.contributions(explainer, single)
        left, right = st.columns([3, 2])
        left.plotly_chart(
            plots.shap_waterfall(table, single.base_value, float(single.output[0]), single.scale),
            width="stretch",
        )
        with right:
            raising = table.loc[table["contribution"] > 0]
            lowering = table.loc[table["contribution"] < 0]
            st.markdown("**What raises this customer's score**")
            st.markdown(
                "\n".join(f"- {s}" for s in raising["sentence"].head(5)) or "- nothing raises it"
            )
            st.markdown("**What lowers it**")
            st.markdown(
                "\n".join(f"- {s}" for s in lowering["sentence"].head(5)) or "- nothing lowers it"
            )
            reasons = explain.reason_codes(model, customer, explainer=explainer)
            codes = [r for r in reasons.iloc[0, 1:] if r]
            st.markdown("**Reasons shown to the caller**")
            st.markdown("\n".join(f"{i}. {r}" for i, r in enumerate(codes, 1)) or "none")
            st.caption(
                "Callers see the customer's own inputs only: the date of the call and the economy "
                "are the same for everyone called this week."
            )

        st.subheader("What if?")
        st.caption(
            "Change this customer's inputs and see the new score and contributions. Nothing is "
            "saved: the cohort and the call list stay as they are."
        )
        cid = str(customer[ID_COLUMN].iloc[0])
        groups = {
            "The customer": ("age", "job", "marital", "education", "default", "housing", "loan"),
            "This and earlier campaigns": (
                "contact",
                "month",
                "day_of_week",
                "campaign",
                "pdays",
                "previous",
                "poutcome",
            ),
            "The economy that week": (
                "emp.var.rate",
                "cons.price.idx",
                "cons.conf.idx",
                "euribor3m",
                "nr.employed",
            ),
        }
        with st.form(key=f"whatif_{cid}"):
            new_values = {}
            for column_box, (title, inputs) in zip(st.columns(3), groups.items(), strict=True):
                column_box.markdown(f"**{title}**")
                for name in inputs:
                    current = customer[name].iloc[0]
                    label = labels.FEATURE_LABELS[name]
                    if name in CATEGORICAL_INPUTS:
                        options = list(CATEGORICAL_INPUTS[name])
                        new_values[name] = column_box.selectbox(
                            label,
                            options,
                            index=options.index(str(current)) if str(current) in options else 0,
                            format_func=lambda value, name=name: explain.value_text(name, value),
                            key=f"whatif_{cid}_{name}",
                        )
                    else:
                        low, high, whole = NUMERIC_INPUTS[name]
                        new_values[name] = column_box.number_input(
                            label + (" (999 = never)" if name == "pdays" else ""),
                            min_value=int(low) if whole else float(low),
                            max_value=int(high) if whole else float(high),
                            value=int(current) if whole else float(current),
                            step=1 if whole else 0.1,
                            key=f"whatif_{cid}_{name}",
                        )
            submitted = st.form_submit_button("Show the new score", type="primary")
        changes = {
            name: value
            for name, value in new_values.items()
            if str(value) != str(customer[name].iloc[0])
            and not (name in NUMERIC_INPUTS and float(value) == float(customer[name].iloc[0]))
        }
        if submitted and not changes:
            st.info("Change at least one input above first.", icon=":material/info:")
        elif changes:
            try:
                result = explain.what_if(explainer, customer, changes)
            except TermDepositError as exc:
                show_error(exc)
                st.stop()
            after = forecasts.what_if_probability(
                model.card,
                result.probability_after,
                result.probability_before,
                probability,
                len(scored),
            )
            row = st.columns(3)
            row[0].metric("Probability now", format_percent(probability))
            row[1].metric(
                "After the change",
                format_percent(after),
                delta=f"{100 * (after - probability):+.1f} points",
                help="In the same week: the cohort's forecast subscription rate moves every "
                "customer's probability alike.",
            )
            row[2].metric(
                "On the call list?",
                "yes" if after >= threshold else "no",
                help=f"At the current threshold of {format_percent(threshold, 2)}.",
            )
            st.caption("Changed: " + "; ".join(result.changes) + ".")
            comparison = result.table
            st.plotly_chart(plots.what_if_bars(comparison, explainer.scale), width="stretch")
            moved = comparison.assign(
                change=comparison["contribution_after"] - comparison["contribution_before"]
            )
            moved = moved.loc[moved["change"].abs() > 1e-9].sort_values(
                "change", key=lambda s: -s.abs()
            )
            st.dataframe(
                pd.DataFrame(
                    {
                        "Input": moved["label"],
                        "Before": moved["before"],
                        "After": moved["after"],
                        "Contribution before": moved["contribution_before"].round(4),
                        "Contribution after": moved["contribution_after"].round(4),
                    }
                ),
                hide_index=True,
                width="stretch",
            )
            st.caption(
                "In a tree model, changing one input can also change the contributions of "
                "others (they act together); the new score is always the model's own."
            )

        st.subheader("One input at a time")
        varied = st.selectbox(
            "See how one input moves this customer's chance (and 50 other customers')",
            [f for f in INPUT_COLUMNS if f not in CONTEXT_INPUTS],
            format_func=labels.FEATURE_LABELS.get,
            key="explain_ice_feature",
        )
        curves = insight_cache.ice_curves(model, scored, customer, varied)
        words = (
            [explain.value_text(varied, v) for v in curves.grid] if curves.categorical else None
        )
        st.plotly_chart(
            plots.ice_plot(curves, labels.FEATURE_LABELS[varied], words), width="stretch"
        )
        st.caption(
            "Each thin line is one customer of this cohort with only this input changed; the "
            "thick line is their average (partial dependence); the dashed line is this customer "
            f"(now: {explain.value_text(varied, curves.current)}). Lines that are not parallel "
            "mean the input acts together with others."
        )

st.page_link(
    "pages/6_Fairness.py", label="Next: is the call list fair?", icon=":material/arrow_forward:"
)
