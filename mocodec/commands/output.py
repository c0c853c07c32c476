"""What commands print: a results file's curve as a table on the terminal."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from mocodec.utils.tables import to_text


def print_results_table(results: Mapping[str, Any], columns: Sequence[str]) -> None:
    """One line per rate point of a curve (``results["results"]``, CompressAI's schema), the ``columns`` it has."""
    res = results["results"]
    names = [c for c in columns if c in res]
    rows = [{c: res[c][i] for c in names} for i in range(len(res["quality"]))]
    print(to_text(rows, names), end="")
