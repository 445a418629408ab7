"""Threshold scenarios: compare two saved settings side by side on the same cohort."""

import streamlit as st

from termdeposit.apps.dashboard import scenarios, scoring
from termdeposit.apps.dashboard.common import production_model, setup_page
from termdeposit.apps.dashboard.state import session
from termdeposit.decisions import economics
from termdeposit.decisions.economics import describe_difference, format_count

settings = setup_page("Threshold scenarios", icon=":material/compare_arrows:")
model = production_model()
scored = scoring.scored_or_stop(model)

curve = scoring.cohort_curve()
forecaster = scoring.cohort_forecaster(model)
st.markdown(
    "Save settings on the **Threshold & profit** page (cost per call, value of a "
    "subscription, capacity and your choice), then compare any two here, on this cohort: "
    f"**{session.cohort_name}** ({format_count(curve.size)} customers)."
)
saved = scenarios.load()
now = scenarios.current("Current settings", settings)
options = {s.name: s for s in [now, *saved]}
if len(saved) == 0:
    st.info(
        "No saved scenario yet: the current settings can only be compared with themselves. "
        "Save one on the Threshold & profit page (at the bottom).",
        icon=":material/info:",
    )
    st.page_link(
        "pages/2_Threshold_and_profit.py", label="Threshold & profit", icon=":material/euro:"
    )
names = list(options)
left, right = st.columns(2)
first = left.selectbox("Scenario A", names, index=0, key="scenario_a")
second = right.selectbox("Scenario B", names, index=min(1, len(names) - 1), key="scenario_b")
a, b = options[first], options[second]
left.caption(a.describe())
right.caption(b.describe())

table = economics.compare_scenarios(curve, [a, b], scenarios.range_of(forecaster))
shown = scenarios.comparison_frame(table)
shown.columns = [f"A: {first}", f"B: {second}"]
st.dataframe(shown, width="stretch")
gap = float(table["expected_profit"].iloc[1] - table["expected_profit"].iloc[0])
calls_a, calls_b = int(table["calls"].iloc[0]), int(table["calls"].iloc[1])
st.markdown(
    f"**B** calls {format_count(abs(calls_b - calls_a))} "
    f"{'more' if calls_b >= calls_a else 'fewer'} customers than **A** and is expected to earn "
    f"**{describe_difference(gap)}**. Both lists start from the customers the model ranks "
    f"highest, so the shorter list ({format_count(min(calls_a, calls_b))} customers) is "
    "entirely inside the longer one."
)
if saved:
    with st.expander("Delete a saved scenario"):
        doomed = st.selectbox("Scenario", [s.name for s in saved], key="scenario_delete")
        if st.button("Delete it", key="scenario_delete_button"):
            scenarios.delete(doomed)
            st.rerun()
