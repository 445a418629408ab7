"""Charts as pure functions: data in, plotly Figure out (no I/O, no streamlit).

Money axes show euros with thousands separators, shares show percentages, and every chart
has a title and axis labels. Vertical marks (break-even, profit-optimal, capacity, current
threshold) are drawn as lines with a legend entry each, so coinciding marks stay readable.

Size: About thirty small chart functions, independent of each other, sharing one style (money
and share axes, threshold marks, legends); kept in one module so every chart looks alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.metrics import precision_recall_curve, roc_curve

from termdeposit.core.labels import feature_label
from termdeposit.insight.dependence import Dependence

#: One colour per meaning, the same in every chart.
COLOURS = {
    "profit": "#1b7f3b",
    "revenue": "#2463b0",
    "cost": "#c0392b",
    "calls": "#5b4a9e",
    "realised": "#e67e22",
    "model": "#2463b0",
    "baseline": "#8c8c8c",
    "break-even": "#6b6b6b",
    "optimal": "#1b7f3b",
    "capacity": "#8e44ad",
    "current": "#111111",
}
_DASHES = {"break-even": "dot", "optimal": "dash", "capacity": "dashdot", "current": "solid"}
_AXIS = {"gridcolor": "#e6e6e6", "linecolor": "#b0b0b0", "zerolinecolor": "#b0b0b0"}
#: A small light template: plotly's full templates cost tens of milliseconds per figure,
#: which would show on every slider move.
TEMPLATE = go.layout.Template(
    layout={
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"size": 13, "color": "#1f2933"},
        "xaxis": _AXIS,
        "yaxis": _AXIS,
        "colorway": list(COLOURS.values()),
    }
)


@dataclass(frozen=True)
class Mark:
    """A vertical line at a probability threshold (or share), with its meaning.

    Attributes:
        kind: ``break-even``, ``optimal``, ``capacity`` or ``current`` (sets colour and dash).
        value: where the line is drawn, on the chart's x axis.
        label: legend text, e.g. ``"Break-even 5.0%"``.
    """

    kind: str
    value: float
    label: str


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        xaxis_title=x_title,
        yaxis_title=y_title,
        template=TEMPLATE,
        separators=".,",
        legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0.0},
        margin={"l": 70, "r": 20, "t": 60, "b": 110},
        hovermode="x unified",
        height=420,
    )
    return fig


def _add_marks(fig: go.Figure, marks: Sequence[Mark]) -> None:
    shapes, legend = [], []
    for mark in marks:
        line = {
            "color": COLOURS.get(mark.kind, "#333333"),
            "dash": _DASHES.get(mark.kind, "dash"),
            "width": 2,
        }
        shapes.append(
            {
                "type": "line",
                "x0": mark.value,
                "x1": mark.value,
                "y0": 0,
                "y1": 1,
                "xref": "x",
                "yref": "paper",
                "line": line,
            }
        )
        legend.append(
            go.Scatter(
                x=[None], y=[None], mode="lines", name=mark.label, line=line, hoverinfo="skip"
            )
        )
    fig.add_traces(legend)
    fig.update_layout(shapes=[*fig.layout.shapes, *shapes])


def _reference_line(x: Any, y: Any, name: str) -> go.Scatter:
    """A dashed grey line to compare with (calling at random, perfect calibration)."""
    return go.Scatter(
        x=x,
        y=y,
        name=name,
        mode="lines",
        line={"color": COLOURS["baseline"], "dash": "dash"},
        hoverinfo="skip",
    )


def _main_line(
    x: Any,
    y: Any,
    name: str,
    hover: str,
    colour: str = COLOURS["model"],
    dash: str | None = None,
    steps: bool = False,
) -> go.Scatter:
    """A chart's main line: thick, in the model's colour unless told, with its hover text."""
    line: dict[str, Any] = {"color": colour, "width": 2.5}
    if dash is not None:
        line["dash"] = dash
    return go.Scatter(
        x=x,
        y=y,
        name=name,
        mode="lines",
        line=line,
        hovertemplate=hover,
        **({"line_shape": "hv"} if steps else {}),
    )


def _threshold_axis(fig: go.Figure, table: pd.DataFrame, marks: Sequence[Mark]) -> None:
    called = table.loc[table["calls"] > 0, "threshold"]
    top = max([float(called.max()) if len(called) else 1.0, *(m.value for m in marks)])
    fig.update_xaxes(range=[0, min(1.0, top * 1.05 + 0.005)], tickformat=".0%")


def money_curves(table: pd.DataFrame, marks: Sequence[Mark] = ()) -> go.Figure:
    """Expected profit, revenue and call cost at every threshold (realised profit if known).

    Args:
        table: :func:`termdeposit.decisions.economics.curve_table`.
        marks: vertical lines (break-even, optimal, capacity, current).
    """
    data = table[table["calls"] > 0]
    fig = go.Figure()
    series = [
        ("expected_profit", "Expected profit", COLOURS["profit"], "solid"),
        ("expected_revenue", "Expected revenue", COLOURS["revenue"], "solid"),
        ("cost", "Call cost", COLOURS["cost"], "solid"),
    ]
    if "realised_profit" in data:
        series.append(("realised_profit", "Realised profit (known outcomes)", "#e67e22", "dot"))
    for column, name, colour, dash in series:
        fig.add_trace(
            go.Scatter(
                x=data["threshold"],
                y=data[column],
                name=name,
                mode="lines",
                line={"color": colour, "dash": dash, "width": 2.5 if "profit" in column else 2},
                line_shape="hv",
                hovertemplate="€%{y:,.0f}",
            )
        )
    _add_marks(fig, marks)
    _layout(
        fig,
        "Money at each threshold (call everyone at or above it)",
        "Threshold: lowest probability called",
        "Euros",
    )
    fig.update_yaxes(tickprefix="€", tickformat=",.0f", zeroline=True, zerolinecolor="#999")
    _threshold_axis(fig, data, marks)
    return fig


def calls_curve(table: pd.DataFrame, marks: Sequence[Mark] = ()) -> go.Figure:
    """Number of calls at every threshold."""
    data = table[table["calls"] > 0]
    fig = go.Figure(
        _main_line(
            data["threshold"],
            data["calls"],
            "Calls",
            "%{y:,.0f} calls",
            colour=COLOURS["calls"],
            steps=True,
        )
    )
    _add_marks(fig, marks)
    _layout(fig, "Calls at each threshold", "Threshold: lowest probability called", "Calls")
    fig.update_yaxes(tickformat=",.0f", rangemode="tozero")
    _threshold_axis(fig, data, marks)
    return fig


def gains_chart(table: pd.DataFrame, marks: Sequence[Mark] = ()) -> go.Figure:
    """Cumulative gains: share of subscribers reached against share of customers called.

    Args:
        marks: vertical lines on the share-called axis (e.g. the current selection).
    """
    fig = go.Figure()
    fig.add_trace(
        _main_line(
            table["share_called"],
            table["gain"],
            "Model ranking (expected)",
            "%{y:.1%} of subscribers",
        )
    )
    if "realised_gain" in table:
        fig.add_trace(
            _main_line(
                table["share_called"],
                table["realised_gain"],
                "Model ranking (realised)",
                "%{y:.1%} of subscribers",
                colour=COLOURS["realised"],
                dash="dot",
            )
        )
    fig.add_trace(_reference_line([0, 1], [0, 1], "Calling at random"))
    _add_marks(fig, marks)
    _layout(
        fig,
        "Cumulative gains: subscribers reached by calling the best-ranked first",
        "Share of customers called",
        "Share of subscribers reached",
    )
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    return fig


def lift_chart(table: pd.DataFrame, marks: Sequence[Mark] = ()) -> go.Figure:
    """Lift: conversion among those called divided by the cohort's conversion."""
    data = table[table["calls"] > 0]
    fig = go.Figure(
        _main_line(data["share_called"], data["lift"], "Lift (expected)", "lift %{y:.2f}")
    )
    fig.add_trace(_reference_line([0, 1], [1, 1], "Calling at random (lift 1)"))
    _add_marks(fig, marks)
    _layout(
        fig,
        "Lift: how many times better than calling at random",
        "Share of customers called",
        "Lift (× the cohort's rate)",
    )
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(rangemode="tozero")
    return fig


