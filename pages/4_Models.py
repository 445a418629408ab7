"""Models: the production model's card and quality, every saved version, promote / roll back."""

import pandas as pd
import streamlit as st

from termdeposit.apps.dashboard import ops, scoring
from termdeposit.apps.dashboard.common import (
    production_model,
    setup_page,
    show_error,
    show_unexpected,
    signed_in_user,
)
from termdeposit.apps.dashboard.state import session
from termdeposit.core.errors import TermDepositError
from termdeposit.core.labels import column_label, feature_label
from termdeposit.decisions import economics
from termdeposit.decisions.economics import format_count, format_percent
from termdeposit.insight import plots
from termdeposit.modeling import registry
from termdeposit.modeling.card import ModelCard
from termdeposit.modeling.train import FAMILY_LABELS, family_label

METRIC_ROWS = [
    ("auc", "AUC (ranking quality, 0.5 = random)", "{:.3f}"),
    ("average_precision", "Average precision", "{:.3f}"),
    ("brier", "Brier score (lower is better)", "{:.4f}"),
    ("ece", "Calibration error (ECE, lower is better)", "{:.1%}"),
    ("top10_share", "Subscribers found in the top 10%", "{:.1%}"),
    ("lift_top10", "Lift in the top 10%", "{:.2f}×"),
    ("base_rate", "Subscription rate", "{:.1%}"),
    ("mean_score", "Average probability given", "{:.1%}"),
    ("rows", "Customers", "{:,.0f}"),
]

settings = setup_page("Models", icon=":material/model_training:")
message = session.take_flash("models")
if message:
    st.success(message, icon=":material/check_circle:")

