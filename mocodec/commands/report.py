"""``mocodec report``: one self-contained HTML page of sweep results: interactive curves, BD tables, decoded images side by side."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "an HTML page of results files: interactive curves, BD tables with intervals, decoded images side by side"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="results files of eval-rd / eval-task (each with the crops folder its sweep kept)")
    parser.add_argument("--out", required=True, help="the page to write (.html); one file, it opens offline")
    parser.add_argument("--anchor", default=None, help="curve the BD tables and the matched rates follow (default: each file's first)")
    parser.add_argument(
        "--images", default=None, metavar="ID[,ID...]", help="images to compare, in order (default: those where the curves disagree most)"
    )
    parser.add_argument("--num-images", type=int, default=8, help="images to compare per file when --images is not given (default 8)")
    parser.add_argument(
        "--bd-metrics", default=None, metavar="LIST", help="metrics of the BD tables (default: every metric the curves show)"
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over images for the BD intervals (default 1000)")
    parser.add_argument("--interval", type=float, default=0.95, help="coverage of the BD intervals (default 0.95)")
    parser.add_argument("--no-images", action="store_true", help="curves and tables only (results whose sweep kept no decoded crops)")
    parser.add_argument("--title", default=None, help="the page's title")
    parser.add_argument(
        "--screenshot",
        default=None,
        metavar="PNG",
        help="also open the page in headless Chromium (apt-get install chromium chromium-driver), check it and save a screenshot",
    )
    parser.add_argument("--force", action="store_true", help="overwrite --out and --screenshot")


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def run(args: argparse.Namespace) -> None:
    from mocodec.files import check_writable

    out = check_writable(args.out, args.force)  # before the library's imports: a refusal is immediate
    shot = check_writable(args.screenshot, args.force) if args.screenshot else None
    from mocodec.report.build import write_report

    page = write_report(
        args.results,
        out,
        title=args.title,
        anchor=args.anchor,
        images=_names(args.images),
        num_images=args.num_images,
        bd_metrics=_names(args.bd_metrics),
        bootstrap=args.bootstrap,
        coverage=args.interval,
        with_images=not args.no_images,
    )
    print(f"page: {page} ({page.stat().st_size / 1e6:.1f} MB)")
    if shot is not None:
        from mocodec.errors import MocodecError
        from mocodec.report.browser import check_page

        check = check_page(page, shot, width=1200, palette=256)
        if check.problems:
            raise MocodecError(f"the page drew with {len(check.problems)} problem(s) in Chromium, first: {check.problems[0]}")
        print(
            f"screenshot: {shot} (loaded in {check.timings['load'] / 1000:.1f} s, curves drawn at {check.timings['plots_drawn'] / 1000:.1f} s)"
        )