def probability_histogram(
    probabilities: np.ndarray | pd.Series, marks: Sequence[Mark] = (), bins: int = 50
) -> go.Figure:
    """How the cohort's probabilities are spread (customers per probability band).

    The bands are counted here (one bar each), so a cohort of any size sends ``bins`` bars to
    the browser, not one value per customer.
    """
    p = np.asarray(probabilities, dtype=float)
    top = max([float(p.max()) if len(p) else 1.0, *(m.value for m in marks)])
    width = max(min(1.0, top * 1.02) / bins, 1e-4)
    edges = np.arange(0.0, min(1.0, top + width) + width, width)
    counts, edges = np.histogram(p, bins=edges)
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=width * 0.95,
            marker_color=COLOURS["model"],
            name="Customers",
            customdata=np.column_stack([edges[:-1], edges[1:]]),
            hovertemplate="%{customdata[0]:.1%} to %{customdata[1]:.1%}: %{y:,} customers"
            "<extra></extra>",
        )
    )
    _add_marks(fig, marks)
    _layout(fig, "Chance of subscribing, across the cohort", "Chance of subscribing", "Customers")
    fig.update_layout(hovermode="closest", bargap=0.05)
    fig.update_xaxes(tickformat=".0%")
    fig.update_yaxes(tickformat=",.0f")
    return fig


