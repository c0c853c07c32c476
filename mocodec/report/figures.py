"""The curves of a report page as plotly figures, and plotly.js to inline: the one module that imports plotly.

A figure is one panel per metric (:class:`Panel`), one trace per curve (:class:`Series`),
the rate on every x axis. Hovering a point shows its curve, its rate point (quality, λ),
its bpp and its value; a curve keeps its colour and its legend entry in every panel, so
clicking the entry hides or shows it everywhere. Plotly renders text as a small subset of
HTML (``<b>``, ``<br>``, entities), so every name and label passed to it is escaped here.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mocodec.errors import ConfigError

RATE_LABEL = "rate [bpp]"


@dataclass(frozen=True)
class Point:
    """One rate point of a curve: its rate and value, a label (``quality 30``) and optional interval ends."""

    x: float
    y: float
    label: str
    x_interval: tuple[float, float] | None = None
    y_interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class Series:
    """One curve in one panel; ``dashed``: a baseline (an experiment's classic codecs)."""

    name: str
    points: Sequence[Point]
    dashed: bool = False


@dataclass(frozen=True)
class Panel:
    """One metric against the rate: axis label (with its direction arrow), title and the curves that have values."""

    metric: str
    ylabel: str
    title: str = ""
    series: Sequence[Series] = field(default_factory=tuple)


def import_plotly():
    """plotly's ``graph_objects`` and ``subplots`` (imported on first use: a command that draws nothing never pays for it)."""
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise ConfigError("the report page draws its curves with plotly; install it: pip install 'plotly>=6'") from None
    return go, make_subplots


def plotly_js() -> str:
    """plotly.js, minified, to inline in a page (so the page draws offline); about 4.8 MB."""
    import_plotly()
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _errors(points: Sequence[Point], axis: str) -> dict[str, Any] | None:
    """Asymmetric error bars from interval ends (none where a point has no interval)."""
    ends = [getattr(p, f"{axis}_interval") for p in points]
    if not any(e is not None for e in ends):
        return None
    value = [getattr(p, axis) for p in points]
    plus = [e[1] - v if e is not None and _finite(e[1]) else 0.0 for v, e in zip(value, ends)]
    minus = [v - e[0] if e is not None and _finite(e[0]) else 0.0 for v, e in zip(value, ends)]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 1, "width": 3}


def rate_figure(panels: Sequence[Panel], colours: Mapping[str, str], columns: int | None = None) -> dict[str, Any]:
    """A plotly figure (``{"data", "layout"}``, JSON-ready) of ``panels``; ``colours``: curve name -> CSS colour.

    ``columns``: panels per row (default 3, or 2 for 4 panels: two full rows).
    """
    if not panels:
        raise ConfigError("no metric has values to plot")
    go, make_subplots = import_plotly()
    columns = max(1, min(columns or (2 if len(panels) == 4 else 3), len(panels)))
    rows = math.ceil(len(panels) / columns)
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[html.escape(p.title) for p in panels],
        horizontal_spacing=0.22 / columns,
        vertical_spacing=0.3 / rows if rows > 1 else 0.0,
    )
    in_legend: set[str] = set()
    for i, panel in enumerate(panels):
        row, col = divmod(i, columns)
        for series in panel.series:
            points = [p for p in series.points if _finite(p.x) and _finite(p.y)]
            if not points:
                continue
            name = html.escape(series.name)
            trace = go.Scatter(
                x=[p.x for p in points],
                y=[p.y for p in points],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=series.name not in in_legend,
                line={"color": colours.get(series.name), "dash": "dash" if series.dashed else "solid", "width": 2},
                marker={"size": 7},
                customdata=[[name, html.escape(p.label)] for p in points],
                hovertemplate=f"<b>%{{customdata[0]}}</b><br>%{{customdata[1]}}<br>bpp %{{x:.4f}}<br>"
                f"{html.escape(panel.ylabel)}: %{{y:.4g}}<extra></extra>",
                error_x=_errors(points, "x"),
                error_y=_errors(points, "y"),
            )
            in_legend.add(series.name)
            fig.add_trace(trace, row=row + 1, col=col + 1)
        fig.update_xaxes(title_text=RATE_LABEL, row=row + 1, col=col + 1)
        fig.update_yaxes(title_text=html.escape(panel.ylabel), row=row + 1, col=col + 1)
    fig.update_layout(
        template="plotly_white",
        height=330 * rows + 90,
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        hovermode="closest",
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "top", "yref": "container", "title": {"text": "curves: "}},
        font={"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12},
    )
    fig.update_annotations(font_size=12)
    return json.loads(fig.to_json())


__all__ = ["Point", "Series", "Panel", "RATE_LABEL", "import_plotly", "plotly_js", "rate_figure"]
