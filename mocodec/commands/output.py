"""What sweep commands print: every curve of a results document as a table, and the images that were skipped."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from mocodec.utils.tables import to_text


def print_entries(doc: Mapping[str, Any]) -> None:
    """One table per curve (one line per rate point): rate, fidelity, the task's metrics that have values, coding times."""
    fidelity = list(doc["fidelity"])
    task = [m for m in doc["metrics"] if m not in fidelity and any(v is not None for e in doc["entries"] for v in e["results"].get(m, []))]
    shown = ["point", "quality", "bpp", *fidelity, *task, "encoding_time", "decoding_time"]
    for entry in doc["entries"]:
        print(f"== {entry['name']}")
        res = entry["results"]
        columns = [c for c in shown if c in res]
        print(to_text([{c: res[c][i] for c in columns} for i in range(len(res.get("point", [])))], columns), end="")
    if doc["skipped"]:
        print(f"skipped {len(doc['skipped'])} unreadable image(s):", file=sys.stderr)
        for s in doc["skipped"]:
            print(f"  {s['id']}: {s['reason']}", file=sys.stderr)