def reliability_plot(table: pd.DataFrame, title: str = "Calibration") -> go.Figure:
    """Predicted probability against observed rate per bin; the diagonal is perfect.

    Args:
        table: :func:`termdeposit.decisions.economics.calibration_table`.
    """
    top = float(max(table["mean_probability"].max(), table["observed_rate"].max(), 0.05))
    top = min(1.0, top * 1.1)
    sizes = table["customers"].to_numpy(dtype=float)
    marker_size = 8 + 22 * np.sqrt(sizes / sizes.max()) if len(sizes) else 8
    fig = go.Figure()
    fig.add_trace(_reference_line([0, top], [0, top], "Perfect calibration"))
    fig.add_trace(
        go.Scatter(
            x=table["mean_probability"],
            y=table["observed_rate"],
            name="Model (marker size = customers)",
            mode="lines+markers",
            marker={"size": marker_size, "color": COLOURS["model"]},
            line={"color": COLOURS["model"]},
            customdata=table["customers"],
            hovertemplate=(
                "predicted %{x:.1%}, observed %{y:.1%}<br>%{customdata:,} customers<extra></extra>"
            ),
        )
    )
    _layout(fig, title, "Predicted probability (bin average)", "Observed subscription rate")
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(tickformat=".0%", range=[0, top])
    fig.update_yaxes(tickformat=".0%", range=[0, top])
    return fig


def _thin(x: np.ndarray, y: np.ndarray, most: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """At most ``most`` points of a curve, evenly spread, both ends kept (a lighter chart)."""
    if len(x) <= most:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, most).round().astype(int))
    return x[keep], y[keep]


def roc_plot(
    outcomes: np.ndarray | pd.Series, probabilities: np.ndarray | pd.Series, title: str = "ROC"
) -> go.Figure:
    """ROC curve (true-positive against false-positive rate) with its AUC in the legend."""
    y = np.asarray(outcomes, dtype=int)
    p = np.asarray(probabilities, dtype=float)
    fpr, tpr, _ = roc_curve(y, p)
    auc = float(np.trapezoid(tpr, fpr))
    fpr, tpr = _thin(fpr, tpr)
    fig = go.Figure()
    fig.add_trace(
        _main_line(fpr, tpr, f"Model (AUC {auc:.3f})", "FPR %{x:.1%}, TPR %{y:.1%}<extra></extra>")
    )
    fig.add_trace(_reference_line([0, 1], [0, 1], "Random ranking (AUC 0.5)"))
    _layout(
        fig,
        title,
        "False-positive rate",
        "True-positive rate (subscribers found)",
    )
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    return fig


