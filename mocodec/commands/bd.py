"""``mocodec bd``: BD-rate and BD-metric of rate curves (mocodec results or CompressAI-schema files) against an anchor curve."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

NAME = "bd"
HELP = "BD-rate and BD-metric of rate curves against an anchor curve"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="+",
        help="mocodec results files (eval-rd, eval-task, any version) and/or CompressAI-schema JSON files (published curves)",
    )
    parser.add_argument("--metric", default="agreement", help="metric to compare at equal rate / rate at equal metric (default: agreement)")
    parser.add_argument("--anchor", default=None, help="curve name to compare against (default: the first)")
    parser.add_argument("--method", default="pchip", help="interpolation: pchip (default), akima or cubic")
    parser.add_argument(
        "--lower-is-better", action="store_true", help="the metric improves downwards (mocodec results files say so themselves)"
    )
    parser.add_argument(
        "--min-points", type=int, default=None, help="points each curve needs (default 4: fewer makes a curve of straight segments)"
    )
    parser.add_argument("--plot", default=None, help="also draw the curves compared (.png/.pdf/.svg); published curves dashed")
    parser.add_argument("--max-bpp", type=float, default=None, help="with --plot: clip the rate axis at this bpp")


def run(args: argparse.Namespace) -> None:
    from mocodec.evaluation.bd import load_curves

    entries, higher = load_curves(args.results, args.metric)
    print_bd_table(
        entries,
        args.anchor,
        args.metric,
        args.method,
        False if args.lower_is_better else (higher if higher is not None else True),
        args.min_points,
    )
    if args.plot:
        from mocodec.evaluation.plots import plot_curves

        print(f"figure: {plot_curves(entries, args.metric, args.plot, max_rate=args.max_bpp)}")


def print_bd_table(
    entries: Sequence[dict[str, Any]], anchor: str | None, metric: str, method: str, higher_is_better: bool, min_points: int | None = None
) -> None:
    """Print every curve's BD-rate and BD-metric against ``anchor`` (default: the first curve); also ``eval-task``'s table."""
    # Imported here, as every command's library: building the parser stays cheap (see mocodec.commands).
    from mocodec.evaluation.bd import MIN_POINTS, bd_table, format_table

    rows = bd_table(entries, anchor, metric, method, higher_is_better, min_points=min_points or MIN_POINTS)
    print(format_table(rows, anchor or entries[0]["name"], metric, method))
