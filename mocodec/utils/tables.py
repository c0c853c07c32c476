"""The one table writer: rows of dicts as CSV, Markdown or aligned plain text.

Every table mocodec prints or writes (results on the terminal, BD tables, IQA tables,
manifests) goes through these three functions, so a float looks the same everywhere
and a column order is stated once.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]


def columns_of(rows: Sequence[Row], columns: Sequence[str] | None = None) -> list[str]:
    """``columns``, or every key of ``rows`` in order of first appearance."""
    return list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))


def cell(value: Any, digits: int = 4) -> str:
    """A value as a table shows it: floats with ``digits`` significant digits, None as empty."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def to_csv(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """CSV with a header; values written as they are (full precision), None as empty."""
    names = columns_of(rows, columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in names])
    return buffer.getvalue()


def to_markdown(rows: Sequence[Row], columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """A Markdown table; cells that are already strings are written as they are."""
    names = columns_of(rows, columns)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(row.get(c), digits) for c in names) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_text(rows: Sequence[Row], columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """Aligned columns for a terminal, the header first: numbers to the right, text to the left."""
    names = columns_of(rows, columns)
    cells = [[cell(row.get(c), digits) for c in names] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [all(_numeric(row.get(c)) for row in rows) for c in names]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(names), *(line(r) for r in cells)]) + "\n"


def _numeric(value: Any) -> bool:
    """Whether a cell holds a number (or a number already formatted, or nothing): such columns align right."""
    if value is None or isinstance(value, (int, float)):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True