def precision_recall_plot(
    outcomes: np.ndarray | pd.Series,
    probabilities: np.ndarray | pd.Series,
    title: str = "Precision and recall",
) -> go.Figure:
    """Precision against recall, with the base rate (what random calling achieves)."""
    y = np.asarray(outcomes, dtype=int)
    p = np.asarray(probabilities, dtype=float)
    precision, recall, _ = precision_recall_curve(y, p)
    recall, precision = _thin(recall, precision)
    base_rate = float(y.mean()) if len(y) else 0.0
    fig = go.Figure()
    fig.add_trace(
        _main_line(
            recall, precision, "Model", "recall %{x:.1%}, precision %{y:.1%}<extra></extra>"
        )
    )
    fig.add_trace(
        _reference_line(
            [0, 1], [base_rate, base_rate], f"Calling at random ({base_rate:.1%} subscribe)"
        )
    )
    _layout(
        fig,
        title,
        "Recall: share of subscribers found",
        "Precision: share of calls that subscribe",
    )
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    return fig


# --- explanations and fairness (SHAP contributions, group selection rates) --------------------

#: Contributions that raise the score are red, those that lower it blue (the SHAP convention).
RAISES = "#c0392b"
LOWERS = "#2463b0"
#: Status colours of fairness groups.
GROUP_STATUS_COLOURS = {
    "ok": "#2463b0",
    "below four-fifths": "#c0392b",
    "too small to judge": "#b3b3b3",
}


def _contribution_axis(fig: go.Figure, scale: str, axis: str = "x") -> None:
    fmt = ".1%" if scale == "probability" else ".2f"
    if axis == "x":
        fig.update_xaxes(tickformat=fmt, zeroline=True, zerolinecolor="#999999")
    else:
        fig.update_yaxes(tickformat=fmt, zeroline=True, zerolinecolor="#999999")


def _scale_words(scale: str) -> str:
    return "probability points" if scale == "probability" else "log-odds"


def shap_importance_bar(table: pd.DataFrame, scale: str, top: int = 15) -> go.Figure:
    """Mean absolute contribution per input, largest at the top.

    Args:
        table: :func:`termdeposit.insight.explain.importance` (``label``, ``mean_abs``).
        scale: ``log-odds`` or ``probability`` (what contributions are measured in).
        top: how many inputs to show.
    """
    shown = table.head(top).iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=shown["mean_abs"],
            y=shown["label"],
            orientation="h",
            marker_color=COLOURS["model"],
            hovertemplate="%{y}: %{x:.4f} on average<extra></extra>",
        )
    )
    _layout(fig, "Which inputs move the score most", f"Average effect ({_scale_words(scale)})", "")
    fig.update_layout(
        hovermode="closest", height=max(320, 28 * len(shown) + 140), showlegend=False
    )
    fig.update_yaxes(automargin=True)
    _contribution_axis(fig, scale)
    return fig


def shap_beeswarm(
    values: pd.DataFrame,
    levels: pd.DataFrame,
    order: Sequence[str],
    labels: dict[str, str],
    scale: str,
    top: int = 12,
    max_points: int = 2_000,
    seed: int = 0,
) -> go.Figure:
    """One dot per customer and input: its contribution, coloured by the input's value.

    Args:
        values: contributions (one column per input).
        levels: each numeric value's share of training customers below it (0 low .. 1 high;
            NaN for categories, drawn grey).
        order: inputs, most important first.
        labels: readable input names.
        scale: ``log-odds`` or ``probability``.
        top: how many inputs to show.
        max_points: dots drawn per input at most (a fixed random subset beyond that).
    """
    rows = np.arange(len(values))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_points, replace=False))
    shown = list(order)[:top]
    jitter = np.random.default_rng(seed + 1).uniform(-0.3, 0.3, len(rows))
    fig = go.Figure()
    colour_bar_drawn = False
    for position, feature in enumerate(reversed(shown)):
        x = values[feature].to_numpy()[rows]
        level = levels[feature].to_numpy()[rows]
        y = position + jitter
        numeric = ~np.isnan(level)
        label = labels.get(feature, feature)
        if numeric.any():
            fig.add_trace(
                go.Scattergl(
                    x=x[numeric],
                    y=y[numeric],
                    mode="markers",
                    name=label,
                    showlegend=False,
                    marker={
                        "size": 5,
                        "color": level[numeric],
                        "cmin": 0,
                        "cmax": 1,
                        "colorscale": [[0, LOWERS], [0.5, "#d9d9d9"], [1, RAISES]],
                        "showscale": not colour_bar_drawn,
                        "colorbar": {
                            "title": {"text": "Value"},
                            "tickvals": [0, 1],
                            "ticktext": ["low", "high"],
                            "len": 0.5,
                        },
                    },
                    hovertemplate=f"{label}: %{{x:.4f}}<extra></extra>",
                )
            )
            colour_bar_drawn = True
        if (~numeric).any():
            fig.add_trace(
                go.Scattergl(
                    x=x[~numeric],
                    y=y[~numeric],
                    mode="markers",
                    name=label,
                    showlegend=False,
                    marker={"size": 5, "color": "#7f7f7f", "opacity": 0.6},
                    hovertemplate=f"{label} (category): %{{x:.4f}}<extra></extra>",
                )
            )
    _layout(fig, "Every customer's contributions", f"Effect ({_scale_words(scale)})", "")
    fig.update_layout(hovermode="closest", height=max(360, 34 * len(shown) + 160))
    fig.update_yaxes(
        tickvals=list(range(len(shown))),
        ticktext=[labels.get(f, f) for f in reversed(shown)],
        automargin=True,
        showgrid=False,
    )
    _contribution_axis(fig, scale)
    return fig