model = production_model()
if model is not None:
    card = model.info
    st.subheader(f"Production model `{model.version}`")
    st.markdown(
        f"**{card.family_label}** ({card.profile} profile), trained {card.created_minute} UTC "
        f"on {format_count(card.rows.get('fit_artifact'))} customers; calibration: "
        f"{card.calibration_method}. Default threshold {format_percent(model.threshold, 2)}: "
        f"{card.threshold_rule}."
    )
    reasons: dict[str, list[str]] = {}
    for feature, why in card.features_excluded.items():
        reasons.setdefault(why, []).append(column_label(feature).lower())
    excluded = "; ".join(f"{', '.join(names)}: {why}" for why, names in reasons.items())
    used = ", ".join(feature_label(f).lower() for f in card.features_used)
    st.caption(f"Inputs used: {used}. Not used: {excluded}.")

    def shown(holdout: str, key: str, fmt: str) -> str:
        value = card.metric(holdout, key)
        return fmt.format(float("nan") if value is None else value)

    table = pd.DataFrame(
        {
            "Measure": [label for _, label, _ in METRIC_ROWS],
            "Random hold-out (20% of all customers)": [
                shown("random", key, fmt) for key, _, fmt in METRIC_ROWS
            ],
            "Time hold-out (the last 20%: the future)": [
                shown("time", key, fmt) for key, _, fmt in METRIC_ROWS
            ],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(card.evaluation)

    with st.expander("How this model was chosen"):
        families = pd.DataFrame([f.__dict__ for f in card.families])
        if not families.empty:
            chosen = card.selection.get("chosen")
            settings = families["params"] if "params" in families else [{}] * len(families)
            families["family"] = [
                (family_label(f, p or {}) if f in FAMILY_LABELS else f)
                + (" (chosen)" if f == chosen else "")
                for f, p in zip(families["family"], settings, strict=True)
            ]
            st.dataframe(
                families.loc[:, ["family", "cv_auc", "time_val_auc", "seconds"]].rename(
                    columns={
                        "family": "Family",
                        "cv_auc": "AUC, random folds",
                        "time_val_auc": "AUC, time-ordered validation",
                        "seconds": "Search time (s)",
                    }
                ),
                hide_index=True,
            )
        st.caption(str(card.selection.get("rule", "")))

    try:
        y, p, described = scoring.holdout_scores(model.version, card.artifact_sha256)
        st.subheader("Quality curves")
        st.caption(f"Computed on {described}.")
        left, middle, right = st.columns(3)
        left.plotly_chart(plots.roc_plot(y, p, "ROC curve"), width="stretch")
        middle.plotly_chart(
            plots.precision_recall_plot(y, p, "Precision and recall"), width="stretch"
        )
        right.plotly_chart(
            plots.reliability_plot(
                economics.calibration_table(y, p), "Calibration: predicted vs observed"
            ),
            width="stretch",
        )
    except TermDepositError as exc:
        show_error(exc)
    except Exception as exc:  # the page must stay usable for promote / roll back
        show_unexpected(exc, "computing the quality curves")

st.subheader("All versions")
pointer = registry.pointer_status()
production = pointer.version
if pointer.problem:
    st.warning(
        f"{pointer.problem}\n\nTo repair it, choose the version that should be in production "
        "under **Change the production model** below and press **Promote**.",
        icon=":material/warning:",
    )
rows = []
for version in reversed(registry.list_versions()):
    try:
        saved = ModelCard.from_dict(registry.read_card(version))
    except TermDepositError as exc:
        rows.append({"Version": version, "In production": "", "Family": f"unreadable: {exc}"})
        continue
    rows.append(
        {
            "Version": version,
            "In production": "yes" if version == production else "",
            "Trained": saved.created_minute,
            "Family": saved.family_label,
            "Profile": saved.profile,
            "AUC random": saved.metric("random", "auc"),
            "AUC time": saved.metric("time", "auc"),
            "ECE time": saved.metric("time", "ece"),
        }
    )
if not rows:
    st.info("No saved models yet: train one from the home page.", icon=":material/info:")
    st.stop()
st.dataframe(
    pd.DataFrame(rows),
    hide_index=True,
    width="stretch",
    column_config={
        "AUC random": st.column_config.NumberColumn(format="%.3f"),
        "AUC time": st.column_config.NumberColumn(format="%.3f"),
        "ECE time": st.column_config.NumberColumn(format="percent"),
    },
)

st.subheader("Change the production model")
st.caption(
    "Every change is checked first (the model must load and verify) and written to the audit "
    "log with your name and reason. Scores on every page switch to the new model."
)
who = signed_in_user()
if who:
    st.caption(f"Recorded in the audit log as **{who}** (signed in).")
else:
    who = st.text_input("Your name (for the audit log)", key="models_user")
reason = st.text_input("Reason", key="models_reason", placeholder="e.g. better on the last month")
others = [r["Version"] for r in rows if r["Version"] != production]
promote_col, rollback_col = st.columns(2)
with promote_col:
    target = st.selectbox("Version to put in production", others, key="models_target")
    promote = st.button("Promote", key="models_promote", disabled=not others, type="primary")
with rollback_col:
    st.write(
        "Put back the version that was in production before this one (press again to go "
        "further back)."
    )
    rollback = st.button("Roll back", key="models_rollback", disabled=production is None)
if promote or rollback:
    if not reason.strip() or not who.strip():
        st.error(
            "Give your name and a reason first: both go into the audit log."
            if not who.strip()
            else "Give a reason first: it goes into the audit log."
        )
    else:
        try:
            if promote:
                entry = registry.promote(target, reason.strip(), user=who.strip())
                done = (
                    f"{entry['version']} is now in production; the damaged pointer was replaced."
                    if "replaced_pointer" in entry
                    else f"{entry['version']} is now in production (was {entry['previous']})."
                )
            else:
                entry = registry.rollback(reason=reason.strip(), user=who.strip())
                done = f"Rolled back: {entry['version']} is in production again."
            session.flash("models", done)
            st.rerun()
        except TermDepositError as exc:
            show_error(exc)

ops.audit_section()
