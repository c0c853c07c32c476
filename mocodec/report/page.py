"""The HTML of a report page: one self-contained file, every user string escaped.

The page is a package template (``assets/page.html``) with its style (``report.css``) and
script (``report.js``) inlined, plotly.js inlined once, and the data the script needs
(figures, curve numbers, BD rows, the comparison's images) as JSON in a
``<script type="application/json">`` element, in which ``<``, ``>`` and ``&`` are written as
JSON escapes so that no string in it can close the element. Everything else a file or a
user names (file names, curve names, image ids, class names, notes) reaches the HTML
through :func:`html.escape`, and the script writes strings with ``textContent`` only.
A Content-Security-Policy allows inline code and ``data:`` images and nothing else, so the
page cannot reach the network even by mistake.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from mocodec.evaluation.results import json_safe
from mocodec.files import atomic_write_text

DATA_ID = "mocodec-report-data"
VERDICT_CLASSES = {"better": "better", "worse": "worse", "inside the noise": "noise", "not comparable": "incomparable"}


@dataclass(frozen=True)
class BDTable:
    """BD rows of one section against ``anchor``: ``{"curve", "metric", "label", "points", "bd_rate": [est, low, high],
    "bd_metric": [...], "verdict", "note", "words"}``; ``how``: how the intervals were made, in words."""

    anchor: str
    rows: Sequence[Mapping[str, Any]]
    coverage: float
    how: str


@dataclass(frozen=True)
class Section:
    """One results document (or one experiment task) on the page."""

    key: str  # element id prefix: letters, digits and dashes only
    heading: str
    facts: Sequence[str] = ()
    figure: Mapping[str, Any] | None = None
    numbers: Mapping[str, Any] = field(default_factory=dict)  # the curves' per-point numbers, as the results file holds them
    bd: BDTable | None = None
    bd_note: str = ""  # why there is no BD table
    comparison: Mapping[str, Any] | None = None
    comparison_note: str = ""  # why there is no comparison


def asset(name: str) -> str:
    """A file of the page's template (``mocodec/report/assets/``)."""
    return resources.files("mocodec.report").joinpath("assets", name).read_text(encoding="utf-8")


def json_for_html(obj: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` (written as ``\\u003c``...), no nan/inf."""
    text = json.dumps(json_safe(obj), separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def inline_script(source: str) -> str:
    """Script source to inline: a ``</script`` inside it (in a string) would end the element, so it is escaped."""
    return source.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def _fmt(value: Any, digits: int) -> str:
    return f"{value:+.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _with_interval(values: Sequence[Any], digits: int) -> str:
    est, low, high = (list(values) + [None, None, None])[:3]
    return f"{_fmt(est, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def _verdict_class(verdict: str) -> str:
    return next((cls for start, cls in VERDICT_CLASSES.items() if verdict.startswith(start)), "other")


def bd_html(table: BDTable, key: str) -> str:
    """The BD table of a section, with its plain-words reading below."""
    e = html.escape
    level = f"{table.coverage:.0%}"
    head = ["curve", "metric", "points", f"BD-rate [%] ({level} interval)", f"BD-metric ({level} interval)", "verdict", "note"]
    rows = []
    for r in table.rows:
        digits = 4 if abs((r["bd_metric"] or [0])[0] or 0) < 0.1 else 3
        cells = [
            f"<td>{e(str(r['curve']))}</td>",
            f"<td>{e(str(r.get('label') or r['metric']))}</td>",
            f"<td class=num>{e(str(r['points']))}</td>",
            f"<td class=num>{e(_with_interval(r['bd_rate'], 2))}</td>",
            f"<td class=num>{e(_with_interval(r['bd_metric'], digits))}</td>",
            f"<td class='verdict {_verdict_class(r['verdict'])}' title='{e(r.get('words', ''), quote=True)}'>{e(r['verdict'])}</td>",
            f"<td class=note>{e(r['note'] or '')}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    words = "".join(
        f"<li>{e(r['curve'])} on {e(str(r.get('label') or r['metric']))}: {e(r['words'])}</li>" for r in table.rows if r.get("words")
    )
    return (
        f"<p class=caption>BD against <b>{e(table.anchor)}</b> (BD-rate &lt; 0: fewer bits at equal metric); {e(table.how)}.</p>"
        f"<div class=scroll><table class=bd id='{key}-bd'><thead><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        + (f"<details class=words><summary>each row in plain words</summary><ul class=words>{words}</ul></details>" if words else "")
    )


def section_html(section: Section) -> str:
    e = html.escape
    key = section.key
    parts = [f"<section class=results id='{key}'>", f"<h2>{e(section.heading)}</h2>"]
    if section.facts:
        parts.append("<ul class=facts>" + "".join(f"<li>{e(f)}</li>" for f in section.facts) + "</ul>")
    if section.figure is not None:
        parts += [
            "<h3>Curves</h3>",
            "<p class=caption>Hover a point for its codec, quality, bpp and value; click a curve in the legend to hide or show it in every panel.</p>",
            f"<div class=figure id='{key}-figure' data-section='{key}'></div>",
        ]
    parts.append("<h3>BD-rate and BD-metric</h3>")
    parts.append(bd_html(section.bd, key) if section.bd is not None else f"<p class=note>{e(section.bd_note or 'no BD table')}</p>")
    if section.comparison is not None or section.comparison_note:
        parts.append("<h3>Decoded images at matched rates</h3>")
    if section.comparison is not None:
        parts += [
            "<p class=caption>Centre crops at native resolution. Pick an image, move the rate slider (each codec shows its point "
            "nearest the anchor's rate), zoom with the buttons or the mouse wheel and drag to pan: every panel follows.</p>",
            f"<div class=comparison id='{key}-comparison' data-section='{key}'></div>",
        ]
    elif section.comparison_note:
        parts.append(f"<p class=note>{e(section.comparison_note)}</p>")
    parts.append("</section>")
    return "\n".join(parts)


def render_page(
    title: str,
    sections: Sequence[Section],
    colours: Mapping[str, str],
    plotly: str,
    notes: Sequence[str] = (),
) -> str:
    """The whole page as one HTML string (``plotly``: plotly.js source to inline)."""
    e = html.escape
    data = {
        "title": title,
        "colours": dict(colours),
        "sections": [
            {
                "key": s.key,
                "heading": s.heading,
                "figure": s.figure,
                "numbers": s.numbers,
                "bd": None if s.bd is None else {"anchor": s.bd.anchor, "coverage": s.bd.coverage, "rows": list(s.bd.rows)},
                "comparison": s.comparison,
            }
            for s in sections
        ],
    }
    nav = "".join(f"<li><a href='#{s.key}'>{e(s.heading)}</a></li>" for s in sections)
    return Template(asset("page.html")).substitute(
        title=e(title),
        style=asset("report.css"),
        notes="".join(f"<p class=meta>{e(n)}</p>" for n in notes),
        nav=f"<nav><ul>{nav}</ul></nav>" if len(sections) > 1 else "",
        sections="\n".join(section_html(s) for s in sections),
        data_id=DATA_ID,
        data=json_for_html(data),
        plotly=inline_script(plotly),
        script=inline_script(asset("report.js")),
    )


def write_page(path: str | Path, page: str) -> Path:
    """Write the page atomically; its path."""
    path = Path(path)
    atomic_write_text(path, page)
    return path


__all__ = ["BDTable", "Section", "DATA_ID", "render_page", "write_page", "json_for_html", "inline_script", "bd_html", "section_html"]