def shap_dependence(
    data: pd.DataFrame, label: str, scale: str, max_points: int = 2_000, seed: int = 0
) -> go.Figure:
    """How one input's value drives its contribution (a dot per customer).

    Args:
        data: :func:`termdeposit.insight.explain.dependence_data` (``value``, ``contribution``,
            ``categorical``).
        label: the input's readable name.
        scale: ``log-odds`` or ``probability``.
        max_points: dots drawn at most (a fixed random subset beyond that; the boxes and the
            counts use every customer).
    """
    categorical = bool(data["categorical"].iloc[0]) if len(data) else False
    fig = go.Figure()
    dots = data
    if len(data) > max_points:
        dots = data.sample(max_points, random_state=seed)
    if categorical:
        order = data.groupby("value")["contribution"].median().sort_values(ascending=False).index
        counts = data["value"].value_counts()
        for value in order:
            part = dots.loc[dots["value"] == value, "contribution"]
            fig.add_trace(
                go.Box(
                    y=part,
                    name=f"{value} ({int(counts[value]):,})",
                    boxpoints="all",
                    jitter=0.4,
                    pointpos=0,
                    marker={"size": 4, "color": COLOURS["model"], "opacity": 0.5},
                    line={"color": "#555555"},
                    showlegend=False,
                    hovertemplate=f"{value}: %{{y:.4f}}<extra></extra>",
                )
            )
        x_title = f"{label} (customers in brackets)"
    else:
        for raises, colour in ((True, RAISES), (False, LOWERS)):
            part = dots.loc[(dots["contribution"] >= 0) == raises]
            fig.add_trace(
                go.Scattergl(
                    x=part["value"].to_numpy(),
                    y=part["contribution"].to_numpy(),
                    mode="markers",
                    marker={"size": 6, "color": colour, "opacity": 0.6},
                    showlegend=False,
                    hovertemplate=f"{label} = %{{x}}: %{{y:.4f}}<extra></extra>",
                )
            )
        x_title = label
    _layout(
        fig,
        f"How {label.lower()} changes the score",
        x_title,
        f"Contribution ({_scale_words(scale)})",
    )
    fig.update_layout(hovermode="closest")
    _contribution_axis(fig, scale, axis="y")
    return fig


def shap_waterfall(
    table: pd.DataFrame,
    base_value: float,
    output: float,
    scale: str,
    top: int = 10,
    title: str = "From the average customer to this customer",
) -> go.Figure:
    """A waterfall from the base value through each input's contribution to the output.

    Args:
        table: :func:`termdeposit.insight.explain.contributions` (largest effect first; uses
            ``label``, ``value_text``, ``contribution``).
        base_value: the model's average output (where the bars start).
        output: this customer's model output (where they end).
        scale: ``log-odds`` or ``probability``.
        top: inputs shown one by one; the rest are summed into one bar.
    """
    shown = table.head(top)
    rest = table.iloc[top:]
    names = [f"{r.label} = {r.value_text}" for r in shown.itertuples()]
    steps = list(shown["contribution"].astype(float))
    if len(rest):
        names.append(f"{len(rest)} other inputs")
        steps.append(float(rest["contribution"].sum()))
    fmt = "+.1%" if scale == "probability" else "+.3f"
    end_fmt = ".1%" if scale == "probability" else ".3f"
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=["Average customer", *names, "This customer"],
            x=[base_value, *steps, output],
            measure=["absolute", *(["relative"] * len(steps)), "total"],
            base=0,
            text=[
                format(base_value, end_fmt),
                *[format(s, fmt) for s in steps],
                format(output, end_fmt),
            ],
            textposition="outside",
            increasing={"marker": {"color": RAISES}},
            decreasing={"marker": {"color": LOWERS}},
            totals={"marker": {"color": "#555555"}},
            connector={"line": {"color": "#bbbbbb"}},
            hovertemplate="%{y}: %{text}<extra></extra>",
        )
    )
    _layout(fig, title, f"Model output ({_scale_words(scale)})", "")
    fig.update_layout(
        hovermode="closest", showlegend=False, height=max(360, 32 * (len(names) + 2) + 140)
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    low = min(0.0, base_value, output, *np.cumsum([base_value, *steps]))
    high = max(base_value, output, *np.cumsum([base_value, *steps]))
    pad = 0.2 * (high - low or 1.0)
    fig.update_xaxes(range=[low - pad if low < 0 else 0, high + pad])
    _contribution_axis(fig, scale)
    return fig


def what_if_bars(table: pd.DataFrame, scale: str, top: int = 10) -> go.Figure:
    """Contributions before and after a what-if change, for the inputs that matter most.

    Args:
        table: :func:`termdeposit.insight.explain.what_if` comparison (``label``, ``before``,
            ``after``, ``contribution_before``, ``contribution_after``).
    """
    size = table[["contribution_before", "contribution_after"]].abs().max(axis=1)
    changed = table["before"] != table["after"]
    shown = table.loc[changed | size.isin(size.nlargest(top))].copy()
    shown = shown.loc[size.loc[shown.index].sort_values().index]
    fig = go.Figure()
    for column, name, colour in (
        ("contribution_before", "Before", "#9e9e9e"),
        ("contribution_after", "After the change", COLOURS["model"]),
    ):
        value_column = "before" if column == "contribution_before" else "after"
        fig.add_trace(
            go.Bar(
                x=shown[column],
                y=shown["label"],
                orientation="h",
                name=name,
                marker_color=colour,
                customdata=shown[value_column],
                hovertemplate="%{y} = %{customdata}: %{x:.4f}<extra>" + name + "</extra>",
            )
        )
    _layout(fig, "Contributions before and after the change", _scale_words(scale), "")
    fig.update_layout(barmode="group", hovermode="closest", height=max(360, 40 * len(shown) + 160))
    fig.update_yaxes(automargin=True)
    _contribution_axis(fig, scale)
    return fig


def group_selection_chart(
    table: pd.DataFrame, label: str, four_fifths: float = 0.8, best: float | None = None
) -> go.Figure:
    """Share called per group, with 95% intervals and the four-fifths line.

    Args:
        table: a fairness group table (``size``, ``selection_rate``, ``status``, optional
            ``selection_low`` / ``selection_high``).
        label: the grouping's readable name.
        four_fifths: the share of the best rate below which a group is flagged.
        best: the best judged group's selection rate (draws the four-fifths line).
    """
    fig = go.Figure()
    has_interval = "selection_low" in table and table["selection_low"].notna().any()
    for status, colour in GROUP_STATUS_COLOURS.items():
        part = table.loc[table["status"] == status]
        if part.empty:
            continue
        error = None
        if has_interval:
            error = {
                "type": "data",
                "symmetric": False,
                "array": (part["selection_high"] - part["selection_rate"]).fillna(0),
                "arrayminus": (part["selection_rate"] - part["selection_low"]).fillna(0),
                "color": "#333333",
            }
        fig.add_trace(
            go.Bar(
                x=[str(g) for g in part.index],
                y=part["selection_rate"],
                name={"ok": "Judged: fine"}.get(status, status.capitalize()),
                marker_color=colour,
                error_y=error,
                customdata=part["size"],
                hovertemplate="%{x}: %{y:.1%} called of %{customdata:,}<extra></extra>",
            )
        )
    if best is not None and best > 0:
        fig.add_hline(y=four_fifths * best, line_dash="dash", line_color="#c0392b")
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=f"Four fifths of the best rate ({four_fifths * best:.1%})",
                line={"color": "#c0392b", "dash": "dash"},
            )
        )
    _layout(fig, f"Share of each group called, by {label.lower()}", label, "Share called")
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(categoryorder="array", categoryarray=[str(g) for g in table.index])
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def policy_selection_chart(rates: pd.DataFrame, label: str) -> go.Figure:
    """Share called per group under each calling policy (one bar colour per policy).

    Args:
        rates: index = groups, one column per policy, values = share called.
        label: the grouping's readable name.
    """
    palette = ["#555555", "#2463b0", "#1b7f3b", "#e67e22"]
    fig = go.Figure()
    for i, policy in enumerate(rates.columns):
        fig.add_trace(
            go.Bar(
                x=[str(g) for g in rates.index],
                y=rates[policy],
                name=str(policy),
                marker_color=palette[i % len(palette)],
                hovertemplate="%{x}: %{y:.1%} called<extra>" + str(policy) + "</extra>",
            )
        )
    _layout(
        fig, f"Share called per group under each policy, by {label.lower()}", label, "Share called"
    )
    fig.update_layout(barmode="group", hovermode="closest")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


# -- operations: backtest, weekly monitoring, drift, A/B (appended by the operations work) --


def _week_axis(fig: go.Figure, labels: pd.Series, most: int = 12) -> None:
    """Show at most ``most`` week labels, flat: a long run of weeks stays readable."""
    values = list(pd.unique(labels.astype(str)))
    step = max(1, int(np.ceil(len(values) / most)))
    fig.update_xaxes(
        type="category",
        tickmode="array",
        tickvals=values[::step],
        ticktext=values[::step],
        tickangle=0,
    )


def cumulative_profit_chart(weeks: pd.DataFrame, title: str = "Cumulative profit") -> go.Figure:
    """Cumulative profit of the model's calls and of calling everyone, week by week.

    Args:
        weeks: a backtest's per-week table (``label``, ``cumulative_model``,
            ``cumulative_call_all``).
    """
    fig = go.Figure()
    for column, name, colour in (
        ("cumulative_model", "Model", COLOURS["model"]),
        ("cumulative_call_all", "Call everyone", COLOURS["baseline"]),
    ):
        fig.add_trace(
            go.Scatter(
                x=weeks["label"],
                y=weeks[column],
                name=name,
                mode="lines",
                line={"color": colour, "width": 2.5},
                hovertemplate="%{y:,.0f}<extra>" + name + "</extra>",
            )
        )
    _layout(fig, title, "Week", "Cumulative profit")
    fig.update_yaxes(tickprefix="€", tickformat=",.0f")
    _week_axis(fig, weeks["label"])
    return fig


def weekly_profit_chart(weekly: pd.DataFrame, title: str = "Profit per week") -> go.Figure:
    """Expected profit (before outcomes) beside the realised profit (after), per cohort."""
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=weekly["week_label"],
            y=weekly["expected_profit"],
            name="Expected (from the probabilities)",
            marker_color=COLOURS["model"],
            hovertemplate="%{y:,.0f}<extra>expected</extra>",
        )
    )
    if "profit" in weekly:
        fig.add_trace(
            go.Bar(
                x=weekly["week_label"],
                y=weekly["profit"],
                name="Realised (from the outcomes)",
                marker_color=COLOURS["realised"],
                hovertemplate="%{y:,.0f}<extra>realised</extra>",
            )
        )
    _layout(fig, title, "Cohort (week)", "Profit")
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickprefix="€", tickformat=",.0f")
    _week_axis(fig, weekly["week_label"])
    return fig


def weekly_rate_chart(
    weekly: pd.DataFrame, title: str = "Conversion among the called"
) -> go.Figure:
    """Expected against realised conversion among the called, and the trailing mean."""
    fig = go.Figure()
    series = [
        ("expected_conversion", "Expected", COLOURS["model"], "dot"),
        ("conversion", "Realised", COLOURS["realised"], "solid"),
        ("trailing_conversion", "Trailing 4-week mean", COLOURS["baseline"], "dash"),
    ]
    for column, name, colour, dash in series:
        if column in weekly:
            fig.add_trace(
                go.Scatter(
                    x=weekly["week_label"],
                    y=weekly[column],
                    name=name,
                    mode="lines+markers",
                    line={"color": colour, "dash": dash, "width": 2},
                    hovertemplate="%{y:.1%}<extra>" + name + "</extra>",
                )
            )
    _layout(fig, title, "Cohort (week)", "Conversion")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    _week_axis(fig, weekly["week_label"])
    return fig


PSI_COLOURS = {"stable": "#1b7f3b", "moderate": "#e6a700", "significant": "#c0392b"}


def psi_chart(table: pd.DataFrame, title: str = "Drift of the customer inputs (PSI)") -> go.Figure:
    """PSI per customer input, coloured by band, with the 0.1 and 0.25 band lines."""
    shown = table[table["kind"] == "customer"].sort_values("psi")
    fig = go.Figure(
        go.Bar(
            x=shown["psi"],
            y=[feature_label(name) for name in shown["input"]],
            orientation="h",
            marker_color=[PSI_COLOURS.get(b, COLOURS["baseline"]) for b in shown["band"]],
            hovertemplate="%{y}: PSI %{x:.3f}<extra></extra>",
            showlegend=False,
        )
    )
    for value, label in ((0.1, "0.1 moderate"), (0.25, "0.25 significant")):
        fig.add_vline(
            x=value,
            line_dash="dot",
            line_color=COLOURS["break-even"],
            annotation_text=label,
            annotation_position="top",
        )
    _layout(fig, title, "PSI (population stability index)", "")
    fig.update_layout(hovermode="closest", height=max(320, 28 * len(shown) + 120))
    return fig


def ab_groups_chart(
    groups: pd.DataFrame, title: str = "Profit per customer by group"
) -> go.Figure:
    """Profit per customer of the model group and the business-as-usual group."""
    names = {"model": "Model's choice", "holdout": "Business as usual (random)"}
    fig = go.Figure(
        go.Bar(
            x=[names.get(g, g) for g in groups["group"]],
            y=groups["profit_per_customer"],
            marker_color=[
                COLOURS["model"] if g == "model" else COLOURS["baseline"] for g in groups["group"]
            ],
            text=[f"{v:,.2f}" for v in groups["profit_per_customer"]],
            textposition="outside",
            hovertemplate="%{x}: %{y:,.2f} per customer<extra></extra>",
            showlegend=False,
        )
    )
    _layout(fig, title, "", "Profit per customer of the group")
    fig.update_layout(hovermode="closest")
    return fig


def ice_plot(data: Dependence, label: str, value_words: Sequence[str] | None = None) -> go.Figure:
    """Partial dependence (thick) over individual curves (thin) and the chosen customer's curve.

    Args:
        data: a :class:`termdeposit.insight.dependence.Dependence`.
        label: the input's readable name.
        value_words: readable names of the grid values (categories), same order.
    """
    grid = list(value_words) if value_words is not None else list(data.grid)
    fig = go.Figure()
    for i, curve in enumerate(data.individual):
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=curve,
                mode="lines",
                line={"color": "rgba(36, 99, 176, 0.18)", "width": 1},
                name="Other customers (one line each)",
                showlegend=i == 0,
                legendgroup="ice",
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=grid,
            y=data.average,
            mode="lines+markers",
            line={"color": COLOURS["model"], "width": 3.5},
            name="Average effect (partial dependence)",
            hovertemplate="%{x}: %{y:.1%}<extra>average</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=grid,
            y=data.customer,
            mode="lines+markers",
            line={"color": COLOURS["realised"], "width": 3, "dash": "dash"},
            name="This customer",
            hovertemplate="%{x}: %{y:.1%}<extra>this customer</extra>",
        )
    )
    _layout(fig, f"How {label.lower()} moves the chance of subscribing", label, "Chance")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    if data.categorical:
        fig.update_xaxes(type="category")
    return fig
